"""Sends agents' replies out: one worker per channel consumes its outbound queue.

Each reply is sent in a task of its own (a slow provider does not hold up the others), retried
with exponential backoff while the failure is retryable, and its outcome published as
`message.status` (sent, delivered or failed with the reason) before the reply is acked.
"""

import asyncio

import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from prometheus_client import Counter
from pydantic import ValidationError

from services.intake.channels.base import Backoff, Sender, Sent, with_retries
from shared import events
from shared.broker import Broker
from shared.models import DeliveryStatus, OutboundMessage
from shared.topology import declare_outbound_queue

log = structlog.get_logger(__name__)


class OutboundWorker:
    def __init__(
        self,
        broker: Broker,
        sender: Sender,
        sent_counter: Counter,
        *,
        max_attempts: int,
        retry_delay: float,
        max_retry_delay: float,
        prefetch: int = 64,
    ) -> None:
        self.broker = broker
        self.sender = sender
        self.sent_counter = sent_counter
        self.backoff = Backoff(max_attempts, retry_delay, max_retry_delay)
        self.prefetch = prefetch
        self._channel: AbstractChannel | None = None
        self._consumer: tuple | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        queue = await declare_outbound_queue(self.broker.channel, self.broker.topology, self.sender.channel)
        self._channel = await self.broker.new_channel(prefetch=self.prefetch)
        # Declared on this robust channel so that the consumer is restored after a reconnect.
        consumed = await self._channel.declare_queue(queue.name, passive=True)
        self._consumer = (consumed, await consumed.consume(self._on_delivery))

    async def stop(self, deadline: float = 10.0) -> None:
        """Stop taking replies; give sends in flight `deadline` seconds, then leave them to redelivery."""
        if self._consumer is not None:
            queue, tag = self._consumer
            try:
                await queue.cancel(tag)
            except Exception as error:
                log.warning("outbound.cancel_failed", channel=self.sender.channel, error=repr(error))
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=deadline)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()

    async def _on_delivery(self, delivery: AbstractIncomingMessage) -> None:
        task = asyncio.create_task(self._handle(delivery))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, delivery: AbstractIncomingMessage) -> None:
        try:
            message = OutboundMessage.model_validate_json(delivery.body)
        except ValidationError as error:
            await self.broker.dead_letter(delivery, self.broker.topology.outbound_queue(self.sender.channel), f"unparseable: {error}")
            await delivery.ack()
            return
        structlog.contextvars.bind_contextvars(
            workspace_id=message.workspace_id, conversation_id=message.conversation_id, message_id=message.message_id
        )
        try:
            status = await self._send_with_retries(message)
            await self.broker.publish(
                status, events.MESSAGE_STATUS, message_type=events.MESSAGE_STATUS,
                message_id=f"status:{message.message_id}:{status.status}", workspace_id=message.workspace_id,
            )
            await delivery.ack()
            self.sent_counter.labels(channel=self.sender.channel, status=status.status).inc()
        except asyncio.CancelledError:
            raise
        except Exception:  # the status could not be published: hand the reply back for a later try
            log.exception("outbound.status_publish_failed")
            try:
                await delivery.nack(requeue=True)
            except Exception as error:
                log.warning("outbound.nack_failed", error=repr(error))

    async def _send_with_retries(self, message: OutboundMessage) -> DeliveryStatus:
        tried = await with_retries(lambda: self.sender.send(message), self.backoff)
        if tried.ok:
            sent: Sent = tried.result
            return DeliveryStatus(message_id=message.message_id, workspace_id=message.workspace_id,
                                  conversation_id=message.conversation_id, status=sent.state,
                                  channel=message.channel, channel_message_id=sent.channel_message_id)
        attempts = tried.attempts
        return DeliveryStatus(message_id=message.message_id, workspace_id=message.workspace_id,
                              conversation_id=message.conversation_id, status="failed",
                              reason=f"{tried.reason} (after {attempts} attempt{'s' if attempts > 1 else ''})")
