"""Bounded retries, then a dead-letter queue with the reason, over the real broker."""

import asyncio
from collections import deque

import aio_pika
from pydantic import BaseModel
from pymongo.errors import AutoReconnect

import shared.broker
from shared.broker import BatchConsumer, Broker, PoisonMessage, parse_as
from shared.topology import declare_consumed_queue


class Job(BaseModel):
    n: int


async def _setup(names, handler, model=Job, **options):
    broker = Broker(names.infra.amqp_url, names.topology)
    await broker.start()
    queue = f"{names.namespace}.jobs"
    await declare_consumed_queue(broker.channel, names.topology, queue)
    consumer = BatchConsumer(broker, "jobs", parse_as(model), handler, **options)
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
        assert set(reasons) == {b'{"n": 1}', b'{"n": 3}'}
        # An outage counts against no message: 2 was handed back until it went through (it may be
        # handled once more in a batch retried message by message: handlers are idempotent).
        assert attempts[2] >= 3
    finally:
        await _cleanup(broker, consumer, queue)


class KeyedJob(BaseModel):
    n: int
    key: str


async def _setup_keyed(names, handler, **options):
    return await _setup(names, handler, KeyedJob, key=lambda job: job.key, **options)


async def _wait_until(condition, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def test_a_failing_message_is_parked_and_the_queue_flows_on_without_waiting_for_its_retry(names):
    """Its retry is 30 s away; the others must not wait for it (the old consumer slept 30 s)."""
    handled: list[int] = []
    failures = asyncio.Event()

    async def handle(jobs: list[KeyedJob]) -> None:
        if any(job.n == 0 for job in jobs):
            failures.set()
            raise RuntimeError("conversation 0 cannot be stored")
        handled.extend(job.n for job in jobs)

    broker, consumer, queue = await _setup_keyed(names, handle, retry_delay=30, max_retry_delay=30)
    try:
        await _publish(broker, queue, b'{"n": 0, "key": "stuck"}')
        async with asyncio.timeout(10):
            await failures.wait()
        for n in range(1, 21):
            await _publish(broker, queue, f'{{"n": {n}, "key": "k{n}"}}'.encode())
        await _wait_until(lambda: sorted(handled) == list(range(1, 21)))
        assert consumer.parked.get("stuck"), "the failing message waits parked, not in the consumer"
    finally:
        await _cleanup(broker, consumer, queue)
        await broker_cleanup_retry(names)


async def test_a_parked_conversation_keeps_its_order_while_others_pass_it(names):
    handled: list[tuple[str, int]] = []
    attempts: dict[int, int] = {}

    async def handle(jobs: list[KeyedJob]) -> None:
        for job in jobs:
            attempts[job.n] = attempts.get(job.n, 0) + 1
            if job.n == 1 and attempts[1] <= 2:
                raise RuntimeError("not yet")
        handled.extend((job.key, job.n) for job in jobs)

    broker, consumer, queue = await _setup_keyed(names, handle, retry_delay=0.05)
    try:
        for n, key in ((1, "a"), (2, "a"), (10, "b"), (3, "a"), (11, "b")):
            await _publish(broker, queue, f'{{"n": {n}, "key": "{key}"}}'.encode())
        await _wait_until(lambda: len(handled) == 5)
        assert [n for key, n in handled if key == "a"] == [1, 2, 3]
        assert handled.index(("b", 11)) < handled.index(("a", 1)), "b went on while a's first message waited"
        assert attempts[1] == 3 and attempts[2] == 1 and attempts[3] == 1
        await _wait_until(lambda: consumer.parked == {})  # forgotten right after the ack that follows handling
    finally:
        await _cleanup(broker, consumer, queue)
        await broker_cleanup_retry(names)


async def test_a_message_that_keeps_failing_is_dead_lettered_and_its_followers_then_go_through(names):
    handled: list[int] = []

    async def handle(jobs: list[KeyedJob]) -> None:
        if any(job.n == 1 for job in jobs):
            raise RuntimeError("never")
        handled.extend(job.n for job in jobs)

    broker, consumer, queue = await _setup_keyed(names, handle, max_attempts=3, retry_delay=0.02)
    try:
        for n in (1, 2, 3):
            await _publish(broker, queue, f'{{"n": {n}, "key": "a"}}'.encode())
        dead = await _dead_letter(broker, queue)
        assert dead.body == b'{"n": 1, "key": "a"}' and "failed 3 times" in dead.headers["x-error"]
        await _wait_until(lambda: handled == [2, 3])
    finally:
        await _cleanup(broker, consumer, queue)
        await broker_cleanup_retry(names)


async def test_an_outage_counts_against_no_message(names):
    """A database that is down makes everything fail alike: wait it out, dead-letter nothing."""
    attempts = 0

    async def handle(jobs: list[KeyedJob]) -> None:
        nonlocal attempts
        attempts += 1
        if attempts <= 6:
            raise AutoReconnect("the database is restarting")

    broker, consumer, queue = await _setup_keyed(names, handle, max_attempts=2, retry_delay=0.01, max_retry_delay=0.05)
    try:
        await _publish(broker, queue, b'{"n": 1, "key": "a"}')
        await _wait_until(lambda: attempts == 7)
        await _wait_until(lambda: consumer._busy.is_set())
        dlq = await broker.channel.declare_queue(broker.topology.dead_letter_queue(queue), passive=True)
        assert dlq.declaration_result.message_count == 0
    finally:
        await _cleanup(broker, consumer, queue)
        await broker_cleanup_retry(names)


async def broker_cleanup_retry(names) -> None:
    """The namespace's retry queue and exchanges (remove_namespace deletes them too; this keeps the test's own tidy)."""
    connection = await aio_pika.connect(names.infra.amqp_url)
    async with connection:
        channel = await connection.channel()
        await channel.queue_delete(names.topology.retry_queue)
        for exchange in (names.topology.park_exchange, names.topology.requeue_exchange):
            await channel.exchange_delete(exchange)


async def test_a_conversation_whose_parked_message_never_comes_back_goes_on_after_bounded_waits(names, monkeypatch):
    """Its first message's copy was purged from the retry queue by hand: the next must not wait for ever."""
    monkeypatch.setattr(shared.broker, "MAX_WAITS", 5)
    handled: list[int] = []

    async def handle(jobs: list[KeyedJob]) -> None:
        handled.extend(job.n for job in jobs)

    broker, consumer, queue = await _setup_keyed(names, handle)
    try:
        consumer.parked["a"] = deque(["purged"])
        await _publish(broker, queue, b'{"n": 2, "key": "a"}')
        await _wait_until(lambda: handled == [2])
        await _wait_until(lambda: consumer.parked == {})  # forgotten right after the ack that follows handling
    finally:
        await _cleanup(broker, consumer, queue)
        await broker_cleanup_retry(names)
