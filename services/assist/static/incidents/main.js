// The supervisors' incidents page: sign in with the workspace key (/assist/session.js), the incidents (the
// active ones unless the filter says otherwise, refreshed every few seconds and on demand), and one incident's
// detail with what can be done with it: confirm, dismiss, merge into another, resolve.

import { $, setText, show } from "/assist/dom.js";
import { startSession } from "/assist/session.js";
import { incidentsApi } from "./api.js";
import { renderDetail } from "./detail.js";
import { confirmDismiss, mergeDialog, resolveDialog } from "./dialogs.js";
import { renderList } from "./list.js";

const REFRESH_MS = 5000;  // new incidents and links show within a few seconds; no socket needed for that
const state = { api: null, filter: "active", incidents: [], active: [], selectedId: null, detail: null };
let refreshed = Promise.resolve();

const othersActive = () => state.active.filter((incident) => incident.id !== state.selectedId);

async function loadLists() {
  state.active = await state.api.list("active");
  state.incidents = state.filter === "active" ? state.active : await state.api.list(state.filter);
}

async function loadDetail() {
  const id = state.selectedId;
  if (!id) return;
  const detail = await state.api.get(id);
  if (id !== state.selectedId) return;  // closed (or another opened) while it was read
  state.detail = detail;
  renderDetail(detail, othersActive().length);
}

async function refreshOnce() {
  try {
    await loadLists();
    renderList(state.incidents, state.filter, state.selectedId, openIncident);
    await loadDetail();
    setText($("list-error"), "");
  } catch (error) {
    setText($("list-error"), `Could not refresh: ${error.message}`);
  }
}

/** The lists and the open incident again, after any refresh under way (one started before a change misses it). */
function refresh() {
  refreshed = refreshed.then(refreshOnce);
  return refreshed;
}

async function openIncident(id) {
  state.selectedId = id;
  setText($("action-error"), "");
  setText($("action-status"), "");
  await refresh();
  $("detail-title").focus();
}

function closeDetail() {
  const id = state.selectedId;
  state.selectedId = null;
  state.detail = null;
  show($("detail-view"), false);
  renderList(state.incidents, state.filter, null, openIncident);
  const row = [...$("incident-table").querySelectorAll("button[data-id]")].find((b) => b.dataset.id === id);
  (row || $("list-title")).focus();
}

/** Run one of the incident's actions: its message once it is done, its refusal by the buttons. */
async function act(action) {
  const incident = state.detail;
  setText($("action-error"), "");
  setText($("action-status"), "");
  let message;
  try {
    message = await action(incident);
  } catch (error) {
    setText($("action-error"), error.message);
    await refresh();  // a 409 means the page was behind: show the state that refused it
    return;
  }
  if (!message) return;  // left the dialog
  await refresh();
  setText($("action-status"), message);
  if (document.activeElement === document.body || document.activeElement?.closest("[hidden]")) {
    $("detail-title").focus();  // the button pressed is gone with the state that allowed it
  }
}

const ACTIONS = {
  confirm: async (incident) => {
    await state.api.confirm(incident.id);
    return `“${incident.title}” is confirmed: it ends only when resolved.`;
  },
  dismiss: async (incident) => {
    if (!(await confirmDismiss(incident.title))) return null;
    await state.api.dismiss(incident.id);
    return `“${incident.title}” was dismissed.`;
  },
  merge: async (incident) => {
    await refresh();  // the picker offers the incidents active now
    const into = await mergeDialog(incident, othersActive(), (id) => state.api.merge(incident.id, id));
    if (!into) return null;
    state.selectedId = into.id;  // the merged one is gone: show the one it is part of
    return `“${incident.title}” was merged into “${into.title}”: ${into.conversations} conversations now.`;
  },
  resolve: async (incident) => {
    const resolved = await resolveDialog(incident, (body) => state.api.resolve(incident.id, body));
    return resolved && `“${resolved.title}” is resolved.`;
  },
};

async function enter(token) {
  state.api = incidentsApi(token);
  await loadLists();  // the key is checked here: a refused one throws
  show($("login-view"), false);
  show($("list-view"), true);
  renderList(state.incidents, state.filter, null, openIncident);
  setInterval(() => document.hidden || refresh(), REFRESH_MS);
}

function wire() {
  $("filter").addEventListener("change", () => {
    state.filter = $("filter").value;
    refresh();
  });
  $("refresh").addEventListener("click", () => refresh());
  $("close-detail").addEventListener("click", closeDetail);
  for (const [id, action] of Object.entries(ACTIONS)) $(id).addEventListener("click", () => act(action));
}

async function main() {
  wire();
  await startSession(enter);
}

main().catch((error) => setText($("login-error"), `The page could not start: ${error.message}`));
