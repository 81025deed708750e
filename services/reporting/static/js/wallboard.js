// The wallboard: the live view's frames (GET /v1/reports/live/ws) as active incidents, queue tiles, agents by
// state, open SLA breaches and today's reasons; ages tick every second; status changes and transfers go to the
// agents service.

import { ApiError, call, urlWith } from "./api.js";
import { el, setText, show, syncChildren } from "/lib/dom.js";
import { clock, dateTime, number, percent, time } from "./format.js";
import { ReconnectingSocket } from "/lib/socket.js";

// Warning thresholds, as the page's legend says.
export const WAIT_WARN_SECONDS = 60;
export const WAIT_BAD_SECONDS = 180;
export const SERVICE_LEVEL_WARN = 0.8;
export const SERVICE_LEVEL_BAD = 0.6;
const STATUSES = ["online", "away", "offline"];
const INCIDENT_STATUS = { open: "Open", confirmed: "Confirmed" };
const $ = (id) => document.getElementById(id);

export function waitLevel(seconds) {
  if (seconds === null || seconds === undefined) return "ok";
  return seconds > WAIT_BAD_SECONDS ? "bad" : seconds > WAIT_WARN_SECONDS ? "warn" : "ok";
}

export function serviceLevelLevel(share) {
  if (share === null || share === undefined) return "ok";
  return share < SERVICE_LEVEL_BAD ? "bad" : share < SERVICE_LEVEL_WARN ? "warn" : "ok";
}

function conversations(count) {
  return `${number(count)} ${count === 1 ? "conversation" : "conversations"}`;
}

/** A long id's head, enough to tell conversations apart on a screen (the whole id is in its title). */
function shortId(id) {
  return id.length > 12 ? `${id.slice(0, 8)}…` : id;
}

export class Wallboard {
  /** `agentsUrl`: where the agents service answers (another origin); `token`: the workspace key. */
  constructor({ agentsUrl, token, timeZone, onConnection }) {
    this.agentsUrl = agentsUrl;
    this.token = token;
    this.timeZone = timeZone;
    this.onConnection = onConnection;
    this.skewMs = 0; // the server's clock minus the browser's, from the last frame
    this.announced = new Set(); // incidents the alert region has told of: each once, not on every frame
    this.socket = null;
    this.ticker = null;
    this.bindForms();
  }

  start(firstFrame) {
    if (firstFrame) this.render(firstFrame);
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const url = urlWith(`${scheme}//${location.host}`, "/v1/reports/live/ws", { token: this.token, tz: this.timeZone });
    // The pages' one reconnecting socket (shared/static/socket.js): a frame proves the feed is live.
    this.socket = new ReconnectingSocket({
      url: () => url,
      onFrame: (frame) => {
        this.socket.resetBackoff();
        this.onConnection("open");
        this.render(frame);
      },
      onState: (name, { attempt, delay }) => {
        if (name === "connecting") this.onConnection(attempt ? "reconnecting" : "connecting");
        else this.onConnection("reconnecting", { retryAt: Date.now() + delay });
      },
    });
    this.socket.start();
    this.ticker = setInterval(() => this.tick(), 1000);
  }

  stop() {
    clearInterval(this.ticker);
    if (this.socket) this.socket.stop("closed");
    this.socket = null;
  }

  /** Now by the server's clock: ages are measured against the clock that measured the frame. */
  serverNow() {
    return Date.now() + this.skewMs;
  }

  secondsSince(iso) {
    return iso ? (this.serverNow() - Date.parse(iso)) / 1000 : null;
  }

  render(frame) {
    if (!frame || !Array.isArray(frame.queues)) return;
    this.skewMs = Date.parse(frame.generated_at) - Date.now();
    this.renderIncidents(frame.incidents || []);
    this.renderQueues(frame.queues);
    this.renderAgents(frame.agents);
    this.renderBreaches(frame.breaches);
    this.renderReasons(frame.reasons);
    const updated = $("updated");
    updated.dateTime = frame.generated_at;
    setText(updated, time(new Date(frame.generated_at)));
  }

  /** Every second: the longest waits and the times in status move on their own between frames. */
  tick() {
    for (const node of document.querySelectorAll("#queues [data-metric='longest-wait']")) {
      const seconds = this.secondsSince(node.dataset.since);
      setText(node.querySelector("dd"), clock(seconds));
      node.dataset.level = waitLevel(seconds);
    }
    for (const node of document.querySelectorAll("#agent-groups [data-since], #incidents [data-since]")) {
      setText(node, clock(this.secondsSince(node.dataset.since)));
    }
  }

  // -- incidents ---------------------------------------------------------------------------------

  renderIncidents(incidents) {
    syncChildren($("incidents"), incidents, (i) => i.incident_id, (i) => this.makeIncident(i),
      (node, i) => this.updateIncident(node, i));
    setText($("incidents-count"), number(incidents.length));
    show($("incidents-panel"), incidents.length > 0);
    this.announce(incidents.filter((i) => !this.announced.has(i.incident_id)));
  }

