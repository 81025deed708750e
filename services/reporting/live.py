"""The live view of a workspace (GET /v1/reports/live and its WebSocket): built from what reporting stores.

Pure: the caller reads the open conversations (`live` of report_conversations), the agents'
latest presence (report_live_agents), the active incidents (report_incidents) and today's
rollups; this turns them into queue tiles, agents with their load, open SLA breaches, today's top
contact reasons against the same hours a week before, and the incidents open or confirmed now. It is as fresh as reporting's ingest (waiting, offers, presence: the batch
that carried the event) and its rollup timer (today's service level and abandons).
"""

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from shared.web import Timestamp

BREACHES_SHOWN = 50
REASONS_SHOWN = 10
Row = Mapping[str, Any]  # a summary row: {"key": {...}, "interval_start": ..., "metrics": {...}}


class QueueTile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: str
    waiting: int  # in the queue, no offer out
    offers_out: int  # offered to an agent, not yet accepted
    assigned: int  # held by an agent now
    longest_wait_seconds: float | None  # of the waiting and offered: since it last entered the queue
    oldest_waiting_since: Timestamp | None
    sla_breaches_open: int  # open conversations with an SLA breach
    opened_today: int
    answered_today: int
    abandoned_today: int
    service_level_today: float | None  # docs/metrics.md "Service level", default options
    abandonment_rate_today: float | None
    csat_mean_today: float | None  # 1-5, of today's answers (docs/metrics.md "CSAT")
    csat_responses_today: int


