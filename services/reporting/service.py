"""Reporting's consumer: `<ns>.reporting.events` into the store, a batch at a time.

Every message is normalized by its routing key (normalize.py); one that does not normalize is a
poison message, dead-lettered with the reason and never retried. The ordering key is the
conversation (else the agent): while a message of a conversation is parked after a failure,
that conversation's later ones wait behind it and every other flows. A batch is stored and
recomputed together (store.ReportStore.record), so its round trips do not grow with its size.
"""

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime

import structlog
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import CollectorRegistry, Counter, Histogram

from services.reporting.model import ReportEvent
from services.reporting.normalize import normalize
from services.reporting.store import ReportStore
from shared.broker import BatchConsumer, Broker
from shared.models import utcnow

log = structlog.get_logger(__name__)


def parse_delivery(delivery: AbstractIncomingMessage) -> list[ReportEvent]:
    """The ReportEvents a message carries; a NormalizeError (a ValueError) dead-letters it with the reason."""
    return normalize(delivery.routing_key or "", delivery.body)


def ordering_key(events: list[ReportEvent]) -> str | None:
    """What the message is about: its conversation, else its agent; None (nothing to order) for no events."""
    if not events:
        return None
    first = events[0]
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
    """Consumes reporting's queue into the store; carries online agents' time forward on a timer."""

    def __init__(self, broker: Broker, store: ReportStore, metrics: ReportingMetrics, *, batch_size: int = 200,
                 extend_seconds: float = 60.0, rollup_seconds: float = 2.0,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.broker = broker
        self.store = store
        self.metrics = metrics
        self.extend_seconds = extend_seconds
        self.rollup_seconds = rollup_seconds
        self._recomputer: asyncio.Task | None = None
        self.clock = clock
        self._lock = asyncio.Lock()  # one writer of the rollups at a time: batches and the timer
        self._extender: asyncio.Task | None = None
        self.consumer: BatchConsumer[list[ReportEvent]] = BatchConsumer(
            broker, "reporting", parse_delivery, self.handle_batch, key=ordering_key, batch_size=batch_size)

    async def start(self) -> None:
        await self.store.ensure_indexes()
        await self.consumer.start()
        await self.consumer.attach(self.broker.topology.reporting_queue)
        self._extender = asyncio.create_task(self._extend_forever())
        self._recomputer = asyncio.create_task(self._recompute_forever())

    async def stop(self) -> None:
        for task in (self._extender, self._recomputer):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.consumer.stop()

    async def handle_batch(self, messages: list[list[ReportEvent]]) -> None:
        events = [event for message in messages for event in message]
        with self.metrics.batch_seconds.time():
            async with self._lock:
                await self.store.record(events, recompute=False)
        for event in events:
            self.metrics.events.labels(type=event.type).inc()

    async def recompute(self) -> None:
        """Refold the agents and recompute the buckets the events since the last time changed."""
        async with self._lock:
            await self.store.refold_pending_agents()
            changed = await self.store.recompute_pending()
        self.metrics.buckets.inc(len(changed))

    async def _recompute_forever(self) -> None:
        took = 0.0
        while True:
            # At least five times as long as the last round took: however large the buckets grow,
            # recomputing them takes at most a sixth of the time, and the batches of events go on.
            await asyncio.sleep(max(self.rollup_seconds, 5 * took))
            started = time.perf_counter()
            try:
                await self.recompute()
            except Exception:  # logged; the marks stay, so the next round recomputes them
                log.exception("reporting.recompute_failed")
            took = time.perf_counter() - started

    async def extend_agents(self) -> None:
        async with self._lock:
            await self.store.extend_online_agents(self.clock())

    async def _extend_forever(self) -> None:
        while True:
            await asyncio.sleep(self.extend_seconds)
            try:
                await self.extend_agents()
            except Exception:  # logged; the next round tries again (and the next event refolds anyway)
                log.exception("reporting.extend_failed")
