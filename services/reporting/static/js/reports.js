// The reports view: filters, two Chart.js charts per interval, a table of the summary's rows, the CSV export.

import { ApiError, call, callJson, urlWith } from "./api.js";
import { el, setText, show } from "/lib/dom.js";
import { addDays, browserZone, intervalLabel, isZone, midnightIn, number, percent, seconds, today } from "./format.js";

const $ = (id) => document.getElementById(id);
const DEFAULT_DAYS = 7;

// The table's columns: metric names of docs/metrics.md and how each reads.
const COLUMNS = [
  ["opened", "Opened", number], ["answered", "Answered", number], ["abandoned", "Abandoned", number],
  ["resolved", "Resolved", number], ["transferred", "Transferred", number],
  ["service_level", "Service level", percent], ["abandonment_rate", "Abandonment", percent],
  ["wait_time_mean", "Wait (mean)", seconds], ["wait_time_p90", "Wait (p90)", seconds],
  ["first_response_time_mean", "First response (mean)", seconds], ["handle_time_mean", "Handle (mean)", seconds],
  ["resolution_time_mean", "Resolution (mean)", seconds], ["csat_mean", "CSAT (mean)", number],
  ["occupancy", "Occupancy", percent],
  // The pre-routing bot (docs/metrics.md, "The pre-routing bot"); none of these counts for an agent.
  ["bot_conversations", "To the bot", number], ["bot_resolved", "Bot resolved", number],
  ["bot_handed_over", "Handed over", number], ["abandoned_with_bot", "Left the bot", number],
  ["deflection_rate", "Deflection", percent],
];
const COLOURS = { opened: "#2f6fde", answered: "#1f9d55", abandoned: "#cf3a3a", level: "#7a4fd6", wait: "#c98a04",
  first: "#0f8b8d" };

export class Reports {
  constructor({ token }) {
    this.token = token;
    this.charts = {};
    this.loaded = false;
  }

  init() {
    const zone = browserZone();
    $("tz").value = zone;
    $("to").value = today(zone);
    $("from").value = addDays($("to").value, 1 - DEFAULT_DAYS);
    this.fillZones();
    $("filters").addEventListener("submit", (event) => {
      event.preventDefault();
      this.run();
    });
    $("export-csv").addEventListener("click", () => this.exportCsv());
  }

  fillZones() {
    const zones = typeof Intl.supportedValuesOf === "function" ? Intl.supportedValuesOf("timeZone") : [];
    $("zones").replaceChildren(...zones.map((zone) => el("option", { value: zone })));
  }

  /** Shown the first time the tab opens: the last week, by day, in the browser's zone. */
  showOnce() {
    if (!this.loaded) this.run();
  }

  /** The filters as the API's query: [from, to + 1 day) at local midnights in the zone; or an error text. */
  query() {
    const tz = $("tz").value.trim(), from = $("from").value, to = $("to").value;
    if (!from || !to) return { error: "Choose both dates." };
    if (from > to) return { error: "The start date is after the end date." };
    if (!isZone(tz)) return { error: `“${tz}” is not a time zone this browser knows (an IANA name such as Europe/Kyiv).` };
    return {
      from: midnightIn(from, tz), to: midnightIn(addDays(to, 1), tz), tz,
      group_by: $("group-by").value, interval: $("interval").value,
    };
  }

  async run() {
    const query = this.query();
    setText($("report-error"), query.error || "");
    if (query.error) return;
    this.loaded = true;
    setText($("report-status"), "Loading…");
    try {
      const rows = await this.summary(query);
      // The charts show the whole workspace per interval; the table, the chosen grouping.
      const totals = query.group_by === "none" ? rows : await this.summary({ ...query, group_by: "none" });
      this.drawCharts(totals, query);
      this.fillTable(rows, query);
      setText($("report-status"), `${number(rows.length)} rows, ${query.from} to ${query.to} (${query.tz}).`);
    } catch (error) {
      setText($("report-status"), "");
      setText($("report-error"), error instanceof ApiError ? error.message : String(error));
    }
  }

  async summary(query) {
    const url = urlWith(location.origin, "/v1/reports/summary", query);
    return (await callJson(url, this.token)).rows;
  }

  // -- charts ------------------------------------------------------------------------------------

