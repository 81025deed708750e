// The desk's one state object and the updates that only touch it (no DOM, no network): merging
// messages and their delivery statuses, conversations, SLA states and offers.

const STATUS_RANK = { received: 0, queued: 0, pending: 0, sent: 1, delivered: 2, read: 3, failed: 4 };

export const state = {
  agentId: "", token: "", signedIn: false,
  convs: new Map(),            // conversation_id -> {conv, messages: Map(message_id -> message), unread}
  selected: null,
  drafts: new Map(),
  pendingStatus: new Map(),    // message_id -> status frame that came before its message
  fetching: new Set(),
  resolved: new Set(),
  offers: new Map(),           // conversation_id -> {frame, expires (server ms)}
  accepting: new Set(),        // offers accepted, waiting for their conversation.assigned
  rejected: new Set(),         // offers rejected here: their revocation needs no notice
  transferFor: null, transferring: false,
  clockSkew: 0,                // server clock minus ours (ms), so offer countdowns match the server
  typing: new Map(),           // conversation_id -> timer that hides "typing…" (the customer is typing)
  typingSentAt: new Map(),     // conversation_id -> when this desk last said the agent is typing
  socket: null,                // the desk's ReconnectingSocket while signed in
  sending: false, resolving: false,
  lifecycleBusy: new Set(),    // conversations whose state change waits for the router's answer
  // The lists (list.js, views.js): who signed in (GET /v1/session), which view, its filters, what the API listed.
  workspace: "",               // the caller's workspace (GET /v1/session): the help center's links (assist.js)
  role: "agent",               // "supervisor" with the workspace's key: Unassigned and All are shown
  view: "mine",                // mine | unassigned | all
  filters: { q: "", channel: "", queue: "", label: "", status: "" },
  matching: null,              // Mine with a search: the ids the server's q matched (null: no search)
  listed: [],                  // Unassigned / All: conversations as the API listed them
  listError: "",
  peek: null,                  // a conversation shown read-only: {conv, messages, assignable}
  contact: null,               // the open conversation's contact (contact.js): {id, data, error}
};

// A later frame never takes a message's delivery status back (a late "sent" after "read").
export function mergeMessage(a, b) {
  const out = Object.assign({}, a, b);
  const ra = STATUS_RANK[a.status] ?? 0, rb = STATUS_RANK[b.status] ?? 0;
  if (ra > rb) { out.status = a.status; out.status_reason = a.status_reason; }
  return out;
}

function withPendingStatus(message) {
  const pending = state.pendingStatus.get(message.message_id);
  if (!pending) return message;
  state.pendingStatus.delete(message.message_id);
  return mergeMessage(message, pending);
}

export function awaitingReply(entry) {
  let n = 0;
  for (const m of entry.messages.values()) {
    if (m.direction !== "note") n = m.direction === "outbound" ? 0 : n + 1;
  }
  return n;
}

// A reply that failed and was not sent again: the list marks its conversation.
export function hasFailedReply(entry) {
  for (const m of entry.messages.values()) if (m.status === "failed" && !m.retried_by) return true;
  return false;
}

export function isReading(conversationId) {
  return state.selected === conversationId && document.visibilityState === "visible";
}

// Returns true if the message was new.
export function putMessage(entry, message) {
  if (!message || !message.message_id) return false;
  const known = entry.messages.get(message.message_id);
  entry.messages.set(message.message_id, known ? mergeMessage(known, message) : withPendingStatus(message));
  if (!known) entry.newest = message.message_id;  // a new key goes last in the Map: lastMessage()'s answer
  return !known;
}

