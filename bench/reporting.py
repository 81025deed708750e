"""Reporting: a 30-day day-by-queue summary over 1,000,000 conversations, and the consumer's ingest
rate beside a bare broker publish/consume in the same run.

Run from the repo root: `python -m bench.reporting [--conversations N] [--days D] [--events E]`.
It prints figures; it asserts nothing about time.

- summary: the rollups of N conversations spread evenly over D days (2,880 buckets for 30 days)
  are seeded straight into `report_rollups` in batches, through the store's own document shape
  (`store._rollup_document`), not through the consumer (that would take hours on the embedded
  database). To keep seeding to seconds, 24 distinct bucket rollups are built by the engine, each
  the merge of the partial rollups (`rollup_between`) of N / buckets synthetic conversations
  (folded by `fold_conversation`: 10 queues, 4 channels, 40 agents, 8 labels; answered,
  resolved, abandoned, transferred), and every bucket gets one of them. The UTC 1, 2, 6 and
  24-hour rollups are then built from them by the store's own `recompute_coarser` (what every
  recompute pass does). A summary does the same work on these documents as on real ones: it reads
  the documents tiling each local day (Kyiv in January: 2 + 6 + 6 + 6 + 2 + 2 UTC hours, 6
  documents) projected to the grouping, parses them and merges them. Then the `GET`-equivalent `bucket_rollups(...,
  interval, tz)` + `summary(...)` over the 30 days by day and queue in Europe/Kyiv is timed (store
  read + merge + metrics), cold and warm; and, for comparison, the same from the 15-minute
  buckets alone (2,880 documents), as before the coarser rollups.
- ingest: E ReportEvents (conversations of 5 events and agents' status changes) are published
  to `<ns>.reporting.ingest` as the producers publish them (persistent, confirmed), then the
  reporting service's consumer is started in this process and timed until it has recorded all
  of them. ingest_per_s = E / that time.
- broker: the same E bodies published (confirmed) to a quorum queue and consumed with acks by
  one consumer with the same prefetch, nothing else. broker_per_s = E / (first publish .. last
  ack). The consumer's ceiling: its publish and consume, with no database and no fold.

With no MONGO_URL the database is the embedded SecantusDB, much slower than mongod: figures on it
say little about a real deployment (README, "The embedded database").
"""

import argparse
import asyncio
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import aio_pika
from prometheus_client import CollectorRegistry
from pymongo import ReplaceOne

from deploy import local
from deploy.local import LocalSettings, free_port
from services.reporting.facts import fold_conversation
from services.reporting.intervals import BUCKET
from services.reporting.metrics import summary
from services.reporting.model import ReportEvent
from services.reporting.rollup import merge, rollup_between
from services.reporting.service import ReportingMetrics, ReportingService
from services.reporting.store import BucketRef, ReportStore, _rollup_document
from shared import events
from shared.amqp_hosts import connect_to_any
from shared.broker import Broker
from shared.models import ConversationResolved, RoutingEvent
from shared.mongo import create_client
from shared.topology import Topology

QUEUES = [f"queue-{i}" for i in range(10)]
CHANNELS = ["webchat", "email", "whatsapp", "voice"]
AGENTS = [f"agent-{i}" for i in range(40)]
LABELS = [f"label-{i}" for i in range(8)]
DISTINCT_BUCKETS = 24
START = datetime(2026, 1, 1, tzinfo=UTC)


def synthetic_conversation(rng: random.Random, n: int, opened: datetime) -> list[ReportEvent]:
    """One conversation's events: most answered and resolved, some abandoned, some transferred."""
    cid, queue, channel = f"c{n}", rng.choice(QUEUES), rng.choice(CHANNELS)
    agent, other = rng.sample(AGENTS, 2)
    events: list[tuple[str, float, dict]] = [
        ("conversation.opened", 0, {}), ("conversation.queued", 1, {"queue": queue}),
        ("conversation.labels_changed", 2, {"data": {"labels": rng.sample(LABELS, rng.randint(0, 2))}}),
    ]
    if rng.random() < 0.1:
        events.append(("conversation.abandoned", rng.uniform(3, 300), {}))
    else:
        assigned = rng.uniform(3, 120)
        reply = assigned + rng.uniform(5, 200)
        events += [("conversation.assigned", assigned, {"agent_id": agent}),
                   ("message.created", reply, {"agent_id": agent, "data": {"direction": "outbound"}})]
        if rng.random() < 0.1:
            events += [("conversation.transferred", reply + 10,
                        {"agent_id": agent, "data": {"from_agent": agent, "to_agent": other}}),
                       ("conversation.assigned", reply + 11, {"agent_id": other})]
            agent = other
        events.append(("conversation.resolved", reply + rng.uniform(60, 1200), {"agent_id": agent}))
    return [ReportEvent(event_id=f"{cid}:{i}", type=type_, workspace_id="default",
                        at=opened + timedelta(seconds=offset), conversation_id=cid, channel=channel,
                        queue=fields.get("queue", queue), agent_id=fields.get("agent_id"),
                        data=fields.get("data", {}))
            for i, (type_, offset, fields) in enumerate(events)]


