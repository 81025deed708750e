// Draws every pane from the state, and switches the open conversation.

import { autosize, loadDraft, saveDraft } from "./composer.js";
import { $ } from "./dom.js";
import { fetchHistory } from "./frames.js";
import { renderList } from "./list.js";
import { renderOffers } from "./offers.js";
import { state } from "./state.js";
import { closeTransfer } from "./transfer.js";
import { renderTranscript } from "./transcript.js";

export function render() {
  renderTranscript();
  renderOffers();
  renderList();
}

export function select(id) {
  if (state.selected === id) return;
  if (state.transferFor && state.transferFor !== id) closeTransfer();
  if (state.selected) saveDraft(state.selected, $("reply").value);
  state.selected = id;
  $("reply").value = loadDraft(id);
  autosize();
  render();
  if (id) fetchHistory(id);
  if (id && window.matchMedia("(min-width: 761px)").matches) $("reply").focus();
}
