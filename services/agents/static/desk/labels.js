// Contact reasons: the conversation's labels, edited as one comma-separated list (the API takes the whole set).

import { api, enc } from "./api.js";
import { $ } from "./dom.js";
import { t } from "./i18n.js";
import { state } from "./state.js";

export function renderLabels(conv, switched) {
  $("labels-form").hidden = false;
  if (switched) $("labels-status").textContent = "";
  if (switched || document.activeElement !== $("labels-input")) $("labels-input").value = (conv.labels || []).join(", ");
}

async function saveLabels(e) {
  e.preventDefault();
  const id = state.selected, entry = id ? state.convs.get(id) : null;
  if (!entry) return;
  const labels = [...new Set($("labels-input").value.split(",").map((l) => l.trim()).filter(Boolean))];
  $("labels-save").disabled = true;
  try {
    const saved = await api("PUT", `/v1/conversations/${enc(id)}/labels`, { labels });
    entry.conv.labels = saved.labels || labels;
    $("labels-input").value = entry.conv.labels.join(", ");
    $("labels-status").textContent = entry.conv.labels.length ? t("labels.saved") : t("labels.saved_none");
  } catch (err) {
    $("labels-status").textContent = t("labels.error", { reason: err.message });
  } finally {
    $("labels-save").disabled = false;
  }
}

export function wireLabels() {
  $("labels-form").addEventListener("submit", saveLabels);
}