def bucket_rollup_of(rng: random.Random, per_bucket: int, seed: int) -> dict:
    """One bucket's rollup: the merge of what `per_bucket` conversations opened in it add to it."""
    bucket = START
    parts = []
    for n in range(per_bucket):
        events = synthetic_conversation(rng, seed * per_bucket + n, bucket + timedelta(seconds=rng.uniform(0, 899)))
        parts.append(rollup_between([fold_conversation(events)], [], bucket, bucket + BUCKET))
    return merge(parts)


async def seed_rollups(store: ReportStore, conversations: int, days: int) -> tuple[int, float]:
    buckets = [START + i * BUCKET for i in range(days * 96)]
    per_bucket = max(1, conversations // len(buckets))
    rng = random.Random(11)
    started = time.perf_counter()
    distinct = [bucket_rollup_of(rng, per_bucket, i) for i in range(DISTINCT_BUCKETS)]
    for first in range(0, len(buckets), 500):
        await store.rollups.bulk_write([
            ReplaceOne({"workspace_id": "default", "bucket": b}, _rollup_document("default", b, rng.choice(distinct)),
                       upsert=True) for b in buckets[first:first + 500]], ordered=False)
    seeded = time.perf_counter() - started
    for first in range(0, len(buckets), 96 * 5):  # the hours and days, as a recompute pass writes them
        await store.recompute_coarser({BucketRef("default", b) for b in buckets[first:first + 96 * 5]})
    return per_bucket * len(buckets), seeded, time.perf_counter() - started - seeded


async def time_summary(store: ReportStore, days: int, buckets_only: bool = False) -> tuple[float, int, list]:
    started = time.perf_counter()
    end = START + timedelta(days=days)
    if buckets_only:
        rollups = await store.bucket_rollups("default", START, end, "queue")
    else:
        rollups = await store.bucket_rollups("default", START, end, "queue", "day", "Europe/Kyiv")
    rows = summary(rollups, START, end, "day", "Europe/Kyiv", "queue")
    return time.perf_counter() - started, len(rows), rows


def ingest_events(count: int) -> list[tuple[str, bytes, str]]:
    """(routing key, body, id) of `count` events as the producers publish them: per conversation
    opened, queued, routed to an agent, a customer message, resolved."""
    rng = random.Random(7)
    out: list[tuple[str, bytes, str]] = []
    opened = datetime.now(UTC) - timedelta(hours=2)
    for n in range(count // 5 + 1):
        cid, queue, channel, agent = f"c{n}", rng.choice(QUEUES), rng.choice(CHANNELS), rng.choice(AGENTS)
        at = opened + timedelta(seconds=n)
        routing = partial(_routing, cid, queue, channel, at)
        wires = [
            (events.CONVERSATION_OPENED, routing(events.CONVERSATION_OPENED, 0, 0, priority=0, skills=[])),
            (events.CONVERSATION_QUEUED, routing(events.CONVERSATION_QUEUED, 1, 0, reason="opened")),
            (f"{events.CONVERSATION_ROUTED}.{channel}", routing(events.CONVERSATION_ROUTED, 2, 20, agent_id=agent)),
            (events.MESSAGE_CREATED, routing(events.MESSAGE_CREATED, 3, 0, direction="inbound")),
            (events.CONVERSATION_RESOLVED, ConversationResolved(
                event_id=f"resolved:{cid}", workspace_id="default", conversation_id=cid, agent_id=agent,
                resolved_at=at + timedelta(seconds=rng.uniform(60, 600)))),
        ]
        out += [(key, wire.model_dump_json().encode(), wire.event_id) for key, wire in wires]
    return out[:count]


def _routing(cid: str, queue: str, channel: str, at: datetime, type_: str, i: int, seconds: float,
             **details) -> RoutingEvent:
    return RoutingEvent(event_id=f"{cid}:{i}:{type_}", type=type_, workspace_id="default", conversation_id=cid,
                        agent_id=details.pop("agent_id", None), queue=queue, at=at + timedelta(seconds=seconds),
                        details={"channel": channel, **details})


async def publish_all(channel: aio_pika.abc.AbstractChannel, exchange: aio_pika.abc.AbstractExchange,
                      items: list[tuple[str, bytes, str]]) -> None:
    for first in range(0, len(items), 200):  # confirmed, 200 in flight at a time
        await asyncio.gather(*(exchange.publish(
            aio_pika.Message(body, message_id=mid, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                             content_type="application/json"), key, mandatory=True)
            for key, body, mid in items[first:first + 200]))


async def time_ingest(infra: local.Infrastructure, namespace: str, store: ReportStore,
                      items: list[tuple[str, bytes, str]]) -> float:
    topology = Topology(namespace, "quorum")
    broker = Broker(infra.amqp_url, topology)
    await broker.start()  # declares the topology, reporting's queue and its bindings included
    try:
        exchange = await broker.channel.get_exchange(topology.events_exchange, ensure=False)
        await publish_all(broker.channel, exchange, items)
        metrics = ReportingMetrics(CollectorRegistry())
        service = ReportingService(broker, store, metrics, extend_seconds=3600)
        started = time.perf_counter()
        await service.start()
        try:
            # Watched in-process and with single-document reads: counting the collections every few
            # hundred milliseconds (as this did) made the database scan them, beside the work measured.
            while recorded(metrics) < len(items):
                await asyncio.sleep(0.05)
            while await store.pending.find_one({}, {"_id": 1}) or await store.pending_agents.find_one({}, {"_id": 1}):
                await asyncio.sleep(0.05)
            return time.perf_counter() - started
        finally:
            await service.stop()
    finally:
        await broker.close()


def recorded(metrics: ReportingMetrics) -> int:
    """Events the consumer has stored so far (its counter, summed over event types)."""
    return int(sum(sample.value for metric in metrics.events.collect() for sample in metric.samples
                   if sample.name.endswith("_total")))


async def time_broker(amqp_url: str, namespace: str, items: list[tuple[str, bytes, str]]) -> float:
    connection = await connect_to_any(amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        queue = await channel.declare_queue(f"{namespace}.bench.baseline", durable=True,
                                            arguments={"x-queue-type": "quorum"})
        consumer = await connection.channel()
        await consumer.set_qos(prefetch_count=400)  # as the reporting consumer (2 × its batch)
        done = asyncio.Event()
        acked = 0

        async def on_message(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            nonlocal acked
            await message.ack()
            acked += 1
            if acked == len(items):
                done.set()

        started = time.perf_counter()
        await (await consumer.declare_queue(queue.name, passive=True)).consume(on_message)
        await publish_all(channel, channel.default_exchange, [(queue.name, body, mid) for _, body, mid in items])
        await asyncio.wait_for(done.wait(), 600)
        elapsed = time.perf_counter() - started
        await queue.delete(if_unused=False, if_empty=False)
        return elapsed


async def run(args: argparse.Namespace, infra: local.Infrastructure) -> None:
    namespace = f"benchrep{uuid.uuid4().hex[:10]}"
    client = create_client(infra.mongo_url)
    try:
        store = ReportStore(client[namespace])
        await store.ensure_indexes()
        seeded, seconds, coarser = await seed_rollups(store, args.conversations, args.days)
        print(f"seeded: {seeded:,} conversations' rollups in {args.days * 96:,} buckets in {seconds:.1f} s; "
              f"their UTC hours and days in {coarser:.1f} s")
        cold, rows, answer = await time_summary(store, args.days)
        warm = min([(await time_summary(store, args.days))[0] for _ in range(3)])
        print(f"summary: {args.days} days by day and queue (Europe/Kyiv): {rows} rows, "
              f"cold {cold * 1000:.0f} ms, warm {warm * 1000:.0f} ms")
        cold, rows, from_buckets = await time_summary(store, args.days, buckets_only=True)
        warm = min([(await time_summary(store, args.days, buckets_only=True))[0] for _ in range(3)])
        print(f"summary from the 15-minute buckets alone: {rows} rows, cold {cold * 1000:.0f} ms, "
              f"warm {warm * 1000:.0f} ms; {'the same rows' if from_buckets == answer else 'DIFFERENT ROWS'}")

        ingest_store = ReportStore(client[f"{namespace}i"])
        items = ingest_events(args.events)
        ingest = await time_ingest(infra, namespace, ingest_store, items)
        broker = await time_broker(infra.amqp_url, namespace, items)
        print(f"ingest: {len(items):,} events in {ingest:.1f} s = {len(items) / ingest:,.0f} events/s; "
              f"broker baseline {len(items) / broker:,.0f} msg/s; ratio {broker / ingest:.2f}")
        await client.drop_database(f"{namespace}i")
    finally:
        await client.close()
        await local.remove_namespace(infra.amqp_url, infra.mongo_url, namespace)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--conversations", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--events", type=int, default=5_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as log_dir:
        # On disk: in memory, the 15-minute, hourly and daily rollups of 1,000,000 conversations
        # overflow SecantusDB's cache (WT_CACHE_FULL); on disk it evicts like a deployment's.
        infra = local.bring_up_infrastructure(LocalSettings(), str(Path(log_dir) / "mongo"), free_port(),
                                              Path(log_dir) / "mongo.log")
        try:
            asyncio.run(run(args, infra))
        finally:
            infra.stop()


if __name__ == "__main__":
    main()
