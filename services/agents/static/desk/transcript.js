// The open conversation: its header (contact, details, SLA, transfer and routing context) and its
// transcript, with the contact's earlier messages on any channel above it.

import { api, enc } from "./api.js";
import { showError } from "./banners.js";
import { updateComposer } from "./composer.js";
import { historyOf } from "./contact.js";
import { $, el } from "./dom.js";
import {
  contactLabel, fmtTime, latestTransfer, priorityInfo, routingWhy, slaAlerts, statusLabel, transferText,
} from "./format.js";
import { t } from "./i18n.js";
import { renderLabels } from "./labels.js";
import { slaBadge } from "./list.js";
import { render } from "./render.js";
import { isReading, putMessage, state } from "./state.js";

let renderedConversation = null;
// The transcript's nodes by key ("m:<message_id>", "h:<message_id>", "sep"): a message keeps its node for
// as long as its conversation is open, so the live region only ever hears what is new.
const nodes = new Map();
const SYSTEM_AGENT = "switchyard";

export function renderTranscript() {
  const list = $("transcript");
  const entry = state.selected ? state.convs.get(state.selected) : null;
  const switched = renderedConversation !== (entry ? state.selected : null);
  const atBottom = !switched && followingNewest;
  $("desk-view").classList.toggle("show-chat", !!entry);
  if (!entry) {
    list.replaceChildren();
    nodes.clear();
    $("transcript-empty").hidden = false;
    $("chat-name").textContent = t("chat.none");
    $("chat-details").textContent = "";
    $("chat-sla").replaceChildren();
    $("chat-context").hidden = true;
    $("labels-form").hidden = true;
    $("typing").hidden = true;
    renderedConversation = null;
    updateComposer();
    return;
  }
  entry.unread = isReading(state.selected) ? 0 : entry.unread;
  const c = entry.conv, contact = c.contact || {};
  $("transcript-empty").hidden = true;
  $("chat-name").textContent = contactLabel(c);
  $("chat-details").textContent = [
    c.channel, contact.email, contact.phone,
    (c.skills && c.skills.length) ? t("chat.skills", { skills: c.skills.join(", ") }) : null,
    lowerFirst(priorityInfo(c).title),
    c.created_at ? t("chat.opened", { time: fmtTime(c.created_at) }) : null,
  ].filter(Boolean).join(" · ");
  $("chat-sla").replaceChildren(...slaAlerts(c).map((a) => slaBadge(a, false)));
  const transfer = latestTransfer(c), why = routingWhy(c.routing);
  $("chat-transfer").textContent = transfer ? transferText(transfer) : "";
  $("chat-transfer").hidden = !transfer;
  $("chat-why").textContent = why ? t("chat.routed", { why }) : "";
  $("chat-why").title = c.routing ? t("chat.classified", { by: c.routing.classified_by || "?" }) + "; "
    + (c.routing.candidates == null ? t("chat.candidates_unknown") : t("chat.candidates", { count: c.routing.candidates })) : "";
  $("chat-why").hidden = !why;
  $("chat-context").hidden = !transfer && !why;
  renderLabels(c, switched);
  syncTranscript(list, c, entry, switched);
  $("typing").textContent = t("chat.typing", { name: contactLabel(c) });
  $("typing").hidden = !state.typing.has(state.selected);
  // Scrolled to the newest just before the next paint: setting it now would force a layout of its own
  // on top of the one the paint does anyway.
  if (switched || atBottom) scrollToNewest(list);
  renderedConversation = state.selected;
  updateComposer();
}

// Whether the agent is at the newest message (kept by the scroll events, which come after a layout
// anyway): measuring it on every frame would force a layout of the whole desk each time.
let followingNewest = true;
let scrollPending = false;
function scrollToNewest(list) {
  if (scrollPending) return;
  scrollPending = true;
  requestAnimationFrame(() => { scrollPending = false; list.scrollTop = list.scrollHeight; });
}

// "Priority 3" in the details line reads "priority 3" (in the locale's own lowercase).
function lowerFirst(text) { return text ? text[0].toLocaleLowerCase(document.documentElement.lang) + text.slice(1) : text; }


function attachmentLinks(m) {
  if (!m.attachments || !m.attachments.length) return null;
  return el("div", { class: "files" }, ...m.attachments.map((a) => {
    const label = `${a.filename || a.content_type}${a.size != null ? ` (${t("file.kb", { size: Math.ceil(a.size / 1024) })})` : ""}`;
    if (a.attachment_id) {
      return el("a", { href: `/v1/attachments/${enc(a.attachment_id)}?token=${enc(state.token)}`, download: a.filename || "",
                       "data-testid": "attachment", text: label });
    }
    // Not stored: intake could not fetch it from the provider (a.error says why), or never tries.
    const why = a.error ? t("file.not_fetched", { error: a.error }) : t("file.held_by_channel");
    const external = a.url && /^https?:/.test(a.url);
    return external ? el("a", { href: a.url, target: "_blank", rel: "noopener", text: a.error ? `${label} (${why})` : label })
                    : el("span", { title: a.url || "", text: `${label} (${why})` });
  }));
}