  drawCharts(rows, query) {
    const ordered = [...rows].sort((a, b) => Date.parse(a.interval_start) - Date.parse(b.interval_start));
    const labels = ordered.map((row) => intervalLabel(row.interval_start, query.interval, query.tz));
    const series = (name, scale = 1) => ordered.map((row) => {
      const value = row.metrics[name];
      return value === null || value === undefined ? null : value * scale;
    });
    this.draw("volume", "chart-volume", "bar", labels, [
      { label: "Opened", data: series("opened"), backgroundColor: COLOURS.opened },
      { label: "Answered", data: series("answered"), backgroundColor: COLOURS.answered },
      { label: "Abandoned", data: series("abandoned"), backgroundColor: COLOURS.abandoned },
    ], { y: { beginAtZero: true, ticks: { precision: 0 } } });
    this.draw("speed", "chart-speed", "line", labels, [
      { label: "Service level (%)", data: series("service_level", 100), borderColor: COLOURS.level,
        backgroundColor: COLOURS.level, yAxisID: "level" },
      { label: "Mean wait (s)", data: series("wait_time_mean"), borderColor: COLOURS.wait,
        backgroundColor: COLOURS.wait, yAxisID: "seconds" },
      { label: "Mean first response (s)", data: series("first_response_time_mean"), borderColor: COLOURS.first,
        backgroundColor: COLOURS.first, yAxisID: "seconds" },
    ], {
      level: { position: "left", min: 0, max: 100, title: { display: true, text: "%" } },
      seconds: { position: "right", beginAtZero: true, title: { display: true, text: "seconds" },
        grid: { drawOnChartArea: false } },
    });
  }

  draw(name, canvasId, type, labels, datasets, scales) {
    const existing = this.charts[name];
    if (existing) {
      existing.data.labels = labels;
      existing.data.datasets = datasets;
      existing.update();
      return;
    }
    this.charts[name] = new window.Chart($(canvasId), {
      type, data: { labels, datasets },
      options: {
        responsive: true, maintainAspectRatio: false, animation: false, locale: navigator.language,
        spanGaps: true, interaction: { mode: "index", intersect: false }, scales,
        plugins: { legend: { position: "bottom" } },
      },
    });
  }

  // -- table -------------------------------------------------------------------------------------

  fillTable(rows, query) {
    const grouped = query.group_by !== "none";
    const head = el("tr", {}, el("th", { scope: "col" }, "Interval"),
      grouped ? el("th", { scope: "col" }, query.group_by) : null,
      ...COLUMNS.map(([, label]) => el("th", { scope: "col", class: "num" }, label)));
    document.querySelector("#report-table thead").replaceChildren(head);
    const ordered = [...rows].sort((a, b) => Date.parse(a.interval_start) - Date.parse(b.interval_start)
      || keyText(a).localeCompare(keyText(b)));
    document.querySelector("#report-table tbody").replaceChildren(...ordered.map((row) => el("tr", {},
      el("th", { scope: "row" }, intervalLabel(row.interval_start, query.interval, query.tz)),
      grouped ? el("td", { dataset: { field: "key" } }, keyText(row)) : null,
      ...COLUMNS.map(([name, , format]) => el("td", { class: "num", dataset: { metric: name } }, format(row.metrics[name]))))));
    show($("report-empty"), rows.length === 0);
    show($("report-table"), rows.length > 0);
  }

  // -- CSV -----------------------------------------------------------------------------------------

  /** GET the CSV with the key in the header (a link could not carry it), then save the Blob. */
  async exportCsv() {
    const query = this.query();
    setText($("report-error"), query.error || "");
    if (query.error) return;
    const button = $("export-csv");
    button.disabled = true;
    try {
      const url = urlWith(location.origin, "/v1/reports/conversations.csv", { from: query.from, to: query.to });
      const blob = await (await call(url, this.token, { accept: "text/csv" })).blob();
      saveBlob(blob, `conversations-${$("from").value}-to-${$("to").value}.csv`);
    } catch (error) {
      setText($("report-error"), error instanceof ApiError ? error.message : String(error));
    } finally {
      button.disabled = false;
    }
  }
}

function keyText(row) {
  return Object.values(row.key).join(", ");
}

function saveBlob(blob, filename) {
  const href = URL.createObjectURL(blob);
  const link = el("a", { href, download: filename, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10000);
}
