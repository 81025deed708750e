// Every frame the server sends the chat, applied to the state (the transcript is then saved and drawn).

import { flushOutbox } from "./connection.js";
import { quickReplies } from "./choices.js";
import { onSurvey, onSurveyAnswer } from "./survey.js";
import { $, byClientId, byMessageId, keepOnlyUnsent, save, state, store, KEY_SESSION, t } from "./state.js";
import { agentTyping, render, renderQueue, setStatus, showError } from "./view.js";
import { autosize } from "./composer.js";

const HANDLERS = {
  session: onSession,
  history: (frame) => onHistory(frame.messages || []),
  ack: onAck,
  error: onError,
  message: onMessage,
  queue: onQueue,
  notice: onNotice,
};

export function handleFrame(frame) {
  if (frame.type === "typing") { if (frame.who === "agent") agentTyping(true); return; }
  if (frame.type === "survey") { onSurvey(frame); return; }
  if (frame.type === "csat.recorded" || (frame.type === "error" && frame.survey_id)) { onSurveyAnswer(frame); return; }
  const handler = HANDLERS[frame.type];
  if (!handler) return;
  handler(frame);
  save();
  render();
}

function onSession(frame) {
  if (frame.token) {
    // A new session: what we kept belongs to the old one. Unsent messages still go out.
    if (state.session && frame.token !== state.session) keepOnlyUnsent();
    state.session = frame.token;
    store(KEY_SESSION, frame.token);
  }
  state.socket.resetBackoff();
  setStatus("open", t("status.connected"));
  // Unsent messages go out once the history is in (so none the server already has is sent
  // twice); should no history come, they go out shortly anyway.
  clearTimeout(state.readyTimer);
  const gen = state.socket.generation;
  state.readyTimer = setTimeout(() => {
    if (gen === state.socket.generation && !state.ready) { state.ready = true; flushOutbox(); }
  }, 1500);
}

function onHistory(history) {
  for (const h of history) {
    if (!h || !h.message_id) continue;
    let local = byMessageId(h.message_id) || (h.client_id ? byClientId(h.client_id) : null);
    if (!local && h.direction === "inbound") {
      // An unacknowledged message the server did take (its ack was lost with the connection).
      local = state.messages.find((m) => !m.message_id && m.status === "sending" && m.text === h.text);
    }
    const merged = {
      message_id: h.message_id, client_id: (local && local.client_id) || h.client_id || null,
      direction: h.direction === "outbound" ? "outbound" : "inbound", text: typeof h.text === "string" ? h.text : "",
      created_at: h.created_at || (local && local.created_at) || null,
      status: h.direction === "inbound" ? "sent" : (h.status || null),
      agent_name: h.agent_name || (local && local.agent_name) || null,
      files: agentFiles(h),
      quick_replies: quickReplies(h).length ? quickReplies(h) : (local && local.quick_replies) || [],
      action: h.action || (local && local.action) || null,
    };
    if (local) Object.assign(local, merged); else state.messages.push(merged);
  }
  // Server order by time; unsent messages stay last, in the order they were written.
  const pending = state.messages.filter((m) => !m.message_id);
  const stored = state.messages.filter((m) => m.message_id);
  stored.forEach((m, i) => { m._i = i; });
  stored.sort((a, b) => (Date.parse(a.created_at) || 0) - (Date.parse(b.created_at) || 0) || a._i - b._i);
  stored.forEach((m) => { delete m._i; });
  state.messages = stored.concat(pending);
  state.forceScroll = true;
  clearTimeout(state.readyTimer);
  state.ready = true;
  flushOutbox();  // after history, so messages the server already has are not sent twice
}

function answered(clientId) {
  const at = clientId ? state.inflight.indexOf(clientId) : 0;
  if (at >= 0) return state.inflight.splice(0, at + 1).pop() || null;
  return clientId;
}

function onAck(frame) {
  answered(frame.client_id);
  const m = byClientId(frame.client_id);
  if (!m) return;
  const dup = frame.message_id && byMessageId(frame.message_id);
  if (dup && dup !== m) state.messages.splice(state.messages.indexOf(m), 1);
  else { m.message_id = frame.message_id || m.message_id; m.status = "sent"; }
}

function onError(frame) {
  const tooLong = Array.isArray(frame.problems) && frame.problems.some((p) => p && p.type === "string_too_long");
  const text = tooLong ? t("error.too_long") : (frame.message || t("error.generic"));
  // An error may not name its message (e.g. a frame the server could not parse): then it is
  // the answer to the oldest unanswered frame.
  const clientId = answered(frame.client_id);
  const m = clientId ? byClientId(clientId) : null;
  if (m && !m.message_id) {
    state.messages.splice(state.messages.indexOf(m), 1);
    if (!$("text").value) { $("text").value = m.text; autosize(); }
    showError(t("error.not_sent", { reason: text }));
  } else {
    showError(text);
  }
}

function onMessage(frame) {
  if (frame.direction !== "inbound") agentTyping(false);
  if (!frame.message_id || byMessageId(frame.message_id)) return;
  if (frame.direction !== "inbound") state.queue = null;  // someone has the chat
  state.messages.push({
    message_id: frame.message_id, client_id: null,
    direction: frame.direction === "inbound" ? "inbound" : "outbound",
    text: typeof frame.text === "string" ? frame.text : "",
    created_at: frame.created_at || new Date().toISOString(), status: frame.status || null,
    agent_name: typeof frame.agent_name === "string" ? frame.agent_name : null,
    files: agentFiles(frame),
    quick_replies: frame.direction === "inbound" ? [] : quickReplies(frame),
  });
}

// An agent's files: each a download by its signed link (only intake's own /v1/files/ links are taken).
function agentFiles(frame) {
  return (Array.isArray(frame.attachments) ? frame.attachments : [])
    .filter((a) => a && typeof a.url === "string" && a.url.startsWith("/v1/files/"))
    .map((a) => ({ url: a.url, filename: String(a.filename || "file"), size: a.size }));
}

function onQueue(frame) {
  const position = Number(frame.position);
  if (!Number.isInteger(position) || position < 1) { state.queue = null; return; }
  const wait = frame.expected_wait_seconds;
  state.queue = { position, expected_wait_seconds: typeof wait === "number" && wait >= 0 ? wait : null };
  renderQueue();
}

// {"type": "notice", "notice": "joined" | "resolved", "agent_name"?, "message_id", "created_at"}
function onNotice(frame) {
  if (frame.notice !== "joined" && frame.notice !== "resolved") return;
  if (frame.message_id && byMessageId(frame.message_id)) return;
  state.queue = null;
  state.messages.push({
    kind: "notice", notice: frame.notice, message_id: frame.message_id || null,
    agent_name: typeof frame.agent_name === "string" ? frame.agent_name : null,
    created_at: frame.created_at || new Date().toISOString(),
  });
}
