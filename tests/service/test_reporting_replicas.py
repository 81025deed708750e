"""Several reporting replicas in one namespace, on the real broker and database: one consumes and runs the
timers while the other stands by; each event is stored once and the rollups are what recomputing
everything gives; the standby takes over when the active one stops or loses its connection; the
timers' lease; every subscription delivery sent once; the queue of the old layout drained at start."""

import asyncio
import json
from collections import Counter
from contextlib import AsyncExitStack
from datetime import timedelta
from urllib.parse import quote

import aio_pika
import aiohttp
import pytest
from aiohttp.test_utils import TestClient
from aiormq.exceptions import ChannelNotFoundEntity

from deploy.cleanup import Broker as ListedBroker
from services.reporting.app import SERVICE, STORE
from services.reporting.app import create_app as create_reporting
from services.reporting.lease import TimerLease
from services.reporting.settings import ReportingSettings
from shared import events
from shared.models import utcnow
from shared.topology import REPORTING_BINDINGS, declare_exchanges
from tests.conftest import Names, auth, serve
from tests.service.test_reporting_service import publish, routing_event
from tests.service.test_subscriptions import Receiver, receiving, subscribe

POLL = 0.05
FAST = {"rollup_seconds": 0.2, "subscriptions_poll_seconds": POLL, "subscriptions_backoff_seconds": 0.02}


async def until(check, timeout: float = 30):
    async with asyncio.timeout(timeout):
        while not (result := await check()):
            await asyncio.sleep(POLL)
        return result


def reporting_app(names: Names, **settings):
    return serve(create_reporting(names.settings(ReportingSettings, **(FAST | settings))))


def conversation(name: str) -> list[tuple[str, bytes, str]]:
    return [
        routing_event(name, events.CONVERSATION_OPENED, 0, details={"priority": 0, "skills": [], "channel": "api"}),
        routing_event(name, events.CONVERSATION_QUEUED, 1, details={"reason": "opened", "channel": "api"}),
        routing_event(name, events.CONVERSATION_ROUTED, 2, agent_id="ann", details={"channel": "api"}),
    ]


async def publish_conversations(names: Names, prefix: str, count: int) -> None:
    for n in range(count):
        for item in conversation(f"{prefix}{n}"):
            await publish(names, *item)


def consumed(client: TestClient) -> int:
    """Events this replica's consumer stored (its counter, over every event type)."""
    counter = client.app[SERVICE].metrics.events
    return int(sum(sample.value for metric in counter.collect() for sample in metric.samples
                   if sample.name.endswith("_total")))


