// The conversation list (and the tab title's count of what waits), with the SLA chip it shares with the header.

import { $, el } from "./dom.js";
import { PREVIEW_PREFIX, SLA_TARGET, contactLabel, fmtTime, slaAlerts } from "./format.js";
import { render, select } from "./render.js";
import { hasFailedReply, lastMessage, sortedConversations, state } from "./state.js";

export function renderList() {
  const list = $("conversations");
  const items = sortedConversations();
  list.replaceChildren(...items.map((entry) => {
    const c = entry.conv, last = lastMessage(entry);
    const prio = Number(c.priority || 0);
    const li = el("li", {
      "data-conversation-id": c.conversation_id,
      "data-unread": entry.unread,
      class: c.conversation_id === state.selected ? "selected" : null,
    }, el("button", { type: "button", class: "conv", "aria-current": c.conversation_id === state.selected ? "true" : null },
      el("div", { class: "conv-top" },
        el("span", { class: "conv-name", text: contactLabel(c) }),
        hasFailedReply(entry) ? el("span", { class: "failed-badge", "data-testid": "failed-reply", text: "Reply failed" }) : null,
        entry.unread ? el("span", { class: "badge", "data-testid": "unread", "aria-label": `${entry.unread} unread`, text: entry.unread }) : null),
      el("div", { class: "conv-meta" },
        el("span", { class: "chip", text: c.channel || "?" }),
        el("span", { class: "chip" + (prio >= 7 ? " prio-high" : ""), title: "Priority", text: `P${prio}` }),
        slaBadge(slaAlerts(c)[0], true),
        el("time", { datetime: (last && last.created_at) || c.created_at || null, text: fmtTime((last && last.created_at) || c.created_at) })),
      state.typing.has(c.conversation_id)
        ? el("div", { class: "conv-preview typing", "data-testid": "typing-preview", text: "typing…" })
        : el("div", { class: "conv-preview", text: last ? (PREVIEW_PREFIX[last.direction] || "") + (last.text || "") : "" })));
    return li;
  }));
  $("conversations-empty").hidden = items.length > 0;
  const waiting = items.reduce((n, e) => n + (e.unread || 0), 0) + state.offers.size;
  document.title = waiting ? `(${waiting}) Switchyard desk` : "Switchyard desk";
}

export function slaBadge(alert, short) {
  if (!alert) return null;
  const what = `${SLA_TARGET[alert.target] || alert.target}: ${alert.state === "breached" ? "breached" : "due soon"}`;
  const title = alert.due ? `${what} (due ${fmtTime(alert.due)})` : what;
  return el("span", { class: "sla", "data-testid": "sla", "data-state": alert.state, "data-target": alert.target,
                      title, "aria-label": "SLA " + title, text: short ? `SLA ${alert.state}` : what });
}

export function wireList() {
  $("conversations").addEventListener("click", (e) => {
    const li = e.target.closest("[data-conversation-id]");
    if (li) select(li.getAttribute("data-conversation-id"));
  });
  $("back").addEventListener("click", () => select(null));
  document.addEventListener("visibilitychange", () => { if (state.signedIn) render(); });
}
