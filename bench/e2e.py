"""End-to-end throughput and latency of Switchyard, beside the bare broker and database under it.

Run from the repo root: `python -m bench.e2e [--messages N] [--concurrency C] [--size BYTES]`
(`make bench`). It prints figures; it asserts nothing about time.

What is measured, and why:

- e2e: a whole stack (intake, router, agents as processes) in a namespace of its own. 10 agents
  are online with a desk WebSocket each. N customer messages of about --size bytes of text are
  POSTed to intake at concurrency C, cycling over 200 threads, so after the first message of each
  thread the rest are follow-ups in assigned conversations, as on a real floor. A message's
  latency is the arrival of its desk frame minus the return of its 202 (one clock, this
  process). e2e_per_s = N / (first POST sent .. last desk frame received). Frames that never
  arrive within the timeout are counted as missing (should be 0).
- broker: the same three AMQP hops with no service code — publish (confirmed) into quorum queue
  1; a consumer of 1 republishes each message (confirmed) to 2 and acks; one of 2 does the same
  into 3; one of 3 acks. Same body size, same concurrency, prefetch like the services.
  broker_per_s = N / (first publish .. last ack at queue 3). It is the ceiling the broker puts on
  the path (its client side runs in this one process, while the services spread it over three).
- db: the writes the agents service makes per message, batched as it batches (up to 100): an
  insert_many of documents shaped like services/agents/store.py `_inbound_doc`, then a bulk_write
  of `$max last_message_at` per conversation. Sequential batches, like its single consumer.
  db_per_s = N / total time. (The router writes only for new or waiting conversations: not here.)

ratio = e2e_per_s / min(broker_per_s, db_per_s): how close the system comes to the slower of
the two things it cannot do without.

Run order: e2e first on a fresh stack; then the stack is stopped and the two baselines run one
after the other, so each of the three measurements has the (2-core) machine to itself, apart from
RabbitMQ and MongoDB, which all three use. Everything is torn down at the end: the stack, the
namespace's queues and exchanges, the database (and an embedded MongoDB started here).
"""

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import aio_pika
import aiohttp
from pymongo import ASCENDING, AsyncMongoClient, UpdateOne

from bench import stack
from bench.stack import (
    MAX_TEXT_CHARS,
    WORKSPACE,
    DeskRecorder,
    PostRun,
    clean_up,
    log_problems,
    open_desk,
    percentile,
    post_all,
    read_desk,
    text_of,
)
from shared.amqp_hosts import connect_to_any
from shared.models import Contact, InboundMessage, new_id, utcnow

AGENTS = 10
AGENT_CAPACITY = 100  # conversations per agent: 1000 in all, well above THREADS + WARMUP_THREADS
THREADS = 200  # conversations the measured messages cycle over
WARMUP_MESSAGES = 100
WARMUP_THREADS = 20  # threads of their own, so the measured run still opens its 200 conversations
PREFETCH = 200  # what the services' batch consumers use (batch size 100 x 2)
DB_BATCH = 100  # the services' batch size
WARMUP_TIMEOUT = 60.0  # seconds for the warm-up's frames


@dataclass(frozen=True)
class Config:
    messages: int
    concurrency: int
    size: int

    @property
    def drain_timeout(self) -> float:
        """How long to wait, after the last POST, for the frames still under way."""
        return max(60.0, self.messages / 50)


@dataclass
class E2EResult:
    posted: int
    accepted: int
    post_errors: int
    missing: int
    per_s: float
    latencies_ms: list[float] = field(default_factory=list)


@dataclass
class Results:
    e2e: E2EResult
    broker_per_s: float
    db_per_s: float


def parse_args(argv: list[str] | None = None, prog: str = "python -m bench.e2e", doc: str = __doc__) -> Config:
    parser = argparse.ArgumentParser(prog=prog, description=doc.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000, help="messages to send (default 5000)")
    parser.add_argument("--concurrency", type=int, default=32, help="POSTs and publishes in flight (default 32)")
    parser.add_argument("--size", type=int, default=200, help="bytes of text per message (default 200)")
    args = parser.parse_args(argv)
    if args.messages < 1 or args.concurrency < 1:
        parser.error("--messages and --concurrency must be at least 1")
    if not 1 <= args.size <= MAX_TEXT_CHARS:
        parser.error(f"--size must be between 1 and {MAX_TEXT_CHARS} (intake's limit)")
    return Config(args.messages, args.concurrency, args.size)


# -- the stack ---------------------------------------------------------------------------------


@dataclass
class Infra(stack.Infra):
    def agent_ids(self) -> list[str]:
        return [f"agent{i:02d}" for i in range(AGENTS)]

    def broker_queues(self) -> list[str]:
        return [f"{self.namespace}.bench.hop{i}" for i in (1, 2, 3)]

    def extra_queues(self) -> tuple[str, ...]:
        return tuple(self.broker_queues())


def build_infra(log_dir: Path) -> Infra:
    """RabbitMQ and MongoDB as the tests get them, and a stack in a namespace of its own."""
    return stack.build_infra(log_dir, cls=Infra)


