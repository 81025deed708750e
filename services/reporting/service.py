"""Reporting's consumer: `<ns>.reporting.ingest` into the store, a batch at a time.

Every message is normalized by its routing key (the one it was published with, `routing_key_of`:
a parked or drained message comes back by the queue's name) (normalize.py); one that does not normalize is a
poison message, dead-lettered with the reason and never retried. The ordering key is the
conversation (else the agent): while a message of a conversation is parked after a failure,
that conversation's later ones wait behind it and every other flows. A batch is stored and
recomputed together (store.ReportStore.record), so its round trips do not grow with its size.

Replicas. The queue has a single active consumer: every replica consumes it, the broker feeds one
and the others stand by; when the active one's channel closes (a stop, a crash, a lost
connection) the broker feeds the next. The timers (recompute the marked buckets, carry online
agents forward) run where the events are consumed, because that is the one replica the broker
chose: each replica sends the queue a transient, expiring `reporting.tick` every period, and
after every batch it handles (events or ticks) the active replica runs the rounds that are due.
So the timers move with the consumer, as the router's do with its partitions, and a quiet queue
still gets its rounds. Batches may overlap a round on another replica safely (marks are written
before the facts change and removed only if not renewed, store.py); two rounds may not (one could
write a rollup older than the other's), and at a handover the stopping consumer may still be in a
round while its successor gets its first batch: a round runs only under the timers' lease
(lease.py), which the stopping replica gives back when done and a dead one's runs out.

Why ticks and a lease, not a lease alone: a lease alone could be held by a standby while the
active replica consumes; the ticks put the rounds where the consumer is without asking who that
is, and the lease only closes the handover. It is checked when a round starts, not at each write:
a round that outlasts the lease (or clocks further apart than it) could still overlap the next
holder's, so the lease (30 s) is kept far longer than a round (milliseconds to seconds).
"""

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

import structlog
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import CollectorRegistry, Counter, Histogram

from services.reporting.lease import TimerLease
from services.reporting.model import INCIDENT_EVENTS, ReportEvent
from services.reporting.normalize import normalize
from services.reporting.store import ReportStore
from shared import events as event_names
from shared.broker import BatchConsumer, Broker, routing_key_of
from shared.legacy import LegacyQueue, drain_legacy_queues
from shared.models import new_id, utcnow
from shared.ticks import Ticker
from shared.topology import REPORTING_BINDINGS

log = structlog.get_logger(__name__)


def parse_delivery(delivery: AbstractIncomingMessage) -> list[ReportEvent]:
    """The ReportEvents a message carries; a NormalizeError (a ValueError) dead-letters it with the reason.
    A tick carries none: the batch it comes in runs the due timers like any other."""
    if delivery.type == event_names.REPORTING_TICK:
        return []
    return normalize(routing_key_of(delivery), delivery.body)


def ordering_key(events: list[ReportEvent]) -> str | None:
    """What the message is about: its conversation, else its incident or agent; None (nothing to order) for no
    events."""
    if not events:
        return None
    first = events[0]
    if first.type in INCIDENT_EVENTS:
        return f"incident:{first.workspace_id}:{first.data['incident_id']}"
    if first.conversation_id:
        return f"conversation:{first.workspace_id}:{first.conversation_id}"
    return f"agent:{first.workspace_id}:{first.agent_id}"


class ReportingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter("reporting_events_total", "Events received", ["type"], registry=registry)
        self.buckets = Counter("reporting_buckets_recomputed_total", "Bucket rollups recomputed", registry=registry)
        self.batch_seconds = Histogram("reporting_batch_seconds", "Time to store a batch and refold what it changed",
                                       registry=registry, buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))


