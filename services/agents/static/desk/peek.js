// A conversation shown read-only: one of Unassigned or All that is not the agent's, or an earlier
// conversation of the open contact. A supervisor may take a waiting or someone else's one ("Assign to
// me": the existing supervisor transfer to an agent); it then opens in Mine when the router has moved it.

import { api, enc } from "./api.js";
import { $, el } from "./dom.js";
import { contactLabel, fmtTime } from "./format.js";
import { t } from "./i18n.js";
import { render, select } from "./render.js";
import { state } from "./state.js";
import { assignToMe, refresh, setView } from "./views.js";

function assignable(conv) {
  return state.role === "supervisor" && conv.status !== "resolved" && conv.assignee_id !== state.agentId;
}

// `messages` given (a contact's earlier conversation, from the contact's answer): no fetch.
export async function openPeek(conv, messages) {
  const id = conv.conversation_id;
  state.peek = { conv, messages: messages || null, note: "", assigning: false };
  render();
  $("peek-back").focus();
  if (messages) return;
  try {
    const doc = await api("GET", `/v1/conversations/${enc(id)}`);
    if (state.peek && state.peek.conv.conversation_id === id) {
      state.peek.conv = doc; state.peek.messages = doc.messages || [];
    }
  } catch (e) {
    if (state.peek && state.peek.conv.conversation_id === id) { state.peek.messages = []; state.peek.note = e.message; }
  }
  render();
}

export function closePeek() {
  if (!state.peek) return;
  state.peek = null;
  render();
}

export function statusWord(status) {
  return { waiting: t("row.waiting"), pending: t("row.pending"), snoozed: t("row.snoozed"), resolved: t("row.resolved"),
           assigned: t("row.assigned") }[status] || status;
}

function messageItem(m) {
  const kind = m.direction === "note" ? "note" : m.direction === "outbound" ? "outbound" : "inbound";
  const who = kind === "note" ? (m.agent_id ? t("peek.note_by", { agent: m.agent_id }) : t("peek.note"))
    : kind === "outbound" ? (m.agent_id || t("peek.agent")) : "";
  return el("li", { class: `msg ${kind}`, "data-direction": kind },
    el("div", { class: "bubble", text: m.text || "" }),
    el("div", { class: "meta" }, who ? el("span", { text: who }) : null,
       el("time", { datetime: m.created_at || null, text: fmtTime(m.created_at) })));
}

export function renderPeek() {
  const peek = state.peek;
  $("desk-view").classList.toggle("peeking", !!peek);
  $("peek").hidden = !peek;
  if (!peek) return;
  const c = peek.conv, id = c.conversation_id;
  if (peek.assigning && state.convs.has(id)) {  // the router moved it to this agent: open it in Mine
    queueMicrotask(() => { state.peek = null; setView("mine"); select(id); render(); });
    return;
  }
  $("peek-name").textContent = contactLabel(c);
  $("peek-details").textContent = [
    c.channel, c.status === "assigned" ? t("peek.with", { agent: c.assignee_id }) : statusWord(c.status),
    c.queue ? t("routing.queue", { queue: c.queue }) : null,
    c.created_at ? t("chat.opened", { time: fmtTime(c.created_at) }) : null, t("peek.read_only"),
  ].filter(Boolean).join(" · ");
  $("assign-me").hidden = !assignable(c);
  $("assign-me").disabled = peek.assigning;
  $("assign-me").textContent = peek.assigning ? t("peek.assigning") : t("peek.assign");
  $("peek-note").textContent = peek.note;
  $("peek-note").hidden = !peek.note;
  const messages = peek.messages;
  $("peek-transcript").replaceChildren(...(messages === null
    ? [el("li", { class: "history-note", text: t("common.loading") })]
    : messages.map(messageItem)));
}

async function takeIt() {
  const peek = state.peek;
  if (!peek) return;
  peek.assigning = true; peek.note = "";
  render();
  try {
    await assignToMe(peek.conv.conversation_id);
    if (state.peek === peek) peek.note = t("peek.assign_note");
    refresh();
  } catch (e) {
    if (state.peek === peek) { peek.assigning = false; peek.note = e.message; }
  }
  render();
}

export function wirePeek() {
  $("peek-back").addEventListener("click", closePeek);
  $("assign-me").addEventListener("click", takeIt);
}
