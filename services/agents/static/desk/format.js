// Pure formatting: times, who a contact is, SLA alerts, transfers and routing in words; the id rules.

import { clock, t } from "./i18n.js";

export const AGENT_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
export const QUEUE_RE = /^[A-Za-z0-9_.:+-]{1,64}$/;
const SLA_RANK = { warning: 1, breached: 2 };

// Words for the API's values, read when drawn (the language is loaded after the modules are).
export function slaTarget(target) {
  return { first_response: t("sla.first_response"), resolution: t("sla.resolution") }[target] || target;
}

export function statusLabel(status) {
  return { queued: t("status.sending"), pending: t("status.sending"), sent: t("status.sent"),
           delivered: t("status.delivered"), read: t("status.read"), failed: t("status.failed") }[status] || status || "";
}

export function previewPrefix(direction) {
  return direction === "outbound" ? t("preview.you") : direction === "note" ? t("preview.note") : "";
}

// The two formatters are made once per language (i18n.js clock): toLocaleString() builds one per
// call, and a desk of 100 conversations formats hundreds of times per frame (bench/desk.py).
export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return "";
  return (d.toDateString() === new Date().toDateString() ? clock.today : clock.otherDay).format(d);
}

export function contactLabel(conv) {
  const c = conv.contact || {};
  const id = c.id || conv.thread_id || conv.conversation_id || "";
  // A generated id (hex or uuid) says nothing to a person: show its tail only.
  const generated = /^(?:[a-z]{1,8}[-_:])?[0-9a-f-]{16,}$/i.test(id);
  return c.name || c.email || c.phone || (generated ? t("contact.visitor", { id: id.slice(-6) }) : id);
}

export function slaAlerts(conv) {
  return Object.entries(conv.sla || {})
    .filter(([, v]) => v && SLA_RANK[v.state])
    .map(([target, v]) => ({ target, state: v.state, due: v.due_at }))
    .sort((a, b) => SLA_RANK[b.state] - SLA_RANK[a.state]);
}

export function latestTransfer(conv) {
  const transfers = conv.transfers;
  return Array.isArray(transfers) && transfers.length ? transfers[transfers.length - 1] : null;
}

export function transferText(tr) {
  const from = tr.from_agent || (tr.from_queue ? t("transfer.from_queue", { queue: tr.from_queue }) : t("transfer.from_the_queue"));
  const said = tr.escalation ? t("transfer.escalated_from", { from }) : t("transfer.transferred_from", { from });
  return said + (tr.note ? ": " + tr.note : "");
}

// The router's decision record in one line: why this conversation came to this agent.
export function routingWhy(r) {
  if (!r) return "";
  const parts = [r.queue ? t("routing.queue", { queue: r.queue }) : null, r.rule, r.strategy ? r.strategy.replace(/_/g, " ") : null];
  return parts.filter(Boolean).join(" · ");
}

// A conversation's priority and where it comes from: the router adds the queue's priority and a
// rule's boost to the message's own and caps the sum at 10, so a message sent with 8 may show 10.
export function priorityInfo(conv) {
  const total = Number(conv.priority || 0);
  const parts = (conv.routing && conv.routing.priority_parts) || null;
  const plain = t("priority.title", { total });
  if (!parts) return { total, short: `P${total}`, sums: "", title: plain };
  const named = [["message", parts.message], ["queue", parts.queue], ["rule", parts.rule]]
    .filter(([name, n]) => name === "message" || Number(n));
  if (named.length === 1) return { total, short: `P${total}`, sums: "", title: plain };  // the message's own
  const sum = named.reduce((s, [, n]) => s + Number(n || 0), 0);
  const words = { message: t("priority.message"), queue: t("priority.queue"), rule: t("priority.rule") };
  const title = `${plain}: ` + named.map(([name, n]) => `${words[name]} ${Number(n || 0)}`).join(" + ")
    + (sum > total ? " " + t("priority.capped", { total }) : "");
  return { total, short: `P${total}`, sums: named.map(([, n]) => Number(n || 0)).join("+"), title };
}
