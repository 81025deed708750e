"""One robust AMQP connection per service: confirmed publishes and batch consumers.

Publishes wait for the broker's confirm and are `mandatory`, so a message no queue would take
raises instead of vanishing.
"""

import asyncio
import uuid
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import aio_pika
import structlog
from aio_pika.abc import (
    AbstractChannel,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
)
from aiormq.exceptions import ChannelInvalidStateError
from pydantic import BaseModel, ValidationError
from pymongo.errors import ConnectionFailure

from shared import tracing
from shared.amqp_hosts import connect_robust_to_any
from shared.topology import PARTITION_HEADER, Topology, declare_core

log = structlog.get_logger(__name__)
T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)


class Broker:
    """A robust connection with one confirming publish channel; consumers get channels of their own."""

    def __init__(self, url: str, topology: Topology) -> None:
        self.url = url
        self.topology = topology
        self.connection: AbstractRobustConnection | None = None
        self._publish_channel: AbstractChannel | None = None

    async def start(self) -> None:
        # AMQP_URL may name several nodes of a cluster: the connection fails over between them.
        self.connection = await connect_robust_to_any(self.url, client_properties={"connection_name": self.topology.namespace})
        self._publish_channel = await self.connection.channel(
            publisher_confirms=True, on_return_raises=True
        )
        await declare_core(self._publish_channel, self.topology)

    async def close(self) -> None:
        if self.connection is not None:
            await self.connection.close()

    @property
    def channel(self) -> AbstractChannel:
        """The publish channel, also used to declare queues."""
        assert self._publish_channel is not None, "Broker.start() first"
        return self._publish_channel

    def is_connected(self) -> bool:
        return bool(
            self.connection and not self.connection.is_closed and self.channel and not self.channel.is_closed
        )

    async def new_channel(self, prefetch: int, *, publisher_confirms: bool = True) -> AbstractChannel:
        """A robust channel of its own (`publisher_confirms=False`: publishes that wait for nothing)."""
        assert self.connection is not None, "Broker.start() first"
        channel = await self.connection.channel(publisher_confirms=publisher_confirms)
        await channel.set_qos(prefetch_count=prefetch)
        return channel

    async def publish(
        self,
        model: BaseModel,
        routing_key: str,
        *,
        message_type: str,
        message_id: str,
        workspace_id: str,
        exchange: str | None = None,
        headers: dict[str, Any] | None = None,
        mandatory: bool = True,
        persistent: bool = True,
    ) -> None:
        """Publish a model as persistent JSON and wait for the broker's confirm.

        `mandatory=False` is for notifications whose listeners are optional (external systems);
        `persistent=False` for ephemeral signals (typing) that are worthless after a restart."""
        await self.publish_raw(
            model.model_dump_json().encode(), routing_key, message_type=message_type, message_id=message_id,
            workspace_id=workspace_id, exchange=exchange, headers=headers, mandatory=mandatory, persistent=persistent,
        )

    async def publish_raw(
        self,
        body: bytes,
        routing_key: str,
        *,
        message_type: str,
        message_id: str,
        workspace_id: str,
        exchange: str | None = None,
        headers: dict[str, Any] | None = None,
        mandatory: bool = True,
        persistent: bool = True,
        expiration: float | None = None,
    ) -> None:
        """Publish a JSON body already serialized (from an outbox), confirmed, as publish() does.
        `expiration`: seconds after which the broker drops it unread (a tick worthless later)."""
        message = aio_pika.Message(
            body,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT if persistent else aio_pika.DeliveryMode.NOT_PERSISTENT,
            message_id=message_id,
            type=message_type,
            timestamp=datetime.now(UTC),
            # The current trace context first: an outbox's stored context (in `headers`) wins over it.
            headers=tracing.inject(self.routing_headers(workspace_id)) | (headers or {}),
            expiration=expiration,
        )
        # ensure=False: no passive declare per publish; the exchange was declared in start().
        target = await self.channel.get_exchange(exchange or self.topology.events_exchange, ensure=False)
        await target.publish(message, routing_key, mandatory=mandatory)

    def routing_headers(self, workspace_id: str) -> dict[str, Any]:
        """The workspace, and its router partition for the router's headers exchange (shared/topology.py)."""
        return {"workspace_id": workspace_id,
                PARTITION_HEADER: str(self.topology.workspace_partition(workspace_id))}

    async def park(self, delivery: AbstractIncomingMessage, queue: str, headers: dict[str, Any], delay: float) -> None:
        """Copy a message to the retry queue (confirmed); it returns to `queue` after `delay` seconds
        (by the queue's name, so its own routing key travels in a header: `routing_key_of`)."""
        headers = {ROUTING_KEY_HEADER: routing_key_of(delivery)} | headers
        message = aio_pika.Message(
            delivery.body,
            content_type=delivery.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=delivery.message_id,
            type=delivery.type,
            timestamp=delivery.timestamp,
            headers=headers,
            expiration=delay,
        )
        park = await self.channel.get_exchange(self.topology.park_exchange, ensure=False)
        await park.publish(message, queue, mandatory=True)

    async def dead_letter(self, delivery: AbstractIncomingMessage, queue: str, reason: str) -> None:
        """Copy a message to `<queue>.dlq` with the reason in its headers (confirmed)."""
        headers = dict(delivery.headers or {})
        headers.update(
            {
                "x-error": reason[:1000],
                "x-source-queue": queue,
                "x-failed-at": datetime.now(UTC).isoformat(),
            }
        )
        message = aio_pika.Message(
            delivery.body,
            content_type=delivery.content_type,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            message_id=delivery.message_id,
            type=delivery.type,
            headers=headers,
        )
        await self.channel.default_exchange.publish(
            message, self.topology.dead_letter_queue(queue), mandatory=True
        )


