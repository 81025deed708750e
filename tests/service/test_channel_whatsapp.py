"""WhatsApp over the real broker and database: webhook in, desk, reply out to a stand-in Graph API, receipts."""

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aio_pika
from aiohttp import web

from shared.models import RejectedInput
from tests.conftest import auth
from tests.fixtures import whatsapp as fx
from tests.service.helpers import Apps, running_apps, stand_in_server, texts

PATH = "/v1/webhooks/whatsapp/default"


@dataclass
class StandInGraph:
    """A local server answering like graph.facebook.com's send endpoint; records every request."""

    status: int = 200
    requests: asyncio.Queue = field(default_factory=asyncio.Queue)
    base_url: str = ""
    _ids: Any = field(default_factory=itertools.count)

    async def messages(self, request: web.Request) -> web.Response:
        self.requests.put_nowait((request.match_info["phone_number_id"], dict(request.headers), await request.json()))
        if self.status != 200:
            return web.json_response({"error": {"message": "An unknown error occurred", "type": "OAuthException", "code": 1}},
                                     status=self.status)
        wamid = f"wamid.sent-{next(self._ids)}"
        return web.json_response({**fx.SEND_ANSWER, "messages": [{"id": wamid}]})


@asynccontextmanager
async def stand_in_graph(status: int = 200) -> AsyncIterator[StandInGraph]:
    graph = StandInGraph(status=status)
    async with stand_in_server(("POST", "/v21.0/{phone_number_id}/messages", graph.messages)) as base:
        graph.base_url = f"{base}/v21.0"
        yield graph


@asynccontextmanager
async def whatsapp_stack(names, graph: StandInGraph, **overrides: Any) -> AsyncIterator[Apps]:
    channels = {"default": {"whatsapp": {**fx.BENCH_CONFIG, "graph_base_url": graph.base_url}}}
    async with running_apps(names, channels=channels, **overrides) as apps:
        yield apps


async def post_webhook(apps: Apps, payload: dict, headers: dict[str, str] | None = None) -> int:
    body = fx.encode(payload)
    response = await apps.intake.post(PATH, data=body, headers=fx.signed_headers(body) if headers is None else headers)
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


async def test_a_whatsapp_message_reaches_the_desk_and_the_reply_goes_out_with_receipts(names):
    async with stand_in_graph() as graph, whatsapp_stack(names, graph) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert await post_webhook(apps, fx.TEXT) == 200
        [assigned] = await desk.frames_until(lambda f: f)
        assert assigned["type"] == "conversation.assigned"
        info = assigned["conversation"]
        assert (info["channel"], info["thread_id"]) == ("whatsapp", fx.WA_ID)
        assert info["contact"] == {"id": fx.WA_ID, "name": "Sheena Nelson", "email": None, "phone": "+16505551234"}
        assert texts([assigned]) == ["Does it come in another color?"]

        conversation_id = info["conversation_id"]
        response = await apps.agents.post(f"/v1/conversations/{conversation_id}/messages",
                                          json={"text": "Yes, in blue and green."}, headers=auth())
        assert response.status == 201
        phone_number_id, headers, body = await asyncio.wait_for(graph.requests.get(), 15)
        assert phone_number_id == fx.PHONE_NUMBER_ID and headers["Authorization"] == f"Bearer {fx.ACCESS_TOKEN}"
        assert body["to"] == fx.WA_ID and body["messaging_product"] == "whatsapp"
        assert body["type"] == "text" and body["text"]["body"] == "Yes, in blue and green."

        sent = await reply_status(apps, conversation_id, "sent")
        assert sent["channel_message_id"] == "wamid.sent-0"
        # Meta then reports delivery and reading, naming the wamid its send answer gave.
        assert await post_webhook(apps, fx.status("wamid.sent-0", "delivered")) == 200
        await reply_status(apps, conversation_id, "delivered")
        assert await post_webhook(apps, fx.status("wamid.sent-0", "read")) == 200
        await reply_status(apps, conversation_id, "read")


async def test_a_customer_known_only_by_bsuid_is_answered_by_bsuid_with_receipts(names):
    """A customer who adopted a username: no phone number anywhere, the BSUID names them both ways."""
    async with stand_in_graph() as graph, whatsapp_stack(names, graph) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert await post_webhook(apps, fx.PHONE_AND_USERNAME_BATCH) == 200
        frames = await desk.frames_until(lambda f: len(texts(f)) >= 2)
        by_text = {texts([f])[0]: f["conversation"] for f in frames}
        info = by_text["from a username"]
        assert (info["thread_id"], info["contact"]["id"], info["contact"]["phone"]) == ("GB.40081232145",) * 2 + (None,)
        assert by_text["from a phone number"]["thread_id"] == fx.WA_ID

        conversation_id = info["conversation_id"]
        response = await apps.agents.post(f"/v1/conversations/{conversation_id}/messages",
                                          json={"text": "It ships today."}, headers=auth())
        assert response.status == 201
        _, _, body = await asyncio.wait_for(graph.requests.get(), 15)
        assert body["recipient"] == "GB.40081232145" and "to" not in body
        assert body["recipient_type"] == "individual" and body["text"]["body"] == "It ships today."
        sent = await reply_status(apps, conversation_id, "sent")
        delivered = fx.status(sent["channel_message_id"], "delivered", recipient={"recipient_user_id": "GB.40081232145"})
        assert await post_webhook(apps, delivered) == 200
        await reply_status(apps, conversation_id, "delivered")


