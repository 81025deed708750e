// Offers: conversations waiting for this agent's accept or reject, each with its countdown.

import { api, enc, serverNow } from "./api.js";
import { showError, showNotice } from "./banners.js";
import { $, el } from "./dom.js";
import { contactLabel, latestTransfer, priorityInfo, transferText } from "./format.js";
import { t } from "./i18n.js";
import { renderList } from "./list.js";
import { render } from "./render.js";
import { state, storeOffer } from "./state.js";

let offersKey = "", offerTimer = null;

export function putOffer(frame) {
  const offer = storeOffer(frame);
  if (offer && !(frame.messages || []).length && offer.preview === null) {
    fetchOfferPreview(frame.conversation.conversation_id, offer);
  }
}

// A conversation offered again (after a transfer) comes without its messages: show its first from the history.
async function fetchOfferPreview(id, offer) {
  offer.preview = "";
  try {
    const doc = await api("GET", `/v1/conversations/${enc(id)}`);
    const first = (doc.messages || []).find((m) => m.direction === "inbound");
    offer.preview = first ? first.text || t("preview.attachment") : "";
  } catch (e) {
    return;  // only the preview is missing
  }
  if (state.offers.get(id) === offer) { offersKey = ""; renderOffers(); }
}

export function renderOffers() {
  const offers = [...state.offers.values()].sort((a, b) => a.expires - b.expires);
  $("offers-pane").hidden = !offers.length;
  $("offers-title").textContent = t("offers.title", { count: offers.length });
  // Rebuilt only when something changed, so a button the agent is about to press stays put.
  const key = offers.map((o) => `${o.frame.conversation.conversation_id}:${o.expires}:${state.accepting.has(o.frame.conversation.conversation_id)}`).join("|");
  if (key !== offersKey) {
    $("offers").replaceChildren(...offers.map(offerItem));
    offersKey = key;
  }
  tickOffers();
}

// The list's chip says "P10" (its title and label say where the 10 comes from); an offer card has
// room for the sum itself: "P10 (8+3)".
export function priorityChip(p, withSums) {
  return el("span", { class: "chip" + (p.total >= 7 ? " prio-high" : ""), "data-testid": "priority", title: p.title,
                      "aria-label": p.title, text: withSums && p.sums ? `${p.short} (${p.sums})` : p.short });
}

function offerItem(offer) {
  const c = offer.frame.conversation, id = c.conversation_id, label = contactLabel(c);
  const first = (offer.frame.messages || [])[0];
  const transfer = latestTransfer(c);
  const busy = state.accepting.has(id);
  return el("li", { class: "offer", "data-offer-id": id, "data-testid": "offer" },
    el("div", { class: "conv-top" },
      el("span", { class: "conv-name", text: label }),
      el("span", { class: "countdown", role: "timer", "data-testid": "offer-countdown", "data-expires": offer.expires })),
    el("div", { class: "conv-meta" },
      el("span", { class: "chip", text: c.channel || "?" }),
      el("span", { class: "chip", title: t("offers.queue"), text: c.queue || (c.routing && c.routing.queue) || "default" }),
      priorityChip(priorityInfo(c), true)),
    transfer ? el("div", { class: "offer-transfer", text: transferText(transfer) }) : null,
    el("div", { class: "offer-preview", text: first ? first.text || t("preview.attachment") : offer.preview || "" }),
    el("div", { class: "offer-actions" },
      el("button", { type: "button", class: "primary", "data-action": "accept", "data-testid": "offer-accept",
                     "aria-label": t("offers.accept_label", { name: label }), disabled: busy },
         busy ? t("offers.accepting") : t("offers.accept")),
      el("button", { type: "button", "data-action": "reject", "data-testid": "offer-reject",
                     "aria-label": t("offers.reject_label", { name: label }), disabled: busy }, t("offers.reject"))));
}

// Counts every open offer down; one that ran out leaves (the server withdraws it too).
export function tickOffers() {
  const now = serverNow();
  for (const [id, offer] of [...state.offers]) {
    const grace = state.accepting.has(id) ? 5000 : 0;  // an accept in flight may still win
    if (offer.expires - now > -grace) continue;
    state.offers.delete(id); state.accepting.delete(id);
    showNotice(t("offers.expired", { name: contactLabel(offer.frame.conversation) }));
    renderOffers();
    renderList();
    return;
  }
  for (const node of $("offers").querySelectorAll("[data-expires]")) {
    const seconds = Math.max(0, Math.ceil((Number(node.dataset.expires) - now) / 1000));
    node.textContent = `${Math.floor(seconds / 60)}:${String(seconds % 60).padStart(2, "0")}`;
    node.title = t("offers.answer_within", { count: seconds });
    node.classList.toggle("urgent", seconds <= 10);
  }
  if (state.offers.size && !offerTimer) offerTimer = setInterval(tickOffers, 1000);
  if (!state.offers.size && offerTimer) { clearInterval(offerTimer); offerTimer = null; }
}

async function answerOffer(id, accept) {
  const offer = state.offers.get(id);
  if (!offer || state.accepting.has(id)) return;
  if (accept) state.accepting.add(id);
  else { state.rejected.add(id); state.offers.delete(id); }
  render();
  try {
    await api("POST", `/v1/conversations/${enc(id)}/offer`, { agent_id: state.agentId, accept });
  } catch (e) {
    state.accepting.delete(id); state.rejected.delete(id);
    if (e.status === 404) state.offers.delete(id);  // timed out or withdrawn meanwhile
    else if (!accept) state.offers.set(id, offer);  // still open: let the agent answer again
    showError(t(accept ? "offers.accept_error" : "offers.reject_error", { reason: e.message }));
    render();
  }
}

export function wireOffers() {
  $("offers").addEventListener("click", (e) => {
    const button = e.target.closest("button[data-action]");
    const item = button && button.closest("[data-offer-id]");
    if (item) answerOffer(item.getAttribute("data-offer-id"), button.dataset.action === "accept");
  });
}
