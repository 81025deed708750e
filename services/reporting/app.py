"""Reporting's aiohttp app: the summary and the CSV export over stored rollups, the live view, the supervisor
page, and the consumer that fills them."""

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict

from services.reporting.export import csv_text
from services.reporting.feed import LiveFeed, read_live_view
from services.reporting.intervals import INTERVALS, ReportQueryError, zone
from services.reporting.live import LiveView
from services.reporting.metrics import ServiceLevelOptions, summary
from services.reporting.pages import PAGE_OPERATIONS, add_supervisor_routes
from services.reporting.rollup import GROUPINGS
from services.reporting.service import ReportingMetrics, ReportingService
from services.reporting.settings import ReportingSettings
from services.reporting.store import ReportStore, close_clients, open_clients, store_of
from services.reporting.subscriptions import SUBSCRIPTION_OPERATIONS, add_subscriptions
from shared.broker import Broker
from shared.partitions import agree_on_partitions
from shared.web import (
    WORKSPACE,
    Answer,
    Operation,
    Parameter,
    Timestamp,
    add_openapi_route,
    add_ops_routes,
    broker_and_database_checks,
    calling_agent,
    choice_query,
    configure_auth,
    header_parameter,
    http_error,
    model_response,
    open_to_agents,
    query_parameter,
    service_middlewares,
)

STORE = web.AppKey("report_store", ReportStore)
SETTINGS = web.AppKey("reporting_settings", ReportingSettings)
SERVICE = web.AppKey("reporting_service", ReportingService)
FEED = web.AppKey("live_feed", LiveFeed)

# RFC 3339 date-time (what the document's `format: date-time` promises): an offset is required.
RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,9})?([Zz]|[+-][0-9]{2}:[0-9]{2})")
EARLIEST, LATEST = datetime(1970, 1, 1, tzinfo=UTC), datetime(9000, 1, 1, tzinfo=UTC)

FROM = query_parameter("from", "Start of the range (inclusive), an RFC 3339 time with its offset", required=True,
                       format="date-time", example="2026-03-02T00:00:00+02:00")
TO = query_parameter("to", "End of the range (exclusive), an RFC 3339 time with its offset", required=True,
                     format="date-time", example="2026-03-03T00:00:00+02:00")
GROUP_BY = choice_query("group_by", "One row per queue, agent, channel or label (none: one row), each interval",
                        GROUPINGS)
INTERVAL = choice_query("interval", "Rows per local hour, day (the default) or week (from Monday)", INTERVALS)
TZ = query_parameter("tz", "The IANA time zone the intervals are days of (default UTC)", example="Europe/Kyiv",
                     minLength=1, maxLength=64)
BOOLEAN = ("true", "false")
INCLUDE_ABANDONS = choice_query("include_abandons", "Service level counts abandons in its denominator "
                                "(default true; docs/metrics.md, Service level)", BOOLEAN)
INCLUDE_SHORT = choice_query("include_short_abandons", "... short abandons too (default false)", BOOLEAN)


def create_app(settings: ReportingSettings) -> web.Application:
    app = web.Application(middlewares=service_middlewares(public_prefixes=()))
    configure_auth(app, settings)
    app[SETTINGS] = settings
    registry = CollectorRegistry()
    metrics = ReportingMetrics(registry)
    broker = Broker(settings.amqp_url, settings.topology())
    clients = open_clients(settings)
    store = store_of(settings, clients)
    db = store.db
    app[STORE] = store
    feed = app[FEED] = LiveFeed(lambda workspace_id, tz: read_live_view(store, workspace_id, tz),
                                period=settings.live_seconds)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        await agree_on_partitions(db, settings.partitions)  # before declaring any partition queue
        await broker.start()
        service = ReportingService(broker, store, metrics, batch_size=settings.batch_size,
                                   extend_seconds=settings.extend_seconds, rollup_seconds=settings.rollup_seconds,
                                   lease_seconds=settings.lease_seconds)
        await service.start()
        app[SERVICE] = service
        yield
        await feed.close()
        await service.stop()
        await broker.close()
        await close_clients(clients)

    app.cleanup_ctx.append(resources)
    add_ops_routes(app, registry, broker_and_database_checks(broker, db))
    app.router.add_get("/v1/reports/summary", get_summary)
    app.router.add_get("/v1/reports/conversations.csv", get_conversations_csv)
    app.router.add_get("/v1/reports/live", get_live)
    app.router.add_get("/v1/reports/live/ws", live_socket)
    add_supervisor_routes(app, settings)
    add_subscriptions(app, settings, store, registry)  # webhooks out: routes, the store's hook, the dispatcher
    add_openapi_route(app, "Switchyard reporting", [*OPERATIONS, *PAGE_OPERATIONS, *SUBSCRIPTION_OPERATIONS])
    return app


