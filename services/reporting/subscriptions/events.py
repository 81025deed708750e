"""The public events a subscription receives, made from reporting's ReportEvents (pure: no I/O).

Reporting stores every fact once as a ReportEvent (services/reporting/model.py); external systems
get a smaller, stable vocabulary (docs/events.md). One ReportEvent may make two public events: an
assignment is both `conversation.assigned` and `conversation.status_changed` (status assigned), so
a receiver that wants only status changes need not know every event.
"""

import hashlib
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from services.reporting.model import INCIDENT_EVENTS, ReportEvent

EventName = Literal[
    "conversation.created", "conversation.assigned", "conversation.status_changed", "conversation.transferred",
    "conversation.labels_changed", "message.created", "sla.warning", "sla.breached", "csat.received",
    "agent.status_changed", "bot.resolved", "bot.handed_over", "incident.detected", "incident.updated",
    "incident.resolved",
]
EVENT_NAMES: tuple[str, ...] = get_args(EventName)
EVERY_EVENT = "*"

# A fixed namespace: the same (event name, report event) is the same public event id forever.
_EVENT_ID_NAMESPACE = uuid.UUID("7d3c2f0e-6c1b-4f2a-9a55-2b8e4f1d6a10")
# What each ReportEvent type is as a conversation status (conversation.status_changed).
STATUS_OF = {
    "conversation.queued": "queued", "conversation.offered": "offered", "conversation.assigned": "assigned",
    "conversation.resolved": "resolved", "conversation.reopened": "reopened", "conversation.abandoned": "abandoned",
    "bot.resolved": "resolved",  # closed by the bot: no conversation.resolved follows (docs/bot.md)
}
# ReportEvent types published under their own name (the status ones above may be both).
SAME_NAME = {"conversation.assigned", "conversation.transferred", "conversation.labels_changed", "message.created",
             "sla.warning", "sla.breached", "csat.received", "agent.status_changed", "bot.resolved",
             "bot.handed_over", *INCIDENT_EVENTS}


@dataclass(frozen=True)
class PublicEvent:
    """One event as a subscriber sees it; `order` sorts a conversation's (or agent's) events."""

    name: str
    event_id: str
    workspace_id: str
    occurred_at: datetime
    chain: str  # what ordering is kept within: "conversation:<id>", "agent:<id>", "incident:<id>"
    order: str
    data: dict[str, Any]


def public_events(event: ReportEvent) -> list[PublicEvent]:
    """The public events one ReportEvent makes (none for facts external systems are not offered)."""
    names = []
    if event.type == "conversation.opened":
        names.append("conversation.created")
    if event.type in SAME_NAME:
        names.append(event.type)
    if event.type in STATUS_OF:
        names.append("conversation.status_changed")
    return [_public(event, name, index) for index, name in enumerate(names)]


def _public(event: ReportEvent, name: str, index: int) -> PublicEvent:
    return PublicEvent(
        name=name, event_id=public_event_id(name, event.event_id), workspace_id=event.workspace_id,
        occurred_at=event.at.astimezone(UTC), chain=chain_of(event), order=order_of(event, index),
        data=_data(event, name),
    )


def public_event_id(name: str, report_event_id: str) -> str:
    """Stable across redeliveries and replays: receivers deduplicate by it."""
    return f"evt_{uuid.uuid5(_EVENT_ID_NAMESPACE, f'{name}|{report_event_id}').hex}"


def chain_of(event: ReportEvent) -> str:
    """Order is kept per conversation; an agent's own events (status) per agent; an incident's announcements per
    incident; anything else is on its own."""
    if event.type in INCIDENT_EVENTS:
        return f"incident:{event.data['incident_id']}"
    if event.conversation_id:
        return f"conversation:{event.conversation_id}"
    if event.agent_id:
        return f"agent:{event.agent_id}"
    return f"event:{event.event_id}"


def order_of(event: ReportEvent, index: int) -> str:
    """Sorts as reporting folds events (time, then id), then the public events one fact makes."""
    return f"{event.at.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%f}|{event.event_id}|{index}"


def _data(event: ReportEvent, name: str) -> dict[str, Any]:
    """The body's `data`: the ids every event has, then what this event adds (docs/events.md)."""
    base = {"conversation_id": event.conversation_id, "agent_id": event.agent_id, "queue": event.queue,
            "channel": event.channel}
    details = dict(event.data)
    if name == "conversation.status_changed":
        by_bot = {"by_bot": True} if event.type == "bot.resolved" else {}
        return base | details | by_bot | {"status": STATUS_OF[event.type]}  # the status wins over any detail so named
    if name == "message.created":
        prefix = "message.created:"
        message_id = event.event_id.removeprefix(prefix) if event.event_id.startswith(prefix) else None
        return base | {"message_id": details.pop("message_id", message_id)} | details
    if name == "agent.status_changed":
        return {"agent_id": event.agent_id} | details
    if name in INCIDENT_EVENTS:
        return details  # the incident as it stands: no conversation, agent, queue or channel of its own
    return base | details


def wants(events: list[str], name: str) -> bool:
    """Whether a subscription to `events` receives `name`."""
    return EVERY_EVENT in events or name in events


def delivery_id(subscription_id: str, event_id: str, replay_id: str | None = None) -> str:
    """Deterministic: the same event recorded again makes the same delivery (a duplicate key, not a second
    send); a replay is a new delivery of the same event, so it is keyed by the replay too."""
    raw = f"{subscription_id}|{event_id}|{replay_id or ''}"
    return f"dlv_{hashlib.sha256(raw.encode()).hexdigest()[:32]}"
