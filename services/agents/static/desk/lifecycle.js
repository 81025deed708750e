// The open conversation's lifecycle: pending (waiting on the customer), snoozed (until a time) and
// open again. The router decides (POST /v1/conversations/{id}/state answers 202); the desk changes
// when its `conversation.state` frame comes. Pending and snoozed ones stay the agent's but free its
// capacity slot (docs/routing.md, "Lifecycle").

import { api, enc } from "./api.js";
import { showError } from "./banners.js";
import { $ } from "./dom.js";
import { fmtTime } from "./format.js";
import { t } from "./i18n.js";
import { PARKED, state } from "./state.js";


// Seconds from now until the snooze choice's time: a duration, or 9:00 local tomorrow / next Monday.
export function snoozeSeconds(choice, now = new Date()) {
  if (/^\d+$/.test(choice)) return Number(choice);
  const at = new Date(now);
  at.setHours(9, 0, 0, 0);
  if (choice === "tomorrow") at.setDate(at.getDate() + 1);
  else if (choice === "monday") at.setDate(at.getDate() + (((8 - at.getDay()) % 7) || 7));
  else return null;
  return Math.max(1, Math.round((at - now) / 1000));
}

// The frame: the router parked or woke one of this agent's conversations.
export function applyState(frame) {
  const entry = state.convs.get(frame.conversation_id);
  if (!entry) return;
  entry.conv = Object.assign({}, entry.conv, { status: frame.status, snoozed_until: frame.snoozed_until });
  state.lifecycleBusy.delete(frame.conversation_id);
}

export function lifecycleLabel(conv) {
  if (conv.status === "pending") return t("lifecycle.pending");
  if (conv.status === "snoozed") {
    return conv.snoozed_until ? t("lifecycle.snoozed_until", { time: fmtTime(conv.snoozed_until) }) : t("lifecycle.snoozed");
  }
  return "";
}

export function renderLifecycle() {
  const entry = state.selected && state.convs.get(state.selected);
  const bar = $("lifecycle"), note = $("lifecycle-note");
  bar.hidden = !entry;
  if (!entry) { note.hidden = true; return; }
  const status = entry.conv.status || "assigned", parked = PARKED.includes(status);
  const busy = state.lifecycleBusy.has(state.selected);
  $("set-pending").hidden = status === "pending";
  $("set-open").hidden = !parked;
  for (const id of ["set-pending", "set-open", "snooze"]) $(id).disabled = busy;
  note.hidden = !parked;
  note.textContent = parked
    ? t("lifecycle.note", { state: lifecycleLabel(entry.conv) })
    : "";
}

async function request(body) {
  const id = state.selected;
  if (!id) return;
  state.lifecycleBusy.add(id);
  renderLifecycle();
  try {
    await api("POST", `/v1/conversations/${enc(id)}/state`, body);
  } catch (e) {
    state.lifecycleBusy.delete(id);
    renderLifecycle();
    showError(t("lifecycle.error", { reason: e.message }));
  }
}

export function wireLifecycle() {
  $("set-pending").addEventListener("click", () => request({ state: "pending" }));
  $("set-open").addEventListener("click", () => request({ state: "open" }));
  $("snooze").addEventListener("change", (e) => {
    const seconds = snoozeSeconds(e.target.value);
    e.target.value = "";
    if (seconds) request({ state: "snoozed", seconds });
  });
}
