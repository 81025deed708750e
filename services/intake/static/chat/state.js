// The chat's state: the workspace, the session token, the transcript kept in localStorage, and t().

export const params = new URLSearchParams(location.search);
export const workspace = params.get("workspace") || "default";
const KEY = `switchyard.chat.${workspace}`;
export const KEY_SESSION = KEY + ".session";
export const KEY_TRANSCRIPT = KEY + ".transcript";
export const KEY_NAME = KEY + ".name";
export const KEY_EMAIL = KEY + ".email";
const MAX_KEPT = 300;

export const $ = (id) => document.getElementById(id);

export function load(key) { try { return localStorage.getItem(key) || ""; } catch (e) { return ""; } }
export function store(key, value) {
  try { value == null ? localStorage.removeItem(key) : localStorage.setItem(key, value); } catch (e) { /* storage off */ }
}

export function randomId() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// The page's language, set once at the start (main.js) before anything is shown.
export const lang = { i18n: null };
export const t = (key, vars) => (lang.i18n ? lang.i18n.t(key, vars) : key);

// Each message: {message_id?, client_id?, direction, text, created_at, status, agent_name?, quick_replies?,
// chosen? (the quick reply pressed), action? (a press: the quick reply's id)};
// a notice (someone joined, resolved) is {kind: "notice", notice, agent_name?, created_at}.
// Keyed by message_id; a customer message not yet acknowledged is keyed by its client_id.
export const state = {
  session: load(KEY_SESSION),
  messages: [],
  socket: null,            // the ReconnectingSocket, once the chat has started
  readyTimer: null,
  ready: false,            // true once the server has told us the history of this session
  sentHere: new Set(),     // client_ids already sent over the current socket
  inflight: [],            // client_ids sent and not yet answered: the server answers each frame, in order
  forceScroll: false,
  queue: null,             // the last queue frame while waiting, null once an agent has the chat
};
try {
  const saved = JSON.parse(load(KEY_TRANSCRIPT) || "[]");
  if (Array.isArray(saved)) {
    state.messages = saved.filter((m) => m && ((typeof m.text === "string" && (m.message_id || m.client_id))
                                              || (m.kind === "notice" && typeof m.notice === "string")));
  }
} catch (e) { state.messages = []; }

export const byMessageId = (id) => state.messages.find((m) => m.message_id && m.message_id === id);
export const byClientId = (id) => state.messages.find((m) => m.client_id && m.client_id === id);

export function save() {
  const kept = state.messages.slice(-MAX_KEPT).map((m) => (m.kind === "notice"
    ? { kind: "notice", notice: m.notice, agent_name: m.agent_name || null, created_at: m.created_at || null,
        message_id: m.message_id || null }
    : { message_id: m.message_id || null, client_id: m.client_id || null, direction: m.direction,
        text: m.text, created_at: m.created_at || null, status: m.status || null, agent_name: m.agent_name || null,
        quick_replies: m.quick_replies || [], chosen: m.chosen || null, action: m.action || null }));
  store(KEY_TRANSCRIPT, JSON.stringify(kept));
}

/** Forget the old session's transcript; unsent messages still go out. */
export function keepOnlyUnsent() {
  state.messages = state.messages.filter((m) => m.status === "sending" && !m.message_id);
}
