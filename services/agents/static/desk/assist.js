// Suggested articles (agent assist): the knowledge-base articles that match the open conversation, in the
// side panel under the contact. The query is the customer's latest messages (newest first, at most 500
// characters), searched on the assist service (GET /v1/kb/search, with the agent's token, across origins:
// GET /desk/config.json says where) when a conversation opens and again, debounced, when a customer message
// arrives. One request in flight per conversation (a newer query waits for it, and only the newest); an answer
// for a conversation no longer open, or for a query since replaced, is dropped. The agent may search by hand.
// Insert puts the article's title and public link into the reply box at the cursor; Open opens the page.
// Assist unreachable or failing: the panel says so and nothing else changes.

import { enc } from "./api.js";
import { $, el } from "./dom.js";
import { t } from "./i18n.js";
import { state } from "./state.js";

const MAX_QUERY = 500;       // assist's limit on q (characters)
const DEBOUNCE_MS = 700;     // a burst of customer messages is one search
const TIMEOUT_MS = 8000;     // an assist that does not answer is unavailable, not a spinner forever
const LIMIT = 5;
// A suggestion (not a search by hand) this unlikely to answer the customer is noise: left out.
const MIN_SUGGESTED = 0.1;

let config = null;           // a promise of {assist_url}, read once
let base = "";               // where the desk reaches assist, once the config is in
let publicHelp = "";         // the help center's public list page for this token (GET /v1/kb/help), once known
let helpToken = "";
let shown = null;            // the conversation the panel is drawn for
let manual = "";             // the agent's own search ("" : the customer's messages are the query)
let wanted = "";             // the query the panel shows the answer to (or waits for)
let answer = null;           // {query, hits} or {query, error}
let debounce = null;
let ignored = 0;
const inFlight = new Map();  // conversation id -> the query being asked
const queued = new Map();    // conversation id -> the newest query waiting for the one in flight

function loadConfig() {
  config ??= fetch("/desk/config.json", { cache: "no-store" })
    .then((r) => (r.ok ? r.json() : Promise.reject(new Error(String(r.status)))))
    .then((c) => { base = c.assist_url; return c; })
    .catch((e) => { config = null; throw e; });  // asked again next time
  return config;
}

// A GET on assist with the agent's token: its JSON, or an Error (unreachable, timed out, or its status).
async function assistGet(path) {
  await loadConfig();
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), TIMEOUT_MS);
  try {
    const resp = await fetch(base + path, {
      headers: { Authorization: "Bearer " + state.token, Accept: "application/json" },
      cache: "no-store", signal: abort.signal,
    });
    if (!resp.ok) throw new Error(String(resp.status));
    return await resp.json();
  } finally {
    clearTimeout(timer);
  }
}

// Where customers read the workspace's articles (ASSIST_PUBLIC_URL), asked once per token; the links drawn
// before it is in point where the desk reaches assist (the same place unless the two are set apart).
function learnHelpCenter() {
  if (helpToken === state.token) return;
  helpToken = state.token; publicHelp = "";
  assistGet("/v1/kb/help")
    .then((where) => { if (helpToken === state.token) { publicHelp = where.url; relink(); } })
    .catch(() => { helpToken = ""; });  // asked again with the next answer
}

// The links in place (a redraw would take the focus from the button the agent is on).
function relink() {
  for (const link of $("assist-hits").querySelectorAll("a.assist-open")) {
    link.href = articleUrl(link.closest("[data-article]").getAttribute("data-article"));
  }
}

function articleUrl(id) {
  const list = publicHelp || `${base}/help/${enc(state.workspace || "default")}`;
  return `${list}/articles/${enc(id)}`;
}

/** The customer's latest messages, newest first, cut to assist's 500 characters (whole characters). */
export function customerQuery(entry) {
  const texts = [...entry.messages.values()]
    .filter((m) => m.direction === "inbound" && typeof m.text === "string" && m.text.trim())
    .map((m) => m.text.trim())
    .reverse();
  const chars = Array.from(texts.join("\n"));
  return chars.slice(0, MAX_QUERY).join("").trim();
}

function current() {
  const entry = state.selected && !state.peek ? state.convs.get(state.selected) : null;
  return entry && entry.conv.contact_id ? entry : null;  // the panel lives in the contact's aside
}

// ---- asking ------------------------------------------------------------------------------------
// The panel's data-search says where the shown conversation's search is (asking, queued behind the one in
// flight, done, error), and data-ignored how many answers came for a conversation or query no longer shown.
function mark(id, where) { if (id === shown) $("assist").dataset.search = where; }

function ask(id, query) {
  if (!query) return;
  if (inFlight.has(id)) { queued.set(id, query); mark(id, "queued"); return; }  // one at a time; the newest waits
  inFlight.set(id, query);
  mark(id, "asking");
  assistGet(`/v1/kb/search?q=${enc(query)}&limit=${LIMIT}`)
    .then((body) => received(id, { query, hits: (body && body.hits) || [] }))
    .catch(() => received(id, { query, error: true }))
    .finally(() => {
      inFlight.delete(id);
      const next = queued.get(id);
      queued.delete(id);
      if (next && next !== query && id === shown) ask(id, next);  // one left meanwhile asks again when reopened
    });
}

