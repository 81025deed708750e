"""One robust AMQP connection per service: confirmed publishes and batch consumers.

Publishes wait for the broker's confirm and are `mandatory`, so a message no queue would take
raises instead of vanishing.
"""

import asyncio
from collections.abc import Awaitable, Callable
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
from pydantic import BaseModel, ValidationError

from shared.topology import Topology, declare_core

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
        self.connection = await aio_pika.connect_robust(self.url, client_properties={"connection_name": self.topology.namespace})
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

    async def new_channel(self, prefetch: int) -> AbstractChannel:
        assert self.connection is not None, "Broker.start() first"
        channel = await self.connection.channel()
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
        message = aio_pika.Message(
            model.model_dump_json().encode(),
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT if persistent else aio_pika.DeliveryMode.NOT_PERSISTENT,
            message_id=message_id,
            type=message_type,
            timestamp=datetime.now(UTC),
            headers={"workspace_id": workspace_id, **(headers or {})},
        )
        # ensure=False: no passive declare per publish; the exchange was declared in start().
        target = await self.channel.get_exchange(exchange or self.topology.events_exchange, ensure=False)
        await target.publish(message, routing_key, mandatory=mandatory)

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


def parse_as(model: type[M]) -> Callable[[AbstractIncomingMessage], M]:
    """A parser for a BatchConsumer that validates the body as one pydantic model."""

    def parse(delivery: AbstractIncomingMessage) -> M:
        return model.model_validate_json(delivery.body)

    return parse


class BatchConsumer(Generic[T]):
    """Consumes one or more queues in order, handing the handler batches of parsed messages.

    Acks only after the handler returned (its durable effect is done). A message that does not
    parse is dead-lettered at once. When a batch fails it is retried message by message, so one
    poison message cannot take its neighbours down; each failing message is retried with
    backoff, at most `max_attempts` deliveries, then dead-lettered with the error as reason.
    Handlers must be idempotent: a redelivery must change nothing.
    """

    def __init__(
        self,
        broker: Broker,
        name: str,
        parse: Callable[[AbstractIncomingMessage], T],
        handle_batch: Callable[[list[T]], Awaitable[None]],
        *,
        batch_size: int = 100,
        max_attempts: int = 10,
        retry_delay: float = 0.25,
        max_retry_delay: float = 5.0,
    ) -> None:
        self.broker = broker
        self.name = name
        self.parse = parse
        self.handle_batch = handle_batch
        self.batch_size = batch_size
        self.max_attempts = max_attempts
        self.retry_delay = retry_delay
        self.max_retry_delay = max_retry_delay
        self._inbox: asyncio.Queue[tuple[str, AbstractIncomingMessage]] = asyncio.Queue()
        self._consumers: list[tuple[AbstractQueue, str]] = []
        self._channel: AbstractChannel | None = None
        self._worker: asyncio.Task | None = None
        self._busy = asyncio.Event()
        self._busy.set()

    async def start(self) -> None:
        self._channel = await self.broker.new_channel(prefetch=self.batch_size * 2)
        self._worker = asyncio.create_task(self._run(), name=f"consumer:{self.name}")

    async def attach(self, queue_name: str) -> None:
        """Start consuming one more queue (already declared) into this consumer."""
        assert self._channel is not None, "start() first"
        # Declared (passively) on this robust channel so that its consumer is restored after a reconnect.
        queue = await self._channel.declare_queue(queue_name, passive=True)

        async def on_delivery(delivery: AbstractIncomingMessage) -> None:
            self._inbox.put_nowait((queue_name, delivery))

        tag = await queue.consume(on_delivery)
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
            first = await self._inbox.get()
            self._busy.clear()
            try:
                batch = [first]
                while len(batch) < self.batch_size and not self._inbox.empty():
                    batch.append(self._inbox.get_nowait())
                await self._process(batch)
            except Exception:  # never let the worker die; hand what is unsettled back to the broker
                log.exception("consumer.batch_crashed", consumer=self.name)
                await _requeue_unsettled(batch)
            finally:
                self._busy.set()

    async def _process(self, batch: list[tuple[str, AbstractIncomingMessage]]) -> None:
        parsed: list[tuple[str, AbstractIncomingMessage, T]] = []
        for queue_name, delivery in batch:
            try:
                parsed.append((queue_name, delivery, self.parse(delivery)))
            except (ValidationError, PoisonMessage, ValueError) as error:
                await self._dead_letter(queue_name, delivery, f"unparseable: {error}")
        if not parsed:
            return
        try:
            await self.handle_batch([model for _, _, model in parsed])
        except Exception as error:
            if len(parsed) == 1:
                await self._retry_or_dead_letter(*parsed[0][:2], error)
                return
            log.warning("consumer.batch_failed_retrying_singly", consumer=self.name, error=repr(error))
            await self._process_singly(parsed)
            return
        for _, delivery, _ in parsed:
            await _ack(delivery)

    async def _process_singly(self, parsed: list[tuple[str, AbstractIncomingMessage, T]]) -> None:
        for queue_name, delivery, model in parsed:
            try:
                await self.handle_batch([model])
            except Exception as error:
                await self._retry_or_dead_letter(queue_name, delivery, error)
            else:
                await _ack(delivery)

    async def _retry_or_dead_letter(
        self, queue_name: str, delivery: AbstractIncomingMessage, error: Exception
    ) -> None:
        if isinstance(error, PoisonMessage):
            await self._dead_letter(queue_name, delivery, str(error))
            return
        # Quorum queues count deliveries for us; a classic queue only says "redelivered".
        previous = int((delivery.headers or {}).get("x-delivery-count") or (1 if delivery.redelivered else 0))
        attempt = previous + 1
        if attempt >= self.max_attempts:
            await self._dead_letter(queue_name, delivery, f"failed {attempt} times: {error!r}")
            return
        delay = min(self.retry_delay * 2 ** (attempt - 1), self.max_retry_delay)
        log.warning(
            "consumer.retrying", consumer=self.name, attempt=attempt, delay=delay, error=repr(error)
        )
        await asyncio.sleep(delay)
        try:
            await delivery.nack(requeue=True)
        except Exception as nack_error:  # channel gone: the broker requeues it anyway
            log.warning("consumer.nack_failed", consumer=self.name, error=repr(nack_error))

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
