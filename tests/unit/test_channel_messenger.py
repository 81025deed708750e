"""The Messenger and Instagram channels on their own: handshake, signature, normalization, sender.

The webhook runs in a real aiohttp app; publishing goes to a recording broker, the Graph API is
a local aiohttp server. (No broker, no database: those are in the service tests.)
"""

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from services.intake.channels import messenger, meta
from services.intake.channels.base import SendError, message_id_for
from services.intake.context import INTAKE, Intake, IntakeMetrics
from services.intake.settings import IntakeSettings
from shared.models import Contact, DeliveryStatus, InboundMessage, OutboundMessage, RejectedInput
from shared.web import error_middleware
from tests.fixtures import messenger as fx

PATH = "/v1/webhooks/messenger/default"
IG_PATH = "/v1/webhooks/instagram/default"


class RecordingBroker:
    """Stands in for the broker in these unit tests: records what would be published, confirms at once."""

    def __init__(self) -> None:
        self.published: list[Any] = []

    async def publish(self, model: Any, routing_key: str, **_: Any) -> None:
        self.published.append(model)


def make_intake(http: aiohttp.ClientSession | None = None, **config: Any) -> Intake:
    settings = IntakeSettings(api_keys={"k": "default"}, max_body_bytes=4096, send_timeout=2)
    configs = {
        ("messenger", "default"): messenger.MessengerConfig.model_validate(fx.BENCH_CONFIG | config),
        ("instagram", "default"): messenger.InstagramConfig.model_validate(fx.BENCH_CONFIG | {"page_id": None} | config),
    }
    return Intake(settings, RecordingBroker(), http, IntakeMetrics(CollectorRegistry()), None, configs)  # type: ignore[arg-type]


@asynccontextmanager
async def webhook_client() -> AsyncIterator[tuple[TestClient, Intake]]:
    intake = make_intake()
    app = web.Application(middlewares=[error_middleware])
    app[INTAKE] = intake
    app.router.add_routes(messenger.PLUGIN.routes)
    app.router.add_routes(messenger.INSTAGRAM_PLUGIN.routes)
    async with TestClient(TestServer(app)) as client:
        yield client, intake


async def post(client: TestClient, payload: dict | bytes, headers: dict[str, str] | None = None, path: str = PATH):
    body = payload if isinstance(payload, bytes) else fx.encode(payload)
    return await client.post(path, data=body, headers=fx.signed_headers(body) if headers is None else headers)


def items(payload: dict, channel: str = "messenger") -> list[InboundMessage | DeliveryStatus]:
    return messenger.normalize(messenger.Webhook.model_validate(payload), "default", channel)


def one_message(payload: dict, channel: str = "messenger") -> InboundMessage:
    [message] = items(payload, channel)
    assert isinstance(message, InboundMessage)
    return message


# --- handshake and signature ---


@pytest.mark.parametrize("path", [PATH, IG_PATH])
async def test_the_verification_handshake(path):
    async with webhook_client() as (client, _):
        ok = {"hub.mode": "subscribe", "hub.verify_token": fx.VERIFY_TOKEN, "hub.challenge": "CHALLENGE_ACCEPTED"}
        response = await client.get(path, params=ok)
        assert response.status == 200 and await response.text() == "CHALLENGE_ACCEPTED"
        response = await client.get(path, params=ok | {"hub.verify_token": "guess"})
        assert response.status == 403


@pytest.mark.parametrize("headers, status", [
    ({"Content-Type": "application/json"}, 401),
    ({"X-Hub-Signature-256": ""}, 401),
    ({"X-Hub-Signature-256": fx.sign(fx.encode(fx.TEXT), "not-the-app-secret")}, 403),
    ({"X-Hub-Signature-256": fx.sign(b"another body")}, 403),
])
async def test_unsigned_or_forged_calls_are_refused_and_publish_nothing(headers, status):
    async with webhook_client() as (client, intake):
        response = await post(client, fx.TEXT, headers)
        assert response.status == status and (await response.json())["error"]["message"]
        assert intake.broker.published == []


