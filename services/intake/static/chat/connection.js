// The chat's WebSocket, over the shared ReconnectingSocket: its URL, what a refused socket means, and
// sending messages and typing signals once the server has told us the history.

import { ReconnectingSocket } from "/lib/socket.js";
import { $, KEY_EMAIL, KEY_NAME, KEY_SESSION, keepOnlyUnsent, lang, load, save, state, store, t, workspace } from "./state.js";
import { agentTyping, render, setStatus, showError } from "./view.js";

function socketPath() {
  const query = new URLSearchParams({ workspace });
  if (state.session) query.set("session", state.session);
  const name = ($("name").value || load(KEY_NAME)).trim();
  if (name) query.set("name", name);
  const email = load(KEY_EMAIL);
  if (email) query.set("email", email);
  if (lang.i18n) query.set("lang", lang.i18n.lang.split("-")[0]);  // a CSAT survey is asked in it
  return `/v1/chat/ws?${query}`;
}

// The socket would not open. A browser is not told why, so ask the same URL over plain HTTP:
// 401 means our session token is no longer valid (give up on it), 404 an unknown workspace.
async function diagnose() {
  let status = 0;
  try { status = (await fetch(socketPath(), { cache: "no-store" })).status; } catch (e) { status = 0; }
  if (status === 401 && state.session) return "expired";
  if (status === 404) {
    showError(t("error.unknown_workspace"));
    state.socket.attempt = Math.max(state.socket.attempt, 6);  // retry, but slowly
  }
  return null;
}

function startOver() {
  state.session = "";
  store(KEY_SESSION, null);
  keepOnlyUnsent();
  save(); render();
  showError(t("error.expired"));
  state.socket.start();
}

export function createSocket(onFrame) {
  state.socket = new ReconnectingSocket({
    url: () => {
      const scheme = location.protocol === "https:" ? "wss:" : "ws:";
      return `${scheme}//${location.host}${socketPath()}`;
    },
    onFrame,
    onState: (name, { attempt, delay }) => {
      state.ready = false;
      state.sentHere = new Set();
      state.inflight = [];
      clearTimeout(state.readyTimer);
      agentTyping(false);
      if (name === "connecting") setStatus("connecting", attempt ? t("status.reconnecting") : t("status.connecting"));
      else setStatus("closed", t("status.offline", { seconds: Math.max(1, Math.round(delay / 1000)) }));
    },
    check: diagnose,
    checkAfter: 0,  // the first refusal is worth asking about: an expired session should not wait a retry
    onGiveUp: startOver,
  });
  $("status").addEventListener("click", () => state.socket.reconnectNow());
  window.addEventListener("online", () => { if (started()) state.socket.reconnectNow(); });
}

export const started = () => !!state.socket && !state.socket.stopped;
export const isOpen = () => !!state.socket && state.socket.isOpen;

export function transmit(m) {
  if (!state.ready || !isOpen() || state.sentHere.has(m.client_id)) return;
  state.sentHere.add(m.client_id);
  state.inflight.push(m.client_id);
  // A quick reply's press carries its id as the action (the text is its title).
  state.socket.send({ type: "message", text: m.text, client_id: m.client_id, ...(m.action ? { action: m.action } : {}) });
}

export function flushOutbox() {
  for (const m of state.messages) if (m.status === "sending" && !m.message_id) transmit(m);
}

// We say the customer is typing at most once per TYPING_EVERY ms; a lost signal is harmless.
const TYPING_EVERY = 2000;
let typingSentAt = 0;
export function sendTyping() {
  if (!state.ready || !isOpen() || !$("text").value.trim()) return;
  const now = Date.now();
  if (now - typingSentAt < TYPING_EVERY) return;
  typingSentAt = now;
  state.socket.send({ type: "typing" });
}