class AgentNow(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent_id: str
    status: str  # online, away, offline
    since: Timestamp  # in this status since
    seconds_in_status: float
    max_conversations: int
    load: dict[str, int]  # conversations held per medium (chat, email, voice, ...)
    held: int
    offers_out: int
    occupancy_today: float | None


class OpenBreach(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: str
    queue: str | None
    channel: str | None
    state: str
    agent_id: str | None
    opened_at: Timestamp | None


class ReasonCount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    label: str
    today: int  # conversations opened today with the label
    same_time_last_week: int  # opened over the same local hours seven days before


class ActiveIncident(BaseModel):
    """An incident open or confirmed now, as assist last announced it (docs/incidents.md)."""

    model_config = ConfigDict(extra="forbid")

    incident_id: str
    title: str
    status: str  # open or confirmed
    conversations: int  # linked conversations
    channels: dict[str, int]  # linked conversations per channel
    opened_at: Timestamp
    last_link_at: Timestamp


class LiveView(BaseModel):
    """One workspace now; `generated_at` is the server's clock the ages were measured by."""

    model_config = ConfigDict(extra="forbid")

    generated_at: Timestamp
    day_start: Timestamp  # "today" starts here, in the asked time zone
    queues: list[QueueTile]
    agents: list[AgentNow]
    breaches: list[OpenBreach]  # the oldest open ones first, at most 50
    reasons: list[ReasonCount]  # today's top ten
    incidents: list[ActiveIncident]  # open or confirmed, the newest first (at most 20)


def build_live_view(*, now: datetime, day_start: datetime, open_conversations: Iterable[Row],
                    agents: Iterable[Row], queues_today: Iterable[Row], agents_today: Iterable[Row],
                    reasons_today: Iterable[Row], reasons_last_week: Iterable[Row],
                    configured_queues: Iterable[str], media_of: Callable[[str], str],
                    incidents: Iterable[Row] = ()) -> LiveView:
    conversations = list(open_conversations)
    return LiveView(
        generated_at=now, day_start=day_start,
        queues=_queue_tiles(now, conversations, _by_key(queues_today, "queue"), configured_queues),
        agents=_agents(now, conversations, agents, _by_key(agents_today, "agent"), media_of),
        breaches=_breaches(conversations),
        reasons=_reasons(_by_key(reasons_today, "label"), _by_key(reasons_last_week, "label")),
        incidents=[_incident(row) for row in incidents],
    )


def _by_key(rows: Iterable[Row], grouping: str) -> dict[str, Mapping[str, Any]]:
    """Metrics per group key; a range within one local day has one row per group."""
    return {row["key"][grouping]: row["metrics"] for row in rows if grouping in row["key"]}


def _queue_tiles(now: datetime, conversations: list[Row], today: Mapping[str, Mapping[str, Any]],
                 configured: Iterable[str]) -> list[QueueTile]:
    by_queue: dict[str, list[Row]] = defaultdict(list)
    for conversation in conversations:
        if conversation.get("queue"):
            by_queue[conversation["queue"]].append(conversation)
    names = sorted(set(configured) | set(by_queue) | set(today))
    return [_tile(now, name, by_queue.get(name, []), today.get(name, {})) for name in names]


def _tile(now: datetime, queue: str, conversations: list[Row], today: Mapping[str, Any]) -> QueueTile:
    states = Counter(c["state"] for c in conversations)
    waits = [c["entered_queue_at"] or c["since"] for c in conversations if c["state"] in ("waiting", "offered")]
    oldest = min(waits, default=None)
    return QueueTile(
        queue=queue, waiting=states["waiting"], offers_out=states["offered"], assigned=states["assigned"],
        longest_wait_seconds=None if oldest is None else max(0.0, (now - oldest).total_seconds()),
        oldest_waiting_since=oldest,
        sla_breaches_open=sum(1 for c in conversations if c.get("breached")),
        opened_today=today.get("opened", 0), answered_today=today.get("answered", 0),
        abandoned_today=today.get("abandoned", 0), service_level_today=today.get("service_level"),
        abandonment_rate_today=today.get("abandonment_rate"),
        csat_mean_today=today.get("csat_mean"), csat_responses_today=today.get("csat_responses", 0),
    )


def _agents(now: datetime, conversations: list[Row], agents: Iterable[Row],
            today: Mapping[str, Mapping[str, Any]], media_of: Callable[[str], str]) -> list[AgentNow]:
    load: dict[str, Counter] = defaultdict(Counter)
    offers: Counter = Counter()
    for conversation in conversations:
        if conversation.get("agent_id") and conversation["state"] == "assigned":
            load[conversation["agent_id"]][media_of(conversation.get("channel") or "")] += 1
        elif conversation.get("agent_id") and conversation["state"] == "offered":
            offers[conversation["agent_id"]] += 1
    found = [AgentNow(
        agent_id=agent["agent_id"], status=agent["status"], since=agent["since"],
        seconds_in_status=max(0.0, (now - agent["since"]).total_seconds()),
        max_conversations=agent.get("max_conversations", 0), load=dict(load[agent["agent_id"]]),
        held=sum(load[agent["agent_id"]].values()), offers_out=offers[agent["agent_id"]],
        occupancy_today=today.get(agent["agent_id"], {}).get("occupancy"),
    ) for agent in agents]
    order = {"online": 0, "away": 1, "offline": 2}
    return sorted(found, key=lambda a: (order.get(a.status, 3), a.agent_id))


def _breaches(conversations: list[Row]) -> list[OpenBreach]:
    breached = sorted((c for c in conversations if c.get("breached")),
                      key=lambda c: (c.get("opened_at") or c["since"], c["conversation_id"]))
    return [OpenBreach(conversation_id=c["conversation_id"], queue=c.get("queue"), channel=c.get("channel"),
                       state=c["state"], agent_id=c.get("agent_id"), opened_at=c.get("opened_at"))
            for c in breached[:BREACHES_SHOWN]]


def _reasons(today: Mapping[str, Mapping[str, Any]], last_week: Mapping[str, Mapping[str, Any]]) -> list[ReasonCount]:
    counts = [ReasonCount(label=label, today=metrics.get("opened", 0),
                          same_time_last_week=last_week.get(label, {}).get("opened", 0))
              for label, metrics in today.items() if metrics.get("opened", 0)]
    return sorted(counts, key=lambda r: (-r.today, r.label))[:REASONS_SHOWN]


def _incident(row: Row) -> ActiveIncident:
    return ActiveIncident(incident_id=row["incident_id"], title=row["title"], status=row["status"],
                          conversations=row["conversations"], opened_at=row["opened_at"],
                          last_link_at=row["last_link_at"],
                          channels={item["channel"]: item["count"] for item in row.get("channels", [])})