async def test_every_message_of_a_batched_call_arrives(names):
    async with stand_in_graph() as graph, whatsapp_stack(names, graph) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert await post_webhook(apps, fx.TWO_MESSAGES) == 200
        frames = await desk.frames_until(lambda f: len(texts(f)) >= 2)
        assert sorted(texts(frames)) == ["first in the batch", "second in the batch"]
        assert {f["conversation"]["contact"]["phone"] for f in frames} == {"+16505551234", "+447700900123"}


async def test_a_malformed_message_is_kept_on_the_rejected_queue_and_its_neighbours_reach_the_desk(names):
    async with stand_in_graph() as graph, whatsapp_stack(names, graph) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        nobody = {"id": "wamid.nobody", "timestamp": "1", "type": "text", "text": {"body": "?"}}
        batch = fx.received(fx.message("wamid.fine", "text", text={"body": "fine"}), nobody)
        assert await post_webhook(apps, batch) == 200
        frames = await desk.frames_until(lambda f: "fine" in texts(f))
        assert texts(frames) == ["fine"]
        rejected = RejectedInput.model_validate_json(await next_rejected(names))
        assert rejected.channel == "whatsapp" and "from_user_id" in rejected.reason
        assert json.loads(rejected.item) == nobody


async def next_rejected(names) -> bytes:
    """The next item on the namespace's rejected-input queue (what an operator would read)."""
    connection = await aio_pika.connect(names.infra.amqp_url)
    async with connection, asyncio.timeout(15):
        channel = await connection.channel()
        queue = await channel.declare_queue(names.topology.rejected_input_queue, passive=True)
        async with queue.iterator() as messages:
            async for message in messages:
                await message.ack()
                return message.body
    raise AssertionError("the rejected-input queue ended")


async def test_media_and_button_replies_reach_the_desk_with_their_facts(names):
    async with stand_in_graph() as graph, whatsapp_stack(names, graph) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        for payload in (fx.DOCUMENT, fx.BUTTON_REPLY):
            assert await post_webhook(apps, payload) == 200
        frames = await desk.frames_until(lambda f: len(texts(f)) >= 2)
        assert texts(frames) == ["Here is the invoice", "Change my order"]
        stored = (await conversation(apps, frames[0]["conversation"]["conversation_id"]))["messages"]
        assert stored[0]["attachments"][0]["url"] == "whatsapp:media/1009123425562291"
        assert stored[1]["metadata"]["reply"]["id"] == "change-order"


async def test_forged_and_unsigned_calls_are_refused_and_publish_nothing(names):
    async with stand_in_graph() as graph, whatsapp_stack(names, graph) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        forged = fx.encode(fx.received(fx.message("wamid.forged", "text", text={"body": "forged"})))
        response = await apps.intake.post(PATH, data=forged, headers=fx.signed_headers(forged, "guessed-secret"))
        assert response.status == 403 and "error" in await response.json()
        response = await apps.intake.post(PATH, data=forged, headers={"Content-Type": "application/json"})
        assert response.status == 401 and "error" in await response.json()
        assert await post_webhook(apps, fx.TEXT) == 200
        [assigned] = await desk.frames_until(lambda f: f)
        assert texts([assigned]) == ["Does it come in another color?"]  # nothing of the forged calls came first


async def test_a_redelivered_webhook_yields_one_message(names):
    async with stand_in_graph() as graph, whatsapp_stack(names, graph) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        for _ in range(3):
            assert await post_webhook(apps, fx.TEXT) == 200
        # A later message of the conversation redelivered too (Meta retries when our 200 was lost).
        after = fx.received(fx.message("wamid.after", "text", text={"body": "and one more thing"}))
        last = fx.received(fx.message("wamid.last", "text", text={"body": "thanks"}))
        for payload in (after, after, last):
            assert await post_webhook(apps, payload) == 200
        frames = await desk.frames_until(lambda f: "thanks" in texts(f))
        expected = ["Does it come in another color?", "and one more thing", "thanks"]
        stored = await conversation(apps, frames[0]["conversation"]["conversation_id"])
        assert [m["text"] for m in stored["messages"]] == expected
        assert texts(frames) == expected


async def test_bad_bodies_get_json_errors(names):
    async with stand_in_graph() as graph, whatsapp_stack(names, graph) as apps:
        malformed = b'{"object": "whatsapp_business_account", "entry": ['
        response = await apps.intake.post(PATH, data=malformed, headers=fx.signed_headers(malformed))
        assert response.status == 400 and (await response.json())["error"]["message"] == "malformed JSON"
        oversize = b"x" * 100_000
        response = await apps.intake.post(PATH, data=oversize, headers=fx.signed_headers(oversize))
        assert response.status == 413 and "error" in await response.json()
        query = {"hub.mode": "subscribe", "hub.verify_token": fx.VERIFY_TOKEN, "hub.challenge": "42"}
        response = await apps.intake.get(PATH, params=query)
        assert response.status == 200 and await response.text() == "42"
        response = await apps.intake.get("/v1/webhooks/whatsapp/other", params=query)
        assert response.status == 404 and "error" in await response.json()


async def test_a_failing_graph_api_marks_the_reply_failed_after_the_retries(names):
    async with stand_in_graph(status=500) as graph, whatsapp_stack(names, graph, send_max_attempts=2, send_retry_delay=0.01) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert await post_webhook(apps, fx.TEXT) == 200
        conversation_id = (await desk.frames_until(lambda f: f))[0]["conversation"]["conversation_id"]
        await apps.agents.post(f"/v1/conversations/{conversation_id}/messages", json={"text": "hello"}, headers=auth())
        failed = await reply_status(apps, conversation_id, "failed")
        assert "Graph API HTTP 500" in failed["status_reason"] and "after 2 attempts" in failed["status_reason"]
        assert graph.requests.qsize() == 2