async def opened_queued_answered(client: TestClient) -> tuple[int, int, int]:
    now = utcnow()
    query = {"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
    response = await client.get("/v1/reports/summary", params=query, headers=auth())
    assert response.status == 200, await response.text()
    rows = (await response.json())["rows"]
    return tuple(sum(row["metrics"][name] or 0 for row in rows) for name in ("opened", "queued", "answered"))


async def counted(client: TestClient, conversations: int) -> bool:
    return await opened_queued_answered(client) == (conversations, conversations, conversations)


async def rollups(client: TestClient) -> list[str]:
    store = client.app[STORE]
    found = []
    for collection in store.span_rollups.values():
        found += [json.dumps(d, default=str, sort_keys=True) async for d in collection.find({}, {"_id": 0})]
    return sorted(found)


async def test_two_replicas_store_each_event_once_one_consumes_and_the_rollups_are_right(names):
    async with reporting_app(names) as first, reporting_app(names) as second:
        await publish_conversations(names, "C", 10)
        await until(lambda: counted(first, 10))
        assert await counted(second, 10)  # either replica answers from the database
        # One replica consumed everything, and it alone holds the timers' lease.
        assert sorted([consumed(first), consumed(second)]) == [0, 30]
        active = first if consumed(first) else second
        assert await active.app[SERVICE].lease.holder() == active.app[SERVICE].replica_id
        store = first.app[STORE]
        assert await store.events.count_documents({}) == 30
        # What the rounds wrote is what recomputing everything from the stored events gives.
        before = await rollups(first)
        assert before
        await store.recompute_all()
        assert await rollups(first) == before


async def test_the_standby_takes_over_when_the_active_replica_stops(names):
    async with AsyncExitStack() as first_stack:
        first = await first_stack.enter_async_context(reporting_app(names))  # consuming first, so active
        async with reporting_app(names) as second:
            await publish_conversations(names, "A", 3)
            await until(lambda: counted(second, 3))
            assert (consumed(first), consumed(second)) == (9, 0)

            await first_stack.aclose()  # a rolling update: it stops, gives the lease back
            await publish_conversations(names, "B", 4)
            await until(lambda: counted(second, 7))  # stored and rolled up: the survivor's timers run
            assert consumed(second) == 12
            assert await second.app[SERVICE].lease.holder() == second.app[SERVICE].replica_id


async def test_when_the_active_replica_loses_its_connection_the_standby_consumes_and_its_rounds_follow_the_lease(names):
    broker = ListedBroker.from_urls(names.infra.amqp_url)
    if not broker.management_url:
        pytest.skip("closing a connection at the broker needs its management API (SWITCHYARD_MANAGEMENT_URL)")
    settings = {"lease_seconds": 1.5}
    async with aiohttp.ClientSession(base_url=broker.management_url, headers=broker.authorization) as management, \
            reporting_app(names, **settings) as first:
        (lost,) = await until(lambda: connections(management, names.namespace))
        async with reporting_app(names, **settings) as second:
            await publish_conversations(names, "A", 2)
            await until(lambda: counted(second, 2))
            assert (consumed(first), consumed(second)) == (6, 0)
            assert await first.app[SERVICE].lease.holder() == first.app[SERVICE].replica_id

            # The broker drops the active replica's connection (a network failure): its lease stays,
            # it reconnects and stands by.
            response = await management.delete(f"/api/connections/{quote(lost, safe='')}")
            assert response.status == 204, await response.text()
            await publish_conversations(names, "B", 2)
            await until(lambda: counted(second, 4))  # consumed, then rolled up once the lease ran out
            assert (consumed(first), consumed(second)) == (6, 6)
            assert await second.app[SERVICE].lease.holder() == second.app[SERVICE].replica_id


async def connections(management: aiohttp.ClientSession, namespace: str) -> list[str]:
    """The names of the broker's connections the namespace's services opened (named after it)."""
    async with management.get("/api/connections", params={"columns": "name,client_properties"}) as response:
        assert response.status == 200, await response.text()
        found = await response.json()
    return [c["name"] for c in found if c.get("client_properties", {}).get("connection_name") == namespace]


async def test_the_timers_lease_has_one_holder_until_it_runs_out_or_is_given_back(names):
    async with reporting_app(names) as client:
        db = client.app[STORE].db
        ann, bob = TimerLease(db, "ann", 10), TimerLease(db, "bob", 10)
        await db["report_meta"].delete_many({"_id": "timers"})  # the app's own replica may hold it
        now = utcnow()
        assert await ann.hold(now)
        assert not await bob.hold(now + timedelta(seconds=9))
        assert await ann.hold(now + timedelta(seconds=9))  # renewed: until 19 s
        assert not await bob.hold(now + timedelta(seconds=18))
        assert await bob.hold(now + timedelta(seconds=19))  # ran out
        assert await ann.holder() == "bob"
        await bob.release()
        assert await ann.hold(now + timedelta(seconds=20))


async def test_two_replicas_send_every_subscription_delivery_once(names):
    # Deliveries wait a moment before they are due, so that both replicas' dispatchers, polling
    # every 50 ms, find them due at once and race for each.
    settings = {"subscriptions_settle_seconds": 0.3}
    async with receiving(Receiver()) as receiver, reporting_app(names, **settings) as first, \
            reporting_app(names, **settings):  # the second replica, standing by and dispatching
        await subscribe(first, receiver.url)
        await publish_conversations(names, "S", 15)
        deliveries = first.app[STORE].db["subscription_deliveries"]

        async def all_delivered() -> bool:
            found = [d async for d in deliveries.find({}, {"status": 1})]
            return bool(found) and all(d["status"] == "delivered" for d in found) and await counted(first, 15)

        await until(all_delivered)
        total = await deliveries.count_documents({})
        assert total >= 45  # every event of the 15 conversations made at least one delivery
        sent = Counter(r.headers["X-Switchyard-Delivery"] for r in receiver.requests)
        assert len(sent) == total
        assert [delivery for delivery, times in sent.items() if times > 1] == []


async def test_the_queue_of_the_old_layout_is_drained_at_start_with_its_routing_keys(names):
    topology = names.topology
    connection = await aio_pika.connect(names.infra.amqp_url)
    async with connection:
        channel = await connection.channel()
        await declare_exchanges(channel, topology)
        old = await channel.declare_queue(topology.legacy_reporting_queue, durable=True,
                                          arguments={"x-queue-type": "quorum"})
        for key in REPORTING_BINDINGS:
            await old.bind(topology.events_exchange, key)
        await publish_conversations(names, "OLD", 3)  # only the old queue exists: it takes them
        assert (await channel.declare_queue(topology.legacy_reporting_queue, passive=True)
                ).declaration_result.message_count == 9

        async with reporting_app(names) as client:
            await until(lambda: counted(client, 3))
            assert consumed(client) == 9
            with pytest.raises(ChannelNotFoundEntity):  # drained, then deleted
                await (await connection.channel()).declare_queue(topology.legacy_reporting_queue, passive=True)
