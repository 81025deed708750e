// The transfer form: to an agent or a queue, with a note for the next person and an escalation flag.

import { api, enc } from "./api.js";
import { hideNotice, showError, showNotice } from "./banners.js";
import { $ } from "./dom.js";
import { AGENT_ID_RE, QUEUE_RE, contactLabel } from "./format.js";
import { state } from "./state.js";

function showTransferError(message) {
  $("transfer-error").textContent = message;
  $("transfer-error").hidden = !message;
}

function openTransfer() {
  if (!state.selected) return;
  state.transferFor = state.selected;
  $("transfer-target").value = ""; $("transfer-note").value = ""; $("transfer-escalation").checked = false;
  showTransferError("");
  $("transfer-form").hidden = false;
  $("transfer").setAttribute("aria-expanded", "true");
  $("transfer-target").focus();
}

export function closeTransfer() {
  const wasOpen = !$("transfer-form").hidden;
  state.transferFor = null;
  $("transfer-form").hidden = true;
  $("transfer").setAttribute("aria-expanded", "false");
  if (wasOpen && document.activeElement && $("transfer-form").contains(document.activeElement)) $("transfer").focus();
}

// The router refused a transfer this desk asked for (a `transfer.rejected` frame).
export function transferRejected(frame) {
  const entry = state.convs.get(frame.conversation_id);
  hideNotice();  // "transfer requested" no longer holds
  showError(`Transfer${entry ? ` of ${contactLabel(entry.conv)}` : ""} refused: ${frame.reason || "no reason given"}`);
}

async function submitTransfer(e) {
  e.preventDefault();
  const id = state.transferFor;
  if (!id || state.transferring) return;
  const toAgent = $("transfer-kind").value === "agent";
  const target = $("transfer-target").value.trim();
  if (toAgent && !AGENT_ID_RE.test(target)) { showTransferError("Agent ID must be 1–64 letters, digits, '_' or '-'."); return; }
  if (toAgent && target === state.agentId) { showTransferError("The conversation is already yours."); return; }
  if (!toAgent && !QUEUE_RE.test(target)) { showTransferError("Queue name must be 1–64 letters, digits or _ . : + -"); return; }
  const body = { note: $("transfer-note").value.trim(), escalation: $("transfer-escalation").checked, by_agent: state.agentId };
  body[toAgent ? "to_agent" : "to_queue"] = target;
  state.transferring = true;
  showTransferError("");
  $("transfer-submit").disabled = true; $("transfer-submit").textContent = "Transferring…";
  try {
    await api("POST", `/v1/conversations/${enc(id)}/transfer`, body);
    if (state.transferFor === id) closeTransfer();
    // The revocation usually follows; if it came first, its notice stands.
    if (state.convs.has(id)) showNotice(`Transfer to ${toAgent ? "agent" : "queue"} ${target} requested.`);
  } catch (err) {
    if (state.transferFor === id) showTransferError(`Not transferred: ${err.message}`);
    else showError(`Not transferred: ${err.message}`);
  } finally {
    state.transferring = false;
    $("transfer-submit").disabled = false; $("transfer-submit").textContent = "Transfer";
  }
}

export function wireTransfer() {
  $("transfer").addEventListener("click", () => ($("transfer-form").hidden ? openTransfer() : closeTransfer()));
  $("transfer-cancel").addEventListener("click", closeTransfer);
  $("transfer-form").addEventListener("keydown", (e) => { if (e.key === "Escape") closeTransfer(); });
  $("transfer-kind").addEventListener("change", () => {
    const agent = $("transfer-kind").value === "agent";
    $("transfer-target-label").textContent = agent ? "Agent ID" : "Queue name";
    $("transfer-target").placeholder = agent ? "e.g. bob" : "e.g. tier2";
  });
  $("transfer-form").addEventListener("submit", submitTransfer);
}
