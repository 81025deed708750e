// Alerts: a short tone (WebAudio, no sound file) and desktop notifications (the Notification API)
// for new conversations, offers and customer messages, each switched on or off by the agent in the
// Alerts popover and remembered in localStorage. Desktop notifications show while the tab is hidden
// (the desk itself shows everything when it is in front); the tone also sounds for what is not in
// front of the agent's eyes: an offer, a new conversation, a message in another conversation.
// The browser asks for notification permission only when the agent ticks the box (a click).

import { $, load, store } from "./dom.js";
import { contactLabel } from "./format.js";
import { t } from "./i18n.js";
import { select } from "./render.js";
import { isReading, state } from "./state.js";

const KEY_ALERTS = "switchyard.desk.alerts";
const DEFAULTS = { sound: true, desktop: false };
const TONES = { offer: [880, 1175], conversation: [660, 880], message: [740] };  // Hz, one short beep each

let settings = readSettings();
let audio = null;  // made on the agent's first click or key: browsers start sound only after a gesture

function readSettings() {
  try { return Object.assign({}, DEFAULTS, JSON.parse(load(KEY_ALERTS) || "{}")); } catch (e) { return { ...DEFAULTS }; }
}

function saveSettings() { store(KEY_ALERTS, JSON.stringify(settings)); }

// ---- what a frame is worth an alert for (read before the frame changes the state) --------------

export function alertFor(frame) {
  if (!state.signedIn) return null;
  if (frame.type === "conversation.offered") {
    const conv = frame.conversation || {}, id = conv.conversation_id;
    if (!id || state.offers.has(id) || state.convs.has(id)) return null;
    const first = (frame.messages || [])[0];
    return { kind: "offer", id, title: t("alert.offer", { name: contactLabel(conv) }),
             body: first ? first.text || t("preview.attachment") : t("alert.offer_body") };
  }
  if (frame.type === "conversation.assigned") {
    const conv = frame.conversation || {}, id = conv.conversation_id;
    if (!id || state.convs.has(id) || state.accepting.has(id)) return null;  // an accepted offer was alerted as one
    const first = (frame.messages || []).find((m) => m.direction === "inbound");
    return { kind: "conversation", id, title: t("alert.conversation", { name: contactLabel(conv) }),
             body: first ? first.text || t("preview.attachment") : "" };
  }
  if (frame.type === "message" && frame.message && frame.message.direction === "inbound") {
    const id = frame.conversation_id, entry = state.convs.get(id);
    if (!entry || entry.messages.has(frame.message.message_id) || isReading(id)) return null;
    return { kind: "message", id, title: contactLabel(entry.conv), body: frame.message.text || t("preview.attachment") };
  }
  return null;
}

export function raiseAlert(what) {
  if (!what) return;
  if (settings.sound) tone(TONES[what.kind]);
  if (settings.desktop && document.visibilityState === "hidden") desktop(what);
}

// ---- the two ways to alert -------------------------------------------------------------------

function tone(frequencies) {
  if (!audio || audio.state !== "running") return;  // no gesture yet: the browser would refuse anyway
  let at = audio.currentTime;
  for (const hz of frequencies) {
    const osc = audio.createOscillator(), gain = audio.createGain();
    osc.frequency.value = hz;
    gain.gain.setValueAtTime(0.0001, at);
    gain.gain.exponentialRampToValueAtTime(0.2, at + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.18);
    osc.connect(gain).connect(audio.destination);
    osc.start(at); osc.stop(at + 0.2);
    at += 0.2;
  }
}

function desktop(what) {
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  // One notification per conversation at a time (tag): a burst of messages does not stack up.
  let note;
  try {
    note = new Notification(what.title, { body: what.body.slice(0, 200), tag: `switchyard-${what.id}` });
  } catch (e) {
    return;  // some browsers (Chrome on Android) allow them only from a service worker: the tone still sounds
  }
  note.onclick = () => {
    window.focus();
    if (state.convs.has(what.id)) select(what.id);
    note.close();
  };
}

function unlockAudio() {
  const Ctx = window.AudioContext || window.webkitAudioContext;
  if (!Ctx) return;
  if (!audio) audio = new Ctx();
  if (audio.state === "suspended") audio.resume();
}

// ---- the Alerts popover ----------------------------------------------------------------------

function showSettings(open) {
  $("settings").hidden = !open;
  $("settings-open").setAttribute("aria-expanded", String(open));
  if (open) { renderSettings(); $("alert-sound").focus(); }
}

function renderSettings() {
  $("alert-sound").checked = settings.sound;
  const supported = "Notification" in window;
  const permission = supported ? Notification.permission : "unsupported";
  $("alert-desktop").checked = settings.desktop && permission === "granted";
  $("alert-desktop").disabled = !supported || permission === "denied";
  $("alert-desktop-status").textContent = {
    unsupported: t("alerts.unsupported"),
    denied: t("alerts.denied"),
    default: t("alerts.default"),
    granted: t("alerts.granted"),
  }[permission];
}

async function toggleDesktop() {
  const wanted = $("alert-desktop").checked;
  if (wanted && Notification.permission === "default") await Notification.requestPermission();  // on this click only
  settings.desktop = wanted && Notification.permission === "granted";
  saveSettings();
  renderSettings();
}

export function wireNotify() {
  window.addEventListener("pointerdown", unlockAudio, { capture: true });
  window.addEventListener("keydown", unlockAudio, { capture: true });
  $("settings-open").addEventListener("click", () => showSettings($("settings").hidden));
  $("settings-close").addEventListener("click", () => { showSettings(false); $("settings-open").focus(); });
  $("settings").addEventListener("keydown", (e) => {
    if (e.key === "Escape") { showSettings(false); $("settings-open").focus(); }
  });
  document.addEventListener("pointerdown", (e) => {
    if (!$("settings").hidden && !$("settings").contains(e.target) && !$("settings-open").contains(e.target)) showSettings(false);
  });
  $("alert-sound").addEventListener("change", () => {
    settings.sound = $("alert-sound").checked;
    saveSettings();
    if (settings.sound) tone(TONES.message);  // a sample, so the agent hears what it will sound like
  });
  $("alert-desktop").addEventListener("change", toggleDesktop);
}
