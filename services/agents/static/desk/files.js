// Files out: the composer's paperclip uploads a file to the open conversation at once (POST
// /v1/conversations/{id}/attachments); it waits as a chip above the reply box until the reply that carries
// it is sent. A channel that cannot carry files answers 422 with its name: the agent sees that, not a chip.

import { api, enc } from "./api.js";
import { showError } from "./banners.js";
import { $, el } from "./dom.js";
import { t } from "./i18n.js";
import { state } from "./state.js";

const pending = new Map();  // conversation_id -> [{attachment_id, filename, size}]
let uploading = 0;

export function pendingFiles(id) { return pending.get(id) || []; }

export function clearFiles(id) { pending.delete(id); renderFiles(); }

export function isUploading() { return uploading > 0; }

export function renderFiles() {
  const files = pendingFiles(state.selected);
  $("pending-files").hidden = !files.length && !uploading;
  $("pending-files").replaceChildren(
    ...files.map((f, i) => el("li", { class: "file-chip", "data-testid": "pending-file" },
      el("span", { text: `${f.filename}${f.size != null ? ` (${t("file.kb", { size: Math.ceil(f.size / 1024) })})` : ""}` }),
      el("button", { type: "button", class: "file-remove", "data-index": i, "aria-label": t("file.remove", { name: f.filename }), text: "×" }))),
    ...(uploading ? [el("li", { class: "file-chip uploading", text: t("file.uploading") })] : []));
  $("attach").disabled = !state.selected || $("reply").disabled;
}

async function upload(file) {
  const id = state.selected;
  if (!id || !file) return;
  const form = new FormData();
  form.append("file", file, file.name);
  uploading++; renderFiles();
  try {
    const stored = await api("POST", `/v1/conversations/${enc(id)}/attachments`, form);
    pending.set(id, [...pendingFiles(id), stored]);
  } catch (e) {
    showError(t("file.error", { reason: e.message }));
  } finally {
    uploading--; renderFiles();
  }
}

export function wireFiles() {
  $("attach").addEventListener("click", () => $("file-input").click());
  $("file-input").addEventListener("change", async () => {
    const files = [...$("file-input").files];
    $("file-input").value = "";
    for (const file of files) await upload(file);
    $("reply").focus();
  });
  $("pending-files").addEventListener("click", (e) => {
    const button = e.target.closest(".file-remove");
    if (!button) return;
    const files = pendingFiles(state.selected).filter((_, i) => i !== Number(button.getAttribute("data-index")));
    pending.set(state.selected, files);
    renderFiles();
    $("reply").focus();
  });
}
