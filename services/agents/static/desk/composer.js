// The reply box, Send and Resolve; and the agent's typing signal to a web chat customer.

import { api, enc } from "./api.js";
import { showError } from "./banners.js";
import { $ } from "./dom.js";
import { render } from "./render.js";
import { putMessage, state } from "./state.js";

// This desk says the agent is typing at most once per TYPING_EVERY ms (web chat only; a lost signal is harmless).
const TYPING_EVERY = 2000;

export function updateComposer() {
  const open = !!(state.selected && state.convs.get(state.selected));
  $("reply").disabled = !open;
  $("send").disabled = !open || state.sending;
  $("resolve").disabled = !open || state.resolving;
  $("transfer").disabled = !open;
}

export function autosize() {
  const r = $("reply");
  r.style.height = "auto";
  r.style.height = Math.min(r.scrollHeight + 2, 160) + "px";
}

function sendTyping() {
  const id = state.selected, entry = id && state.convs.get(id);
  if (!entry || entry.conv.channel !== "webchat" || !$("reply").value.trim()) return;
  if (!state.socket || !state.socket.isOpen) return;
  const now = Date.now();
  if (now - (state.typingSentAt.get(id) || 0) < TYPING_EVERY) return;
  state.typingSentAt.set(id, now);
  state.socket.send({ type: "typing", conversation_id: id });
}

async function sendReply() {
  const id = state.selected;
  const text = $("reply").value;
  if (!id || state.sending || !text.trim()) return;
  state.sending = true; updateComposer();
  try {
    const message = await api("POST", `/v1/conversations/${enc(id)}/messages`, { text });
    if ($("reply").value === text && state.selected === id) { $("reply").value = ""; autosize(); }
    state.drafts.delete(id);
    const entry = state.convs.get(id);
    if (entry && message && message.message_id) putMessage(entry, message);
    $("transcript").scrollTop = $("transcript").scrollHeight;
  } catch (e) {
    showError(`Reply not sent: ${e.message}`);
  } finally {
    state.sending = false;
    render();
    if (state.selected === id) $("reply").focus();
  }
}

async function resolveSelected() {
  const id = state.selected;
  if (!id || state.resolving) return;
  state.resolving = true; $("resolve").textContent = "Resolving…"; updateComposer();
  try {
    await api("POST", `/v1/conversations/${enc(id)}/resolve`);
    state.resolved.add(id);
    state.convs.delete(id);
    state.drafts.delete(id);
    if (state.selected === id) { state.selected = null; $("reply").value = ""; autosize(); }
  } catch (e) {
    showError(`Could not resolve: ${e.message}`);
  } finally {
    state.resolving = false; $("resolve").textContent = "Resolve";
    render();
  }
}

export function wireComposer() {
  $("reply").addEventListener("input", () => { autosize(); sendTyping(); });
  $("reply").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      sendReply();
    }
  });
  $("composer").addEventListener("submit", (e) => { e.preventDefault(); sendReply(); });
  $("resolve").addEventListener("click", resolveSelected);
}
