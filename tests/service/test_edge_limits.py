"""What intake accepts with a 2xx is storable and routable all the way down (docs/limits.md):
the edge validates with the whole path's limits, and the router runs any configuration its API
accepts. Each of these was accepted and then lost (dead-lettered after ten retries) before."""

import asyncio

from services.router.app import DB
from shared.routing_config import DEFAULT_ID as CONFIG_ID
from tests.conftest import auth
from tests.service.helpers import running_apps, texts

FIVE_SKILLS = ["billing", "refunds", "premium-support", "spanish-speaking", "escalation-tier-2"]


async def test_a_message_with_many_long_skills_is_routed_and_stored(names):
    """Their skill queue's name passes 64 characters; the router made a queue of it anyway."""
    long_skill = "s" * 58
    async with running_apps(names) as apps:
        await apps.put_agent("ann", skills={s: 1 for s in FIVE_SKILLS})
        await apps.put_agent("bob", skills={long_skill: 1})
        ann, bob = await apps.desk("ann"), await apps.desk("bob")
        await apps.post("c1", "five skills", skills=FIVE_SKILLS)
        await apps.post("c2", "one long skill", skills=[long_skill])
        got_ann = await ann.frames_until(lambda f: "five skills" in texts(f))
        got_bob = await bob.frames_until(lambda f: "one long skill" in texts(f))
        assigned = next(f for f in got_ann if f["type"] == "conversation.assigned")
        assert len(assigned["conversation"]["queue"]) > 64
        assert any(f["type"] == "conversation.assigned" for f in got_bob)


async def test_metadata_that_mongodb_cannot_store_is_refused_at_the_edge(names):
    deep: dict = {}
    node = deep
    for _ in range(120):
        node["d"] = {}
        node = node["d"]
    cases = {
        "an integer outside int64": {"n": 2**64},
        "a NUL in a key": {"a\u0000b": 1},
        "a key MongoDB reserves": {"$where": "1"},
        "nesting past the limit": deep,
    }
    async with running_apps(names) as apps:
        for what, metadata in cases.items():
            response = await apps.intake.post("/v1/messages", headers=auth(), json={
                "contact": {"id": "c"}, "text": "hello", "metadata": metadata})
            body = await response.json()
            assert response.status == 422, (what, body)
            assert "metadata" in str(body["error"]), (what, body)
        fine = {"order": {"id": 2**63 - 1, "tags": ["a", "b"], "nested": {"x": None}}}
        response = await apps.intake.post("/v1/messages", headers=auth(), json={
            "contact": {"id": "c"}, "text": "hello", "metadata": fine})
        assert response.status == 202


async def test_a_routing_configuration_that_cannot_run_is_refused_before_it_is_saved(names):
    unrunnable = [
        {"last_agent_window_seconds": 1e15},
        {"declined_retry_seconds": 1e300},
        {"queues": [{"name": "default", "offer_timeout_seconds": 1e12}]},
        {"queues": [{"name": "default", "max_wait": {"seconds": 1e20, "action": "callback"}}]},
        {"queues": [{"name": "default", "hours": {"weekly": {"mon": ["25:00-26:00"]}}}]},
        {"queues": [{"name": "default", "hours": {"weekly": {"mon": ["17:00-09:00"]}}}]},
        {"missed_offers_before_away": 10**12},
    ]
    async with running_apps(names) as apps:
        for config in unrunnable:
            response = await apps.router.put("/v1/routing/config", json=config, headers=auth())
            assert response.status == 422, (config, await response.text())
        assert await apps.router.app[DB]["routing_config"].find_one({"_id": CONFIG_ID}) is None, "nothing was saved"
        current = await (await apps.router.get("/v1/routing/config", headers=auth())).json()
        assert current["last_agent_window_seconds"] == 24 * 3600
        # And routing goes on.
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        await apps.post("c1", "still routed")
        await desk.frames_until(lambda f: "still routed" in texts(f))


async def test_a_stored_configuration_that_no_longer_validates_does_not_stop_routing(names):
    """Saved by an older version with looser limits: the router starts on the default and routes."""
    from pymongo import AsyncMongoClient

    client = AsyncMongoClient(names.infra.mongo_url)
    try:
        await client[names.namespace]["routing_config"].insert_one(
            {"_id": CONFIG_ID, "config": {"last_agent_window_seconds": 1e15}})
    finally:
        await client.close()
    async with running_apps(names) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        await apps.post("c1", "routed after all")
        async with asyncio.timeout(20):
            await desk.frames_until(lambda f: "routed after all" in texts(f))