# -- e2e ---------------------------------------------------------------------------------------


async def register_agents(session: aiohttp.ClientSession, agents_url: str, agent_ids: list[str]) -> None:
    await stack.register_agents(session, agents_url, agent_ids, AGENT_CAPACITY)


async def warm_up(session: aiohttp.ClientSession, infra: Infra, recorder: DeskRecorder, config: Config) -> None:
    """Some traffic on threads of its own: connections, the router's state and the agents are ready."""
    await stack.warm_up(session, infra, recorder, text_of(config.size), config.concurrency,
                        WARMUP_MESSAGES, WARMUP_THREADS, WARMUP_TIMEOUT)


async def measure_e2e(infra: Infra, config: Config) -> E2EResult:
    recorder = DeskRecorder()
    connector = aiohttp.TCPConnector(limit=config.concurrency + AGENTS + 4)
    async with aiohttp.ClientSession(connector=connector) as session:
        agents_url = infra.stack.url("agents")
        await register_agents(session, agents_url, infra.agent_ids())
        desks = [await open_desk(session, agents_url, a) for a in infra.agent_ids()]
        readers = [asyncio.create_task(read_desk(ws, recorder)) for ws in desks]
        try:
            await warm_up(session, infra, recorder, config)
            contacts = [f"contact-{i % THREADS}" for i in range(config.messages)]
            run = await post_all(session, infra.stack.url("intake"), contacts, text_of(config.size), config.concurrency)
            missing = await recorder.wait_for(list(run.accepted), config.drain_timeout)
        finally:
            for ws in desks:
                await ws.close()
            for reader in readers:
                reader.cancel()
            await asyncio.gather(*readers, return_exceptions=True)
    return summarize_e2e(config, run, recorder, missing)


def summarize_e2e(config: Config, run: PostRun, recorder: DeskRecorder, missing: list[str]) -> E2EResult:
    arrivals = {i: recorder.arrived[i] for i in run.accepted if i in recorder.arrived}
    elapsed = (max(arrivals.values()) - run.first_sent) if arrivals else float("inf")
    # Both ends of the path are in this process's one event loop, so a frame can be read just
    # before its own 202 is: count that as 0, not as a negative latency.
    latencies = sorted(max(0.0, arrivals[i] - run.accepted[i]) * 1000 for i in arrivals)
    return E2EResult(
        posted=config.messages,
        accepted=len(run.accepted),
        post_errors=run.errors,
        missing=len(missing),
        per_s=len(arrivals) / elapsed,
        latencies_ms=latencies,
    )


# -- baseline A: the broker --------------------------------------------------------------------


def sample_body(size: int) -> bytes:
    """What intake publishes for a message of this size, so the broker moves the same bytes."""
    message = InboundMessage(message_id=new_id(), workspace_id=WORKSPACE, channel="api", thread_id="contact-0",
                             contact=Contact(id="contact-0"), text=text_of(size))
    return message.model_dump_json().encode()


def amqp_message(body: bytes) -> aio_pika.Message:
    return aio_pika.Message(body, content_type="application/json", delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                            message_id=new_id())


async def relay(
    amqp_url: str, source: str, target: str | None, on_done: Callable[[], None]
) -> aio_pika.abc.AbstractConnection:
    """A hop as a service does it: consume `source`; republish (confirmed) to `target`; ack."""
    connection = await connect_to_any(amqp_url)
    publish_channel = await connection.channel(publisher_confirms=True)
    consume_channel = await connection.channel()
    await consume_channel.set_qos(prefetch_count=PREFETCH)
    queue = await consume_channel.get_queue(source, ensure=False)

    async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
        if target is not None:
            await publish_channel.default_exchange.publish(amqp_message(message.body), target, mandatory=True)
        await message.ack()
        on_done()

    await queue.consume(on_message)
    return connection


async def measure_broker(infra: Infra, config: Config) -> float:
    q1, q2, q3 = infra.broker_queues()
    body = sample_body(config.size)
    done = asyncio.Event()
    acked = 0
    last_ack = 0.0

    def at_end() -> None:
        nonlocal acked, last_ack
        acked += 1
        last_ack = time.perf_counter()
        if acked == config.messages:
            done.set()

    producer = await connect_to_any(infra.base.amqp_url)
    hops = []
    try:
        channel = await producer.channel(publisher_confirms=True)
        for name in (q1, q2, q3):
            await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        for source, target, on_done in ((q1, q2, None), (q2, q3, None), (q3, None, at_end)):
            hops.append(await relay(infra.base.amqp_url, source, target, on_done or (lambda: None)))
        remaining = iter(range(config.messages))

        async def publisher() -> None:
            for _ in remaining:
                await channel.default_exchange.publish(amqp_message(body), q1, mandatory=True)

        started = time.perf_counter()
        await asyncio.gather(*(publisher() for _ in range(config.concurrency)))
        try:
            await asyncio.wait_for(done.wait(), config.drain_timeout)
        except TimeoutError:
            print(f"broker baseline: only {acked} of {config.messages} reached queue 3 in time", file=sys.stderr)
        return acked / (last_ack - started) if acked else 0.0
    finally:
        for connection in hops:
            await connection.close()
        await producer.close()


