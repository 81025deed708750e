"""Ephemeral signals (typing indicators): best effort, kept off the durable path.

A signal is published transient and non-mandatory to the events exchange; each process reads
the ones it wants from an exclusive, auto-delete classic queue of its own, so nothing piles up
while a service is down. Losing one is harmless: what does not parse or fails is logged and
dropped, never retried or dead-lettered. Senders send at most one per conversation per
TYPING_INTERVAL; a page hides the indicator after a few seconds without a new one.
"""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Hashable

import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from pydantic import ValidationError

from shared.broker import Broker
from shared.models import Wire
from shared.topology import declare_signal_queue

log = structlog.get_logger(__name__)

TYPING_INTERVAL = 2.0  # seconds: at most one typing signal per conversation from each side
PUBLISH_TIMEOUT = 1.0  # seconds: a signal is not worth holding up a socket for
AGENT_TYPING_CHANNELS = frozenset({"webchat"})  # channels that can show the customer an agent typing


class TypingSignal(Wire):
    """Someone is typing in the conversation of (workspace, channel, thread)."""

    workspace_id: str
    channel: str
    thread_id: str
    agent_id: str | None = None


class RateLimiter:
    """At most one event per key per `interval` seconds; keys quiet for longer are forgotten."""

    def __init__(self, interval: float, *, clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000) -> None:
        self.interval = interval
        self.clock = clock
        self.max_keys = max_keys
        self._last: dict[Hashable, float] = {}

    def allow(self, key: Hashable) -> bool:
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            return False
        if len(self._last) >= self.max_keys:
            self._last = {k: at for k, at in self._last.items() if now - at < self.interval}
        self._last[key] = now
        return True

    def __len__(self) -> int:
        return len(self._last)


async def publish_signal(broker: Broker, signal: TypingSignal, routing_key: str) -> bool:
    """Publish transient and non-mandatory; False (logged) if the broker did not take it in time."""
    try:
        async with asyncio.timeout(PUBLISH_TIMEOUT):
            await broker.publish(
                signal, routing_key, message_type=routing_key, message_id=uuid.uuid4().hex,
                workspace_id=signal.workspace_id, mandatory=False, persistent=False,
            )
    except Exception as error:  # best effort: the next keystroke sends another
        log.info("signal.publish_failed", routing_key=routing_key, error=repr(error))
        return False
    return True


class SignalConsumer:
    """Reads one routing key from a queue of this process's own, one signal at a time, in order."""

    def __init__(
        self, broker: Broker, service: str, routing_key: str, handle: Callable[[TypingSignal], Awaitable[None]],
        *, max_pending: int = 1000,
    ) -> None:
        self.broker = broker
        self.service = service
        self.routing_key = routing_key
        self.handle = handle
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=max_pending)
        self._channel: AbstractChannel | None = None
        self._worker: asyncio.Task | None = None

    async def start(self) -> None:
        # A robust channel: after a reconnect the queue is declared, bound and consumed again.
        self._channel = await self.broker.new_channel(prefetch=0)
        name = self.broker.topology.signal_queue(self.service)
        queue = await declare_signal_queue(self._channel, self.broker.topology, name, self.routing_key)
        await queue.consume(self._on_delivery, no_ack=True)
        self._worker = asyncio.create_task(self._run(), name=f"signals:{self.service}")

    async def stop(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()  # the queue is deleted with its last consumer
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)

    async def _on_delivery(self, delivery: AbstractIncomingMessage) -> None:
        try:
            self._inbox.put_nowait(delivery.body)
        except asyncio.QueueFull:
            log.warning("signal.dropped", routing_key=self.routing_key, reason="too many pending")

    async def _run(self) -> None:
        while True:
            body = await self._inbox.get()
            try:
                signal = TypingSignal.model_validate_json(body)
            except ValidationError as error:
                log.warning("signal.unparseable", routing_key=self.routing_key, error=str(error)[:500])
                continue
            try:
                await self.handle(signal)
            except Exception:  # a lost signal is harmless; the consumer must live on
                log.exception("signal.failed", routing_key=self.routing_key)
