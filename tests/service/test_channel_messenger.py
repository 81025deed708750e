"""Messenger and Instagram over the real broker and database: webhook in, desk, reply out to a stand-in
Graph API, receipts."""

import asyncio
import itertools
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.conftest import auth
from tests.fixtures import messenger as fx
from tests.service.helpers import Apps, running_apps, stand_in_server, texts

PATH = "/v1/webhooks/messenger/default"
IG_PATH = "/v1/webhooks/instagram/default"


@dataclass
class StandInGraph:
    """A local server answering like graph.facebook.com's Send API; records every request."""

    status: int = 200
    requests: asyncio.Queue = field(default_factory=asyncio.Queue)
    base_url: str = ""
    _ids: Any = field(default_factory=itertools.count)

    async def messages(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.requests.put_nowait((request.match_info["node"], dict(request.query), dict(request.headers), body))
        if self.status != 200:
            return web.json_response({"error": {"message": "An unexpected error has occurred.", "type": "OAuthException",
                                                "code": 2}}, status=self.status)
        return web.json_response({"recipient_id": body["recipient"]["id"], "message_id": f"m_sent-{next(self._ids)}"})


@asynccontextmanager
async def stand_in_graph(status: int = 200) -> AsyncIterator[StandInGraph]:
    graph = StandInGraph(status=status)
    async with stand_in_server(("POST", "/v21.0/{node}/messages", graph.messages)) as base:
        graph.base_url = f"{base}/v21.0"
        yield graph


@asynccontextmanager
async def meta_stack(names, graph: StandInGraph, **overrides: Any) -> AsyncIterator[Apps]:
    config = {**fx.BENCH_CONFIG, "graph_base_url": graph.base_url}
    channels = {"default": {"messenger": config, "instagram": {**config, "page_id": None}}}
    async with running_apps(names, channels=channels, **overrides) as apps:
        yield apps


async def post_webhook(apps: Apps, payload: dict, headers: dict[str, str] | None = None, path: str = PATH) -> int:
    body = fx.encode(payload)
    response = await apps.intake.post(path, data=body, headers=fx.signed_headers(body) if headers is None else headers)
    await response.read()
    return response.status


async def conversation(apps: Apps, conversation_id: str) -> dict:
    return await (await apps.agents.get(f"/v1/conversations/{conversation_id}", headers=auth())).json()


async def reply_status(apps: Apps, conversation_id: str, wanted: str, timeout: float = 15) -> dict:
    """Poll the conversation until its last message (the reply) has `wanted` status; that message."""
    async with asyncio.timeout(timeout):
        while True:
            last = (await conversation(apps, conversation_id))["messages"][-1]
            if last["direction"] == "outbound" and last["status"] == wanted:
                return last
            await asyncio.sleep(0.05)  # polling an HTTP view; the condition, not the sleep, ends it


async def reply(apps: Apps, conversation_id: str, text: str) -> None:
    response = await apps.agents.post(f"/v1/conversations/{conversation_id}/messages", json={"text": text}, headers=auth())
    assert response.status == 201


async def test_a_messenger_message_reaches_the_desk_and_the_reply_goes_out_and_is_delivered(names):
    async with stand_in_graph() as graph, meta_stack(names, graph) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert await post_webhook(apps, fx.TEXT) == 200
        [assigned] = await desk.frames_until(lambda f: f)
        info = assigned["conversation"]
        assert (info["channel"], info["thread_id"], info["contact"]["id"]) == ("messenger", fx.PSID, fx.PSID)
        assert texts([assigned]) == ["hello, world!"]

        await reply(apps, info["conversation_id"], "Hello! How can I help?")
        node, query, headers, body = await asyncio.wait_for(graph.requests.get(), 15)
        assert node == fx.PAGE_ID and "access_token" not in query
        assert headers["Authorization"] == f"Bearer {fx.ACCESS_TOKEN}"
        assert body == {"recipient": {"id": fx.PSID}, "messaging_type": "RESPONSE", "message": {"text": "Hello! How can I help?"}}

        sent = await reply_status(apps, info["conversation_id"], "sent")
        assert sent["channel_message_id"] == "m_sent-0"
        # A Messenger read names no message, only a watermark: the replies sent up to it are read.
        # This one is from 2016, before the reply: it covers nothing, so the reply can still become
        # "delivered" next (statuses are applied in order, and never go back).
        assert await post_webhook(apps, fx.READ) == 200
        delivery = fx.webhook(fx.event(delivery={"mids": ["m_sent-0"], "watermark": 1458668856253}))
        assert await post_webhook(apps, delivery) == 200
        await reply_status(apps, info["conversation_id"], "delivered")
        read_now = fx.webhook(fx.event(read={"watermark": int(time.time() * 1000) + 1000}))
        assert await post_webhook(apps, read_now) == 200
        await reply_status(apps, info["conversation_id"], "read")


async def test_an_instagram_message_and_its_reply_up_to_read(names):
    async with stand_in_graph() as graph, meta_stack(names, graph) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert await post_webhook(apps, fx.INSTAGRAM_TEXT, path=IG_PATH) == 200
        [assigned] = await desk.frames_until(lambda f: f)
        info = assigned["conversation"]
        assert (info["channel"], info["thread_id"]) == ("instagram", fx.IGSID)

        await reply(apps, info["conversation_id"], "Hi from the shop")
        node, _, _, body = await asyncio.wait_for(graph.requests.get(), 15)
        assert node == "me" and body["recipient"] == {"id": fx.IGSID}
        await reply_status(apps, info["conversation_id"], "sent")
        seen = fx.webhook(fx.event(sender=fx.IGSID, recipient=fx.IG_ACCOUNT_ID, read={"mid": "m_sent-0"}),
                          page_object="instagram", account_id=fx.IG_ACCOUNT_ID)
        assert await post_webhook(apps, seen, path=IG_PATH) == 200
        await reply_status(apps, info["conversation_id"], "read")


async def test_postbacks_and_attachments_reach_the_desk_and_echoes_do_not(names):
    async with stand_in_graph() as graph, meta_stack(names, graph) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        # The image's CDN is the stand-in, which does not serve it (tests/service/test_provider_media.py does).
        cdn = graph.base_url.removesuffix("/v21.0")
        for payload in (fx.ECHO, fx.POSTBACK, fx.on_cdn(fx.IMAGE, cdn)):
            assert await post_webhook(apps, payload) == 200
        frames = await desk.frames_until(lambda f: len(texts(f)) >= 2)
        assert texts(frames) == ["Talk to an agent", "[image]"]
        stored = (await conversation(apps, frames[0]["conversation"]["conversation_id"]))["messages"]
        assert stored[0]["metadata"]["postback_payload"] == "TALK_TO_AGENT"
        [image] = stored[1]["attachments"]
        assert image["url"] == f"{cdn}/v/t1.15752-9/photo.jpg?_nc_cat=1&oh=abc"
        assert (image["attachment_id"], image["error"]) == (None, "provider answered 404")


async def test_forged_and_unsigned_calls_are_refused_and_publish_nothing(names):
    async with stand_in_graph() as graph, meta_stack(names, graph) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        forged = fx.encode(fx.webhook(fx.event(message={"mid": "m_forged", "text": "forged"})))
        response = await apps.intake.post(PATH, data=forged, headers=fx.signed_headers(forged, "guessed-secret"))
        assert response.status == 403 and "error" in await response.json()
        response = await apps.intake.post(PATH, data=forged, headers={"Content-Type": "application/json"})
        assert response.status == 401 and "error" in await response.json()
        assert await post_webhook(apps, fx.TEXT) == 200
        [assigned] = await desk.frames_until(lambda f: f)
        assert texts([assigned]) == ["hello, world!"]


async def test_a_redelivered_webhook_yields_one_message(names):
    async with stand_in_graph() as graph, meta_stack(names, graph) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        for payload in (fx.TEXT, fx.TEXT, fx.POSTBACK_WITHOUT_MID, fx.POSTBACK_WITHOUT_MID):
            assert await post_webhook(apps, payload) == 200
        after = fx.webhook(fx.event(message={"mid": "m_after", "text": "anyone there?"}))
        assert await post_webhook(apps, after) == 200
        frames = await desk.frames_until(lambda f: "anyone there?" in texts(f))
        stored = await conversation(apps, frames[0]["conversation"]["conversation_id"])
        assert [m["text"] for m in stored["messages"]] == ["hello, world!", "Get Started", "anyone there?"]
        assert texts(frames) == ["hello, world!", "Get Started", "anyone there?"]


async def test_bad_bodies_get_json_errors(names):
    async with stand_in_graph() as graph, meta_stack(names, graph) as apps:
        malformed = b'{"object": "page", "entry": [{"messaging": [{'
        response = await apps.intake.post(PATH, data=malformed, headers=fx.signed_headers(malformed))
        assert response.status == 400 and (await response.json())["error"]["message"] == "malformed JSON"
        oversize = b"x" * 100_000
        response = await apps.intake.post(PATH, data=oversize, headers=fx.signed_headers(oversize))
        assert response.status == 413 and "error" in await response.json()
        query = {"hub.mode": "subscribe", "hub.verify_token": "not-ours", "hub.challenge": "42"}
        response = await apps.intake.get(PATH, params=query)
        assert response.status == 403 and "error" in await response.json()


async def test_a_failing_graph_api_marks_the_reply_failed_after_the_retries(names):
    async with stand_in_graph(status=500) as graph, meta_stack(names, graph, send_max_attempts=2, send_retry_delay=0.01) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert await post_webhook(apps, fx.TEXT) == 200
        conversation_id = (await desk.frames_until(lambda f: f))[0]["conversation"]["conversation_id"]
        await reply(apps, conversation_id, "hello")
        failed = await reply_status(apps, conversation_id, "failed")
        assert "Graph API HTTP 500, code 2" in failed["status_reason"] and "after 2 attempts" in failed["status_reason"]
        assert graph.requests.qsize() == 2