async def test_a_signed_batch_is_published_in_order_and_answered_200():
    async with webhook_client() as (client, intake):
        response = await post(client, fx.BATCH)
        assert response.status == 200
        published = intake.broker.published
        assert [m.text for m in published[:2]] == ["first in the batch", "second in the batch"]
        assert isinstance(published[2], DeliveryStatus) and published[2].status == "delivered"


async def test_bad_bodies_get_json_errors_and_publish_nothing():
    async with webhook_client() as (client, intake):
        response = await post(client, b"[1, 2")
        assert response.status == 400 and (await response.json())["error"]["message"] == "malformed JSON"
        response = await post(client, {"object": "page", "entry": "nope"})
        assert response.status == 400 and (await response.json())["error"]["problems"][0]["loc"] == ["entry"]
        response = await post(client, fx.INSTAGRAM_TEXT)  # an Instagram event at the Messenger URL
        assert response.status == 400 and "expected 'page'" in (await response.json())["error"]["message"]
        response = await post(client, b"x" * 5000, {})
        assert response.status == 413
        assert intake.broker.published == []


async def test_a_malformed_event_is_set_aside_with_its_reason_and_the_rest_of_the_batch_published():
    """Meta retries the whole call on any non-2xx: one bad event must not hold back the others."""
    async with webhook_client() as (client, intake):
        bad = {"message": {"text": "no sender"}}
        batch = fx.webhook(bad, *fx.BATCH["entry"][0]["messaging"])
        assert (await post(client, batch)).status == 200
        rejected, *rest = intake.broker.published
        assert isinstance(rejected, RejectedInput) and json.loads(rejected.item) == bad
        assert "sender: Field required" in rejected.reason and rejected.channel == "messenger"
        assert [m.text for m in rest if isinstance(m, InboundMessage)][:2] == ["first in the batch", "second in the batch"]


async def test_instagram_events_come_in_at_their_own_url_as_their_own_channel():
    async with webhook_client() as (client, intake):
        assert (await post(client, fx.INSTAGRAM_TEXT, path=IG_PATH)).status == 200
        assert (await post(client, fx.INSTAGRAM_SEEN, path=IG_PATH)).status == 200
        message, seen = intake.broker.published
        assert (message.channel, message.thread_id, message.text) == ("instagram", fx.IGSID, "hi from instagram")
        assert (seen.channel, seen.status) == ("instagram", "read")
        response = await post(client, fx.TEXT, path=IG_PATH)
        assert response.status == 400 and "expected 'instagram'" in (await response.json())["error"]["message"]


# --- normalization ---


def test_a_text_message():
    message = one_message(fx.TEXT)
    assert message.message_id == message_id_for("default", "messenger", "m_1457764197618:41d102a3e1ae206a38")
    assert message.channel_message_id == "m_1457764197618:41d102a3e1ae206a38"
    assert message.thread_id == fx.PSID and message.contact == Contact(id=fx.PSID)
    assert message.text == "hello, world!" and message.metadata == {"account_id": fx.PAGE_ID}


def test_a_quick_reply_and_a_reply_keep_their_facts():
    quick = one_message(fx.QUICK_REPLY)
    assert quick.text == "Red" and quick.metadata["quick_reply_payload"] == "DEVELOPER_DEFINED_PAYLOAD_FOR_PICKING_RED"
    assert one_message(fx.REPLY_TO).metadata["reply_to_mid"] == "m_earlier-1"