class PoisonMessage(Exception):
    """This message can never be processed: dead-letter it now, with this as the reason."""


class ItemFailed(Exception):
    """Raised by a batch handler that knows which input failed: that one is parked (or
    dead-lettered) and the rest are handled again at once, as one batch (a router that must
    rebuild its state after a failure rebuilds once, not once per neighbour)."""

    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(f"input {index} failed: {error!r}")
        self.index = index
        self.error = error


# Failures of the infrastructure, not of a message: everything would fail alike, so the consumer
# waits and hands the batch back instead of counting an attempt against each message.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionError,  # aiormq's AMQPConnectionError included
    TimeoutError,
    ConnectionFailure,  # pymongo: AutoReconnect, NetworkTimeout, ServerSelectionTimeoutError
    ChannelInvalidStateError,
)


def parse_as(model: type[M]) -> Callable[[AbstractIncomingMessage], M]:
    """A parser for a BatchConsumer that validates the body as one pydantic model."""

    def parse(delivery: AbstractIncomingMessage) -> M:
        return model.model_validate_json(delivery.body)

    return parse


@dataclass
class Received(Generic[T]):
    """One delivery, parsed, with the ordering key of what it is about (its conversation)."""

    queue: str
    delivery: AbstractIncomingMessage
    model: T
    key: str | None  # None: nothing to keep in order with

    @property
    def park_id(self) -> str | None:
        return (self.delivery.headers or {}).get(PARK_ID)

    @property
    def attempts(self) -> int:
        return int((self.delivery.headers or {}).get(ATTEMPTS) or 0)

    @property
    def waits(self) -> int:
        return int((self.delivery.headers or {}).get(WAITS) or 0)


PARK_ID, ATTEMPTS, WAITS = "x-park-id", "x-attempts", "x-waits"
# The routing key a message was first published with, kept when it is moved to its queue by the
# queue's name (parked and back, or drained from a legacy queue: shared/legacy.py).
ROUTING_KEY_HEADER = "original-routing-key"


