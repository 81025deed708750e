// Keyboard shortcuts for the desk, and the `?` dialog that lists them (docs/desk.md).
//
// A plain letter never fires while the agent types in a box (a reply starting with "j" stays a
// reply); with Alt held the same key works from anywhere. Keys are read by their position
// (KeyboardEvent.code), so Alt+letter works on layouts where Alt types another character.

import { $, el } from "./dom.js";
import { t } from "./i18n.js";
import { select } from "./render.js";
import { state } from "./state.js";
import { openTransfer } from "./transfer.js";

// One place for the keys: the dialog's list is drawn from it, so the two never disagree.
export const SHORTCUTS = [
  { code: "KeyJ", keys: "j", what: () => t("shortcuts.next"), run: (typing) => step(1, typing) },
  { code: "KeyK", keys: "k", what: () => t("shortcuts.previous"), run: (typing) => step(-1, typing) },
  { code: "KeyR", keys: "r", what: () => t("shortcuts.reply"), run: () => press("reply", "focus") },
  { code: "KeyE", keys: "e", what: () => t("shortcuts.resolve"), run: () => press("resolve", "click") },
  { code: "KeyT", keys: "t", what: () => t("shortcuts.transfer"), run: () => state.selected && openTransfer() },
  { code: "KeyA", keys: "a", what: () => t("shortcuts.accept"), run: () => answerNewest("accept") },
  { code: "KeyX", keys: "x", what: () => t("shortcuts.reject"), run: () => answerNewest("reject") },
];

function press(id, how) {
  const node = $(id);
  if (node && !node.disabled && !node.closest("[hidden]")) node[how]();
}

// The next or previous conversation in the list's own order (what the agent sees). From the list,
// focus stays on the list (on the row now open), so j and k can be pressed again; from the reply
// box (Alt+J/K) it stays in the reply box.
function step(delta, typing) {
  const ids = [...$("conversations").querySelectorAll("[data-conversation-id]")].map((li) => li.dataset.conversationId);
  if (!ids.length) return;
  const at = ids.indexOf(state.selected);
  const next = at < 0 ? (delta > 0 ? 0 : ids.length - 1) : Math.min(ids.length - 1, Math.max(0, at + delta));
  select(ids[next]);
  const row = $("conversations").querySelector(`[data-conversation-id="${CSS.escape(ids[next])}"]`);
  if (row) row.scrollIntoView({ block: "nearest" });
  const button = row && row.querySelector("button");
  if (button && !typing) button.focus();
}

// The newest offer is the one that came last (state.offers keeps arrival order).
function answerNewest(action) {
  const ids = [...state.offers.keys()];
  for (let i = ids.length - 1; i >= 0; i--) {
    const button = $("offers").querySelector(`[data-offer-id="${CSS.escape(ids[i])}"] [data-action="${action}"]`);
    if (button && !button.disabled) { button.click(); return; }
  }
}

function typingIn(target) {
  return !!target && (target.isContentEditable || /^(INPUT|TEXTAREA|SELECT)$/.test(target.tagName));
}

function onKey(e) {
  if (!state.signedIn || e.ctrlKey || e.metaKey || e.defaultPrevented || e.repeat) return;
  if ($("shortcuts-dialog").open) return;  // the dialog handles its own keys (Escape closes it)
  const typing = typingIn(e.target);
  if (!e.altKey && typing) return;
  if (e.key === "?" && !e.altKey) { e.preventDefault(); openShortcuts(); return; }
  if (e.shiftKey) return;
  const shortcut = SHORTCUTS.find((s) => s.code === e.code);
  if (!shortcut) return;
  e.preventDefault();
  shortcut.run(typing);
}

export function openShortcuts() {
  const dialog = $("shortcuts-dialog");
  if (!dialog.open) dialog.showModal();
}

function fillDialog() {
  const rows = SHORTCUTS.map((s) => el("tr", null,
    el("td", null, el("kbd", { text: s.keys }), ` ${t("shortcuts.or")} `, el("kbd", { text: `Alt+${s.keys.toUpperCase()}` })),
    el("td", { text: s.what() })));
  rows.push(el("tr", null, el("td", null, el("kbd", { text: "?" })), el("td", { text: t("shortcuts.this_list") })));
  $("shortcuts-list").replaceChildren(...rows);
}

export function wireShortcuts() {
  fillDialog();
  document.addEventListener("keydown", onKey);
  $("shortcuts-open").addEventListener("click", openShortcuts);
  $("shortcuts-close").addEventListener("click", () => $("shortcuts-dialog").close());
}