# -- the query ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Range:
    start: datetime
    end: datetime


def _instant(request: web.Request, parameter: Parameter) -> datetime:
    raw = parameter.raw(request)
    if raw is None:
        raise http_error(web.HTTPBadRequest, f"{parameter.name} is required", parameter=parameter.name)
    if not RFC3339.fullmatch(raw):
        raise http_error(web.HTTPBadRequest, f"{parameter.name} must be an RFC 3339 time with an offset, "
                         "such as 2026-03-02T00:00:00+02:00", parameter=parameter.name)
    leap = raw[17:19] == "60"  # a leap second: RFC 3339 has them, Python does not
    try:
        at = datetime.fromisoformat(raw[:17] + "59" + raw[19:] if leap else raw) + timedelta(seconds=leap)
        utc = at.astimezone(UTC)
    except (ValueError, OverflowError):
        raise http_error(web.HTTPBadRequest, f"{parameter.name} is not a real time", parameter=parameter.name) from None
    if not EARLIEST <= utc < LATEST:
        raise http_error(web.HTTPUnprocessableEntity, f"{parameter.name} must be from 1970 to 8999",
                         parameter=parameter.name)
    return utc


def time_range(request: web.Request) -> Range:
    """[from, to), in order and no longer than the documented bound, or a JSON 4xx naming the problem."""
    start, end = _instant(request, FROM), _instant(request, TO)
    if start > end:
        raise http_error(web.HTTPUnprocessableEntity, "from is after to: the range is [from, to)", parameter="from")
    days = request.app[SETTINGS].max_range_days
    if end - start > timedelta(days=days):
        raise http_error(web.HTTPUnprocessableEntity, f"from to to is over {days} days: ask for less", parameter="to")
    return Range(start, end)


def _flag(request: web.Request, parameter: Parameter, default: bool) -> bool:
    value = parameter.choice(request)
    return default if value is None else value == "true"


# -- the answers -------------------------------------------------------------------------------


class SummaryRow(BaseModel):
    """One group in one local interval, with every metric of docs/metrics.md (None: nothing to divide by, or n/a)."""

    model_config = ConfigDict(extra="forbid")

    key: dict[str, str]  # {} for group_by=none, else {"queue": "billing"} and the like
    interval_start: Timestamp  # in the asked time zone
    metrics: dict[str, int | float | None]


