// The supervisor page: sign in with the workspace key, then the wallboard and the reports in two tabs.

import { ApiError, callJson, urlWith } from "./api.js";
import { $, setText, show } from "/lib/dom.js";
import { keptKey, takeTokenFromUrl } from "/lib/key.js";
import { browserZone } from "./format.js";
import { Reports } from "./reports.js";
import { Wallboard } from "./wallboard.js";

const { remember, remembered } = keptKey("switchyard.supervisor.token");
const state = { config: null, wallboard: null, reports: null, token: "", retryTimer: null };

// -- connection state -----------------------------------------------------------------------------

function showConnection(connectionState, { retryAt } = {}) {
  const box = $("connection");
  box.dataset.state = connectionState;
  clearInterval(state.retryTimer);
  const text = {
    connecting: "Connecting…", open: "Live", closed: "Not connected",
    reconnecting: "Reconnecting…",
  }[connectionState] || connectionState;
  setText($("connection-text"), text);
  if (connectionState === "reconnecting" && retryAt) {
    const countdown = () => setText($("connection-text"),
      `Reconnecting in ${Math.max(0, Math.ceil((retryAt - Date.now()) / 1000))} s…`);
    countdown();
    state.retryTimer = setInterval(countdown, 1000);
  }
}

// -- tabs -----------------------------------------------------------------------------------------

function selectTab(view, focus = false) {
  for (const tab of document.querySelectorAll("[role='tab']")) {
    const selected = tab.dataset.view === view;
    tab.setAttribute("aria-selected", String(selected));
    tab.tabIndex = selected ? 0 : -1;
    show($(tab.getAttribute("aria-controls")), selected);
    if (selected && focus) tab.focus();
  }
  if (view === "reports") state.reports.showOnce();
  history.replaceState(null, "", view === "reports" ? "#reports" : location.pathname + location.search);
}

function bindTabs() {
  const tabs = [...document.querySelectorAll("[role='tab']")];
  for (const tab of tabs) {
    tab.addEventListener("click", () => selectTab(tab.dataset.view));
    tab.addEventListener("keydown", (event) => {
      const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
      if (!step) return;
      event.preventDefault();
      const next = tabs[(tabs.indexOf(tab) + step + tabs.length) % tabs.length];
      selectTab(next.dataset.view, true);
    });
  }
}

// -- sign-in --------------------------------------------------------------------------------------

/** The key is checked by reading the live view once (its answer is the wallboard's first frame). */
async function signIn(token) {
  setText($("login-error"), "");
  if (!token) {
    setText($("login-error"), "Enter the workspace's API key.");
    return;
  }
  let frame;
  try {
    frame = await callJson(urlWith(location.origin, "/v1/reports/live", { tz: browserZone() }), token);
  } catch (error) {
    remember("");
    setText($("login-error"), error instanceof ApiError ? error.message : String(error));
    return;
  }
  state.token = token;
  remember(token);
  show($("login-view"), false);
  for (const id of ["tabs", "connection", "sign-out"]) show($(id), true);
  state.reports = new Reports({ token });
  state.reports.init();
  state.wallboard = new Wallboard({ agentsUrl: state.config.agents_url, token, timeZone: browserZone(),
    onConnection: showConnection });
  state.wallboard.start(frame);
  selectTab(location.hash === "#reports" ? "reports" : "wallboard");
}

function signOut() {
  remember("");
  location.replace(location.pathname);
}

async function main() {
  state.config = await (await fetch("/supervisor/config.json", { cache: "no-store" })).json();
  bindTabs();
  $("login").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("token").value.trim());
  });
  $("sign-out").addEventListener("click", signOut);
  const token = takeTokenFromUrl() || remembered();
  if (token) await signIn(token);
  else $("token").focus();
}

main().catch((error) => setText($("login-error"), `The page could not start: ${error.message}`));