def routing_key_of(delivery: AbstractIncomingMessage) -> str:
    """The key the message was published with, wherever it went since."""
    return str((delivery.headers or {}).get(ROUTING_KEY_HEADER) or delivery.routing_key or "")
# Rounds a message waits behind an earlier one of its conversation before it goes on regardless.
MAX_WAITS = 1000


class FairInbox:
    """What a consumer received and has not handled, per source queue, taken round robin.

    A consumer of many queues (one per agent) would otherwise handle deliveries in arrival order:
    a burst on some queues (a shift change's revocations and takeovers) would hold every other
    queue's messages behind it. Taken in turns, each queue waits for one slot per turn, and each
    queue's own order is kept."""

    def __init__(self) -> None:
        self._queues: OrderedDict[str, deque[AbstractIncomingMessage]] = OrderedDict()
        self._arrived = asyncio.Event()

    def put(self, queue_name: str, delivery: AbstractIncomingMessage) -> None:
        self._queues.setdefault(queue_name, deque()).append(delivery)
        self._arrived.set()

    async def wait(self) -> None:
        """Until something is there to take."""
        while not self._queues:
            self._arrived.clear()
            await self._arrived.wait()

    def take(self, limit: int) -> list[tuple[str, AbstractIncomingMessage]]:
        """Up to `limit` deliveries, one per queue in turn; the queues served last go first next time."""
        taken: list[tuple[str, AbstractIncomingMessage]] = []
        while self._queues and len(taken) < limit:
            for name in list(self._queues):
                if len(taken) == limit:
                    break
                waiting = self._queues[name]
                taken.append((name, waiting.popleft()))
                if waiting:
                    self._queues.move_to_end(name)
                else:
                    del self._queues[name]
        return taken


