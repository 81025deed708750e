// The incidents as a table, newest first: title (opens it), status, conversations, channels, age.

import { $, el, setText } from "/assist/dom.js";

export const STATUS_NAMES = {
  open: "Open", confirmed: "Confirmed", dismissed: "Dismissed", merged: "Merged", resolved: "Resolved",
};

/** "chat 3, email 1", busiest channel first. */
export function channelsText(channels) {
  const entries = Object.entries(channels || {}).sort(([a, x], [b, y]) => y - x || a.localeCompare(b));
  return entries.length ? entries.map(([channel, count]) => `${channel} ${count}`).join(", ") : "—";
}

/** How long ago `iso` was, for people: "just now", "12 min ago", "3 h 5 min ago", "2 days ago". */
export function ago(iso, now = Date.now()) {
  const minutes = Math.floor((now - new Date(iso).getTime()) / 60000);
  if (!(minutes >= 1)) return "just now";
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.floor(minutes / 60);
  if (hours < 24) return minutes % 60 ? `${hours} h ${minutes % 60} min ago` : `${hours} h ago`;
  const days = Math.floor(hours / 24);
  return `${days} day${days === 1 ? "" : "s"} ago`;
}

/** A date and time for people, in the browser's zone ("5 Dec 2026, 14:05"). */
export function whenText(iso) {
  const date = new Date(iso);
  return isNaN(date) ? "" : new Intl.DateTimeFormat("en-GB", { dateStyle: "medium", timeStyle: "short" }).format(date);
}

export const statusBadge = (status) => el("span", { class: `badge ${status}` }, STATUS_NAMES[status] || status);

function row(incident, selectedId, onOpen) {
  const selected = incident.id === selectedId;
  return el("tr", { dataset: { id: incident.id }, "aria-current": selected ? "true" : null },
    el("td", {}, el("button", { type: "button", class: "link", dataset: { id: incident.id },
                                onclick: () => onOpen(incident.id) }, incident.title)),
    el("td", {}, statusBadge(incident.status)),
    el("td", {}, String(incident.conversations)),
    el("td", {}, channelsText(incident.channels)),
    el("td", {}, el("time", { datetime: incident.opened_at, title: whenText(incident.opened_at) },
                    ago(incident.opened_at))));
}

/** "3 active incidents.", "No resolved incidents."; `filter` is a state, "active", or "" for all. */
function summary(count, filter) {
  if (!count) return filter ? `No ${filter} incidents.` : "No incidents.";
  return `${count} ${filter ? `${filter} ` : ""}incident${count === 1 ? "" : "s"}.`;
}

/** Redraw the rows, keeping the keyboard where it was: a focused title stays focused after a refresh. */
export function renderList(incidents, filter, selectedId, onOpen) {
  const body = $("incident-table").tBodies[0];
  const focusedId = body.contains(document.activeElement) ? document.activeElement.dataset.id : undefined;
  body.replaceChildren(...incidents.map((incident) => row(incident, selectedId, onOpen)));
  if (focusedId) body.querySelector(`button[data-id="${CSS.escape(focusedId)}"]`)?.focus();
  setText($("list-status"), summary(incidents.length, filter));
}