// Keyed update: existing nodes stay (updated in place), new ones are inserted in order, gone ones removed.
function syncTranscript(list, conv, entry, switched) {
  if (switched) { list.replaceChildren(); nodes.clear(); }
  const history = historyOf(conv);
  const wanted = history.map((m) => ["h:" + m.message_id, m, true]);
  if (history.length) wanted.push(["sep", null, false]);
  for (const m of entry.messages.values()) wanted.push(["m:" + m.message_id, m, false]);
  const keep = new Set(wanted.map(([key]) => key));
  for (const [key, node] of nodes) if (!keep.has(key)) { node.remove(); nodes.delete(key); }
  let previous = null;
  for (const [key, m, fromHistory] of wanted) {
    let node = nodes.get(key);
    if (!node) {
      node = key === "sep" ? el("li", { class: "history-note", text: t("chat.this_conversation") }) : messageItem(m, fromHistory);
      nodes.set(key, node);
    } else if (m && node.message !== m) {
      updateItem(node, m);
    }
    if (m) node.message = m;
    const at = previous ? previous.nextSibling : list.firstChild;
    if (at !== node) list.insertBefore(node, at);
    previous = node;
  }
}

// ---- who wrote it: agents' names, fetched once per session (GET /v1/agents) --------------------
let names = null, namesFor = null;

function agentName(id) {
  if (namesFor !== state.token) {
    namesFor = state.token; names = new Map();
    api("GET", "/v1/agents").then((body) => {
      for (const a of (body && body.agents) || []) names.set(a.agent_id, a.name || a.agent_id);
      for (const node of nodes.values()) if (node.message) updateItem(node, node.message, true);
    }).catch(() => { namesFor = null; });
  }
  return names.get(id) || id;
}

export function authorLabel(m) {
  if (m.agent_id === SYSTEM_AGENT) {
    if (m.metadata && m.metadata.bot) return t("author.bot");
    return m.metadata && m.metadata.survey_id ? t("author.survey") : t("author.automatic");
  }
  if (m.metadata && m.metadata.by === "supervisor") return t("author.supervisor_for", { name: agentName(m.agent_id) });
  if (!m.agent_id) return m.direction === "note" ? t("author.supervisor") : "";
  return m.agent_id === state.agentId ? t("author.you", { name: agentName(m.agent_id) }) : agentName(m.agent_id);
}

function messageItem(m, fromHistory) {
  const note = m.direction === "note", outbound = m.direction === "outbound";
  const li = el("li", {
    "data-message-id": fromHistory ? null : m.message_id, "data-direction": note ? "note" : outbound ? "outbound" : "inbound",
    "data-testid": fromHistory ? "history-message" : note ? "note" : null,
  });
  const meta = el("div", { class: "meta" });
  if (note) meta.append(el("span", { class: "author", "data-testid": "author" }));
  meta.append(el("time", { datetime: m.created_at || null, text: fmtTime(m.created_at) }));
  if (outbound) {
    meta.prepend(el("span", { class: "author", "data-testid": "author" }));
    meta.append(el("span", { class: "msg-status", "data-testid": "message-status" }));
  }
  if (fromHistory) meta.append(el("span", { text: t("chat.on_channel", { channel: m.channel }) }));
  li.append(el("div", { class: "bubble", text: m.text || "" }));
  const files = attachmentLinks(m);
  if (files) li.append(files);
  li.append(meta);
  li.fromHistory = fromHistory;
  updateItem(li, m);
  return li;
}

// What may change on a message already shown: its delivery status (and its reason), a retry, its author's name.
function updateItem(li, m, namesOnly) {
  const note = m.direction === "note", outbound = m.direction === "outbound";
  const author = li.querySelector(".author");
  if (author) author.textContent = note ? `${t("chat.private_note")} · ${authorLabel(m)}` : authorLabel(m);
  if (namesOnly) return;
  const failed = m.status === "failed";
  li.className = `msg ${note ? "note" : outbound ? "outbound" : "inbound"}${failed ? " failed" : ""}${li.fromHistory ? " history" : ""}`;
  if (m.status) li.setAttribute("data-status", m.status);
  if (!outbound) return;
  li.querySelector(".msg-status").textContent =
    statusLabel(m.status) + (failed && m.status_reason ? `: ${m.status_reason}` : "");
  const retry = li.querySelector(".retry");
  const canRetry = failed && !m.retried_by && !li.fromHistory;
  if (canRetry && !retry) {
    li.querySelector(".meta").append(el("button", { type: "button", class: "retry", "data-testid": "retry",
      "aria-label": t("retry.label"), text: t("retry.button") }));
  } else if (!canRetry && retry) {
    retry.remove();
  }
  if (failed && m.retried_by && !li.querySelector(".retried")) {
    li.querySelector(".meta").append(el("span", { class: "retried", text: t("retry.sent_again") }));
  }
}

// Retry: the failed reply goes out again as a new reply; the failed one stays, marked as retried.
async function retryReply(li) {
  const id = state.selected, entry = id && state.convs.get(id), m = li.message;
  if (!entry || !m) return;
  const button = li.querySelector(".retry");
  button.disabled = true; button.textContent = t("retry.busy");
  try {
    const message = await api("POST", `/v1/conversations/${enc(id)}/messages/${enc(m.message_id)}/retry`);
    putMessage(entry, { message_id: m.message_id, retried_by: message.message_id });
    putMessage(entry, message);
  } catch (e) {
    showError(t("retry.error", { reason: e.message }));
    button.disabled = false; button.textContent = t("retry.button");
  }
  render();
}

export function wireTranscript() {
  const list = $("transcript");
  list.addEventListener("scroll", () => {
    followingNewest = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  }, { passive: true });
  list.addEventListener("click", (e) => {
    const button = e.target.closest(".retry");
    if (button) retryReply(button.closest("li"));
  });
}
