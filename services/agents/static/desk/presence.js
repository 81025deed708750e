// The header's presence select, the away banner with its Go online button, and the live-feed indicator.

import { api, enc } from "./api.js";
import { showError } from "./banners.js";
import { $ } from "./dom.js";
import { t } from "./i18n.js";
import { state } from "./state.js";

// The service pushes every change of presence (a `presence` frame), whoever made it: the router
// setting the agent away after missed offers must not leave the desk showing Online.
const AWAY_TEXT = {
  missed_offers: () => t("presence.away_missed_offers"),
  away: () => t("presence.away"),
  offline: () => t("presence.offline"),
};

export function setPresence(status, reason) {
  $("status").value = status;
  $("status").dataset.current = status;
  $("status-dot").dataset.state = status;
  const away = state.signedIn && status !== "online";
  $("away-text").textContent = away ? (AWAY_TEXT[reason === "missed_offers" ? reason : status] || AWAY_TEXT.away)() : "";
  $("away-banner").hidden = !away;
}

async function changePresence(wanted) {
  const previous = $("status").dataset.current;
  $("status").disabled = true; $("go-online").disabled = true;
  try {
    const agent = await api("PUT", `/v1/agents/${enc(state.agentId)}/status`, { status: wanted });
    setPresence(agent && agent.status ? agent.status : wanted);
  } catch (e) {
    setPresence(previous);
    showError(t("presence.error", { reason: e.message }));
  } finally {
    $("status").disabled = false; $("go-online").disabled = false;
  }
}

export function setConnection(stateName, text) {
  $("connection").dataset.state = stateName;
  $("connection").querySelector(".dot").dataset.state = stateName;
  $("connection-text").textContent = text;
}

export function wirePresence() {
  $("status").addEventListener("change", () => changePresence($("status").value));
  $("go-online").addEventListener("click", () => changePresence("online"));
}
