"""Router events survive a crash between saving the state and publishing: the commit's outbox is
saved before the state, and whoever holds the routing state next publishes what it holds."""

import asyncio

from bson import ObjectId
from pymongo import AsyncMongoClient

from services.router.app import SERVICE
from services.router.config import RoutingConfig
from services.router.core import RoutingCore
from services.router.model import Outcome
from services.router.service import CORE_INPUTS, outbox_entries
from services.router.store import RoutingStore
from shared import events
from shared.models import InboundMessage, RoutingEvent
from tests.conftest import auth
from tests.service.helpers import running_apps
from tests.service.test_routing_flow import conversation, frame_of, until
from tests.unit.test_routing_acd import agent, at


NO_TICKS = {"tick_seconds": 3600}


async def test_a_commit_left_by_a_dead_router_is_published_by_the_next(names):
    """The state a router leaves when it died after saving `agent.set_away` and before publishing it."""
    client = AsyncMongoClient(names.infra.mongo_url, tz_aware=True)
    try:
        store = RoutingStore(client[names.namespace], names.topology.workspace_partition("default"))
        core = RoutingCore(RoutingConfig())
        outcome = core.on_agent(agent("ann"), at(0))
        outcome.merge(Outcome(events=[RoutingEvent(event_id="away:ann:1", type=events.AGENT_SET_AWAY,
                                                   workspace_id="default", agent_id="ann", at=at(1))]))
        await store.commit(core, outcome, outbox_entries(names.topology, outcome))  # serialized as the service does
    finally:
        await client.close()
    # No ticks: her snapshot, not a tick before she exists, is the work that makes the router load the state.
    async with running_apps(names, router_settings=NO_TICKS) as apps:
        await apps.put_agent("ann")

        async def away() -> bool:
            body = await (await apps.agents.get("/v1/agents/ann", headers=auth())).json()
            return body["status"] == "away"
        await until(away)
        assert await apps.router.app[SERVICE].for_workspace("default").store.outbox.count_documents({}) == 0


async def test_an_event_whose_publish_failed_after_the_state_was_saved_is_published_later(names):
    """The transfer is saved, its deliveries go out, then the broker fails the event: the note follows anyway."""
    async with running_apps(names) as apps:
        service = apps.router.app[SERVICE].for_workspace("default")
        await apps.put_agent("ann")
        await apps.put_agent("bob")
        ann, bob = await apps.desk("ann"), await apps.desk("bob")
        await apps.post("cust", "I need a refund")
        conversation_id = (await frame_of(ann, "conversation.assigned"))["conversation"]["conversation_id"]
        publish = service.broker.publish_raw
        failed = asyncio.Event()

        async def fail_the_transfer_event_once(body, routing_key, **options):
            if options["message_type"] == events.CONVERSATION_TRANSFERRED and not failed.is_set():
                failed.set()
                raise ConnectionError("the broker went away mid-commit")
            await publish(body, routing_key, **options)

        service.broker.publish_raw = fail_the_transfer_event_once
        response = await apps.agents.post(f"/v1/conversations/{conversation_id}/transfer",
                                          json={"to_agent": "bob", "note": "over limit", "by_agent": "ann"}, headers=auth())
        assert response.status == 202
        await frame_of(bob, "conversation.assigned")
        assert failed.is_set()

        async def noted() -> bool:
            doc = await conversation(apps, conversation_id)
            return any(m["direction"] == "note" for m in doc["messages"])
        await until(noted, timeout=30)

        async def outbox_empty() -> bool:
            return await service.store.outbox.count_documents({}) == 0
        await until(outbox_empty)


async def test_an_input_the_core_cannot_take_is_parked_and_its_neighbours_go_on(names, monkeypatch):
    """The core raising on one message: that one is parked, the others of its batch are routed at once."""
    on_message = CORE_INPUTS[InboundMessage]

    def poisoned(core, message, now):
        if message.text == "poison":
            raise RuntimeError("the core cannot take this one")
        return on_message(core, message, now)

    monkeypatch.setitem(CORE_INPUTS, InboundMessage, poisoned)
    async with running_apps(names) as apps:
        service = apps.router.app[SERVICE].for_workspace("default")
        await apps.put_agent("ann", capacity=50)
        desk = await apps.desk("ann")
        await asyncio.gather(apps.post("poisoner", "poison"), *(apps.post(f"c{n}", f"fine {n}") for n in range(30)))
        await desk.frames_until(lambda f: sum(x["type"] == "conversation.assigned" for x in f) == 30)
        assert service.consumer.parked, "the poison waits parked, its retries off the queue"


async def test_a_commit_in_several_parts_replays_whole_and_unsealed_parts_are_dropped(names, monkeypatch):
    """A big commit (a mass reroute) is logged in parts; only the last insert seals it."""
    import services.router.store as store_module

    monkeypatch.setattr(store_module, "OUTBOX_PART_BYTES", 300)
    client = AsyncMongoClient(names.infra.mongo_url, tz_aware=True)
    try:
        store = RoutingStore(client[names.namespace], 0)
        core = RoutingCore(RoutingConfig())
        outcome = core.on_agent(agent("ann"), at(0))
        outbox = [{"n": n, "pad": "x" * 100} for n in range(12)]
        commit_id = await store.commit(core, outcome, outbox)
        assert await store.outbox.count_documents({"commit": commit_id}) > 2
        # The parts of a commit whose router died before its seal: never replayed.
        await store.outbox.insert_one({"_id": "dead:0", "commit": ObjectId(), "part": 0, "partition": 0,
                                       "entries": [["publish", {"n": "never"}]]})
        [(replayed_id, items)] = await store.unfinished_commits()
        assert replayed_id == commit_id and [item["n"] for item in items] == list(range(12))
        assert await store.outbox.count_documents({"_id": "dead:0"}) == 0
        await store.finish(commit_id)
        assert await store.outbox.count_documents({}) == 0
    finally:
        await client.close()
