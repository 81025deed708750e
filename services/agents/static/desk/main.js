// The desk's wiring: sign-in and sign-out, the live feed, every pane's controls, and the start.

import { api, enc } from "./api.js";
import { wireAssist } from "./assist.js";
import { hideNotice, wireBanners } from "./banners.js";
import { wireComposer } from "./composer.js";
import { wireContact } from "./contact.js";
import { $, load, store } from "./dom.js";
import { AGENT_ID_RE } from "./format.js";
import { handleFrame } from "./frames.js";
import { chooseLanguage, lang, startI18n, t } from "./i18n.js";
import { wireLabels } from "./labels.js";
import { wireLifecycle } from "./lifecycle.js";
import { wireList } from "./list.js";
import { alertFor, raiseAlert, wireNotify } from "./notify.js";
import { tickOffers, wireOffers } from "./offers.js";
import { wirePeek } from "./peek.js";
import { setConnection, setPresence, wirePresence } from "./presence.js";
import { forgetOpen, restoreAfter, startRestore, wireReload } from "./reload.js";
import { render } from "./render.js";
import { wireShortcuts } from "./shortcuts.js";
import { ReconnectingSocket } from "/lib/socket.js";
import { state } from "./state.js";
import { closeTransfer, wireTransfer } from "./transfer.js";
import { loadSession, resetViews } from "./views.js";
import { wireTranscript } from "./transcript.js";

const KEY_AGENT = "switchyard.desk.agent_id";
const KEY_TOKEN = "switchyard.desk.token";

// ---- live feed -------------------------------------------------------------------------
state.socket = new ReconnectingSocket({
  url: () => {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/v1/agents/${enc(state.agentId)}/ws?token=${enc(state.token)}`;
  },
  onFrame: (frame) => {
    const worth = alertFor(frame);  // judged before the frame changes what the desk knows
    handleFrame(frame);
    restoreAfter(frame);
    raiseAlert(worth);
  },
  onState: (name, { attempt, delay }) => {
    if (name === "connecting") setConnection("connecting", attempt ? t("connection.reconnecting") : t("connection.connecting"));
    else setConnection("closed", t("connection.retry_in", { count: Math.max(1, Math.round(delay / 1000)) }));
  },
  // The socket would not open: find out whether the key or the agent is gone.
  check: async () => {
    try { await api("GET", `/v1/agents/${enc(state.agentId)}`); }
    catch (e) { if (e.status === 401 || e.status === 404) return e.message; }
    return null;
  },
  onGiveUp: (message) => signOut(message),
});

// ---- sign in / out ---------------------------------------------------------------------
function showLoginError(message) {
  $("login-error").textContent = message;
  $("login-error").hidden = !message;
}

async function signIn(agentId, token) {
  showLoginError("");
  if (!AGENT_ID_RE.test(agentId)) { showLoginError(t("login.bad_agent_id")); return; }
  if (!token) { showLoginError(t("login.no_key")); return; }
  state.agentId = agentId; state.token = token;
  $("connect").disabled = true; $("connect").textContent = t("connection.connecting");
  let agent;
  try { agent = await api("GET", `/v1/agents/${enc(agentId)}`); }
  catch (e) { showLoginError(e.message); return; }
  finally { $("connect").disabled = false; $("connect").textContent = t("login.connect"); }
  store(KEY_AGENT, agentId); store(KEY_TOKEN, token);
  cleanUrl(["agent_id", "token"]);  // remembered now; a reload signs in again from storage
  state.signedIn = true;
  state.convs = new Map(); state.selected = null; state.resolved.clear(); state.pendingStatus.clear();
  state.offers = new Map(); state.accepting.clear(); state.rejected.clear();
  state.contact = null; resetViews();
  closeTransfer();
  $("who").textContent = agent.name ? `${agent.name} (${agent.agent_id})` : agent.agent_id;
  setPresence(agent.status);
  for (const id of ["who", "presence", "connection", "desk-tools", "sign-out", "desk-view"]) $(id).hidden = false;
  $("login-view").hidden = true;
  render();
  startRestore();
  state.socket.start();
  loadSession();  // which list views this key has
}

function signOut(message) {
  state.signedIn = false;
  state.socket.stop("signed out");
  forgetOpen();
  store(KEY_TOKEN, null);
  state.token = "";
  state.offers.clear();
  tickOffers();
  hideNotice();
  $("api-key").value = "";
  for (const id of ["who", "presence", "connection", "desk-tools", "sign-out", "desk-view", "away-banner"]) $(id).hidden = true;
  $("login-view").hidden = false;
  document.title = t("desk.title");
  showLoginError(message || "");
  $("api-key").focus();
}

function wireSession() {
  $("login").addEventListener("submit", (e) => {
    e.preventDefault();
    ready.then(() => signIn($("agent-id").value.trim(), $("api-key").value.trim()));  // in the desk's language
  });
  $("sign-out").addEventListener("click", () => signOut(""));
  $("connection").addEventListener("click", () => { if (state.signedIn) state.socket.reconnectNow(); });
  window.addEventListener("online", () => { if (state.signedIn) state.socket.reconnectNow(); });
}

// ---- start -----------------------------------------------------------------------------
function cleanUrl(names) {
  const params = new URLSearchParams(location.search);
  if (!names.some((n) => params.has(n))) return;
  names.forEach((n) => params.delete(n));
  const rest = params.toString();
  history.replaceState(null, "", location.pathname + (rest ? "?" + rest : "") + location.hash);
}

function start() {
  const params = new URLSearchParams(location.search);
  const urlAgent = params.get("agent_id"), urlToken = params.get("token");
  $("agent-id").value = urlAgent || load(KEY_AGENT);
  $("api-key").value = urlToken || load(KEY_TOKEN);
  cleanUrl(["token"]);  // keep the key out of the address bar and browser history
  if (!urlAgent && !urlToken && $("agent-id").value && $("api-key").value) {
    signIn($("agent-id").value, $("api-key").value);  // a returning agent: reconnect at once
  } else {
    ($("agent-id").value ? $("api-key") : $("agent-id")).focus();
  }
}

// The language first: its file loads while the panes are wired; nothing is drawn before it is in.
const ready = startI18n();
wireBanners();
wireSession();
wirePresence();
wireList();
wireOffers();
wireTransfer();
wireLabels();
wireLifecycle();
wireComposer();
wirePeek();
wireContact();
wireAssist();
wireReload();
wireNotify();
wireTranscript();
await ready;
document.title = t("desk.title");
$("language").value = lang.i18n.lang;
$("language").addEventListener("change", (e) => chooseLanguage(e.target.value));
wireShortcuts();  // its dialog's rows are drawn in the language
start();
