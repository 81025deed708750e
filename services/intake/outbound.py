"""Sends agents' replies out: one worker per channel consumes its outbound queue.

Each reply is sent in a task of its own (a slow provider does not hold up the others). A failure
worth retrying parks the reply on the namespace's retry queue for the backoff (shared/broker.py)
instead of holding a prefetch slot while it waits, so one workspace whose provider is down cannot
hold up another's replies. The outcome is published as `message.status` (sent, delivered, or
failed with the reason once the tries run out) before the reply is acked; a web chat notice
(queue position, joined, resolved: shared/models.py ChatNotice) is stored nowhere, so it has none.
"""

import asyncio

import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from prometheus_client import Counter
from pydantic import ValidationError

from services.intake.channels.base import Backoff, Sender, SendError, Sent
from shared import events, tracing
from shared.broker import ATTEMPTS, Broker
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
        # A span per send, in the trace of the agent's reply (its context rides the delivery's headers).
        with tracing.consuming(f"outbound.{self.sender.channel}", [delivery.headers]):
            await self._send_and_report(delivery, message)

    async def _send_and_report(self, delivery: AbstractIncomingMessage, message: OutboundMessage) -> None:
        try:
            status = await self._send_once(delivery, message)
            if status is None:
                return  # parked for a later try
            if message.notice is not None:  # a web chat notice is stored nowhere: no status to tell
                await delivery.ack()
                return
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

    async def _send_once(self, delivery: AbstractIncomingMessage, message: OutboundMessage) -> DeliveryStatus | None:
        """Try once; park a retryable failure (None) until the tries run out, then report it failed."""
        attempt = int((delivery.headers or {}).get(ATTEMPTS) or 0) + 1
        try:
            sent: Sent = await self.sender.send(message)
        except SendError as error:
            log.warning("send.attempt_failed", attempt=attempt, reason=error.reason, retry=error.retry)
            if error.retry and attempt < self.backoff.attempts:
                await self._park(delivery, attempt, error.reason)
                return None
            return DeliveryStatus(message_id=message.message_id, workspace_id=message.workspace_id,
                                  conversation_id=message.conversation_id, status="failed",
                                  reason=f"{error.reason} (after {attempt} attempt{'s' if attempt > 1 else ''})")
        return DeliveryStatus(message_id=message.message_id, workspace_id=message.workspace_id,
                              conversation_id=message.conversation_id, status=sent.state,
                              channel=message.channel, channel_message_id=sent.channel_message_id)

    async def _park(self, delivery: AbstractIncomingMessage, attempt: int, reason: str) -> None:
        delay = min(self.backoff.delay * 2 ** (attempt - 1), self.backoff.max_delay)
        headers = {**(delivery.headers or {}), ATTEMPTS: attempt, "x-error": reason[:1000]}
        await self.broker.park(delivery, self.broker.topology.outbound_queue(self.sender.channel), headers, delay)
        await delivery.ack()
