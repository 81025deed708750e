// Pure formatting: times, who a contact is, SLA alerts, transfers and routing in words; the id rules.

export const AGENT_ID_RE = /^[A-Za-z0-9_-]{1,64}$/;
export const QUEUE_RE = /^[A-Za-z0-9_.:+-]{1,64}$/;
const SLA_RANK = { warning: 1, breached: 2 };
export const SLA_TARGET = { first_response: "First response", resolution: "Resolution" };
export const STATUS_LABEL = { queued: "Sending…", pending: "Sending…", sent: "Sent", delivered: "Delivered", read: "Read", failed: "Failed" };
export const PREVIEW_PREFIX = { outbound: "You: ", note: "Note: " };

// Two formatters made once: toLocaleString() builds one per call, and a desk of 100 conversations
// formats hundreds of times per frame (bench/desk.py).
const TODAY = new Intl.DateTimeFormat([], { hour: "2-digit", minute: "2-digit" });
const OTHER_DAY = new Intl.DateTimeFormat([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });

export function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  if (isNaN(d)) return "";
  return (d.toDateString() === new Date().toDateString() ? TODAY : OTHER_DAY).format(d);
}

export function contactLabel(conv) {
  const c = conv.contact || {};
  const id = c.id || conv.thread_id || conv.conversation_id || "";
  // A generated id (hex or uuid) says nothing to a person: show its tail only.
  const generated = /^(?:[a-z]{1,8}[-_:])?[0-9a-f-]{16,}$/i.test(id);
  return c.name || c.email || c.phone || (generated ? `Visitor ${id.slice(-6)}` : id);
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

export function transferText(t) {
  const from = t.from_agent || (t.from_queue ? `queue ${t.from_queue}` : "the queue");
  return `${t.escalation ? "Escalated" : "Transferred"} from ${from}${t.note ? ": " + t.note : ""}`;
}

// The router's decision record in one line: why this conversation came to this agent.
export function routingWhy(r) {
  if (!r) return "";
  const parts = [r.queue ? `queue ${r.queue}` : null, r.rule, r.strategy ? r.strategy.replace(/_/g, " ") : null];
  return parts.filter(Boolean).join(" · ");
}

// A conversation's priority and where it comes from: the router adds the queue's priority and a
// rule's boost to the message's own and caps the sum at 10, so a message sent with 8 may show 10.
export function priorityInfo(conv) {
  const total = Number(conv.priority || 0);
  const parts = (conv.routing && conv.routing.priority_parts) || null;
  if (!parts) return { total, short: `P${total}`, sums: "", title: `Priority ${total}` };
  const named = [["message", parts.message], ["queue", parts.queue], ["rule", parts.rule]]
    .filter(([name, n]) => name === "message" || Number(n));
  if (named.length === 1) return { total, short: `P${total}`, sums: "", title: `Priority ${total}` };  // the message's own
  const sum = named.reduce((s, [, n]) => s + Number(n || 0), 0);
  const title = `Priority ${total}: ` + named.map(([name, n]) => `${name} ${Number(n || 0)}`).join(" + ")
    + (sum > total ? ` (capped at ${total})` : "");
  return { total, short: `P${total}`, sums: named.map(([, n]) => Number(n || 0)).join("+"), title };
}
