"""A router that logged an assignment in its outbox but died before publishing it: the next one to
load the state publishes both the assignment and its conversation.routed event (voice dials the
agent on it)."""

import asyncio
import json

import aio_pika
from pymongo import AsyncMongoClient

from services.router.config import RoutingConfig
from services.router.core import RoutingCore
from services.router.service import outbox_entries
from services.router.store import RoutingStore
from shared import events
from tests.service.helpers import running_apps
from tests.unit.test_routing_acd import agent, at, conversation_of, msg

WAIT = 15


async def saved_but_never_published(names) -> str:
    """The state a router leaves when it died between saving an assignment and publishing it."""
    client = AsyncMongoClient(names.infra.mongo_url, tz_aware=True)
    try:
        store = RoutingStore(client[names.namespace], names.topology.workspace_partition("default"))
        await store.ensure_indexes()
        core = RoutingCore(RoutingConfig())
        for outcome in (core.on_agent(agent("ann", media={"voice": 1}), at(0)),
                        core.on_message(msg("CA" + "1" * 32, channel="voice"), at(1))):
            await store.commit(core, outcome, outbox_entries(names.topology, outcome))  # serialized as the service does; never published
        call = conversation_of(core, "CA" + "1" * 32, "voice")
        assert call.assignee_id == "ann" and await store.outbox.count_documents({}) == 1  # the assignment's commit
        return call.conversation_id
    finally:
        await client.close()


async def test_a_rebuilt_router_publishes_the_routed_event_of_an_assignment_left_in_the_outbox(names):
    conversation_id = await saved_but_never_published(names)
    connection = await aio_pika.connect(names.infra.amqp_url)
    async with connection:
        channel = await connection.channel()
        async with running_apps(names, router_settings={"tick_seconds": 3600}) as apps:  # no tick loads it first
            routed = await channel.declare_queue(exclusive=True)
            await routed.bind(names.topology.events_exchange, f"{events.CONVERSATION_ROUTED}.voice")
            # Ann's desk queue comes with her profile; her snapshot is the input that makes the
            # router load the state, replaying the outbox before applying it.
            await apps.put_agent("ann")
            async with asyncio.timeout(WAIT), routed.iterator() as published:
                message = await anext(aiter(published))
                await message.ack()
    event = json.loads(message.body)
    assert (event["type"], event["conversation_id"], event["agent_id"]) == (events.CONVERSATION_ROUTED, conversation_id, "ann")
    assert event["details"]["thread_id"] == "CA" + "1" * 32
