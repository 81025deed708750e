"""The routing engine through the real services, broker and database: the configuration API,
offers answered from the desk, transfers with notes, SLA state, auto-replies, set away."""

import asyncio
import json

from aiohttp import web

from services.intake.settings import CallbackTarget
from services.router.app import DB as ROUTER_DB
from tests.conftest import auth
from tests.service.helpers import Apps, Desk, callback_receiver, running_apps, texts

POLL = 0.05
FAST_TIMERS = {"tick_seconds": 0.05}


async def put_config(apps: Apps, config: dict, key: str = "test-key"):
    return await apps.router.put("/v1/routing/config", json=config, headers={"Authorization": f"Bearer {key}"})


async def configure(apps: Apps, config: dict) -> None:
    """Apply a configuration and wait until the router reports it in force."""
    response = await put_config(apps, config)
    assert response.status == 202, await response.text()
    async with asyncio.timeout(15):
        while True:
            current = await (await apps.router.get("/v1/routing/config", headers=auth())).json()
            if [q["name"] for q in current["queues"]] == [q["name"] for q in config["queues"]]:
                return
            await asyncio.sleep(POLL)


async def frame_of(desk: Desk, kind: str) -> dict:
    frames = await desk.frames_until(lambda f: any(x["type"] == kind for x in f))
    return next(x for x in frames if x["type"] == kind)


async def conversation(apps: Apps, conversation_id: str) -> dict:
    response = await apps.agents.get(f"/v1/conversations/{conversation_id}", headers=auth())
    assert response.status == 200
    return await response.json()


async def until(check, timeout: float = 15):
    async with asyncio.timeout(timeout):
        while not (result := await check()):
            await asyncio.sleep(POLL)
        return result


async def test_the_configuration_api_validates_scopes_and_applies_live(names):
    async with running_apps(names) as apps:
        default = await (await apps.router.get("/v1/routing/config", headers=auth())).json()
        assert [q["name"] for q in default["queues"]] == ["default"]
        bad = await put_config(apps, {"queues": [{"name": "default"}], "rules": [{"queue": "ghost"}]})
        assert bad.status == 422 and "ghost" in (await bad.json())["error"]["message"] + json.dumps(await bad.json())
        own = await put_config(apps, {"queues": [{"name": "default"}, {"name": "vip"}]}, key="other-key")
        assert own.status == 202  # the other workspace's own: ours stays as it was

        async def theirs_applied() -> bool:
            theirs = await (await apps.router.get("/v1/routing/config", headers=auth("other-key"))).json()
            return [q["name"] for q in theirs["queues"]] == ["default", "vip"]
        await until(theirs_applied)
        ours = await (await apps.router.get("/v1/routing/config", headers=auth())).json()
        assert [q["name"] for q in ours["queues"]] == ["default"]
        await configure(apps, {"queues": [{"name": "default"}, {"name": "billing", "skills": {"billing": 3}}],
                               "rules": [{"queue": "billing", "keywords": ["invoice"]}]})
        await apps.put_agent("ann", skills={"billing": 2})
        await apps.put_agent("bea", skills={"billing": 4})
        desk = await apps.desk("bea")
        await apps.post("cust", "my invoice is wrong")
        assigned = await frame_of(desk, "conversation.assigned")
        routing = (await conversation(apps, assigned["conversation"]["conversation_id"]))["routing"]
        assert routing["queue"] == "billing" and routing["classified_by"] == "rule 0" and routing["chosen"] == "bea"