class BatchConsumer(Generic[T]):
    """Consumes one or more queues in order, handing the handler batches of parsed messages.

    Acks only after the handler returned (its durable effect is done). A message that does not
    parse is dead-lettered at once. When a batch fails it is retried message by message, so one
    poison message cannot take its neighbours down. A message that still fails is *parked*: a copy
    goes to the namespace's retry queue with a TTL (backoff doubling from `retry_delay` up to
    `max_retry_delay`) and comes back to its queue when the TTL runs out; the consumer goes on
    with the rest at once. Later messages with the same `key` (its conversation) are parked behind
    it, so that conversation keeps its order while every other flows. After `max_attempts`
    failures it is dead-lettered with the error as the reason. Failures of the infrastructure
    (TRANSIENT_ERRORS) count against no message: the consumer waits and retries the batch.
    Handlers must be idempotent: a redelivery must change nothing.
    """

    def __init__(
        self,
        broker: Broker,
        name: str,
        parse: Callable[[AbstractIncomingMessage], T],
        handle_batch: Callable[[list[T]], Awaitable[None]],
        *,
        key: Callable[[T], str] | None = None,
        batch_size: int = 100,
        max_attempts: int = 10,
        retry_delay: float = 0.25,
        max_retry_delay: float = 5.0,
    ) -> None:
        self.broker = broker
        self.name = name
        self.parse = parse
        self.handle_batch = handle_batch
        self.key = key
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self._inbox = FairInbox()
        self._consumers: list[tuple[AbstractQueue, str]] = []
        self._channel: AbstractChannel | None = None
        self._worker: asyncio.Task | None = None
        self._busy = asyncio.Event()
        self._busy.set()
        # Per key, the park ids of its parked messages in order; the first must be handled first.
        self.parked: dict[str, deque[str]] = {}
        self._outage_delay = retry_delay

    async def start(self) -> None:
        self._channel = await self.broker.new_channel(prefetch=self.batch_size * 2)
        self._worker = asyncio.create_task(self._run(), name=f"consumer:{self.name}")

    async def attach(self, queue_name: str, *, priority: int | None = None) -> None:
        """Start consuming one more queue (already declared) into this consumer.

        `priority`: this consumer's `x-priority` (a partition's replicas rank themselves by it:
        shared/partitions.py)."""
        assert self._channel is not None, "start() first"
        # Declared (passively) on this robust channel so that its consumer is restored after a reconnect.
        queue = await self._channel.declare_queue(queue_name, passive=True)

        async def on_delivery(delivery: AbstractIncomingMessage) -> None:
            self._inbox.put(queue_name, delivery)

        tag = await queue.consume(on_delivery, arguments=None if priority is None else {"x-priority": priority})
        self._consumers.append((queue, tag))

    async def stop(self, deadline: float = 10.0) -> None:
        """Stop consuming, let the batch in hand finish within `deadline`, then stop the worker."""
        for queue, tag in self._consumers:
            try:
                await queue.cancel(tag)
            except Exception as error:  # the channel may already be gone; the broker requeues
                log.warning("consumer.cancel_failed", consumer=self.name, error=repr(error))
        self._consumers.clear()
        try:
            await asyncio.wait_for(self._busy.wait(), deadline)
        except TimeoutError:
            log.warning("consumer.stop_deadline_passed", consumer=self.name)
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def _run(self) -> None:
        while True:
            await self._inbox.wait()
            self._busy.clear()
            batch = self._inbox.take(self.batch_size)
            try:
                await self._process(batch)
                self._outage_delay = self.retry_delay
            except TRANSIENT_ERRORS as error:
                await self._wait_out_outage(batch, error)
            except Exception:  # never let the worker die; hand what is unsettled back to the broker
                log.exception("consumer.batch_crashed", consumer=self.name)
                await _requeue_unsettled(batch)
            finally:
                self._busy.set()

    async def _wait_out_outage(self, batch: list[tuple[str, AbstractIncomingMessage]], error: BaseException) -> None:
        """Everything would fail alike: wait (growing up to max_retry_delay), then hand the batch back."""
        log.warning("consumer.outage", consumer=self.name, delay=self._outage_delay, error=repr(error))
        await asyncio.sleep(self._outage_delay)
        self._outage_delay = min(self._outage_delay * 2, self.max_retry_delay)
        await _requeue_unsettled(batch)

    async def _process(self, batch: list[tuple[str, AbstractIncomingMessage]]) -> None:
        ready: list[Received[T]] = []
        for queue_name, delivery in batch:
            try:
                model = self.parse(delivery)
            except (ValidationError, PoisonMessage, ValueError) as error:
                await self._dead_letter(queue_name, delivery, f"unparseable: {error}")
                continue
            ready.append(Received(queue_name, delivery, model, self._key_of(model, delivery)))
        while ready:
            ready = await self._not_waiting(ready)
            if not ready:
                return
            try:
                with tracing.consuming(self.name, [item.delivery.headers for item in ready]):
                    await self.handle_batch([item.model for item in ready])
            except TRANSIENT_ERRORS:
                raise
            except ItemFailed as failure:
                await self._fail(ready[failure.index], failure.error)
                del ready[failure.index]
                continue
            except Exception as error:
                if len(ready) == 1:
                    await self._fail(ready[0], error)
                    return
                log.warning("consumer.batch_failed_retrying_singly", consumer=self.name, error=repr(error))
                await self._process_singly(ready)
                return
            for item in ready:
                await self._done(item)
            return

    async def _not_waiting(self, items: list["Received[T]"]) -> list["Received[T]"]:
        """The items free to go; those behind a parked message of their key are parked after it."""
        free = []
        for item in items:
            if self._must_wait(item):
                await self._park(item, failed=None)
            else:
                free.append(item)
        return free

    async def _process_singly(self, ready: list["Received[T]"]) -> None:
        for item in ready:
            if self._must_wait(item):  # an earlier message of its conversation was just parked
                await self._park(item, failed=None)
                continue
            try:
                with tracing.consuming(self.name, [item.delivery.headers]):
                    await self.handle_batch([item.model])
            except TRANSIENT_ERRORS:
                raise
            except ItemFailed as failure:
                await self._fail(item, failure.error)
            except Exception as error:
                await self._fail(item, error)
            else:
                await self._done(item)

    def _key_of(self, model: T, delivery: AbstractIncomingMessage) -> str | None:
        return self.key(model) if self.key is not None else delivery.message_id

    def _must_wait(self, item: "Received[T]") -> bool:
        """True while an earlier message of the same key is parked (this one is not it)."""
        queue = self.parked.get(item.key) if item.key is not None else None
        return bool(queue) and queue[0] != item.park_id

    async def _done(self, item: "Received[T]") -> None:
        await _ack(item.delivery)
        self._unpark(item)

    def _unpark(self, item: "Received[T]") -> None:
        queue = self.parked.get(item.key) if item.key is not None else None
        if queue and item.park_id in queue:
            queue.remove(item.park_id)
            if not queue:
                del self.parked[item.key]

    async def _fail(self, item: "Received[T]", error: Exception) -> None:
        if isinstance(error, PoisonMessage):
            await self._dead_letter(item.queue, item.delivery, str(error))
            self._unpark(item)
            return
        attempt = item.attempts + 1
        if attempt >= self.max_attempts:
            await self._dead_letter(item.queue, item.delivery, f"failed {attempt} times: {error!r}")
            self._unpark(item)
            return
        await self._park(item, failed=error)

    async def _park(self, item: "Received[T]", failed: Exception | None) -> None:
        """Put a copy on the retry queue, then ack: the queue flows on while this one waits.

        A failed message waits its backoff; one parked only to keep its conversation's order
        waits no time of its own (the retry queue is FIFO: it comes back right after the one
        ahead of it), and counts its waits: should the one ahead never come back (its copy purged
        by hand), the conversation goes on after MAX_WAITS rounds instead of cycling for ever."""
        attempts = item.attempts + (1 if failed is not None else 0)
        delay = min(self.retry_delay * 2 ** (attempts - 1), self.max_retry_delay) if failed is not None else 0
        waits = item.waits + (0 if failed is not None else 1)
        if failed is None and waits > MAX_WAITS:
            log.error("consumer.stopped_waiting", consumer=self.name, key=item.key, waits=waits)
            self.parked.pop(item.key or "", None)
            waits, delay = 0, 0
        park_id = item.park_id or uuid.uuid4().hex
        if item.key is not None:
            queue = self.parked.setdefault(item.key, deque())
            if park_id not in queue:
                queue.append(park_id)
        headers = dict(item.delivery.headers or {})
        headers.update({PARK_ID: park_id, ATTEMPTS: attempts, WAITS: waits})
        if failed is not None:
            headers["x-error"] = repr(failed)[:1000]
            log.warning("consumer.parked", consumer=self.name, key=item.key, attempt=attempts, delay=delay,
                        error=repr(failed))
        await self.broker.park(item.delivery, item.queue, headers, delay)
        await _ack(item.delivery)

    async def _dead_letter(
        self, queue_name: str, delivery: AbstractIncomingMessage, reason: str
    ) -> None:
        log.error(
            "consumer.dead_lettered",
            consumer=self.name,
            queue=queue_name,
            message_id=delivery.message_id,
            reason=reason,
        )
        await self.broker.dead_letter(delivery, queue_name, reason)
        await _ack(delivery)


async def _ack(delivery: AbstractIncomingMessage) -> None:
    try:
        await delivery.ack()
    except Exception as error:  # the channel closed under us: the broker will redeliver, handlers are idempotent
        log.warning("consumer.ack_failed", message_id=delivery.message_id, error=repr(error))


async def _requeue_unsettled(batch: list[tuple[str, AbstractIncomingMessage]]) -> None:
    for _, delivery in batch:
        if delivery.processed:
            continue
        try:
            await delivery.nack(requeue=True)
        except Exception as error:
            log.warning("consumer.nack_failed", message_id=delivery.message_id, error=repr(error))