function received(id, result) {
  if (id !== shown || result.query !== wanted) {  // another conversation, or a replaced query
    ignored += 1; $("assist").dataset.ignored = String(ignored);
    return;
  }
  mark(id, result.error ? "error" : "done");
  if (result.hits && !manual) result.hits = result.hits.filter((hit) => hit.score >= MIN_SUGGESTED);
  answer = result;
  if (!result.error) learnHelpCenter();
  draw();
}

function want(query, { now }) {
  clearTimeout(debounce);
  wanted = query;
  answer = null;
  const id = shown;
  if (!query) { mark(id, "idle"); draw(); return; }
  if (now) ask(id, query);
  else debounce = setTimeout(() => { if (shown === id && wanted === query) ask(id, query); }, DEBOUNCE_MS);
  draw();
}

/** Called on every render: a newly opened conversation is searched now, a changed query after a pause. */
export function renderAssist() {
  const entry = current();
  const id = entry ? entry.conv.conversation_id : null;
  if (id !== shown) {
    shown = id; manual = ""; $("assist-q").value = ""; $("assist-hits").replaceChildren();
    if (id) want(customerQuery(entry), { now: true });
    else { clearTimeout(debounce); wanted = ""; answer = null; }
    return;
  }
  if (!entry || manual) return;
  const query = customerQuery(entry);
  if (query !== wanted) want(query, { now: false });
}

// ---- drawing -----------------------------------------------------------------------------------
function say(text) { $("assist-status").textContent = text; }

function draw() {
  const list = $("assist-hits");
  $("assist-source").textContent = manual ? t("assist.from_search") : t("assist.from_messages");
  if (!wanted) { list.replaceChildren(); say(manual ? "" : t("assist.no_query")); return; }
  if (!answer) { say(t("assist.searching")); return; }  // the last answer stays until the new one is in
  if (answer.error) { list.replaceChildren(); say(t("assist.unavailable")); return; }
  say(answer.hits.length ? t("assist.found", { count: answer.hits.length }) : t("assist.none"));
  list.replaceChildren(...answer.hits.map(hitItem));
}

function hitItem(hit) {
  const percent = Math.round(Math.max(0, Math.min(1, Number(hit.score) || 0)) * 100);
  const level = percent >= 60 ? "high" : percent >= 30 ? "medium" : "low";
  return el("li", { class: "assist-hit", "data-testid": "assist-hit", "data-article": hit.id },
    el("h3", { class: "assist-title", text: hit.title }),
    el("p", { class: "assist-excerpt", text: hit.excerpt }),
    el("div", { class: "assist-actions" },
      el("span", { class: "assist-score", "data-level": level, "data-testid": "assist-score",
                   text: t("assist.relevance", { percent }) }),
      el("button", { type: "button", class: "assist-insert", "data-insert": hit.id, "data-testid": "assist-insert",
                     "aria-label": t("assist.insert_label", { title: hit.title }), text: t("assist.insert") }),
      el("a", { class: "assist-open", href: articleUrl(hit.id), target: "_blank", rel: "noopener noreferrer",
                "data-testid": "assist-open", "aria-label": t("assist.open_label", { title: hit.title }),
                text: t("assist.open") })));
}

// ---- acting ------------------------------------------------------------------------------------
function insert(hit) {
  const box = $("reply");
  const start = box.selectionStart ?? box.value.length, end = box.selectionEnd ?? start;
  const before = box.value.slice(0, start), after = box.value.slice(end);
  const text = (before && !/\s$/.test(before) ? " " : "") + `${hit.title}: ${articleUrl(hit.id)}` +
    (after && !/^\s/.test(after) ? " " : "");
  box.value = before + text + after;
  box.focus();
  box.setSelectionRange(start + text.length, start + text.length);
  box.dispatchEvent(new Event("input"));  // the draft, the box's height, the typing signal
  say(t("assist.inserted", { title: hit.title }));
}

function onClick(e) {
  const button = e.target.closest("[data-insert]");
  const hit = button && answer && answer.hits && answer.hits.find((h) => h.id === button.getAttribute("data-insert"));
  if (hit) insert(hit);
}

function onSearch(e) {
  e.preventDefault();
  const entry = current();
  if (!entry) return;
  const typed = Array.from($("assist-q").value.trim()).slice(0, MAX_QUERY).join("");
  manual = typed;
  want(typed || customerQuery(entry), { now: true });
}

export function wireAssist() {
  $("assist-search").addEventListener("submit", onSearch);
  // Clearing the box (its × or the last character) goes back to the customer's messages.
  $("assist-q").addEventListener("input", (e) => { if (!e.target.value.trim() && manual) onSearch(e); });
  $("assist-hits").addEventListener("click", onClick);
}
