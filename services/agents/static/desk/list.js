// The conversation lists (and the tab title's count of what waits), with the SLA chip it shares with
// the header. Mine is drawn from the live state; Unassigned and All from what the API listed (views.js).

import { $, el } from "./dom.js";
import { contactLabel, fmtTime, previewPrefix, priorityInfo, slaAlerts, slaTarget } from "./format.js";
import { t } from "./i18n.js";
import { lifecycleLabel } from "./lifecycle.js";
import { priorityChip } from "./offers.js";
import { openPeek } from "./peek.js";
import { render, select } from "./render.js";
import { PARKED, hasFailedReply, lastActivity, lastMessage, sortedConversations, state } from "./state.js";
import { mineMatches, wireViews } from "./views.js";

const EMPTY = {
  mine: () => t("list.empty_mine"),
  unassigned: () => t("list.empty_unassigned"),
  all: () => t("list.empty_all"),
  filtered: () => t("list.empty_filtered"),
};

// Rows are kept by conversation and drawn again only when what they show changed: with 100
// conversations on a desk, every frame redrawing every row cost most of the frame (bench/desk.py).
const drawn = new Map();  // conversation_id -> {signature, li}

function row(c, details = {}) {
  const selected = c.conversation_id === (state.peek ? state.peek.conv.conversation_id : state.selected);
  const signature = JSON.stringify([
    state.view, selected, details, contactLabel(c), c.channel, c.priority, c.status, c.snoozed_until, c.assignee_id,
    c.queue, c.sla, c.labels, c.routing && c.routing.priority_parts]);
  const known = drawn.get(c.conversation_id);
  if (known && known.signature === signature) return known.li;
  const li = drawRow(c, details, selected);
  drawn.set(c.conversation_id, { signature, li });
  return li;
}

function drawRow(c, { unread = 0, preview = "", typing = false, at = "", failed = false }, selected) {
  return el("li", {
    "data-conversation-id": c.conversation_id, "data-unread": unread, "data-status": c.status || null,
    class: selected ? "selected" : null,
  }, el("button", { type: "button", class: "conv", "aria-current": selected ? "true" : null },
    el("div", { class: "conv-top" },
      el("span", { class: "conv-name", text: contactLabel(c) }),
      failed ? el("span", { class: "failed-badge", "data-testid": "failed-reply", text: t("list.reply_failed") }) : null,
      unread ? el("span", { class: "badge", "data-testid": "unread", "aria-label": t("list.unread", { count: unread }), text: unread }) : null),
    el("div", { class: "conv-meta" },
      el("span", { class: "chip", text: c.channel || "?" }),
      priorityChip(priorityInfo(c)),
      state.view !== "mine" ? el("span", { class: "chip status", "data-testid": "row-status", text: rowStatus(c) })
        : PARKED.includes(c.status) ? el("span", { class: "chip parked", "data-testid": "row-lifecycle", text: lifecycleLabel(c) })
        : null,
      slaBadge(slaAlerts(c)[0], true),
      el("time", { datetime: at || null, text: fmtTime(at) })),
    typing ? el("div", { class: "conv-preview typing", "data-testid": "typing-preview", text: t("list.typing") })
           : el("div", { class: "conv-preview", text: preview })));
}

function rowStatus(c) {
  if (c.status === "assigned") return c.assignee_id === state.agentId ? t("row.yours") : c.assignee_id || t("row.assigned");
  if (c.status === "waiting") return t("row.waiting") + (c.queue ? " · " + c.queue : "");
  return { pending: t("row.pending"), snoozed: t("row.snoozed"), resolved: t("row.resolved") }[c.status] || c.status;
}

function mineRows() {
  return sortedConversations().filter((entry) => mineMatches(entry.conv)).map((entry) => {
    const c = entry.conv, last = lastMessage(entry);
    return row(c, { unread: entry.unread, typing: state.typing.has(c.conversation_id), at: lastActivity(entry),
                    failed: hasFailedReply(entry),
                    preview: last ? previewPrefix(last.direction) + (last.text || "") : "" });
  });
}

function listedRows() {
  return state.listed.map((c) => {
    const mine = state.convs.get(c.conversation_id);  // one of Mine: its unread count is live
    return row(c, { unread: mine ? mine.unread : 0, at: c.last_message_at || c.created_at,
                    preview: (c.labels || []).join(", ") });
  });
}

function filtered() {
  const f = state.filters;
  return !!(f.q || f.channel || f.queue || f.label || (state.view === "all" && f.status));
}

export function renderList() {
  const mine = state.view === "mine";
  const rows = mine ? mineRows() : listedRows();
  $("conversations").hidden = !mine;
  $("listed").hidden = mine;
  const list = mine ? $("conversations") : $("listed");
  if (rows.length !== list.children.length || rows.some((li, i) => list.children[i] !== li)) list.replaceChildren(...rows);
  if (drawn.size > rows.length + 500) forgetRowsBut(rows);
  const empty = $("conversations-empty");
  empty.textContent = state.listError || (filtered() ? EMPTY.filtered : EMPTY[state.view])();
  empty.hidden = rows.length > 0 && !state.listError;
  const waiting = [...state.convs.values()].reduce((n, e) => n + (e.unread || 0), 0) + state.offers.size;
  document.title = waiting ? `(${waiting}) ${t("desk.title")}` : t("desk.title");
}

function forgetRowsBut(rows) {
  const keep = new Set(rows.map((li) => li.getAttribute("data-conversation-id")));
  for (const id of [...drawn.keys()]) if (!keep.has(id)) drawn.delete(id);
}

export function slaBadge(alert, short) {
  if (!alert) return null;
  const breached = alert.state === "breached";
  const what = `${slaTarget(alert.target)}: ${breached ? t("sla.breached") : t("sla.due_soon")}`;
  const title = alert.due ? `${what} ${t("sla.due_at", { time: fmtTime(alert.due) })}` : what;
  return el("span", { class: "sla", "data-testid": "sla", "data-state": alert.state, "data-target": alert.target,
                      title, "aria-label": "SLA " + title,
                      text: short ? (breached ? t("sla.chip_breached") : t("sla.chip_warning")) : what });
}

// A row of Unassigned or All: one of Mine opens as usual; any other opens read-only.
function openListed(id) {
  if (state.convs.has(id)) { select(id); return; }  // select() leaves the read-only view and draws
  const conv = state.listed.find((c) => c.conversation_id === id);
  if (conv) openPeek(conv);
}

export function wireList() {
  $("conversations").addEventListener("click", (e) => {
    const li = e.target.closest("[data-conversation-id]");
    if (li) select(li.getAttribute("data-conversation-id"));  // select() draws (once: a second draw re-measures)
  });
  $("listed").addEventListener("click", (e) => {
    const li = e.target.closest("[data-conversation-id]");
    if (li) openListed(li.getAttribute("data-conversation-id"));
  });
  $("back").addEventListener("click", () => select(null));
  document.addEventListener("visibilitychange", () => { if (state.signedIn) render(); });
  wireViews(renderList);
}