  /** Tell screen readers of incidents not told of before: one change of the alert region per new incident. */
  announce(fresh) {
    if (fresh.length === 0) return;
    for (const i of fresh) this.announced.add(i.incident_id);
    const what = fresh.map((i) => `${i.title} (${conversations(i.conversations)})`).join("; ");
    setText($("incident-alert"), `${fresh.length === 1 ? "New incident" : "New incidents"}: ${what}`);
  }

  makeIncident(i) {
    return el("li", { class: "incident", dataset: { incidentId: i.incident_id } },
      el("h3", {}, i.title),
      el("p", { class: "facts" },
        el("span", { class: "status" }), " · ", el("span", { dataset: { field: "conversations" } }), " · ",
        el("span", { dataset: { field: "channels" } }), " · open for ",
        el("span", { dataset: { field: "age", since: i.opened_at }, title: `since ${dateTime(i.opened_at)}` })));
  }

  updateIncident(node, i) {
    setText(node.querySelector("h3"), i.title);
    const status = node.querySelector(".status");
    status.dataset.status = i.status;
    setText(status, INCIDENT_STATUS[i.status] || i.status);
    setText(node.querySelector("[data-field='conversations']"), conversations(i.conversations));
    const channels = Object.entries(i.channels).sort(([a, m], [b, n]) => n - m || a.localeCompare(b));
    setText(node.querySelector("[data-field='channels']"),
      channels.map(([channel, count]) => `${channel} ${number(count)}`).join(", ") || "no channel yet");
    setText(node.querySelector("[data-field='age']"), clock(this.secondsSince(i.opened_at)));
  }

  // -- queues ------------------------------------------------------------------------------------

  renderQueues(queues) {
    syncChildren($("queues"), queues, (q) => q.queue, (q) => this.makeTile(q), (node, q) => this.updateTile(node, q));
    show($("queues-empty"), queues.length === 0);
  }

  makeTile(q) {
    const metric = (name, label) => el("div", { dataset: { metric: name } }, el("dt", {}, label), el("dd", {}, "—"));
    return el("article", { class: "tile", dataset: { queue: q.queue }, "aria-label": `Queue ${q.queue}` },
      el("h3", {}, q.queue),
      el("dl", {},
        metric("waiting", "Waiting"), metric("longest-wait", "Longest wait"),
        metric("offers-out", "Offers out"), metric("assigned", "Assigned"),
        metric("service-level", "Service level today"), metric("answered", "Answered today"),
        metric("abandoned", "Abandoned today"), metric("breaches", "Open SLA breaches"),
        metric("csat", "CSAT today")));
  }

  updateTile(node, q) {
    const put = (name, text, level = "ok") => {
      const item = node.querySelector(`[data-metric='${name}']`);
      setText(item.querySelector("dd"), text);
      item.dataset.level = level;
    };
    put("waiting", number(q.waiting));
    put("offers-out", number(q.offers_out));
    put("assigned", number(q.assigned));
    put("service-level", percent(q.service_level_today), serviceLevelLevel(q.service_level_today));
    put("answered", number(q.answered_today));
    put("abandoned", number(q.abandoned_today));
    put("breaches", number(q.sla_breaches_open), q.sla_breaches_open > 0 ? "bad" : "ok");
    put("csat", q.csat_mean_today == null ? "—" : `${q.csat_mean_today.toFixed(1)} (${number(q.csat_responses_today)})`,
      q.csat_mean_today == null || q.csat_mean_today >= 4 ? "ok" : q.csat_mean_today >= 3 ? "warn" : "bad");
    const wait = node.querySelector("[data-metric='longest-wait']");
    if (q.oldest_waiting_since) wait.dataset.since = q.oldest_waiting_since;
    else delete wait.dataset.since;
    const seconds = this.secondsSince(q.oldest_waiting_since);
    put("longest-wait", clock(seconds), waitLevel(seconds));
  }

  // -- agents ------------------------------------------------------------------------------------

  renderAgents(agents) {
    for (const group of document.querySelectorAll("#agent-groups [data-group]")) {
      const status = group.dataset.group;
      const members = agents.filter((a) => (STATUSES.includes(a.status) ? a.status : "offline") === status);
      syncChildren(group.querySelector("[data-list]"), members, (a) => a.agent_id,
        (a) => this.makeAgent(a), (node, a) => this.updateAgent(node, a));
      setText(group.querySelector("[data-count]"), number(members.length));
    }
  }

  makeAgent(a) {
    const buttons = STATUSES.map((status) => el("button", {
      type: "button", class: "small", dataset: { status }, "aria-label": `Set ${a.agent_id} ${status}`,
      onclick: () => this.setStatus(a.agent_id, status, node),
    }, status[0].toUpperCase() + status.slice(1)));
    const node = el("li", { class: "agent", dataset: { agentId: a.agent_id } },
      el("span", { class: "name" }, a.agent_id),
      el("span", { class: "facts" }),
      el("span", { class: "set", role: "group", "aria-label": `Status of ${a.agent_id}` }, ...buttons),
      el("p", { class: "result", role: "status", "aria-live": "polite" }));
    return node;
  }

