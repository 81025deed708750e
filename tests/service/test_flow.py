"""The whole flow in one process over the real broker and database: post, route, desk, reply, resolve."""

import asyncio
import json

from aiohttp import web

from services.intake.channels.api import sign
from services.intake.settings import CallbackTarget
from tests.conftest import auth
from tests.service.helpers import callback_receiver, running_apps, texts


async def test_a_posted_message_reaches_the_skilled_agent_in_order(names):
    async with running_apps(names) as apps:
        await apps.put_agent("generalist", skills={"tech": 2})
        await apps.put_agent("biller", skills={"billing": 4})
        desk = await apps.desk("biller")
        for text in ("one", "two", "three"):
            await apps.post("cust-1", text, skills=["billing"])
        frames = await desk.frames_until(lambda f: len(texts(f)) >= 3)
        assert frames[0]["type"] == "conversation.assigned"
        assert frames[0]["conversation"]["assignee_id"] == "biller"
        assert texts(frames) == ["one", "two", "three"]
        conversation_id = frames[0]["conversation"]["conversation_id"]
        response = await apps.agents.get(f"/v1/conversations/{conversation_id}", headers=auth())
        body = await response.json()
        assert [m["text"] for m in body["messages"]] == ["one", "two", "three"]


async def test_the_reply_reaches_the_external_system_signed(names):
    received: asyncio.Queue = asyncio.Queue()

    async def callback(request: web.Request) -> web.Response:
        received.put_nowait((request.headers, await request.read()))
        return web.Response(status=204)

    secret = "callback-secret"
    async with callback_receiver(callback) as url:
        callbacks = {"default": CallbackTarget(url=url, secret=secret)}
        async with running_apps(names, callbacks=callbacks) as apps:
            await apps.put_agent("ann")
            desk = await apps.desk("ann")
            await apps.post("cust-2", "where is my order?")
            assigned = (await desk.frames_until(lambda f: f))[0]
            conversation_id = assigned["conversation"]["conversation_id"]
            response = await apps.agents.post(f"/v1/conversations/{conversation_id}/messages", json={"text": "On its way"}, headers=auth())
            assert response.status == 201
            headers, body = await asyncio.wait_for(received.get(), 15)
            assert headers["X-Switchyard-Signature"] == sign(secret, headers["X-Switchyard-Timestamp"], body)
            payload = json.loads(body)
            assert payload["type"] == "message.outbound" and payload["text"] == "On its way"
            assert payload["conversation_id"] == conversation_id and payload["contact"]["id"] == "cust-2"
            assert "survey" not in payload  # the callback body is what it was before CSAT
            assert "quick_replies" not in payload  # ... and before quick replies
            status = await desk.frames_until(lambda f: any(x["type"] == "message.status" for x in f))
            assert status[-1]["status"] == "delivered"


async def test_a_failing_callback_is_retried_then_marked_failed(names):
    attempts = 0

    async def flaky(request: web.Request) -> web.Response:
        nonlocal attempts
        attempts += 1
        return web.Response(status=503)

    async with callback_receiver(flaky) as url:
        callbacks = {"default": CallbackTarget(url=url, secret="callback-secret")}
        async with running_apps(names, callbacks=callbacks, send_max_attempts=3, send_retry_delay=0.05) as apps:
            await apps.put_agent("ann")
            desk = await apps.desk("ann")
            await apps.post("cust-3", "hello")
            conversation_id = (await desk.frames_until(lambda f: f))[0]["conversation"]["conversation_id"]
            await apps.agents.post(f"/v1/conversations/{conversation_id}/messages", json={"text": "hi"}, headers=auth())
            frames = await desk.frames_until(lambda f: any(x["type"] == "message.status" for x in f))
            assert frames[-1]["status"] == "failed" and "503" in frames[-1]["reason"]
            assert attempts == 3
            stored = await (await apps.agents.get(f"/v1/conversations/{conversation_id}", headers=auth())).json()
            assert stored["messages"][-1]["status"] == "failed"


async def test_waiting_conversations_are_served_by_priority_when_an_agent_comes_online(names):
    async with running_apps(names) as apps:
        await apps.put_agent("ann", capacity=2, status="offline")
        await apps.post("low", "low one", priority=1)
        await apps.post("high", "urgent", priority=9)
        await apps.post("mid", "soon", priority=5)
        queue = await _waiting(apps, 3)
        assert [w["thread_id"] for w in queue] == ["high", "mid", "low"]
        desk = await apps.desk("ann")
        await apps.agents.put("/v1/agents/ann/status", json={"status": "online"}, headers=auth())
        def assigned(frames: list[dict]) -> list[dict]:  # (the presence frame of going online comes too)
            return [f for f in frames if f["type"] == "conversation.assigned"]
        frames = assigned(await desk.frames_until(lambda f: len(assigned(f)) >= 2))
        assert [f["conversation"]["thread_id"] for f in frames] == ["high", "mid"]
        # resolving one frees room for the last
        await apps.agents.post(f"/v1/conversations/{frames[0]['conversation']['conversation_id']}/resolve", headers=auth())
        (last,) = assigned(await desk.frames_until(lambda f: assigned(f)))
        assert last["conversation"]["thread_id"] == "low" and [m["text"] for m in last["messages"]] == ["low one"]