class Summary(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rows: list[SummaryRow]


@open_to_agents
async def get_summary(request: web.Request) -> web.Response:
    """Rows per interval and group, merged from the stored rollups tiling each interval (never from raw
    events); to an agent token only its own rows of group_by=agent."""
    span = time_range(request)
    grouping = GROUP_BY.choice(request) or "none"
    agent_id = calling_agent(request)
    if agent_id is not None and grouping != "agent":
        raise http_error(web.HTTPForbidden, "an agent token may only ask for group_by=agent (its own rows)",
                         parameter="group_by")
    interval = INTERVAL.choice(request) or "day"
    tz = _zone_name(request)
    options = ServiceLevelOptions(_flag(request, INCLUDE_ABANDONS, True), _flag(request, INCLUDE_SHORT, False))
    rollups = await request.app[STORE].bucket_rollups(request[WORKSPACE], span.start, span.end, grouping, interval, tz)
    rows = summary(rollups, span.start, span.end, interval, tz, grouping, options)
    if agent_id is not None:
        rows = [row for row in rows if row["key"].get("agent") == agent_id]
    return model_response(Summary(rows=[SummaryRow(**row) for row in rows]))


def _zone_name(request: web.Request) -> str:
    raw = TZ.raw(request)
    tz = "UTC" if raw is None else raw  # absent: UTC; present but empty: not a zone (a 422)
    try:
        zone(tz)
    except ReportQueryError as error:
        raise http_error(web.HTTPUnprocessableEntity, f"tz: {error}", parameter="tz") from None
    return tz


@open_to_agents
async def get_live(request: web.Request) -> web.Response:
    """Queues, agents, open breaches and today's reasons now ("today" in the zone asked); to an
    agent token the queues and reasons, and of agents and breaches only its own."""
    view = await read_live_view(request.app[STORE], request[WORKSPACE], _zone_name(request))
    if (agent_id := calling_agent(request)) is not None:
        view = view.model_copy(update={"agents": [a for a in view.agents if a.agent_id == agent_id],
                                       "breaches": [b for b in view.breaches if b.agent_id == agent_id]})
    return model_response(view)


async def live_socket(request: web.Request) -> web.WebSocketResponse:
    """The live view as it changes: a frame (a LiveView) on connect, then at most one a second."""
    workspace_id, tz = request[WORKSPACE], _zone_name(request)
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    feed = request.app[FEED]
    feed.watch(workspace_id, tz, ws)
    try:
        async for _ in ws:  # nothing to say to us: the screen only listens
            pass
    finally:
        feed.unwatch(workspace_id, tz, ws)
    return ws


EXPORT_BATCH = 500


async def get_conversations_csv(request: web.Request) -> web.StreamResponse:
    """Every conversation that started in the range, one row each, streamed as the database cursor reads."""
    span = time_range(request)
    response = web.StreamResponse(headers={"Content-Disposition": 'attachment; filename="conversations.csv"'})
    response.content_type = "text/csv"
    response.charset = "utf-8"
    await response.prepare(request)
    await response.write(csv_text([], header=True).encode())
    rows = []
    async for document in request.app[STORE].export_rows(request[WORKSPACE], span.start, span.end, EXPORT_BATCH):
        rows.append(document["row"])
        if len(rows) == EXPORT_BATCH:
            await response.write(csv_text(rows).encode())
            rows = []
    await response.write(csv_text(rows).encode())
    await response.write_eof()
    return response


RANGE_RULES = ("`from` must not be after `to`, the range is at most REPORTING_MAX_RANGE_DAYS (366 by default) and "
               "both are from 1970 to 8999: otherwise a 422 naming the parameter.")
OPERATIONS = [
    Operation("GET", "/v1/reports/summary", "Metrics per interval and group over a range",
              (Answer(200, "One row per interval and group that had anything", Summary),),
              parameters=(FROM, TO, GROUP_BY, INTERVAL, TZ, INCLUDE_ABANDONS, INCLUDE_SHORT), errors=(400, 403, 422),
              description="Metric names and formulas: docs/metrics.md. The range selects the 15-minute buckets "
                          "overlapping it; intervals are local to `tz` (an unknown zone is a 422). " + RANGE_RULES),
    Operation("GET", "/v1/reports/conversations.csv", "One CSV row per conversation started in the range",
              (Answer(200, "A header row, then one row per conversation: ISO times (UTC), durations in seconds",
                      media_type="text/csv", headers=(header_parameter("Content-Disposition", "attachment"),)),),
              parameters=(FROM, TO), errors=(400, 422), description=RANGE_RULES),
    Operation("GET", "/v1/reports/live", "The workspace now: queue tiles, agents, open SLA breaches, top reasons",
              (Answer(200, "The live view (today: since local midnight in `tz`)", LiveView),),
              parameters=(TZ,), errors=(422,),
              description="As fresh as reporting's ingest (waiting, offers, presence) and its rollup timer "
                          "(today's service level and abandons). The WebSocket `GET /v1/reports/live/ws?token=<API "
                          "key>&tz=` sends the same document on connect, then at most once a second."),
]
