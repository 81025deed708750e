"""Partitions over the real broker and database: a fixed set of queues whatever the floor, router
replicas sharing the partitions with a standby taking over, a fence against a replica that lost its
partition, a routing configuration per workspace, and the old layout's queues drained at start."""

import asyncio
from contextlib import AsyncExitStack
from datetime import timedelta

import aio_pika
import pytest
from pymongo import AsyncMongoClient

from deploy.cleanup import Broker as ListedBroker
from deploy.cleanup import CleanupSettings, list_broker
from services.router.app import SERVICE
from services.router.app import create_app as create_router
from services.router.config import RoutingConfig
from services.router.core import RoutingCore
from services.router.settings import RouterSettings
from services.router.store import RoutingStore, StaleRoutingState
from shared import events
from shared.models import DEFAULT_WORKSPACE
from shared.partitions import PartitionMismatch, agree_on_partitions
from tests.conftest import auth, serve
from tests.e2e.client import StackClient
from tests.service.helpers import Desk, running_apps
from tests.service.test_routing_flow import conversation, frame_of
from tests.unit.test_routing_acd import T0, agent, at, msg

OTHER = "other"  # the other test workspace (key "other-key"): partition 1 of 2, "default" is 0


async def queue_names(infra, namespace: str) -> list[str] | None:
    listing, _ = await list_broker(ListedBroker.from_urls(infra.amqp_url, CleanupSettings().management_url))
    return None if listing is None else sorted(q.name for q in listing.of(namespace).queues)


async def test_the_queues_do_not_grow_with_agents(names):
    async with running_apps(names) as apps:
        before = await queue_names(names.infra, names.namespace)
        if before is None:
            pytest.skip("the broker cannot be listed here (no management API, no rabbitmqctl)")
        await asyncio.gather(*(apps.put_agent(f"agent-{n}", status="offline") for n in range(1, 40)))
        await apps.put_agent("agent-0")
        desk = await apps.desk("agent-0")
        await apps.post("cust", "hello")
        await frame_of(desk, "conversation.assigned")
        after = await queue_names(names.infra, names.namespace)
    assert after == before  # 40 agents and a delivery, not one queue more
    assert [q for q in before if ".deliveries." in q] == sorted(
        [*names.topology.delivery_queues(), *(f"{q}.dlq" for q in names.topology.delivery_queues())])


async def test_two_router_replicas_share_the_partitions_and_a_standby_takes_over(names):
    """Replica A (first) is active for both partitions; B stands by. A goes: B routes both workspaces."""
    async with AsyncExitStack() as stack:
        apps = await stack.enter_async_context(running_apps(names))
        second = await stack.enter_async_context(serve(create_router(names.settings(RouterSettings))))
        other = StackClient(apps.agents.session, str(apps.intake.make_url("")), str(apps.agents.make_url("")), "other-key")
        await apps.put_agent("ann")
        await other.put_agent("olga")
        ann, olga = await apps.desk("ann"), await other_desk(apps, "olga")
        await apps.post("c1", "first in default")
        await other.post_until_accepted("o1", "first in other", key="o1")
        await frame_of(ann, "conversation.assigned")
        await frame_of(olga, "conversation.assigned")

        first = apps.router.app[SERVICE]
        assert all(service.cores is not None for service in first.partitions)  # A took both
        assert all(service.cores is None for service in second.app[SERVICE].partitions)  # B stood by
        await first.stop()  # its consumers go: the broker makes B active for both

        await apps.post("c2", "second in default")
        await other.post_until_accepted("o2", "second in other", key="o2")
        assert (await frame_of(ann, "conversation.assigned"))["messages"][0]["text"] == "second in default"
        assert (await frame_of(olga, "conversation.assigned"))["messages"][0]["text"] == "second in other"
        assert all(service.cores is not None for service in second.app[SERVICE].partitions)


async def other_desk(apps, agent_id: str) -> Desk:
    ws = await apps.agents.ws_connect(f"/v1/agents/{agent_id}/ws?token=other-key")
    desk = Desk(ws)
    desk.snapshot = await desk.next_frame()
    return desk


