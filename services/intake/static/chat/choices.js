// Quick replies: the buttons under a bot's or agent's message ("Yes, thanks" / "No, talk to a person").
// A press is sent as a message whose text is the button's title and whose action is its id; the
// buttons of a message work until one of them is pressed or a later message comes.

import { started, transmit } from "./connection.js";
import { $, randomId, save, state, t } from "./state.js";
import { render } from "./view.js";

const ID = /^[A-Za-z0-9_.:-]{1,48}$/;
const MAX_BUTTONS = 3;

/** The quick replies a frame (or a kept message) carries, each {id, title}; malformed ones are left out. */
export function quickReplies(source) {
  const given = source && Array.isArray(source.quick_replies) ? source.quick_replies : [];
  return given
    .filter((r) => r && typeof r.id === "string" && ID.test(r.id) && typeof r.title === "string" && r.title.trim())
    .slice(0, MAX_BUTTONS)
    .map((r) => ({ id: r.id, title: r.title.trim() }));
}

/** Whether a message's buttons still work: none pressed, and no message came after it. */
export function choosable(m) {
  if (!m.quick_replies || !m.quick_replies.length || m.chosen) return false;
  const later = state.messages.slice(state.messages.indexOf(m) + 1);
  return !later.some((other) => other.kind !== "notice");
}

/** The buttons of a message, as a labelled group of real buttons (disabled once they no longer work). */
export function choiceButtons(m) {
  const group = document.createElement("div");
  group.className = "quick-replies";
  group.setAttribute("role", "group");
  group.setAttribute("aria-label", t("quick_replies.label"));
  const active = choosable(m);
  for (const reply of m.quick_replies) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = reply.title;
    b.dataset.action = reply.id;
    b.setAttribute("data-testid", "quick-reply");
    b.setAttribute("aria-pressed", String(m.chosen === reply.id));
    b.disabled = !active;
    group.append(b);
  }
  return group;
}

function press(m, reply) {
  if (!choosable(m)) return;
  m.chosen = reply.id;
  const sent = { message_id: null, client_id: randomId(), direction: "inbound", text: reply.title, action: reply.id,
                 created_at: new Date().toISOString(), status: "sending" };
  state.messages.push(sent);
  state.forceScroll = true;
  save();
  render();
  if (!started()) state.socket.start();
  else transmit(sent);
  $("text").focus();  // the pressed button is gone (disabled): keyboard users go on from the composer
}

export function wireChoices() {
  $("messages").addEventListener("click", (e) => {
    const button = e.target.closest("button[data-action]");
    const item = button && button.closest("[data-message-id]");
    if (!item) return;
    const m = state.messages.find((x) => x.message_id === item.dataset.messageId);
    const reply = m && (m.quick_replies || []).find((r) => r.id === button.dataset.action);
    if (reply) press(m, reply);
  });
}