@pytest.mark.parametrize("payload, text, content_types", [
    (fx.IMAGE, "[image]", ["image/*"]),
    (fx.FILE_WITH_TEXT, "the receipt [file]", ["application/octet-stream"]),
    (fx.AUDIO_AND_VIDEO, "[audio] [video]", ["audio/*", "video/*"]),
    (fx.STICKER, "[sticker]", ["image/*"]),
])
def test_attachments_keep_their_cdn_url(payload, text, content_types):
    message = one_message(payload)
    sent = payload["entry"][0]["messaging"][0]["message"]["attachments"]
    assert message.text == text
    assert [a.url for a in message.attachments] == [a["payload"]["url"] for a in sent]
    assert [a.content_type for a in message.attachments] == content_types
    assert message.metadata["attachment_types"] == [a["type"] for a in sent]


def test_a_location_and_a_fallback_link_are_readable():
    location = one_message(fx.LOCATION)
    assert location.text == "[location 52.520008, 13.404954]" and location.attachments == []
    assert location.metadata["location"] == {"latitude": 52.520008, "longitude": 13.404954, "title": "Main store"}
    link = one_message(fx.FALLBACK)
    assert link.text == "look at this [link Our spring collection https://example.com/spring]"


def test_an_overlong_cdn_url_becomes_a_reference():
    payload = fx.webhook(fx.event(message={"mid": "m_long", "attachments": [
        {"type": "image", "payload": {"url": "https://scontent.xx.fbcdn.net/" + "a" * 3000}}]}))
    [attachment] = one_message(payload).attachments
    assert attachment.url == "messenger:attachment/m_long/0"


def test_postbacks_are_messages_deduplicated_by_mid_or_sender_and_time():
    press = one_message(fx.POSTBACK)
    assert press.text == "Talk to an agent" and press.channel_message_id == "m_postback-1"
    assert press.metadata["postback_payload"] == "TALK_TO_AGENT"
    old = one_message(fx.POSTBACK_WITHOUT_MID)
    assert old.channel_message_id == f"{fx.PSID}:1458692752999"
    assert old.message_id == one_message(fx.POSTBACK_WITHOUT_MID).message_id


def test_deliveries_become_receipts_and_watermarks_cover_the_thread_up_to_their_time():
    [delivered] = items(fx.DELIVERY)
    assert (delivered.channel, delivered.channel_message_id, delivered.status) == ("messenger", fx.SENT_MID, "delivered")
    watermark_time = datetime(2016, 3, 22, 17, 47, 36, 253000, tzinfo=UTC)  # 1458668856253 ms
    [up_to_delivered] = items(fx.DELIVERY_WITHOUT_MIDS)
    [read] = items(fx.READ)  # Messenger reads carry only a watermark
    for status, state in ((up_to_delivered, "delivered"), (read, "read")):
        assert status.is_watermark and status.channel_message_id is None
        assert (status.channel, status.thread_id, status.up_to, status.status) == ("messenger", fx.PSID, watermark_time, state)
    unusable = fx.webhook(fx.event(read={"watermark": 10**20}), fx.event(read={}))
    assert items(unusable) == []


def test_echoes_unsends_and_other_events_publish_nothing():
    assert items(fx.ECHO) == []
    assert items(fx.INSTAGRAM_UNSEND, "instagram") == []
    optin = fx.webhook(fx.event(optin={"ref": "landing-page"}))
    assert items(optin) == []
    guest = fx.webhook({"sender": {"user_ref": "guest-1"}, "recipient": {"id": fx.PAGE_ID}, "timestamp": 1,
                        "message": {"mid": "m_guest", "text": "hi"}})
    assert items(guest) == []


def test_instagram_reads_name_the_message():
    [seen] = items(fx.INSTAGRAM_SEEN, "instagram")
    assert (seen.channel, seen.channel_message_id, seen.status) == (
        "instagram", "aWdfZAG1faXRlbToxOklHTWVzc2FnZUlEOjE3ODQy", "read")


# --- sender ---


@asynccontextmanager
async def graph(handler) -> AsyncIterator[Intake]:
    """A local stand-in for graph.facebook.com, and an intake whose configs point at it."""
    app = web.Application()
    app.router.add_post("/v21.0/{node}/messages", handler)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        yield make_intake(http, graph_base_url=str(server.make_url("/v21.0")))