async def test_an_offer_is_accepted_from_the_desk(names):
    async with running_apps(names) as apps:
        await configure(apps, {"queues": [{"name": "default", "mode": "offer", "offer_timeout_seconds": 60}]})
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        await apps.post("cust", "hello")
        offer = await frame_of(desk, "conversation.offered")
        conversation_id = offer["conversation"]["conversation_id"]
        assert [m["text"] for m in offer["messages"]] == ["hello"]
        # Not yet hers: still waiting, known only to the router (a supervisor reads it from there).
        waiting = await apps.agents.get(f"/v1/conversations/{conversation_id}", headers=auth())
        assert waiting.status == 200, await waiting.text()
        assert ((await waiting.json())["status"], (await waiting.json())["assignee_id"]) == ("waiting", None)
        reconnected = await apps.desk("ann")  # a desk opened meanwhile shows the open offer
        assert [o["conversation"]["conversation_id"] for o in reconnected.snapshot["offers"]] == [conversation_id]
        wrong = await apps.agents.post(f"/v1/conversations/{conversation_id}/offer", json={"agent_id": "bob", "accept": True}, headers=auth())
        assert wrong.status == 404
        accept = await apps.agents.post(f"/v1/conversations/{conversation_id}/offer", json={"agent_id": "ann", "accept": True}, headers=auth())
        assert accept.status == 202
        assigned = await frame_of(desk, "conversation.assigned")
        assert assigned["conversation"]["conversation_id"] == conversation_id
        assert assigned["conversation"]["routing"]["rule"] == "offer accepted"


async def test_offers_left_to_time_out_set_the_agent_away(names):
    async with running_apps(names, router_settings=FAST_TIMERS) as apps:
        await configure(apps, {"missed_offers_before_away": 1,
                               "queues": [{"name": "default", "mode": "offer", "offer_timeout_seconds": 0.3}]})
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        await apps.post("cust", "hello")
        await frame_of(desk, "conversation.offered")
        revoked = await frame_of(desk, "conversation.revoked")
        assert revoked["reason"] == "offer timed out"
        # The desk is told at once, and why (it used to show Online while the API said away).
        presence = await frame_of(desk, "presence")
        assert (presence["status"], presence["reason"]) == ("away", "missed_offers")
        body = await (await apps.agents.get("/v1/agents/ann", headers=auth())).json()
        assert body["status"] == "away"
        # A reconnecting desk learns its presence from the snapshot.
        assert (await apps.desk("ann")).snapshot["status"] == "away"


async def test_a_transfer_moves_the_conversation_with_its_history_and_note(names):
    async with running_apps(names) as apps:
        await apps.put_agent("ann")
        ann = await apps.desk("ann")
        await apps.post("cust", "I need a refund")
        conversation_id = (await frame_of(ann, "conversation.assigned"))["conversation"]["conversation_id"]
        await apps.agents.post(f"/v1/conversations/{conversation_id}/messages", json={"text": "Let me check"}, headers=auth())
        await apps.put_agent("bob")
        bob = await apps.desk("bob")
        rejected = await apps.agents.post(f"/v1/conversations/{conversation_id}/transfer", json={"to_agent": "nobody"}, headers=auth())
        assert rejected.status == 404
        response = await apps.agents.post(f"/v1/conversations/{conversation_id}/transfer",
                                          json={"to_agent": "bob", "note": "refund over limit", "by_agent": "ann"}, headers=auth())
        assert response.status == 202, await response.text()
        taken = await frame_of(bob, "conversation.assigned")
        # The history is the desk's to fetch (a mass reroute must not push every message again).
        assert taken["history"] == "fetch"
        history = (await conversation(apps, conversation_id))["messages"]
        assert [m["text"] for m in history][:2] == ["I need a refund", "Let me check"]
        assert taken["conversation"]["transfers"][0]["note"] == "refund over limit"
        assert (await frame_of(ann, "conversation.revoked"))["reason"] == "transferred"

        async def noted() -> dict | None:
            doc = await conversation(apps, conversation_id)
            return doc if any(m["direction"] == "note" for m in doc["messages"]) else None
        doc = await until(noted)
        assert doc["assignee_id"] == "bob" and doc["transfers"][0]["from_agent"] == "ann"
        assert [m["text"] for m in doc["messages"] if m["direction"] == "note"] == ["Transferred to agent bob: refund over limit"]
        unknown = await apps.agents.post(f"/v1/conversations/{conversation_id}/transfer", json={"to_queue": "nowhere", "by_agent": "bob"}, headers=auth())
        assert unknown.status == 202
        assert "unknown queue" in (await frame_of(bob, "transfer.rejected"))["reason"]


