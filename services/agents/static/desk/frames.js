// What the desk does with each frame of its feed (services/agents/desk.py sends them).

import { api, enc } from "./api.js";
import { showNotice } from "./banners.js";
import { autosize } from "./composer.js";
import { $ } from "./dom.js";
import { contactLabel } from "./format.js";
import { t } from "./i18n.js";
import { applyState } from "./lifecycle.js";
import { putOffer } from "./offers.js";
import { setConnection, setPresence } from "./presence.js";
import { render, select } from "./render.js";
import {
  applySla, applyStatus, awaitingReply, isHeld, isReading, putMessage, snapshotConversations, state, upsertConversation,
} from "./state.js";
import { closeTransfer, transferRejected } from "./transfer.js";

export function handleFrame(frame) {
  switch (frame.type) {
    case "snapshot": applySnapshot(frame); break;
    case "conversation.assigned": assigned(frame); break;
    case "conversation.offered": putOffer(frame); break;
    case "conversation.revoked": revoke(frame); break;
    case "conversation.ended": revoke(Object.assign({}, frame, { reason: t("reason.ended", { reason: frame.reason }) })); break;
    case "message": addMessage(frame.conversation_id, frame.message); break;
    case "message.status": applyStatus(frame); break;
    case "sla": applySla(frame); break;
    case "conversation.state": applyState(frame); break;
    case "transfer.rejected": transferRejected(frame); break;
    case "typing": contactTyping(frame); break;
    case "presence": setPresence(frame.status, frame.reason); break;
    default: return;
  }
  render();
}

function applySnapshot(frame) {
  if (frame.status) setPresence(frame.status);
  snapshotConversations(frame.conversations);
  if (state.selected && !state.convs.has(state.selected)) state.selected = null;
  if (state.transferFor && !state.convs.has(state.transferFor)) closeTransfer();
  state.offers = new Map();
  for (const offer of frame.offers || []) putOffer(offer);
  state.socket.resetBackoff();  // a snapshot proves the feed works
  setConnection("open", t("connection.live"));
}

function assigned(frame) {
  const id = frame.conversation && frame.conversation.conversation_id;
  const accepted = !!id && state.accepting.delete(id);
  if (id) state.offers.delete(id);
  upsertConversation(frame.conversation, frame.messages || []);
  // A conversation taken over from someone else comes without its history: it is fetched once,
  // when the agent opens it (a shift change may hand a desk hundreds at once).
  if (frame.history === "fetch" && id && state.convs.has(id)) {
    state.convs.get(id).historyPending = true;
    if (state.selected === id) fetchHistory(id);
  }
  // The agent just clicked Accept: open it, unless they are already in another conversation.
  if (accepted && !state.selected && state.convs.has(id)) select(id);
}

export async function fetchHistory(id) {
  const pending = state.convs.get(id);
  if (!pending || !pending.historyPending) return;
  pending.historyPending = false;
  let doc;
  try { doc = await api("GET", `/v1/conversations/${enc(id)}`); } catch (e) { pending.historyPending = true; return; }
  if (!state.convs.has(id)) return;  // revoked meanwhile
  const entry = state.convs.get(id);
  for (const m of doc.messages || []) putMessage(entry, m);
  if (isReading(id)) entry.unread = 0; else entry.unread = awaitingReply(entry);
  render();
}

// The conversation (or the offer) is no longer this agent's: rerouted, transferred, timed out.
function revoke(frame) {
  const id = frame.conversation_id;
  if (!id) return;
  const entry = state.convs.get(id), offer = state.offers.get(id);
  const quiet = state.rejected.delete(id);
  state.offers.delete(id); state.accepting.delete(id);
  if (!entry && !offer) return;
  state.convs.delete(id); state.drafts.delete(id);
  if (state.selected === id) { state.selected = null; $("reply").value = ""; autosize(); }
  if (state.transferFor === id) closeTransfer();
  if (quiet) return;
  const reason = frame.reason || t("reason.none");
  showNotice(entry ? t("notice.left", { name: contactLabel(entry.conv), reason })
                   : t("notice.withdrawn", { name: contactLabel(offer.frame.conversation), reason }));
}

function addMessage(conversationId, message) {
  if (!conversationId || !message) return;
  const entry = state.convs.get(conversationId);
  if (!entry) { fetchConversation(conversationId); return; }
  if (message.direction === "inbound") stopTyping(conversationId);
  if (putMessage(entry, message) && message.direction === "inbound" && !isReading(conversationId)) entry.unread++;
}

async function fetchConversation(id) {
  if (state.fetching.has(id) || state.resolved.has(id)) return;
  state.fetching.add(id);
  try {
    const doc = await api("GET", `/v1/conversations/${enc(id)}`);
    if (doc && isHeld(doc.status) && doc.assignee_id === state.agentId) {
      const messages = doc.messages || [];
      delete doc.messages;
      upsertConversation(doc, messages);
      render();
    }
  } catch (e) {
    /* the next snapshot will bring it if it is ours */
  } finally {
    state.fetching.delete(id);
  }
}

// ---- typing (both ways; a lost signal is harmless) --------------------------------------
// The customer's shows for TYPING_SHOWN ms after their last signal, or until their message comes;
// this desk says the agent is typing at most once per TYPING_EVERY ms (web chat only: composer.js).
const TYPING_SHOWN = 5000;

function contactTyping(frame) {
  const id = frame.conversation_id;
  if (frame.who !== "contact" || !state.convs.has(id)) return;
  clearTimeout(state.typing.get(id));
  state.typing.set(id, setTimeout(() => { state.typing.delete(id); render(); }, TYPING_SHOWN));
}

function stopTyping(id) {
  clearTimeout(state.typing.get(id));
  state.typing.delete(id);
}