async def _waiting(apps, count: int) -> list[dict]:
    async with asyncio.timeout(15):
        while True:
            body = await (await apps.router.get("/v1/queue", headers=auth())).json()
            if len(body["waiting"]) >= count:
                return body["waiting"]
            await asyncio.sleep(0.05)  # polling an HTTP view; the condition, not the sleep, ends it


async def test_a_retried_post_with_the_same_idempotency_key_creates_nothing_new(names):
    async with running_apps(names) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        headers = {**auth(), "Idempotency-Key": "order-42"}
        ids = []
        for _ in range(3):
            response = await apps.intake.post("/v1/messages", json={"contact": {"id": "c"}, "text": "once"}, headers=headers)
            ids.append((await response.json())["message_id"])
        assert len(set(ids)) == 1
        await apps.post("c", "after")
        frames = await desk.frames_until(lambda f: "after" in texts(f))
        assert texts(frames) == ["once", "after"]


async def test_a_reconnecting_desk_gets_what_it_missed(names):
    async with running_apps(names) as apps:
        await apps.put_agent("ann")
        await apps.post("c9", "while you were away")
        await apps.post("c9", "and this")
        async with asyncio.timeout(15):
            while True:
                desk = await apps.desk("ann")
                conversations = desk.snapshot["conversations"]
                if conversations and len(conversations[0]["messages"]) == 2:
                    break
                await desk.ws.close()
        assert [m["text"] for m in conversations[0]["messages"]] == ["while you were away", "and this"]


async def test_bad_requests_get_json_errors(names):
    async with running_apps(names) as apps:
        cases = [
            ({"contact": {"id": "c"}, "text": ""}, 422),
            ({"contact": {"id": "c"}, "text": "   "}, 422),
            ({"contact": {"id": "c"}, "text": "x" * 5000}, 422),
            ({"contact": {"id": "c"}, "text": "x", "unknown": 1}, 422),
            ({"contact": {"id": "c"}, "text": "x", "priority": 11}, 422),
            ({"text": "no contact"}, 422),
        ]
        for body, status in cases:
            response = await apps.intake.post("/v1/messages", json=body, headers=auth())
            assert response.status == status, body
            assert (await response.json())["error"]["message"]
        response = await apps.intake.post("/v1/messages", data=b"{nope", headers=auth())
        assert response.status == 400 and (await response.json())["error"]["message"] == "malformed JSON"
        response = await apps.intake.post("/v1/messages", json={"contact": {"id": "c"}, "text": "x"}, headers=auth("wrong"))
        assert response.status == 401
        response = await apps.intake.post("/v1/messages", data=b"x" * 100_000, headers=auth())
        assert response.status == 413 and "error" in await response.json()
        response = await apps.agents.put("/v1/agents/bad id!", json={"name": "x"}, headers=auth())
        assert response.status in (400, 404)
        response = await apps.agents.put("/v1/agents/nobody/status", json={"status": "online"}, headers=auth())
        assert response.status == 404
        response = await apps.agents.put("/v1/agents/ann/status", json={"status": "dancing"}, headers=auth())
        assert response.status == 422
        response = await apps.agents.get("/v1/conversations/missing", headers=auth())
        assert response.status == 404 and "error" in await response.json()


async def test_ops_routes(names):
    async with running_apps(names) as apps:
        for client in (apps.intake, apps.router, apps.agents):
            assert (await client.get("/healthz")).status == 200
            ready = await client.get("/readyz")
            assert ready.status == 200 and (await ready.json())["ready"] is True
            metrics = await (await client.get("/metrics")).text()
            assert "_total" in metrics
            document = await (await client.get("/openapi.json")).json()
            assert document["openapi"].startswith("3.") and "/healthz" in document["paths"]
        # What the contract test (test_openapi_contract.py) holds the services to, spot-checked by name.
        agents = await (await apps.agents.get("/openapi.json")).json()
        listed = agents["paths"]["/v1/conversations"]["get"]
        parameters = {p["name"]: p["schema"] for p in listed["parameters"]}
        assert parameters["limit"] == {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}
        assert parameters["status"]["enum"] == ["assigned", "pending", "snoozed", "waiting", "resolved"]
        assert {"assignee_id", "channel", "thread_id", "contact_id"} <= set(parameters)
        assert listed["security"] == [{"bearer": []}] and "401" in listed["responses"] and "4XX" in listed["responses"]
        one = agents["paths"]["/v1/conversations/{conversation_id}"]["get"]
        assert [p["name"] for p in one["parameters"] if p["in"] == "path"] == ["conversation_id"]
        intake = await (await apps.intake.get("/openapi.json")).json()
        posted = intake["paths"]["/v1/messages"]["post"]
        assert [p["name"] for p in posted["parameters"] if p["in"] == "header"] == ["Idempotency-Key"]
        router = await (await apps.router.get("/openapi.json")).json()
        assert {"/v1/queue", "/v1/routing/config"} <= set(router["paths"])
