// The list views and their filters: Mine (live from the socket's frames), Unassigned and All (a
// supervisor's, read from GET /v1/conversations on a view or filter change, and every REFRESH_MS
// while the tab is visible). The search box uses the server's full-text `q` in every view.

import { api, enc } from "./api.js";
import { $ } from "./dom.js";
import { t } from "./i18n.js";
import { state } from "./state.js";

const REFRESH_MS = 15_000;
const SEARCH_DELAY_MS = 300;
const LIST_LIMIT = 200;
const VIEWS = ["mine", "unassigned", "all"];

let renderList = () => {};
let generation = 0;  // a slower, older answer never overwrites a newer one
let timer = null;
let searchTimer = null;

// Who signed in decides which views there are: the workspace's key is a supervisor's.
export async function loadSession() {
  try {
    const session = await api("GET", "/v1/session");
    state.role = session.role;
    state.workspace = session.workspace_id;
  } catch (e) {
    state.role = "agent";  // the views an agent has work whatever the answer
  }
  for (const view of ["unassigned", "all"]) $(`view-${view}`).hidden = state.role !== "supervisor";
  $("list-views").setAttribute("data-role", state.role);
  if (state.role !== "supervisor" && state.view !== "mine") setView("mine");
  else refresh();
}

export function resetViews() {
  state.view = "mine"; state.listed = []; state.matching = null; state.listError = ""; state.peek = null;
  state.filters = { q: "", channel: "", queue: "", label: "", status: "" };
  for (const id of ["list-q", "filter-channel", "filter-queue", "filter-label", "filter-status"]) $(id).value = "";
  markTabs();
}

function query() {
  const f = state.filters, params = new URLSearchParams({ limit: String(LIST_LIMIT) });
  if (state.view === "mine") {
    params.set("assignee_id", state.agentId);  // open, pending and snoozed: the live rows decide what shows
  } else if (state.view === "unassigned") {
    params.set("status", "waiting");
  } else if (f.status) {
    params.set("status", f.status);
  }
  if (f.q) params.set("q", f.q);
  for (const name of ["channel", "queue", "label"]) if (f[name]) params.set(name, f[name]);
  return params;
}

// Reads the view's list from the API (Mine only when it searches: its rows stay live from frames).
export async function refresh() {
  const mine = state.view === "mine";
  const mark = ++generation;
  if (mine && !state.filters.q) { state.matching = null; renderList(); return; }
  try {
    const answer = await api("GET", `/v1/conversations?${query()}`);
    if (mark !== generation) return;
    state.listError = "";
    if (mine) state.matching = new Set(answer.conversations.map((c) => c.conversation_id));
    else state.listed = answer.conversations;
  } catch (e) {
    if (mark !== generation) return;
    state.listError = e.message;
  }
  renderList();
}

function markTabs() {
  for (const view of VIEWS) {
    const tab = $(`view-${view}`), on = view === state.view;
    tab.setAttribute("aria-selected", String(on));
    tab.tabIndex = on ? 0 : -1;
  }
  $("list-body").setAttribute("aria-labelledby", `view-${state.view}`);
  $("filter-status").hidden = state.view !== "all";  // Mine holds assigned ones, Unassigned waiting ones
}

export function setView(view) {
  if (!VIEWS.includes(view) || (view !== "mine" && state.role !== "supervisor")) return;
  state.view = view;
  state.listed = []; state.listError = "";
  markTabs();
  renderList();
  refresh();
}

function readFilters() {
  state.filters = {
    q: $("list-q").value.trim(), channel: $("filter-channel").value, queue: $("filter-queue").value.trim(),
    label: $("filter-label").value.trim(), status: $("filter-status").value,
  };
}

// Refreshes on a modest interval, only while someone can see the list.
function schedule() {
  clearInterval(timer);
  timer = setInterval(() => {
    if (state.signedIn && document.visibilityState === "visible" && state.view !== "mine") refresh();
  }, REFRESH_MS);
}

export function wireViews(render) {
  renderList = render;
  const tabs = $("list-views");
  tabs.addEventListener("click", (e) => {
    const tab = e.target.closest("[data-view]");
    if (tab) setView(tab.getAttribute("data-view"));
  });
  // Arrow keys move between the tabs (a tablist's keyboard).
  tabs.addEventListener("keydown", (e) => {
    if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
    const shown = VIEWS.filter((v) => !$(`view-${v}`).hidden);
    const next = shown[(shown.indexOf(state.view) + (e.key === "ArrowRight" ? 1 : shown.length - 1)) % shown.length];
    setView(next);
    $(`view-${next}`).focus();
    e.preventDefault();
  });
  $("list-filters").addEventListener("submit", (e) => { e.preventDefault(); readFilters(); refresh(); });
  $("list-filters").addEventListener("change", () => { readFilters(); renderList(); refresh(); });
  $("list-q").addEventListener("input", () => {
    clearTimeout(searchTimer);
    searchTimer = setTimeout(() => { readFilters(); refresh(); }, SEARCH_DELAY_MS);
  });
  document.addEventListener("visibilitychange", () => {
    if (state.signedIn && document.visibilityState === "visible" && state.view !== "mine") refresh();
  });
  schedule();
}

// Mine filtered here (its rows are live): channel, queue and label on the conversation, q by the server's ids.
export function mineMatches(conv) {
  const f = state.filters;
  if (f.channel && conv.channel !== f.channel) return false;
  if (f.queue && conv.queue !== f.queue) return false;
  if (f.label && !(conv.labels || []).includes(f.label)) return false;
  return !state.matching || state.matching.has(conv.conversation_id);
}

// A supervisor takes a conversation: the existing transfer to an agent, with the workspace's key.
export async function assignToMe(conversationId) {
  await api("POST", `/v1/conversations/${enc(conversationId)}/transfer`,
            { to_agent: state.agentId, note: t("peek.self_note") });
}
