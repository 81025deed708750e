"""A reply whose provider keeps failing waits parked on the retry queue, not in a prefetch slot:
one workspace's dead provider must not hold up another's replies on the same channel."""

import asyncio
import json

from prometheus_client import CollectorRegistry, Counter

from services.intake.channels.base import SendError, Sent
from services.intake.outbound import OutboundWorker
from shared import events
from shared.broker import Broker
from shared.models import Contact, OutboundMessage


class OneDeadProvider:
    """Workspace `down` answers like a provider in an outage (retryable); the others work."""

    channel = "api"

    def __init__(self) -> None:
        self.sent: list[str] = []
        self.tries: dict[str, int] = {}

    async def send(self, message: OutboundMessage) -> Sent:
        self.tries[message.message_id] = self.tries.get(message.message_id, 0) + 1
        if message.workspace_id == "down":
            raise SendError("provider answered HTTP 503", retry=True)
        self.sent.append(message.message_id)
        return Sent("delivered")


def reply(message_id: str, workspace: str) -> OutboundMessage:
    return OutboundMessage(message_id=message_id, workspace_id=workspace, conversation_id="c", channel="api",
                           thread_id="t", contact=Contact(id="x"), agent_id="ann", text="hello")


async def publish(broker: Broker, message: OutboundMessage) -> None:
    await broker.publish(message, broker.topology.outbound_routing_key("api"), message_type=events.MESSAGE_OUTBOUND,
                         message_id=message.message_id, workspace_id=message.workspace_id)


async def statuses(broker: Broker, count: int) -> list[dict]:
    channel = await broker.new_channel(prefetch=10)
    queue = await channel.declare_queue(broker.topology.agents_status_queue, passive=True)
    found = []
    async with asyncio.timeout(15), queue.iterator() as messages:
        async for message in messages:
            await message.ack()
            found.append(json.loads(message.body))
            if len(found) == count:
                return found
    return found


async def run_worker(names, provider, *, retry_delay: float, max_attempts: int = 3):
    broker = Broker(names.infra.amqp_url, names.topology)
    await broker.start()
    sent = Counter("sent", "replies", ["channel", "status"], registry=CollectorRegistry())
    worker = OutboundWorker(broker, provider, sent, max_attempts=max_attempts, retry_delay=retry_delay,
                            max_retry_delay=retry_delay, prefetch=1)
    await worker.start()
    return broker, worker


async def test_a_reply_to_a_dead_provider_does_not_hold_up_the_next(names):
    """With one prefetch slot and a 30 s backoff, the old worker held the slot for the backoff."""
    provider = OneDeadProvider()
    broker, worker = await run_worker(names, provider, retry_delay=30)
    try:
        await publish(broker, reply("stuck", "down"))
        await publish(broker, reply("fine", "up"))
        async with asyncio.timeout(10):
            while provider.sent != ["fine"]:
                await asyncio.sleep(0.02)
        assert provider.tries["stuck"] == 1  # its next try waits on the retry queue
    finally:
        await worker.stop()
        await broker.close()


async def test_a_reply_is_reported_failed_once_its_tries_run_out(names):
    provider = OneDeadProvider()
    broker, worker = await run_worker(names, provider, retry_delay=0.01)
    try:
        await publish(broker, reply("doomed", "down"))
        [status] = await statuses(broker, 1)
        assert status["status"] == "failed" and status["message_id"] == "doomed"
        assert status["reason"] == "provider answered HTTP 503 (after 3 attempts)"
        assert provider.tries["doomed"] == 3
    finally:
        await worker.stop()
        await broker.close()