# -- baseline B: the database ------------------------------------------------------------------


def inbound_doc(i: int, text: str, seq: int) -> dict:
    """Shaped like services/agents/store.py `_inbound_doc`."""
    return {
        "_id": new_id(),
        "workspace_id": WORKSPACE,
        "conversation_id": f"conv-{i % THREADS}",
        "direction": "inbound",
        "channel": "api",
        "channel_message_id": None,
        "text": text,
        "contact_id": f"contact-{i % THREADS}",
        "metadata": {},
        "status": "received",
        "created_at": utcnow(),
        "seq": seq,
    }


async def measure_db(infra: Infra, config: Config) -> float:
    client = AsyncMongoClient(infra.base.mongo_url)
    db = client[infra.namespace]
    messages, conversations = db["bench_messages"], db["bench_conversations"]
    text = text_of(config.size)
    try:
        await messages.create_index([("conversation_id", ASCENDING), ("seq", ASCENDING)])
        await conversations.insert_many([{"_id": f"conv-{i}", "last_message_at": None} for i in range(THREADS)])
        started = time.perf_counter()
        for start in range(0, config.messages, DB_BATCH):
            batch = range(start, min(start + DB_BATCH, config.messages))
            docs = [inbound_doc(i, text, time.time_ns() + i) for i in batch]
            await messages.insert_many(docs, ordered=False)
            latest: dict[str, datetime] = {}
            for doc in docs:
                conversation = doc["conversation_id"]
                latest[conversation] = max(doc["created_at"], latest.get(conversation, doc["created_at"]))
            await conversations.bulk_write(
                [UpdateOne({"_id": c}, {"$max": {"last_message_at": at}}) for c, at in latest.items()], ordered=False)
        elapsed = time.perf_counter() - started
        await messages.drop()
        await conversations.drop()
        return config.messages / elapsed
    finally:
        await client.close()


# -- report ------------------------------------------------------------------------------------


def print_report(config: Config, results: Results, embedded_mongo: bool, problems: list[str]) -> None:
    e2e = results.e2e
    lat = e2e.latencies_ms
    rows = [
        ("messages", f"{config.messages}"),
        ("concurrency", f"{config.concurrency}"),
        ("size (bytes of text)", f"{config.size}"),
        ("e2e msgs/s", f"{e2e.per_s:.2f}"),
        ("latency p50 ms", f"{percentile(lat, 50):.2f}"),
        ("latency p95 ms", f"{percentile(lat, 95):.2f}"),
        ("latency p99 ms", f"{percentile(lat, 99):.2f}"),
        ("latency mean ms", f"{statistics.fmean(lat):.2f}" if lat else "nan"),
        ("POST errors", f"{e2e.post_errors}"),
        ("missing frames", f"{e2e.missing}"),
        ("broker msgs/s (3 hops)", f"{results.broker_per_s:.2f}"),
        ("db msgs/s (batched writes)", f"{results.db_per_s:.2f}"),
    ]
    print()
    print("Switchyard end-to-end benchmark")
    for name, value in rows:
        print(f"  {name:<28}{value:>12}")
    if embedded_mongo:
        print("  note: MongoDB here is the embedded SecantusDB (a Python server), much slower than mongod;")
        print("        set MONGO_URL to a mongod to measure against it.")
    print("  note: all processes (services, broker, database, this client) share the machine's cores.")
    if problems:
        print("  stack logged warnings or errors:")
        for line in problems:
            print(f"    {line}")
    ceiling = min(results.broker_per_s, results.db_per_s)
    ratio = e2e.per_s / ceiling if ceiling else float("nan")
    print(f"e2e_per_s={e2e.per_s:.2f} broker_per_s={results.broker_per_s:.2f} db_per_s={results.db_per_s:.2f} "
          f"ratio={ratio:.2f} p99_ms={percentile(lat, 99):.2f}")


# -- main --------------------------------------------------------------------------------------


def run(config: Config, infra: Infra) -> Results:
    """e2e first on the fresh stack; then stop the stack and run the two baselines."""
    print(f"stack up in namespace {infra.namespace}; e2e: {config.messages} messages ...", flush=True)
    e2e = asyncio.run(measure_e2e(infra, config))
    infra.stack.stop_all()
    print("broker baseline ...", flush=True)
    broker_per_s = asyncio.run(measure_broker(infra, config))
    print("database baseline ...", flush=True)
    db_per_s = asyncio.run(measure_db(infra, config))
    return Results(e2e, broker_per_s, db_per_s)


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="switchyard-bench-"))
    infra = build_infra(log_dir)
    try:
        infra.stack.start_all()
        results = run(config, infra)
    finally:
        clean_up(infra)
    print_report(config, results, infra.base.embedded_mongo is not None, log_problems(infra.log_dir))


if __name__ == "__main__":
    main()
