// Draws every pane from the state, and switches the open conversation.

import { renderAssist } from "./assist.js";
import { autosize, loadDraft, saveDraft } from "./composer.js";
import { renderContact } from "./contact.js";
import { $ } from "./dom.js";
import { fetchHistory } from "./frames.js";
import { renderLifecycle } from "./lifecycle.js";
import { renderList } from "./list.js";
import { renderOffers } from "./offers.js";
import { renderPeek } from "./peek.js";
import { rememberOpen } from "./reload.js";
import { state } from "./state.js";
import { closeTransfer } from "./transfer.js";
import { renderTranscript } from "./transcript.js";

export function render() {
  renderLifecycle();
  renderTranscript();
  renderOffers();
  renderList();
  renderPeek();
  renderContact();
  renderAssist();
}

export function select(id) {
  if (id) state.peek = null;  // a conversation of Mine opens in place of one shown read-only
  if (state.selected === id) { render(); return; }
  if (state.transferFor && state.transferFor !== id) closeTransfer();
  if (state.selected) saveDraft(state.selected, $("reply").value);
  state.selected = id;
  state.contact = null;  // opened: the contact panel (and the contact's history) is read again
  rememberOpen();
  $("reply").value = loadDraft(id);
  render();
  autosize();  // after the panes are drawn: one layout for both, not one before and one after
  if (id) fetchHistory(id);
  if (id && window.matchMedia("(min-width: 761px)").matches) $("reply").focus();
}