  updateAgent(node, a) {
    node.dataset.status = a.status;
    const media = Object.entries(a.load).map(([medium, held]) => `${medium} ${number(held)}`).join(" · ") || "no load";
    const facts = node.querySelector(".facts");
    const since = el("span", { dataset: { since: a.since }, title: `since ${dateTime(a.since)}` },
      clock(this.secondsSince(a.since)));
    const text = [media, `${number(a.held)}/${number(a.max_conversations)} held`,
      a.offers_out ? `${number(a.offers_out)} offered` : null,
      a.occupancy_today === null ? null : `occupancy ${percent(a.occupancy_today)}`].filter(Boolean).join(" — ");
    if (facts.dataset.text !== text || facts.dataset.shownSince !== a.since) {
      facts.dataset.text = text;
      facts.dataset.shownSince = a.since;
      facts.replaceChildren(`${text} — ${a.status} for `, since);
    }
    for (const button of node.querySelectorAll("button[data-status]")) {
      button.disabled = button.dataset.status === a.status;
    }
  }

  async setStatus(agentId, status, node) {
    const result = node.querySelector(".result");
    result.dataset.kind = "pending";
    setText(result, `Setting ${agentId} ${status}…`);
    try {
      await call(urlWith(this.agentsUrl, `/v1/agents/${encodeURIComponent(agentId)}/status`), this.token,
        { method: "PUT", body: { status } });
      result.dataset.kind = "ok";
      setText(result, `${agentId} is ${status}; the board follows within seconds.`);
    } catch (error) {
      result.dataset.kind = "error";
      setText(result, error instanceof ApiError ? error.message : String(error));
    }
  }

  // -- breaches and reasons ----------------------------------------------------------------------

  renderBreaches(breaches) {
    syncChildren(document.querySelector("#breaches tbody"), breaches, (b) => b.conversation_id,
      (b) => this.makeBreach(b), (node, b) => this.updateBreach(node, b));
    show($("breaches-empty"), breaches.length === 0);
    show($("breaches"), breaches.length > 0);
  }

  makeBreach(b) {
    const cells = ["queue", "channel", "state", "agent", "opened"].map((name) => el("td", { dataset: { field: name } }));
    return el("tr", { dataset: { conversationId: b.conversation_id } },
      el("td", {}, el("code", { title: b.conversation_id }, shortId(b.conversation_id))), ...cells,
      el("td", {}, el("button", {
        type: "button", class: "small", "aria-label": `Transfer conversation ${b.conversation_id}`,
        onclick: () => this.prepareTransfer(b.conversation_id),
      }, "Transfer…")));
  }

  updateBreach(node, b) {
    const put = (name, text) => setText(node.querySelector(`[data-field='${name}']`), text || "—");
    put("queue", b.queue);
    put("channel", b.channel);
    put("state", b.state);
    put("agent", b.agent_id);
    put("opened", dateTime(b.opened_at));
  }

  renderReasons(reasons) {
    syncChildren($("reasons"), reasons, (r) => r.label, (r) => this.makeReason(r), (node, r) => this.updateReason(node, r));
    show($("reasons-empty"), reasons.length === 0);
  }

  makeReason(r) {
    return el("li", { dataset: { label: r.label } }, el("span", { class: "label" }, r.label), " ",
      el("span", { class: "today" }), " ", el("span", { class: "change" }));
  }

  updateReason(node, r) {
    const diff = r.today - r.same_time_last_week;
    const direction = diff > 0 ? "up" : diff < 0 ? "down" : "same";
    const arrow = { up: "↑", down: "↓", same: "=" }[direction];
    setText(node.querySelector(".today"), `${number(r.today)} today`);
    const change = node.querySelector(".change");
    change.dataset.direction = direction;
    setText(change, `${arrow} ${number(Math.abs(diff))} (${number(r.same_time_last_week)} last week)`);
  }

  // -- transfer ----------------------------------------------------------------------------------

  prepareTransfer(conversationId) {
    $("transfer-id").value = conversationId;
    setText($("transfer-result"), "");
    $("transfer-target").focus();
  }

  bindForms() {
    $("transfer").addEventListener("submit", (event) => {
      event.preventDefault();
      this.transfer();
    });
  }

  async transfer() {
    const id = $("transfer-id").value.trim(), kind = $("transfer-kind").value, target = $("transfer-target").value.trim();
    const result = $("transfer-result");
    if (!id || !target) {
      result.dataset.kind = "error";
      setText(result, "Enter the conversation id and where it goes.");
      return;
    }
    result.dataset.kind = "pending";
    setText(result, "Transferring…");
    try {
      await call(urlWith(this.agentsUrl, `/v1/conversations/${encodeURIComponent(id)}/transfer`), this.token,
        { method: "POST", body: { [kind]: target } });
      result.dataset.kind = "ok";
      const where = kind === "to_agent" ? `agent ${target}` : `queue ${target}`;
      setText(result, `Transfer of ${id} to ${where} accepted: it moves when the router has done it.`);
    } catch (error) {
      result.dataset.kind = "error";
      setText(result, error instanceof ApiError ? error.message : String(error));
    }
  }
}