async def test_a_replica_that_lost_its_partition_cannot_write_over_its_successor(names):
    """A loaded, then B loaded and wrote (A lost the partition unnoticed): A is stale, and its write refused."""
    client = AsyncMongoClient(names.infra.mongo_url, tz_aware=True)
    try:
        db = client[names.namespace]
        a, b = RoutingStore(db, 0), RoutingStore(db, 0)
        await a.ensure_indexes()
        config = RoutingConfig()
        core_a = (await a.load(lambda _: config, T0 - timedelta(days=1))).get(DEFAULT_WORKSPACE, RoutingCore(config))
        core_b = (await b.load(lambda _: config, T0 - timedelta(days=1))).get(DEFAULT_WORKSPACE, RoutingCore(config))
        await b.commit(core_b, core_b.on_agent(agent("ann"), at(0)), [])
        assert await b.is_current() and not await a.is_current()
        with pytest.raises(StaleRoutingState):
            await a.commit(core_a, core_a.on_agent(agent("bob"), at(1)), [])
        assert await db["routing_agents"].count_documents({}) == 1  # only ann: A wrote nothing
        reloaded = await a.load(lambda _: config, T0 - timedelta(days=1))
        assert list(reloaded[DEFAULT_WORKSPACE].agents) == [(DEFAULT_WORKSPACE, "ann")] and await a.is_current()
    finally:
        await client.close()


async def test_each_workspace_routes_by_its_own_configuration(names):
    async with running_apps(names) as apps:
        other = StackClient(apps.agents.session, str(apps.intake.make_url("")), str(apps.agents.make_url("")), "other-key")
        own = {"queues": [{"name": "default"}, {"name": "billing"}], "rules": [{"queue": "billing", "keywords": ["invoice"]}]}
        response = await apps.router.put("/v1/routing/config", json=own, headers=auth("other-key"))
        assert response.status == 202, await response.text()
        await apps.put_agent("ann")
        await other.put_agent("olga")
        ann, olga = await apps.desk("ann"), await other_desk(apps, "olga")
        await apps.post("c1", "my invoice is wrong")
        await other.post_until_accepted("o1", "my invoice is wrong", key="o1")
        ours = (await frame_of(ann, "conversation.assigned"))["conversation"]
        theirs = (await frame_of(olga, "conversation.assigned"))["conversation"]
        assert ours["routing"]["queue"] == "default"  # the default workspace has no billing rule
        assert theirs["routing"]["queue"] == "billing" and theirs["routing"]["classified_by"] == "rule 0"


async def test_the_old_router_queue_is_drained_into_the_partitions_at_start(names):
    """A message left in `<ns>.router.work` by the router of before partitions is routed, and the queue goes."""
    legacy = names.topology.legacy_router_queue
    async with await aio_pika.connect(names.infra.amqp_url) as connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(legacy, durable=True, arguments={"x-queue-type": "quorum"})
        await channel.declare_queue(f"{legacy}.dlq", durable=True, arguments={"x-queue-type": "quorum"})
        left = msg("left-behind", "sent before the upgrade")
        await channel.default_exchange.publish(
            aio_pika.Message(left.model_dump_json().encode(), type=events.MESSAGE_RECEIVED, message_id=left.message_id,
                             headers={"workspace_id": DEFAULT_WORKSPACE}), legacy)
        await asyncio.sleep(0.2)
        assert (await channel.declare_queue(legacy, passive=True)).declaration_result.message_count == 1
        async with running_apps(names) as apps:
            await apps.put_agent("ann")
            desk = await apps.desk("ann")
            assigned = await frame_of(desk, "conversation.assigned")
            assert assigned["messages"][0]["text"] == "sent before the upgrade"
            assert (await conversation(apps, assigned["conversation"]["conversation_id"]))["status"] == "assigned"
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await (await connection.channel()).declare_queue(legacy, passive=True)
        with pytest.raises(aio_pika.exceptions.ChannelNotFoundEntity):
            await (await connection.channel()).declare_queue(f"{legacy}.dlq", passive=True)
        del queue


async def test_a_service_with_another_partition_count_refuses_to_start(names):
    client = AsyncMongoClient(names.infra.mongo_url)
    try:
        db = client[names.namespace]
        await agree_on_partitions(db, 2)
        await agree_on_partitions(db, 2)  # the same number again: fine
        with pytest.raises(PartitionMismatch, match="SWITCHYARD_PARTITIONS is 3 here but 2"):
            await agree_on_partitions(db, 3)
    finally:
        await client.close()
