// Writing: the text box (Enter sends, Shift+Enter a new line), the name, and files over HTTP.

import { sendTyping, started, transmit } from "./connection.js";
import { $, KEY_EMAIL, KEY_NAME, lang, load, randomId, save, state, store, t } from "./state.js";
import { render, showError } from "./view.js";

export function autosize() {
  const box = $("text");
  box.style.height = "auto";
  box.style.height = Math.min(box.scrollHeight + 2, 140) + "px";
}

function send() {
  const text = $("text").value;
  if (!text.trim()) return;
  const name = $("name").value.trim();
  if (name) store(KEY_NAME, name);
  const m = { message_id: null, client_id: randomId(), direction: "inbound", text,
              created_at: new Date().toISOString(), status: "sending" };
  state.messages.push(m);
  state.forceScroll = true;
  $("text").value = "";
  autosize();
  save();
  render();
  if (!started()) state.socket.start();   // first message of a first visit opens the chat
  else transmit(m);
  $("text").focus();
}

// Files go over HTTP (multipart), not the socket; the page needs its session token first.
async function sendFile() {
  const file = $("file").files[0];
  $("file").value = "";
  if (!file) return;
  if (!state.session) { showError(t("file.first_message")); return; }
  const m = { message_id: null, client_id: randomId(), direction: "inbound", text: t("file.sent_text", { name: file.name }),
              created_at: new Date().toISOString(), status: "sending" };
  state.messages.push(m);
  state.forceScroll = true;
  render();
  const form = new FormData();
  form.append("client_id", m.client_id);
  form.append("file", file);
  const query = new URLSearchParams({ session: state.session });
  const name = $("name").value.trim();
  if (name) query.set("name", name);
  if (load(KEY_EMAIL)) query.set("email", load(KEY_EMAIL));
  if (lang.i18n) query.set("lang", lang.i18n.lang.split("-")[0]);
  try {
    const resp = await fetch(`/v1/chat/messages?${query}`, { method: "POST", body: form });
    const body = await resp.json().catch(() => null);
    if (!resp.ok) throw new Error(body && body.error ? body.error.message : `HTTP ${resp.status}`);
    m.message_id = body.message_id;
    m.status = "sent";
  } catch (e) {
    m.status = "failed";
    showError(t("file.not_sent", { reason: e.message }));
  }
  save();
  render();
}

export function wireComposer() {
  $("text").addEventListener("input", () => { autosize(); sendTyping(); });
  $("text").addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) { e.preventDefault(); send(); }
  });
  $("composer").addEventListener("submit", (e) => { e.preventDefault(); send(); });
  $("file").addEventListener("change", sendFile);
  // Enter on the focused file input opens the picker too (Space does by default; Enter would submit the form).
  $("file").addEventListener("keydown", (e) => {
    if (e.key !== "Enter") return;
    e.preventDefault();
    try { $("file").showPicker(); } catch (err) { $("file").click(); }
  });
}
