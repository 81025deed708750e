// One incident: its facts, the actions its state allows, the count per minute as a table with bars, and its
// linked conversations (channel, message, when).

import { $, el, setText, show } from "/assist/dom.js";
import { channelsText, statusBadge, whenText } from "./list.js";

const ACTIVE = ["open", "confirmed"];
const LINKS_SHOWN = 500;  // the API's limit on the links of one incident

function minuteText(minute) {
  const date = new Date(`${minute}:00Z`);  // the API's minutes are UTC
  return isNaN(date) ? minute : new Intl.DateTimeFormat("en-GB", { hour: "2-digit", minute: "2-digit" }).format(date);
}

function renderTimeline(timeline) {
  const peak = Math.max(1, ...timeline.map((m) => m.conversations));
  $("timeline-table").tBodies[0].replaceChildren(...timeline.map(({ minute, conversations }) => {
    const fill = el("span", { class: "bar-fill" });
    fill.style.width = `${(100 * conversations) / peak}%`;  // CSSOM, not a style attribute: the CSP allows it
    return el("tr", {},
      el("td", {}, el("time", { datetime: `${minute}Z` }, minuteText(minute))),
      el("td", {}, el("span", { class: "count" }, String(conversations)),
         el("span", { class: "bar-track", "aria-hidden": "true" }, fill)));
  }));
}

function renderLinks(links, total) {
  $("links-table").tBodies[0].replaceChildren(...links.map((link) => el("tr", {},
    el("td", {}, link.conversation_id),
    el("td", {}, link.channel),
    el("td", {}, link.text),
    el("td", {}, el("time", { datetime: link.at }, whenText(link.at))))));
  setText($("links-note"), total > links.length ? `The first ${LINKS_SHOWN} of ${total}, oldest first.` : "");
}

/** Show the detail; `otherActive` is how many other active incidents it could be merged into. */
export function renderDetail(incident, otherActive) {
  setText($("detail-title"), incident.title);
  $("detail-status").replaceChildren(statusBadge(incident.status));
  setText($("detail-conversations"), String(incident.conversations));
  setText($("detail-channels"), channelsText(incident.channels));
  setText($("detail-opened"), whenText(incident.opened_at));
  setText($("detail-last-link"), whenText(incident.last_link_at));
  show($("detail-merged-row"), Boolean(incident.merged_into));
  setText($("detail-merged"), incident.merged_into || "");
  const active = ACTIVE.includes(incident.status);
  show($("detail-actions"), active);
  show($("confirm"), incident.status === "open");
  show($("merge"), otherActive > 0);
  renderTimeline(incident.timeline);
  renderLinks(incident.links, incident.conversations);
  show($("detail-view"), true);
}
