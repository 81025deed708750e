// Canned responses in the composer: `/` at the start or after a space opens a picker (the ARIA combobox
// pattern: the reply box is the combobox, #canned-list its listbox), filtered as the agent types; Up/Down
// move, Enter or Tab inserts, Escape closes; a click inserts too. The text inserted is the one the agents
// service filled for the open conversation (GET /v1/canned-responses?conversation_id=: `rendered`).

import { api, enc } from "./api.js";
import { $, el } from "./dom.js";
import { t } from "./i18n.js";
import { state } from "./state.js";

const TRIGGER = /(^|\s)\/([a-z0-9_-]{0,32})$/i;
const SHOWN = 8;
let responses = null, loadedFor = null, loading = null;
let open = false, matches = [], active = 0, trigger = null;  // trigger: {start, end} of "/query" in the box

async function responsesFor(id) {
  if (loadedFor === id && responses) return responses;
  if (loading && loadedFor === id) return loading;
  loadedFor = id;
  loading = api("GET", `/v1/canned-responses?conversation_id=${enc(id)}`)
    .then((body) => { responses = (body && body.responses) || []; return responses; })
    .catch(() => { loadedFor = null; return []; })
    .finally(() => { loading = null; });
  responses = null;
  return loading;
}

function filter(all, query) {
  const q = query.toLowerCase();
  const starts = all.filter((r) => r.shortcut.startsWith(q));
  const contains = all.filter((r) => !r.shortcut.startsWith(q) &&
    (r.shortcut.includes(q) || r.title.toLowerCase().includes(q)));
  return [...starts, ...contains].slice(0, SHOWN);
}

async function update() {
  const box = $("reply"), id = state.selected;
  const before = box.value.slice(0, box.selectionStart);
  const found = box.selectionStart === box.selectionEnd && id ? TRIGGER.exec(before) : null;
  if (!found) { closeCanned(); return; }
  trigger = { start: before.length - found[2].length - 1, end: before.length };
  const all = await responsesFor(id);
  if (state.selected !== id || !TRIGGER.test(box.value.slice(0, box.selectionStart))) return;
  matches = filter(all, found[2]);
  active = 0;
  draw(all.length === 0 ? t("canned.none") : matches.length ? "" : t("canned.no_match", { query: found[2] }));
}

function draw(empty) {
  const list = $("canned-list"), box = $("reply");
  open = true;
  list.replaceChildren(...(empty
    ? [el("li", { class: "canned-empty", role: "option", "aria-disabled": "true", id: "canned-none", text: empty })]
    : matches.map((r, i) => el("li", {
      id: `canned-${i}`, role: "option", class: "canned-option", "data-index": i, "data-testid": "canned-option",
      "aria-selected": i === active ? "true" : "false",
    }, el("span", { class: "canned-shortcut", text: `/${r.shortcut}` }),
       el("span", { class: "canned-title", text: r.title || (r.personal ? t("canned.personal") : "") }),
       el("span", { class: "canned-text", text: r.rendered ?? r.text })))));
  list.hidden = false;
  box.setAttribute("aria-expanded", "true");
  if (matches.length) box.setAttribute("aria-activedescendant", `canned-${active}`);
  else box.removeAttribute("aria-activedescendant");
  const option = $(`canned-${active}`);
  if (option) option.scrollIntoView({ block: "nearest" });
}

export function closeCanned() {
  open = false; matches = []; trigger = null;
  responses = null; loadedFor = null;  // the next `/` asks again: a response added meanwhile shows
  $("canned-list").hidden = true;
  $("canned-list").replaceChildren();
  $("reply").setAttribute("aria-expanded", "false");
  $("reply").removeAttribute("aria-activedescendant");
}

function insert(r) {
  const box = $("reply");
  if (!r || !trigger) return;
  const text = r.rendered ?? r.text;
  box.value = box.value.slice(0, trigger.start) + text + box.value.slice(trigger.end);
  const caret = trigger.start + text.length;
  box.setSelectionRange(caret, caret);
  closeCanned();
  box.dispatchEvent(new Event("input"));  // autosize, typing signal, draft
  box.focus();
}

// The composer's keydown asks here first: true when the picker took the key.
export function cannedKeydown(e) {
  if (!open) return false;
  if (e.key === "Escape") { e.preventDefault(); closeCanned(); return true; }
  if (!matches.length) return false;
  if (e.key === "ArrowDown" || e.key === "ArrowUp") {
    e.preventDefault();
    active = (active + (e.key === "ArrowDown" ? 1 : matches.length - 1)) % matches.length;
    draw("");
    return true;
  }
  if ((e.key === "Enter" && !e.shiftKey && !e.isComposing) || e.key === "Tab") {
    e.preventDefault();
    insert(matches[active]);
    return true;
  }
  return false;
}

export function wireCanned() {
  const box = $("reply");
  box.addEventListener("input", update);
  box.addEventListener("click", update);
  box.addEventListener("blur", () => closeCanned());
  // mousedown, not click: the reply box keeps its focus (a blur would close the list first).
  $("canned-list").addEventListener("mousedown", (e) => {
    const option = e.target.closest("[data-index]");
    e.preventDefault();
    if (option) insert(matches[Number(option.getAttribute("data-index"))]);
  });
}