async def test_a_supervisor_moves_a_waiting_conversation_nobody_has_held(names):
    async with running_apps(names) as apps:
        await configure(apps, {"queues": [{"name": "default"}, {"name": "tier2", "skills": {"tier2": 1}}]})
        await apps.post("cust-w", "still waiting")  # nobody online: it waits in default, unknown to the agents service
        async with asyncio.timeout(15):
            while not (waiting := (await (await apps.router.get("/v1/queue", headers=auth())).json())["waiting"]):
                await asyncio.sleep(POLL)
        conversation_id = waiting[0]["conversation_id"]
        # The queue view is the router's memory; the agents service checks what the router saved
        # (a conversation not saved yet is unknown for that moment: a 404).
        async with asyncio.timeout(15):
            while not await apps.router.app[ROUTER_DB]["routing_conversations"].find_one({"_id": conversation_id}):
                await asyncio.sleep(POLL)
        response = await apps.agents.post(f"/v1/conversations/{conversation_id}/transfer",
                                          json={"to_queue": "tier2", "note": "VIP"}, headers=auth())
        assert response.status == 202, await response.text()
        await apps.put_agent("ann")  # no tier2 skill: it is not hers any more
        await apps.put_agent("tia", skills={"tier2": 3})
        tia = await apps.desk("tia")
        taken = await frame_of(tia, "conversation.assigned")
        assert taken["conversation"]["conversation_id"] == conversation_id and taken["conversation"]["queue"] == "tier2"


async def test_sla_state_reaches_the_conversation_and_the_desk(names):
    async with running_apps(names, router_settings=FAST_TIMERS) as apps:
        await configure(apps, {"queues": [{"name": "default", "sla": {"first_response_seconds": 0.4}}]})
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        await apps.post("cust", "hello?")
        conversation_id = (await frame_of(desk, "conversation.assigned"))["conversation"]["conversation_id"]
        frames = await desk.frames_until(lambda f: [x.get("state") for x in f if x["type"] == "sla"] == ["warning", "breached"])
        assert {x["target"] for x in frames if x["type"] == "sla"} == {"first_response"}

        async def breached() -> bool:
            return (await conversation(apps, conversation_id))["sla"]["first_response"]["state"] == "breached"
        await until(breached)


async def test_a_customer_waiting_too_long_gets_an_auto_reply_with_the_expected_wait(names):
    received: asyncio.Queue = asyncio.Queue()

    async def callback(request: web.Request) -> web.Response:
        await received.put(await request.json())
        return web.Response(status=204)

    async with callback_receiver(callback) as url:
        callbacks = {"default": CallbackTarget(url=url, secret="callback-secret")}
        async with running_apps(names, callbacks=callbacks, router_settings=FAST_TIMERS) as apps:
            await configure(apps, {"queues": [{"name": "default", "max_wait": {"seconds": 0.3, "action": "auto_reply"}}]})
            await apps.post("cust", "anyone?")
            reply = await asyncio.wait_for(received.get(), 15)
            assert reply["text"].startswith("All our agents are busy") and "1 min" in reply["text"]
            await apps.put_agent("ann")
            desk = await apps.desk("ann")
            assigned = await frame_of(desk, "conversation.assigned")
            history = await conversation(apps, assigned["conversation"]["conversation_id"])
            assert [(m["direction"], m["agent_id"] if m["direction"] == "outbound" else None) for m in history["messages"]] == [
                ("inbound", None), ("outbound", "switchyard")]


async def test_a_reroute_hands_over_the_conversation_not_every_message_again(names):
    """A shift change reroutes hundreds of long conversations: each costs one small frame."""
    async with running_apps(names) as apps:
        await apps.put_agent("ann")
        ann = await apps.desk("ann")
        for n in range(30):
            await apps.post("cust", f"message {n}")
        await ann.frames_until(lambda f: "message 29" in texts(f))
        await apps.put_agent("bob")
        bob = await apps.desk("bob")
        response = await apps.agents.put("/v1/agents/ann/status", json={"status": "offline"}, headers=auth())
        assert response.status == 200
        taken = await frame_of(bob, "conversation.assigned")
        assert taken["history"] == "fetch" and taken["messages"] == []
        history = (await conversation(apps, taken["conversation"]["conversation_id"]))["messages"]
        assert [m["text"] for m in history] == [f"message {n}" for n in range(30)]