// A snapshot's conversations replace the desk's, keeping what was already known of each (statuses, unread).
export function snapshotConversations(items) {
  const previous = state.convs, next = new Map();
  for (const item of items || []) {
    const conv = item && item.conversation;
    if (!conv || !conv.conversation_id) continue;
    const id = conv.conversation_id;
    const old = previous.get(id);
    const entry = { conv, messages: new Map(), unread: old ? old.unread : 0 };
    for (const m of item.messages || []) {
      if (!m || !m.message_id) continue;
      const known = old && old.messages.get(m.message_id);
      entry.messages.set(m.message_id, known ? mergeMessage(known, m) : withPendingStatus(m));
      if (old && !known && m.direction === "inbound") entry.unread++;
    }
    if (!old) entry.unread = awaitingReply(entry);
    if (isReading(id)) entry.unread = 0;
    next.set(id, entry);
  }
  state.convs = next;
}

export function upsertConversation(conv, messages) {
  if (!conv || !conv.conversation_id) return;
  const id = conv.conversation_id;
  if (!isHeld(conv.status)) { state.convs.delete(id); return; }
  if (conv.assignee_id && state.agentId && conv.assignee_id !== state.agentId) { state.convs.delete(id); return; }
  state.resolved.delete(id);
  let entry = state.convs.get(id);
  const isNew = !entry;
  if (isNew) { entry = { conv, messages: new Map(), unread: 0 }; state.convs.set(id, entry); }
  else entry.conv = Object.assign({}, entry.conv, conv);
  for (const m of messages) {
    if (putMessage(entry, m) && !isNew && m.direction === "inbound") entry.unread++;
  }
  if (isNew) entry.unread = awaitingReply(entry);
  if (isReading(id)) entry.unread = 0;
}

export function applySla(frame) {
  const entry = state.convs.get(frame.conversation_id);
  if (!entry || !frame.target) return;
  const sla = Object.assign({}, entry.conv.sla);
  sla[frame.target] = Object.assign({}, sla[frame.target], { state: frame.state });
  entry.conv = Object.assign({}, entry.conv, { sla });
}

// A status frame may come before its message: it waits in pendingStatus (at most 500) until the message does.
export function applyStatus(frame) {
  const update = { status: frame.status, status_reason: frame.reason || null };
  const entry = state.convs.get(frame.conversation_id);
  const known = entry && entry.messages.get(frame.message_id);
  if (known) { entry.messages.set(frame.message_id, mergeMessage(known, update)); return; }
  if (state.pendingStatus.size > 500) state.pendingStatus.clear();
  state.pendingStatus.set(frame.message_id, update);
}

// Stores an offer frame; returns the stored offer, or null when it is not one to show.
export function storeOffer(frame) {
  const conv = frame && frame.conversation;
  const expires = Date.parse((frame && frame.expires_at) || "");
  if (!conv || !conv.conversation_id || isNaN(expires) || state.convs.has(conv.conversation_id)) return null;
  const known = state.offers.get(conv.conversation_id);
  const offer = { frame, expires, preview: known ? known.preview : null };
  state.offers.set(conv.conversation_id, offer);
  return offer;
}

// The newest message (the last one stored; history fetched later is older). Kept on the entry, so a
// list of 100 conversations does not walk every message of each on every frame.
export function lastMessage(entry) {
  const newest = entry.newest && entry.messages.get(entry.newest);
  if (newest) return newest;
  let last = null;
  for (const m of entry.messages.values()) last = m;
  entry.newest = last ? last.message_id : null;
  return last;
}

// When a conversation last saw a message: its newest message here, else what the server said.
export function lastActivity(entry) {
  const last = lastMessage(entry);
  return String((last && last.created_at) || entry.conv.last_message_at || entry.conv.created_at || "");
}

// Pending and snoozed conversations stay the agent's but free its capacity slot (lifecycle.js).
export const PARKED = ["pending", "snoozed"];
export function isHeld(status) { return !status || status === "assigned" || PARKED.includes(status); }

// Open ones first, then pending and snoozed; latest activity first within each (as the server orders its lists).
export function sortedConversations() {
  const parked = (entry) => (PARKED.includes(entry.conv.status) ? 1 : 0);
  return [...state.convs.values()].sort((a, b) => parked(a) - parked(b) || lastActivity(b).localeCompare(lastActivity(a)));
}
