// The transfer form: to an agent or a queue picked from what exists (agents with their presence,
// the routing configuration's queues), with a note for the next person and an escalation flag.
//
// The service answers 202 when it has passed the request on; the router decides. So the form (and
// its note) stays until the outcome comes over the feed: the conversation leaving this desk
// (`conversation.revoked`, frames.js closes the form) or a `transfer.rejected` frame, whose reason
// shows in the form with everything the agent typed still there.

import { api, enc } from "./api.js";
import { showError } from "./banners.js";
import { $, el } from "./dom.js";
import { contactLabel } from "./format.js";
import { t } from "./i18n.js";
import { state } from "./state.js";

const OUTCOME_WAIT_MS = 20000;  // after this the form lets the agent try again (the router may be down)
const PRESENCE_ORDER = { online: 0, away: 1, offline: 2 };

let pending = null;     // {id, timer}: a transfer passed on, its outcome not yet known
let noteFor = null;     // the conversation whose note the form holds (reopening it keeps the note)
let pickerLoad = 0;     // the latest picker load; an older answer arriving late is dropped

function showTransferError(message) {
  $("transfer-error").textContent = message;
  $("transfer-error").hidden = !message;
}

function showTransferStatus(message) {
  $("transfer-status").textContent = message;
  $("transfer-status").hidden = !message;
}

function setBusy(busy) {
  $("transfer-submit").disabled = busy;
  $("transfer-submit").textContent = busy ? t("transfer.busy") : t("transfer.submit");
}

function settle() {
  if (pending) clearTimeout(pending.timer);
  pending = null;
  setBusy(false);
  showTransferStatus("");
}

// ---- the picker ---------------------------------------------------------------------------

function presenceWord(status) {
  return { away: t("presence.word_away"), offline: t("presence.word_offline") }[status] || status;
}

function agentOption(agent) {
  const name = agent.name ? `${agent.name} (${agent.agent_id})` : agent.agent_id;
  const online = agent.status === "online";
  return el("option", { value: `agent:${agent.agent_id}`, disabled: !online, "data-status": agent.status },
    online ? name : t("transfer.agent_unavailable", { name, status: presenceWord(agent.status) }));
}

function fillPicker(agents, queues) {
  const picker = $("transfer-target"), previous = picker.value;
  const others = agents.filter((a) => a.agent_id !== state.agentId)
    .sort((a, b) => (PRESENCE_ORDER[a.status] ?? 3) - (PRESENCE_ORDER[b.status] ?? 3) || a.agent_id.localeCompare(b.agent_id));
  picker.replaceChildren(
    el("option", { value: "" }, t("transfer.choose")),
    el("optgroup", { label: t("transfer.agents") }, ...(others.length ? others.map(agentOption)
      : [el("option", { value: "", disabled: true }, t("transfer.no_agents"))])),
    el("optgroup", { label: t("transfer.queues") },
       ...queues.map((q) => el("option", { value: `queue:${q.name}` }, t("transfer.queue", { queue: q.name })))));
  // Keep the agent's choice across a refresh if it can still be picked.
  const kept = [...picker.options].find((o) => o.value === previous && !o.disabled);
  picker.value = kept ? previous : "";
  describeTarget();
}

async function loadPicker() {
  const load = ++pickerLoad;
  try {
    const [agents, queues] = await Promise.all([api("GET", "/v1/agents"), api("GET", "/v1/queues")]);
    if (load === pickerLoad) fillPicker(agents.agents || [], queues.queues || []);
  } catch (e) {
    if (load === pickerLoad) showTransferError(t("transfer.list_error", { reason: e.message }));
  }
}

function chosenTarget() {
  const [kind, ...rest] = $("transfer-target").value.split(":");
  const name = rest.join(":");  // queue names may hold ':'
  return kind && name ? { kind, name } : null;
}

function describeTarget() {
  const target = chosenTarget(), hint = $("transfer-target-hint");
  const offline = [...$("transfer-target").options].filter((o) => o.disabled && o.dataset.status).length;
  hint.textContent = target ? "" : offline ? t("transfer.offline_hint", { count: offline }) : "";
  hint.hidden = !hint.textContent;
}

// ---- open, close, submit -----------------------------------------------------------------------

export function openTransfer() {
  if (!state.selected) return;
  if (noteFor !== state.selected) {
    $("transfer-note").value = ""; $("transfer-escalation").checked = false; $("transfer-target").value = "";
  }
  state.transferFor = noteFor = state.selected;
  showTransferError("");
  $("transfer-form").hidden = false;
  $("transfer").setAttribute("aria-expanded", "true");
  $("transfer-target").focus();
  loadPicker();
}

export function closeTransfer() {
  const wasOpen = !$("transfer-form").hidden;
  if (pending && pending.id === state.transferFor) settle();
  if (!state.convs.has(noteFor)) noteFor = null;  // it left this desk (transferred, resolved): its note goes too
  state.transferFor = null;
  $("transfer-form").hidden = true;
  $("transfer").setAttribute("aria-expanded", "false");
  if (wasOpen && document.activeElement && $("transfer-form").contains(document.activeElement)) $("transfer").focus();
}

// The router refused a transfer this desk asked for (a `transfer.rejected` frame).
export function transferRejected(frame) {
  const id = frame.conversation_id, reason = frame.reason || t("reason.none");
  if (pending && pending.id === id) settle();
  if (state.transferFor === id && !$("transfer-form").hidden) {
    showTransferError(t("transfer.refused", { reason }));
    loadPicker();  // what was listed may be stale: that is often why it was refused
    return;
  }
  const entry = state.convs.get(id);
  showError(entry ? t("transfer.refused_of", { name: contactLabel(entry.conv), reason }) : t("transfer.refused_plain", { reason }));
}

async function submitTransfer(e) {
  e.preventDefault();
  const id = state.transferFor, target = chosenTarget();
  if (!id || pending) return;
  if (!target) { showTransferError(t("transfer.choose_error")); $("transfer-target").focus(); return; }
  const body = { note: $("transfer-note").value.trim(), escalation: $("transfer-escalation").checked, by_agent: state.agentId };
  body[target.kind === "agent" ? "to_agent" : "to_queue"] = target.name;
  const mine = pending = { id, timer: null };
  showTransferError("");
  setBusy(true);
  try {
    await api("POST", `/v1/conversations/${enc(id)}/transfer`, body);
  } catch (err) {
    if (pending === mine) settle();
    if (state.transferFor === id) showTransferError(t("transfer.error", { reason: err.message }));
    else showError(t("transfer.error", { reason: err.message }));
    return;
  }
  if (pending !== mine) return;  // the outcome came before the 202 did
  showTransferStatus(t(target.kind === "agent" ? "transfer.requested_agent" : "transfer.requested_queue", { name: target.name }));
  mine.timer = setTimeout(() => {
    if (pending !== mine) return;
    settle();
    showTransferStatus(t("transfer.no_answer"));
  }, OUTCOME_WAIT_MS);
}

export function wireTransfer() {
  $("transfer").addEventListener("click", () => ($("transfer-form").hidden ? openTransfer() : closeTransfer()));
  $("transfer-cancel").addEventListener("click", closeTransfer);
  $("transfer-form").addEventListener("keydown", (e) => { if (e.key === "Escape") closeTransfer(); });
  $("transfer-target").addEventListener("change", () => { showTransferError(""); describeTarget(); });
  $("transfer-form").addEventListener("submit", submitTransfer);
}
