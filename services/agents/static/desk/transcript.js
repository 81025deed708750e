// The open conversation: its header (contact, details, SLA, transfer and routing context) and its
// transcript, with the contact's earlier messages on any channel above it.

import { api, enc } from "./api.js";
import { updateComposer } from "./composer.js";
import { $, el } from "./dom.js";
import {
  STATUS_LABEL, contactLabel, fmtTime, latestTransfer, priorityInfo, routingWhy, slaAlerts, transferText,
} from "./format.js";
import { renderLabels } from "./labels.js";
import { slaBadge } from "./list.js";
import { render } from "./render.js";
import { isReading, state } from "./state.js";

let renderedConversation = null;

export function renderTranscript() {
  const t = $("transcript");
  const entry = state.selected ? state.convs.get(state.selected) : null;
  const switched = renderedConversation !== (entry ? state.selected : null);
  const atBottom = t.scrollHeight - t.scrollTop - t.clientHeight < 60;
  $("desk-view").classList.toggle("show-chat", !!entry);
  if (!entry) {
    t.replaceChildren();
    $("transcript-empty").hidden = false;
    $("chat-name").textContent = "No conversation selected";
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
    (c.skills && c.skills.length) ? "skills: " + c.skills.join(", ") : null,
    priorityInfo(c).title.replace(/^Priority/, "priority"),
    c.created_at ? "opened " + fmtTime(c.created_at) : null,
  ].filter(Boolean).join(" · ");
  $("chat-sla").replaceChildren(...slaAlerts(c).map((a) => slaBadge(a, false)));
  const transfer = latestTransfer(c), why = routingWhy(c.routing);
  $("chat-transfer").textContent = transfer ? transferText(transfer) : "";
  $("chat-transfer").hidden = !transfer;
  $("chat-why").textContent = why ? `Routed to you: ${why}` : "";
  $("chat-why").title = c.routing ? `classified by ${c.routing.classified_by || "?"}; ${c.routing.candidates ?? "?"} candidate(s)` : "";
  $("chat-why").hidden = !why;
  $("chat-context").hidden = !transfer && !why;
  renderLabels(c, switched);
  const history = contactHistory(c);
  const items = [...history.map((m) => messageItem(m, true)), ...[...entry.messages.values()].map((m) => messageItem(m, false))];
  if (history.length) items.splice(history.length, 0, el("li", { class: "history-note", text: "— this conversation —" }));
  t.replaceChildren(...items);
  $("typing").textContent = `${contactLabel(c)} is typing…`;
  $("typing").hidden = !state.typing.has(state.selected);
  if (switched || atBottom) t.scrollTop = t.scrollHeight;
  renderedConversation = state.selected;
  updateComposer();
}

// Earlier messages of the same person on any channel (merged by email or phone), fetched once.
function contactHistory(conv) {
  if (!conv.contact_id) return [];
  const known = state.history.get(conv.contact_id);
  if (known === undefined) {
    state.history.set(conv.contact_id, []);
    api("GET", `/v1/contacts/${enc(conv.contact_id)}`).then((contact) => {
      state.history.set(conv.contact_id, (contact.messages || []).filter((m) => m.conversation_id !== conv.conversation_id));
      render();
    }).catch(() => state.history.delete(conv.contact_id));
    return [];
  }
  return known;
}

function attachmentLinks(m) {
  if (!m.attachments || !m.attachments.length) return null;
  return el("div", { class: "files" }, ...m.attachments.map((a) => {
    const label = `${a.filename || a.content_type}${a.size != null ? ` (${Math.ceil(a.size / 1024)} KB)` : ""}`;
    if (a.attachment_id) {
      return el("a", { href: `/v1/attachments/${enc(a.attachment_id)}?token=${enc(state.token)}`, download: a.filename || "",
                       "data-testid": "attachment", text: label });
    }
    // Not stored: intake could not fetch it from the provider (a.error says why), or never tries.
    const why = a.error ? `not fetched: ${a.error}` : "held by the channel";
    const external = a.url && /^https?:/.test(a.url);
    return external ? el("a", { href: a.url, target: "_blank", rel: "noopener", text: a.error ? `${label} (${why})` : label })
                    : el("span", { title: a.url || "", text: `${label} (${why})` });
  }));
}

function messageItem(m, fromHistory) {
  if (m.direction === "note") return noteItem(m, fromHistory);
  const outbound = m.direction === "outbound";
  const failed = m.status === "failed";
  const meta = el("div", { class: "meta" }, el("time", { datetime: m.created_at || null, text: fmtTime(m.created_at) }));
  if (outbound) {
    meta.append(el("span", { class: "msg-status", "data-testid": "message-status",
      text: (STATUS_LABEL[m.status] || m.status || "") + (failed && m.status_reason ? `: ${m.status_reason}` : "") }));
  }
  if (fromHistory) meta.append(el("span", { text: `on ${m.channel}` }));
  return el("li", {
    class: `msg ${outbound ? "outbound" : "inbound"}${failed ? " failed" : ""}${fromHistory ? " history" : ""}`,
    "data-message-id": fromHistory ? null : m.message_id, "data-direction": outbound ? "outbound" : "inbound",
    "data-status": m.status || null, "data-testid": fromHistory ? "history-message" : null,
  }, el("div", { class: "bubble", text: m.text || "" }), attachmentLinks(m), meta);
}

// An internal note (a transfer's note): never sent to the customer.
function noteItem(m, fromHistory) {
  return el("li", {
    class: `msg note${fromHistory ? " history" : ""}`, "data-direction": "note",
    "data-message-id": fromHistory ? null : m.message_id, "data-testid": fromHistory ? "history-message" : "note",
  }, el("div", { class: "bubble", text: m.text || "" }),
     el("div", { class: "meta" }, el("span", { text: "Internal note" + (m.agent_id ? ` by ${m.agent_id}` : "") }),
        el("time", { datetime: m.created_at || null, text: fmtTime(m.created_at) })));
}