class ReportingService:
    """Consumes reporting's queue into the store (while the broker makes this replica its active
    consumer) and, there, runs the rollup and extend timers."""

    def __init__(self, broker: Broker, store: ReportStore, metrics: ReportingMetrics, *, batch_size: int = 200,
                 extend_seconds: float = 60.0, rollup_seconds: float = 2.0, lease_seconds: float = 30.0,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.broker = broker
        self.store = store
        self.metrics = metrics
        self.extend_seconds = extend_seconds
        self.rollup_seconds = rollup_seconds
        self.clock = clock
        self.replica_id = new_id()
        self.lease = TimerLease(store.db, self.replica_id, lease_seconds)
        self._lock = asyncio.Lock()  # one writer of the rollups at a time in this process: batches and rounds
        self.ticker = Ticker("reporting", self.tick_seconds, self.send_tick)
        self._next_recompute = 0.0  # time.monotonic() at which each round is due
        self._next_extend = time.monotonic() + extend_seconds
        self.consumer: BatchConsumer[list[ReportEvent]] = BatchConsumer(
            broker, "reporting", parse_delivery, self.handle_batch, key=ordering_key, batch_size=batch_size)

    @property
    def tick_seconds(self) -> float:
        return min(self.rollup_seconds, self.extend_seconds)

    async def start(self) -> None:
        await self.store.ensure_indexes()
        topology = self.broker.topology
        await drain_legacy_queues(self.broker, [LegacyQueue(
            topology.legacy_reporting_queue, tuple((topology.events_exchange, key) for key in REPORTING_BINDINGS),
            (topology.requeue_exchange, topology.reporting_queue))])
        await self.consumer.start()
        await self.consumer.attach(topology.reporting_queue)
        self.ticker.start()

    async def stop(self) -> None:
        await self.ticker.stop()
        await self.consumer.stop()  # the batch in hand, and its round, finish first
        try:
            await self.lease.release()
        except Exception as error:  # noqa: BLE001 - then it runs out: the successor's rounds wait that long
            log.warning("reporting.lease_not_released", error=repr(error))

    async def handle_batch(self, messages: list[list[ReportEvent]]) -> None:
        events = [event for message in messages for event in message]
        if events:
            with self.metrics.batch_seconds.time():
                async with self._lock:
                    await self.store.record(events, recompute=False)
            for event in events:
                self.metrics.events.labels(type=event.type).inc()
        await self.run_due_timers()

    async def run_due_timers(self) -> None:
        """The rounds that are due, if this replica holds the timers' lease (renewed here). Their failures
        are logged, not raised: the batch's events are stored, and the marks stay for the next round."""
        now = time.monotonic()
        recompute, extend = now >= self._next_recompute, now >= self._next_extend
        if not (recompute or extend):
            return
        try:
            if not await self.lease.hold(utcnow()):
                return  # the previous active replica is still in a round, or its lease has not run out
        except Exception:
            log.exception("reporting.lease_failed")
            return
        if extend:
            self._next_extend = now + self.extend_seconds
            try:
                await self.extend_agents()
            except Exception:  # logged; the next round tries again (and the next event refolds anyway)
                log.exception("reporting.extend_failed")
        if recompute:
            started = time.perf_counter()
            try:
                await self.recompute()
            except Exception:  # logged; the marks stay, so the next round recomputes them
                log.exception("reporting.recompute_failed")
            # At least five times as long as the last round took: however large the buckets grow,
            # recomputing them takes at most a sixth of the time, and the batches of events go on.
            self._next_recompute = time.monotonic() + max(self.rollup_seconds, 5 * (time.perf_counter() - started))

    async def recompute(self) -> None:
        """Refold the agents and recompute the buckets the events since the last time changed."""
        async with self._lock:
            await self.store.refold_pending_agents()
            changed = await self.store.recompute_pending()
        self.metrics.buckets.inc(len(changed))

    async def extend_agents(self) -> None:
        async with self._lock:
            await self.store.extend_online_agents(self.clock())

    async def send_tick(self) -> None:
        """A tick to reporting's queue, expiring after one period: only its active consumer reads it.
        Sent by the queue's name through the requeue exchange (the queue is bound there by it), so no
        other queue gets it."""
        topology = self.broker.topology
        await self.broker.publish_raw(
            b"{}", topology.reporting_queue, message_type=event_names.REPORTING_TICK, message_id=new_id(),
            workspace_id="", exchange=topology.requeue_exchange, mandatory=False, persistent=False,
            expiration=self.tick_seconds)
