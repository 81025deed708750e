// What the customer sees: the transcript, the connection status, errors, the agent typing, the queue line.

import { choiceButtons } from "./choices.js";
import { $, lang, state, t } from "./state.js";

function statusLabel(m) {
  if (m.direction !== "inbound") return "";
  return m.status === "sending" ? t("message.sending") : t("message.sent");
}

function timeElement(iso) {
  const time = document.createElement("time");
  time.textContent = lang.i18n ? lang.i18n.time(iso) : "";
  if (iso) time.setAttribute("datetime", iso);
  return time;
}

function noticeItem(m) {
  const li = document.createElement("li");
  li.className = "notice";
  li.dataset.notice = m.notice;
  li.textContent = m.notice === "joined" ? t("notice.joined", { name: m.agent_name || t("who.support") })
    : t(`notice.${m.notice}`);
  li.append(" ", timeElement(m.created_at));
  return li;
}

function messageItem(m) {
  const li = document.createElement("li");
  li.className = "msg";
  li.setAttribute("data-direction", m.direction === "outbound" ? "outbound" : "inbound");
  if (m.message_id) li.setAttribute("data-message-id", m.message_id);
  if (m.client_id) li.setAttribute("data-client-id", m.client_id);
  li.setAttribute("data-status", m.status || "");
  const bubble = document.createElement("div");
  bubble.className = "bubble";
  bubble.textContent = m.text;
  const meta = document.createElement("div");
  meta.className = "meta";
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = m.direction === "outbound" ? (m.agent_name || t("who.support")) : t("who.you");
  meta.append(who, timeElement(m.created_at));
  const label = statusLabel(m);
  if (label) {
    const status = document.createElement("span");
    status.className = "msg-status";
    status.textContent = label;
    meta.append(status);
  }
  li.append(bubble);
  if (m.files && m.files.length) li.append(fileLinks(m.files));
  if (m.direction === "outbound" && m.quick_replies && m.quick_replies.length) li.append(choiceButtons(m));
  li.append(meta);
  return li;
}

function fileLinks(files) {
  const box = document.createElement("div");
  box.className = "files";
  for (const f of files) {
    const a = document.createElement("a");
    a.href = f.url;
    a.setAttribute("download", f.filename);
    a.setAttribute("data-testid", "agent-file");
    a.textContent = f.filename + (typeof f.size === "number" ? ` (${Math.ceil(f.size / 1024)} KB)` : "");
    box.append(a);
  }
  return box;
}

export function render() {
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  const items = state.messages.map((m) => (m.kind === "notice" ? noticeItem(m) : messageItem(m)));
  if (!items.length) {
    const hello = document.createElement("li");
    hello.className = "welcome";
    hello.textContent = state.greeting || t("welcome");
    items.push(hello);
  }
  list.replaceChildren(...items);
  if (atBottom || state.forceScroll) list.scrollTop = list.scrollHeight;
  state.forceScroll = false;
  $("name-row").hidden = !!state.session || state.messages.length > 0;
  renderQueue();
}

/** The waiting line: place in the queue and the expected wait, while no agent has the chat. */
export function renderQueue() {
  const q = state.queue;
  $("queue").hidden = !q;
  if (!q) return;
  const place = t("queue.position", { count: q.position, position: q.position });
  const wait = Number.isFinite(q.expected_wait_seconds) && q.expected_wait_seconds !== null
    ? t("queue.wait", { duration: lang.i18n.duration(q.expected_wait_seconds) }) : t("queue.wait_unknown");
  $("queue").textContent = `${place} ${wait}`;
  $("queue").dataset.position = String(q.position);
}

let errorTimer = null;
export function showError(text) {
  $("error-text").textContent = text;
  $("error").hidden = false;
  clearTimeout(errorTimer);
  errorTimer = setTimeout(() => { $("error").hidden = true; }, 10000);
}

export function setStatus(name, text) {
  $("status").dataset.state = name;
  $("status").textContent = text;
}

// The agent's typing shows for TYPING_SHOWN ms after their last signal, or until their message comes.
const TYPING_SHOWN = 5000;
let typingTimer = null;
export function agentTyping(on) {
  const list = $("messages");
  const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  clearTimeout(typingTimer);
  $("typing").hidden = !on;
  if (on) typingTimer = setTimeout(() => agentTyping(false), TYPING_SHOWN);
  if (atBottom) list.scrollTop = list.scrollHeight;  // the line takes room from the list: keep the last message in view
}

export function wireView() {
  $("error-close").addEventListener("click", () => { $("error").hidden = true; });
}