def reply(text: str = "Happy to help", channel: str = "messenger", workspace_id: str = "default") -> OutboundMessage:
    return OutboundMessage(message_id="r1", workspace_id=workspace_id, conversation_id="c1", channel=channel,
                           thread_id=fx.PSID, contact=Contact(id=fx.PSID), agent_id="ann", text=text)


async def test_the_sender_posts_to_the_page_and_returns_the_mid():
    requests: list[tuple[str, dict, dict, dict]] = []

    async def answer(request: web.Request) -> web.Response:
        requests.append((request.match_info["node"], dict(request.query), dict(request.headers), await request.json()))
        return web.json_response(fx.SEND_ANSWER)

    async with graph(answer) as intake:
        sent = await messenger.MessengerSender(intake).send(reply())
        assert sent.state == "sent" and sent.channel_message_id == fx.SENT_MID
        await messenger.MessengerSender(intake, "instagram").send(reply("hello there", "instagram"))
    (node, query, headers, body), (ig_node, _, _, ig_body) = requests
    assert node == fx.PAGE_ID and query == {}  # the token is in the header, never in the URL
    assert headers["Authorization"] == f"Bearer {fx.ACCESS_TOKEN}"
    assert body == {"recipient": {"id": fx.PSID}, "messaging_type": "RESPONSE", "message": {"text": "Happy to help"}}
    assert ig_node == "me" and ig_body["message"] == {"text": "hello there"}


async def test_the_human_agent_tag_when_configured():
    bodies: list[dict] = []

    async def answer(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.json_response(fx.SEND_ANSWER)

    async with graph(answer) as intake:
        key = ("messenger", "default")
        intake.configs[key] = intake.configs[key].model_copy(update={"human_agent_tag": True})
        await messenger.MessengerSender(intake).send(reply())
    assert bodies[0]["messaging_type"] == "MESSAGE_TAG" and bodies[0]["tag"] == "HUMAN_AGENT"


@pytest.mark.parametrize("status, document, retry", [
    (500, {"error": {"message": "An unexpected error has occurred.", "code": 2}}, True),
    (429, None, True),
    (400, fx.THROTTLED, True),
    (400, fx.OUTSIDE_WINDOW, False),
    (403, {"error": {"message": "(#200) Requires pages_messaging permission", "code": 200}}, False),
])
async def test_graph_errors_say_whether_to_retry(status, document, retry):
    async def answer(_: web.Request) -> web.Response:
        return web.json_response(document, status=status) if document else web.Response(status=status)

    async with graph(answer) as intake:
        with pytest.raises(SendError) as raised:
            await messenger.MessengerSender(intake).send(reply())
    assert raised.value.retry is retry and f"HTTP {status}" in raised.value.reason
    if document is fx.OUTSIDE_WINDOW:
        assert "code 10/2018278: (#10) This message is sent outside of allowed window." in raised.value.reason


async def test_no_config_or_too_long_a_text_fails_without_a_call():
    async def never(_: web.Request) -> web.Response:
        raise AssertionError("no call expected")

    async with graph(never) as intake:
        for message, expected in [
            (reply(workspace_id="other"), "not configured"),
            (reply("x" * 2001), "2001 characters, messenger allows 2000"),
            (reply("é" * 501, "instagram"), "1002 bytes, instagram allows 1000"),
        ]:
            with pytest.raises(SendError) as raised:
                await messenger.MessengerSender(intake, message.channel).send(message)
            assert raised.value.retry is False and expected in raised.value.reason


def test_the_bench_request_is_a_valid_signed_call():
    path, headers, body = fx.bench_request("acme", fx.BENCH_CONFIG, 3)
    assert path == "/v1/webhooks/messenger/acme"
    assert headers["X-Hub-Signature-256"] == meta.signature_for(fx.APP_SECRET, body)
    assert one_message(json.loads(body)).text == "bench message 3"
