"""Bounded retries, then a dead-letter queue with the reason, over the real broker."""

import asyncio

import aio_pika
from pydantic import BaseModel

from shared.broker import BatchConsumer, Broker, PoisonMessage, parse_as
from shared.topology import declare_consumed_queue


class Job(BaseModel):
    n: int


async def _setup(names, handler, **options):
    broker = Broker(names.infra.amqp_url, names.topology)
    await broker.start()
    queue = f"{names.namespace}.jobs"
    await declare_consumed_queue(broker.channel, names.topology, queue)
    consumer = BatchConsumer(broker, "jobs", parse_as(Job), handler, **options)
    await consumer.start()
    await consumer.attach(queue)
    return broker, consumer, queue


async def _publish(broker: Broker, queue: str, body: bytes) -> None:
    await broker.channel.default_exchange.publish(aio_pika.Message(body, delivery_mode=aio_pika.DeliveryMode.PERSISTENT), queue)


async def _dead_letter(broker: Broker, queue: str) -> aio_pika.abc.AbstractIncomingMessage:
    channel = await broker.new_channel(prefetch=1)
    dlq = await channel.declare_queue(broker.topology.dead_letter_queue(queue), passive=True)
    async with asyncio.timeout(30):
        async with dlq.iterator() as messages:
            async for message in messages:
                await message.ack()
                return message


async def _cleanup(broker, consumer, queue):
    await consumer.stop()
    await broker.channel.queue_delete(queue)
    await broker.channel.queue_delete(broker.topology.dead_letter_queue(queue))
    await broker.close()


async def test_an_unparseable_message_is_dead_lettered_at_once_with_the_reason(names):
    handled: list[int] = []

    async def handle(jobs: list[Job]) -> None:
        handled.extend(j.n for j in jobs)

    broker, consumer, queue = await _setup(names, handle)
    try:
        await _publish(broker, queue, b'{"n": "not a number"}')
        await _publish(broker, queue, b'{"n": 7}')
        dead = await _dead_letter(broker, queue)
        assert dead.body == b'{"n": "not a number"}'
        assert "unparseable" in dead.headers["x-error"] and dead.headers["x-source-queue"] == queue
        async with asyncio.timeout(10):
            while handled != [7]:
                await asyncio.sleep(0.02)
    finally:
        await _cleanup(broker, consumer, queue)


async def test_a_failing_message_is_retried_a_bounded_number_of_times_then_dead_lettered(names):
    attempts: dict[int, int] = {}

    async def handle(jobs: list[Job]) -> None:
        for job in jobs:
            attempts[job.n] = attempts.get(job.n, 0) + 1
            if job.n == 1:
                raise RuntimeError("the database said no")
            if job.n == 2 and attempts[2] < 3:
                raise ConnectionError("transient")
            if job.n == 3:
                raise PoisonMessage("order 3 can never be processed")

    broker, consumer, queue = await _setup(names, handle, max_attempts=4, retry_delay=0.01)
    try:
        for n in (1, 2, 3):
            await _publish(broker, queue, f'{{"n": {n}}}'.encode())
        first = await _dead_letter(broker, queue)
        second = await _dead_letter(broker, queue)
        reasons = {m.body: m.headers["x-error"] for m in (first, second)}
        assert reasons[b'{"n": 3}'] == "order 3 can never be processed"
        assert "failed 4 times" in reasons[b'{"n": 1}'] and "the database said no" in reasons[b'{"n": 1}']
        assert attempts[2] == 3  # retried until it went through, and not dead-lettered
    finally:
        await _cleanup(broker, consumer, queue)
