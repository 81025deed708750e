// The composer: a reply or a private note (the Reply / Private note switch), Send and Resolve; drafts kept
// per agent and conversation across reloads; the agent's typing signal to a web chat customer.

import { api, enc } from "./api.js";
import { showError } from "./banners.js";
import { cannedKeydown, closeCanned, wireCanned } from "./canned.js";
import { $, load, store } from "./dom.js";
import { clearFiles, isUploading, pendingFiles, renderFiles, wireFiles } from "./files.js";
import { t } from "./i18n.js";
import { render } from "./render.js";
import { putMessage, state } from "./state.js";

// This desk says the agent is typing at most once per TYPING_EVERY ms (web chat only; a lost signal is harmless).
const TYPING_EVERY = 2000;

export function updateComposer() {
  const open = !!(state.selected && state.convs.get(state.selected));
  const note = composerMode() === "note";
  $("reply").disabled = !open;
  $("send").disabled = !open || state.sending;
  $("send").textContent = note ? t("composer.add_note") : t("composer.send");
  $("resolve").disabled = !open || state.resolving;
  $("transfer").disabled = !open;
  for (const radio of document.querySelectorAll('input[name="compose-mode"]')) radio.disabled = !open;
  renderFiles();
  $("attach").hidden = note;  // a note carries no file
}

export function composerMode() {
  const checked = document.querySelector('input[name="compose-mode"]:checked');
  return checked ? checked.value : "reply";
}

// The reply box grows with its text (up to 160 px). Measuring it forces a layout of the whole desk (about
// 20 ms with 100 conversations on it: bench/desk.py), so an empty box just takes its natural height.
export function autosize() {
  const r = $("reply");
  if (!r.value) { r.style.height = ""; return; }
  r.style.height = "auto";
  r.style.height = Math.min(r.scrollHeight + 2, 160) + "px";
}

// ---- drafts: in memory and in localStorage (per agent and conversation), cleared when sent ----------
function draftKey(id) { return `switchyard.desk.draft.${state.agentId}.${id}`; }

export function saveDraft(id, text) {
  if (!id) return;
  if (text) state.drafts.set(id, text); else state.drafts.delete(id);
  store(draftKey(id), text || null);
}

export function loadDraft(id) {
  if (!id) return "";
  return state.drafts.has(id) ? state.drafts.get(id) : load(draftKey(id));
}

function sendTyping() {
  const id = state.selected, entry = id && state.convs.get(id);
  if (composerMode() === "note") return;  // a note is not for the customer: no "typing…" either
  if (!entry || entry.conv.channel !== "webchat" || !$("reply").value.trim()) return;
  if (!state.socket || !state.socket.isOpen) return;
  const now = Date.now();
  if (now - (state.typingSentAt.get(id) || 0) < TYPING_EVERY) return;
  state.typingSentAt.set(id, now);
  state.socket.send({ type: "typing", conversation_id: id });
}

async function send() {
  const id = state.selected;
  const text = $("reply").value;
  const note = composerMode() === "note";
  const files = note ? [] : pendingFiles(id);
  if (!id || state.sending || isUploading() || (!text.trim() && !files.length)) return;
  state.sending = true; updateComposer(); closeCanned();
  try {
    const path = `/v1/conversations/${enc(id)}/${note ? "notes" : "messages"}`;
    const body = files.length ? { text, attachments: files.map((f) => f.attachment_id) } : { text };
    const message = await api("POST", path, body);
    if ($("reply").value === text && state.selected === id) { $("reply").value = ""; autosize(); }
    if (files.length) clearFiles(id);
    if (loadDraft(id) === text) saveDraft(id, "");
    const entry = state.convs.get(id);
    if (entry && message && message.message_id) putMessage(entry, message);
    $("transcript").scrollTop = $("transcript").scrollHeight;
  } catch (e) {
    showError(t(note ? "composer.note_error" : "composer.reply_error", { reason: e.message }));
  } finally {
    state.sending = false;
    render();
    // Back to the reply box after a click on Send, not away from wherever the agent went meanwhile.
    const idle = document.activeElement === document.body || document.activeElement === $("send");
    if (state.selected === id && idle) $("reply").focus();
  }
}

async function resolveSelected() {
  const id = state.selected;
  if (!id || state.resolving) return;
  state.resolving = true; $("resolve").textContent = t("composer.resolving"); updateComposer();
  try {
    await api("POST", `/v1/conversations/${enc(id)}/resolve`);
    state.resolved.add(id);
    state.convs.delete(id);
    saveDraft(id, "");
    if (state.selected === id) { state.selected = null; $("reply").value = ""; autosize(); }
  } catch (e) {
    showError(t("composer.resolve_error", { reason: e.message }));
  } finally {
    state.resolving = false; $("resolve").textContent = t("composer.resolve");
    render();
  }
}

function setMode() {
  const note = composerMode() === "note";
  $("composer").classList.toggle("note-mode", note);
  $("reply").placeholder = note ? t("composer.note_placeholder") : t("composer.reply_placeholder");
  $("reply").setAttribute("aria-label", note ? t("composer.note") : t("composer.reply"));
  updateComposer();
}

export function wireComposer() {
  $("reply").addEventListener("input", () => { autosize(); sendTyping(); saveDraft(state.selected, $("reply").value); });
  $("reply").addEventListener("keydown", (e) => {
    if (cannedKeydown(e)) return;
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  $("composer").addEventListener("submit", (e) => { e.preventDefault(); send(); });
  for (const radio of document.querySelectorAll('input[name="compose-mode"]')) radio.addEventListener("change", setMode);
  $("resolve").addEventListener("click", resolveSelected);
  wireCanned();
  wireFiles();
}
