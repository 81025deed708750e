// A reload (or a link) keeps the open conversation: its id rides in the address as `#c=<id>` and in
// sessionStorage (one tab's own), and the first snapshot after the page loads opens it again if it
// is still this agent's. The draft is the composer's business.

import { select } from "./render.js";
import { state } from "./state.js";

const KEY_OPEN = "switchyard.desk.open";
let restoring = null;  // the id to open when the first snapshot comes; consumed once

function fromHash() {
  return new URLSearchParams(location.hash.slice(1)).get("c") || "";
}

function session(value) {
  try {
    if (value === undefined) return sessionStorage.getItem(KEY_OPEN) || "";
    if (value) sessionStorage.setItem(KEY_OPEN, value); else sessionStorage.removeItem(KEY_OPEN);
  } catch (e) { /* storage off: the address alone keeps it */ }
  return "";
}

// Called whenever the open conversation may have changed (a selection, a frame that took it away).
export function rememberOpen() {
  if (restoring) return;  // not yet: the address still names the one to restore
  const id = state.selected || "";
  if (fromHash() !== id) {
    const hash = id ? `#c=${encodeURIComponent(id)}` : "";
    history.replaceState(null, "", location.pathname + location.search + hash);  // no history entry per click
  }
  session(id);
}

// On sign-in: what the address (or this tab's storage) says was open.
export function startRestore() {
  restoring = fromHash() || session() || null;
}

// After a frame: the first snapshot opens the remembered conversation, if it is still on this desk.
export function restoreAfter(frame) {
  if (frame.type === "snapshot" && restoring) {
    const id = restoring;
    restoring = null;
    if (!state.selected && state.convs.has(id)) select(id);
  }
  rememberOpen();
}

export function forgetOpen() {
  restoring = null;
  session(null);
  if (location.hash) history.replaceState(null, "", location.pathname + location.search);
}

export function wireReload() {
  // A link or an edited address naming another of this desk's conversations opens it.
  window.addEventListener("hashchange", () => {
    const id = fromHash();
    if (state.signedIn && id && id !== state.selected && state.convs.has(id)) select(id);
  });
}
