"""Surge detection live: the router hands assist every customer message of a workspace that turns
incident detection on (`surge.message`, with its conversation); the detector
(services/assist/surges/detector.py) groups them and raises incidents; this keeps what it finds
(store.py) and tells the others: `incident.detected`, `incident.updated`, `incident.resolved` on the
events exchange (supervisors' wallboard, external systems), and `incident.linked` to the router for
each conversation linked to an open incident (its status reply, its queue).

One process holds the detector: `<ns>.assist.surges` has a single active consumer. Its state is
memory, rebuilt by replaying the last day's messages (kept in `surge_messages`) when a process
starts reading after a gap: at its start, or when it takes over from the replica that read until
then. The detector's incident ids are stable (the workspace and the opening message), so a replay
finds the incidents and links already stored and publishes nothing twice. Ticks (transient,
expiring, sent by every replica to the queue) let the active one resolve incidents gone quiet."""

import asyncio
import time
from datetime import datetime, timedelta

import structlog
from aio_pika.abc import AbstractIncomingMessage

from services.assist.incidents.store import KEEP_MESSAGES, OPEN_STATUSES, IncidentStore, message_of_doc
from services.assist.surges.detector import (
    ConversationLinked,
    InboundMessage,
    IncidentDetected,
    IncidentResolved,
    IncidentUpdated,
    SurgeDetector,
)
from shared import events
from shared.broker import BatchConsumer, Broker, PoisonMessage
from shared.models import IncidentLinked, RoutingEvent, new_id, utcnow
from shared.ticks import Ticker

log = structlog.get_logger(__name__)
SURGE_TICK = "surge.tick"
REPLAY_LIMIT = 100_000  # messages replayed at most (a day of a busy deployment)
REPLAY_SLICE = 200  # messages replayed between two turns of the event loop


def parse_surge_input(delivery: AbstractIncomingMessage) -> RoutingEvent | None:
    """A customer message for the detector, or None for a tick."""
    if delivery.type == SURGE_TICK:
        return None
    if delivery.type != events.SURGE_MESSAGE:
        raise PoisonMessage(f"unknown message type {delivery.type!r}")
    event = RoutingEvent.model_validate_json(delivery.body)
    if event.conversation_id is None or not isinstance(event.details.get("text"), str):
        raise PoisonMessage("a surge message names its conversation and has a text")
    return event


def message_of(event: RoutingEvent) -> InboundMessage:
    details = event.details
    received = details.get("received_at")
    at = datetime.fromisoformat(received) if isinstance(received, str) else event.at
    assert event.conversation_id is not None
    return InboundMessage(id=str(details.get("message_id") or event.event_id), workspace_id=event.workspace_id,
                          conversation_id=event.conversation_id, channel=str(details.get("channel", "")),
                          text=details["text"], at=at)


class SurgeWatcher:
    """Feeds the detector and acts on what it finds; see the module docstring."""

    def __init__(self, broker: Broker, store: IncidentStore, tick_seconds: float = 15,
                 replay_gap_seconds: float = 60, detector: SurgeDetector | None = None) -> None:
        self.broker = broker
        self.store = store
        self.detector = detector or SurgeDetector()
        self.tick_seconds = tick_seconds
        self.replay_gap_seconds = replay_gap_seconds
        self._last_read: float | None = None  # time.monotonic() of the last batch this process read
        self.consumer: BatchConsumer[RoutingEvent | None] = BatchConsumer(
            broker, "assist-surges", parse_surge_input, self.handle_batch, batch_size=100)
        self.ticker = Ticker("assist-surges", tick_seconds, self.send_tick)

    async def start(self) -> None:
        await self.store.ensure_indexes()
        await self.consumer.start()
        await self.consumer.attach(self.broker.topology.assist_surge_queue)
        self.ticker.start()

    async def stop(self) -> None:
        await self.ticker.stop()
        await self.consumer.stop()

    async def send_tick(self) -> None:
        topology = self.broker.topology
        await self.broker.publish_raw(
            b"{}", topology.assist_surge_queue, message_type=SURGE_TICK, message_id=new_id(), workspace_id="",
            exchange=topology.requeue_exchange, mandatory=False, persistent=False, expiration=self.tick_seconds)

    async def handle_batch(self, items: list[RoutingEvent | None]) -> None:
        messages = [message_of(item) for item in items if item is not None]
        if self._last_read is None or time.monotonic() - self._last_read > self.replay_gap_seconds:
            await self.replay(exclude={m.id for m in messages})
        self._last_read = time.monotonic()
        await self.store.keep_messages([{"_id": m.id, "workspace_id": m.workspace_id, "conversation_id": m.conversation_id,
                                         "channel": m.channel, "text": m.text, "at": m.at} for m in messages])
        for message in messages:
            await self.apply(self.detector.observe(message), {message.id: message})
        if len(messages) < len(items):  # a tick came: incidents gone quiet end, the old messages go
            now = utcnow()
            await self.apply(self.detector.tick(now), {})
            await self.store.forget_messages(now - KEEP_MESSAGES)

    async def replay(self, exclude: set[str]) -> None:
        """A fresh detector fed the last day's messages: what the replica before this one knew."""
        started = time.monotonic()
        self.detector = SurgeDetector(self.detector.params)
        docs = await self.store.recent_messages(utcnow() - timedelta(days=1), REPLAY_LIMIT)
        for n, doc in enumerate(docs, start=1):
            if doc["_id"] in exclude:
                continue
            message = message_of_doc(doc)
            await self.apply(self.detector.observe(message), {message.id: message})
            if n % REPLAY_SLICE == 0:
                await asyncio.sleep(0)  # a day is seconds of CPU: the API and the bot are served meanwhile
        log.info("surges.replayed", messages=len(docs), seconds=round(time.monotonic() - started, 2))

    async def apply(self, changes: list, messages: dict[str, InboundMessage]) -> None:
        """Keep each change and tell whom it concerns; a change already kept (a replay) tells no one again."""
        for change in changes:
            if isinstance(change, IncidentDetected):
                if await self.store.opened(change.incident_id, change.workspace_id, change.sample, change.at):
                    await self.announce(events.INCIDENT_DETECTED, change.workspace_id, change.incident_id)
            elif isinstance(change, ConversationLinked):
                await self.link(change, messages.get(change.message_id))
            elif isinstance(change, IncidentUpdated):
                await self.announce(events.INCIDENT_UPDATED, change.workspace_id, change.incident_id,
                                    event_id=f"{change.incident_id}:updated:{change.at.isoformat()}")
            elif isinstance(change, IncidentResolved):
                # Only an unconfirmed one ends by itself: a confirmed one is a supervisor's to resolve.
                resolved = await self.store.set_status(change.workspace_id, change.incident_id, "resolved",
                                                       ("open",), change.at, resolved_by="quiet")
                if resolved is not None:
                    await self.announce(events.INCIDENT_RESOLVED, change.workspace_id, change.incident_id)

    async def link(self, change: ConversationLinked, message: InboundMessage | None) -> None:
        incident = await self.store.get(change.workspace_id, change.incident_id)
        if incident is None or incident["status"] not in OPEN_STATUSES:
            return  # dismissed or merged by a supervisor: its later matches are nobody's concern
        if message is None:  # linked when its group surged, after it was read: read it back
            message = await self.store.message(change.message_id)
        channel, text, at = (message.channel, message.text, message.at) if message else ("unknown", "", utcnow())
        if not await self.store.link(change.incident_id, change.workspace_id, change.conversation_id, channel,
                                     change.message_id, text, at):
            return
        linked = IncidentLinked(event_id=f"{change.incident_id}:{change.conversation_id}:linked",
                                workspace_id=change.workspace_id, conversation_id=change.conversation_id,
                                incident_id=change.incident_id, at=at)
        await self.broker.publish(linked, events.INCIDENT_LINKED, message_type=events.INCIDENT_LINKED,
                                  message_id=linked.event_id, workspace_id=change.workspace_id)

    async def announce(self, kind: str, workspace_id: str, incident_id: str, *, event_id: str | None = None) -> None:
        """The incident as it stands, to whoever listens (the wallboard, subscriptions)."""
        incident = await self.store.get(workspace_id, incident_id)
        if incident is None:
            return
        await publish_incident(self.broker, kind, incident, event_id or f"{incident_id}:{kind}")


async def publish_incident(broker: Broker, kind: str, incident: dict, event_id: str) -> None:
    event = RoutingEvent(event_id=event_id, type=kind, workspace_id=incident["workspace_id"], at=utcnow(),
                         details=incident_summary(incident))
    # Mandatory: reporting's queue (declared by every service) takes them for the wallboard and subscriptions.
    await broker.publish(event, kind, message_type=kind, message_id=event_id, workspace_id=incident["workspace_id"])


def incident_summary(incident: dict) -> dict:
    return {"incident_id": incident["_id"], "title": incident["title"], "status": incident["status"],
            "conversations": incident["conversations"], "channels": incident.get("channels", {}),
            "opened_at": incident["opened_at"].isoformat(), "last_link_at": incident["last_link_at"].isoformat()}
