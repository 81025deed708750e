"""The WhatsApp channel on its own: handshake, signature, normalization, sender (no broker, no database).

The webhook runs in a real aiohttp app; publishing goes to a recording broker, the Graph API is
a local aiohttp server.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry

from services.intake.channels import meta, whatsapp
from services.intake.channels.base import SendError, message_id_for
from services.intake.context import INTAKE, Intake, IntakeMetrics
from services.intake.settings import IntakeSettings
from shared.models import Contact, DeliveryStatus, InboundMessage, OutboundMessage, RejectedInput
from shared.web import error_middleware
from tests.fixtures import whatsapp as fx

PATH = "/v1/webhooks/whatsapp/default"


class RecordingBroker:
    """Stands in for the broker in these unit tests: records what would be published, confirms at once."""

    def __init__(self) -> None:
        self.published: list[Any] = []

    async def publish(self, model: Any, routing_key: str, **_: Any) -> None:
        self.published.append(model)


def make_intake(http: aiohttp.ClientSession | None = None, **config: Any) -> Intake:
    settings = IntakeSettings(api_keys={"k": "default"}, max_body_bytes=4096, send_timeout=2)
    configs = {("whatsapp", "default"): whatsapp.WhatsAppConfig.model_validate(fx.BENCH_CONFIG | config)}
    return Intake(settings, RecordingBroker(), http, IntakeMetrics(CollectorRegistry()), None, configs)  # type: ignore[arg-type]


@asynccontextmanager
async def webhook_client() -> AsyncIterator[tuple[TestClient, Intake]]:
    intake = make_intake()
    app = web.Application(middlewares=[error_middleware])
    app[INTAKE] = intake
    app.router.add_routes(whatsapp.PLUGIN.routes)
    async with TestClient(TestServer(app)) as client:
        yield client, intake


async def post(client: TestClient, payload: dict | bytes, headers: dict[str, str] | None = None) -> aiohttp.ClientResponse:
    body = payload if isinstance(payload, bytes) else fx.encode(payload)
    return await client.post(PATH, data=body, headers=fx.signed_headers(body) if headers is None else headers)


def normalized(payload: dict) -> InboundMessage:
    messages, receipts = whatsapp.normalize(whatsapp.Webhook.model_validate(payload), "default")
    assert len(messages) == 1 and not receipts
    return messages[0]


# --- handshake and signature ---


async def test_the_verification_handshake_echoes_the_challenge():
    async with webhook_client() as (client, _):
        query = {"hub.mode": "subscribe", "hub.verify_token": fx.VERIFY_TOKEN, "hub.challenge": "1158201444"}
        response = await client.get(PATH, params=query)
        assert response.status == 200 and await response.text() == "1158201444"
        assert response.content_type == "text/plain"


@pytest.mark.parametrize("query", [
    {"hub.mode": "subscribe", "hub.verify_token": "wrong", "hub.challenge": "1"},
    {"hub.mode": "unsubscribe", "hub.verify_token": fx.VERIFY_TOKEN, "hub.challenge": "1"},
    {"hub.challenge": "1"},
])
async def test_the_handshake_refuses_a_wrong_token_or_mode(query):
    async with webhook_client() as (client, _):
        response = await client.get(PATH, params=query)
        assert response.status == 403 and (await response.json())["error"]["message"]


async def test_an_unconfigured_workspace_is_a_json_404():
    async with webhook_client() as (client, _):
        response = await client.get("/v1/webhooks/whatsapp/nobody", params={"hub.mode": "subscribe"})
        assert response.status == 404 and "not configured" in (await response.json())["error"]["message"]


async def test_a_signed_call_is_published_and_answered_200():
    async with webhook_client() as (client, intake):
        response = await post(client, fx.TEXT)
        assert response.status == 200
        [message] = intake.broker.published
        assert message.text == "Does it come in another color?"


@pytest.mark.parametrize("headers, status", [
    ({"Content-Type": "application/json"}, 401),
    ({"X-Hub-Signature-256": "sha256=" + "0" * 64}, 403),
    ({"X-Hub-Signature-256": fx.sign(fx.encode(fx.TEXT), "another-app-secret")}, 403),
    ({"X-Hub-Signature-256": "md5=abc"}, 403),
])
async def test_unsigned_or_forged_calls_are_refused_and_publish_nothing(headers, status):
    async with webhook_client() as (client, intake):
        response = await post(client, fx.TEXT, headers)
        assert response.status == status
        assert "X-Hub-Signature-256" in (await response.json())["error"]["message"]
        assert intake.broker.published == []


async def test_the_signature_covers_the_raw_bytes():
    """Re-serialising the JSON (other spacing) breaks the signature: it is checked on the bytes as sent."""
    async with webhook_client() as (client, intake):
        signed = fx.encode(fx.TEXT)
        response = await post(client, json.dumps(fx.TEXT, indent=2).encode(), fx.signed_headers(signed))
        assert response.status == 403 and intake.broker.published == []


async def test_a_malformed_or_misshapen_body_is_a_json_400():
    async with webhook_client() as (client, intake):
        response = await post(client, b"{not json")
        assert response.status == 400 and (await response.json())["error"]["message"] == "malformed JSON"
        response = await post(client, {"object": "whatsapp_business_account", "entry": "nope"})
        body = await response.json()
        assert response.status == 400 and body["error"]["problems"][0]["loc"] == ["entry"]
        response = await post(client, {**fx.TEXT, "object": "page"})
        assert response.status == 400 and "expected 'whatsapp_business_account'" in (await response.json())["error"]["message"]
        assert intake.broker.published == []


async def test_an_oversize_body_is_a_json_413_before_anything_else():
    async with webhook_client() as (client, intake):
        response = await post(client, b"x" * 5000, {})
        assert response.status == 413 and "error" in await response.json()
        assert intake.broker.published == []


async def test_every_message_of_a_batch_is_published_in_order():
    async with webhook_client() as (client, intake):
        assert (await post(client, fx.TWO_MESSAGES)).status == 200
        assert [m.text for m in intake.broker.published] == ["first in the batch", "second in the batch"]
        assert [m.contact.name for m in intake.broker.published] == ["Sheena Nelson", "Oliver Smith"]


async def test_a_batch_with_a_customer_known_only_by_bsuid_is_published_whole():
    """A username-only customer's message (no `from`) once made the whole call a 400: Meta retried, then dropped all."""
    async with webhook_client() as (client, intake):
        assert (await post(client, fx.PHONE_AND_USERNAME_BATCH)).status == 200
        assert [(m.thread_id, m.text, m.contact.name) for m in intake.broker.published] == [
            (fx.WA_ID, "from a phone number", "Sheena Nelson"), ("GB.40081232145", "from a username", "@oliver")]


async def test_a_message_from_nobody_is_set_aside_with_its_reason_and_the_rest_of_the_batch_published():
    """One malformed item once made the whole call a 400: Meta retried it, then dropped every message in it."""
    async with webhook_client() as (client, intake):
        nobody = {"id": "wamid.nobody", "timestamp": "1", "type": "text", "text": {"body": "?"}}
        empty_sender = fx.message("wamid.empty", "text", sender="", text={"body": "who?"})
        batch = fx.received(nobody, fx.message("wamid.fine", "text", text={"body": "fine"}), empty_sender)
        assert (await post(client, batch)).status == 200
        first, published, last = intake.broker.published
        assert isinstance(published, InboundMessage) and published.text == "fine"
        assert isinstance(first, RejectedInput) and isinstance(last, RejectedInput)
        assert "from_user_id" in first.reason and json.loads(first.item) == nobody
        assert "from: String should have at least 1 character" in last.reason and first.channel == "whatsapp"


async def test_a_malformed_contact_costs_its_message_the_name_only():
    async with webhook_client() as (client, intake):
        value = fx.messages_value(fx.message("wamid.fine", "text", text={"body": "fine"}),
                                  contacts=[{"wa_id": fx.WA_ID, "profile": {"name": ["not", "a", "name"]}}])
        assert (await post(client, fx.webhook(value))).status == 200
        (message,) = intake.broker.published
        assert message.text == "fine" and message.contact.name is None and message.thread_id == fx.WA_ID


async def test_a_malformed_receipt_is_set_aside_and_the_message_beside_it_published():
    async with webhook_client() as (client, intake):
        value = fx.messages_value(fx.message("wamid.fine", "text", text={"body": "fine"}))
        value["statuses"] = [{"status": "read"}]  # no id
        assert (await post(client, fx.webhook(value))).status == 200
        kinds = [type(item).__name__ for item in intake.broker.published]
        assert kinds == ["InboundMessage", "RejectedInput"] and "id: Field required" in intake.broker.published[1].reason


async def test_a_failing_publish_fails_the_call_so_meta_retries():
    async with webhook_client() as (client, intake):
        async def refuse(*_: Any, **__: Any) -> None:
            raise ConnectionError("broker gone")
        intake.broker.publish = refuse
        response = await post(client, fx.TEXT)
        assert response.status == 503


async def test_status_webhooks_publish_receipts_and_other_fields_are_acknowledged():
    async with webhook_client() as (client, intake):
        for payload in (fx.DELIVERED, fx.READ, fx.TEMPLATE_STATUS_UPDATE):
            assert (await post(client, payload)).status == 200
        assert [(s.status, s.channel_message_id) for s in intake.broker.published] == [
            ("delivered", fx.SENT_WAMID), ("read", fx.SENT_WAMID)]


# --- normalization ---


def test_a_text_message():
    message = normalized(fx.TEXT)
    wamid = fx.TEXT["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
    assert message.message_id == message_id_for("default", "whatsapp", wamid)
    assert message.channel_message_id == wamid and message.thread_id == fx.WA_ID
    assert message.contact == Contact(id=fx.WA_ID, name="Sheena Nelson", phone="+16505551234")
    assert message.metadata == {"whatsapp_type": "text", "phone_number_id": fx.PHONE_NUMBER_ID}


def test_the_same_wamid_is_the_same_message():
    assert normalized(fx.TEXT).message_id == normalized(fx.TEXT).message_id
    assert normalized(fx.TEXT).message_id != normalized(fx.IMAGE).message_id


@pytest.mark.parametrize("payload, text, url, content_type, filename", [
    (fx.IMAGE, "This one, but in blue", "whatsapp:media/1003383421387256", "image/jpeg", None),
    (fx.IMAGE_WITHOUT_CAPTION, "[image]", "whatsapp:media/1003383421387257", "image/jpeg", None),
    (fx.DOCUMENT, "Here is the invoice", "whatsapp:media/1009123425562291", "application/pdf", "invoice-2025-118.pdf"),
    (fx.AUDIO, "[audio]", "whatsapp:media/1003383421387258", "audio/ogg; codecs=opus", None),
    (fx.VIDEO, "[video]", "whatsapp:media/1003383421387259", "video/mp4", None),
    (fx.STICKER, "[sticker]", "whatsapp:media/1003383421387260", "image/webp", None),
])
def test_media_becomes_an_attachment_reference(payload, text, url, content_type, filename):
    message = normalized(payload)
    assert message.text == text
    [attachment] = message.attachments
    assert (attachment.url, attachment.content_type, attachment.filename) == (url, content_type, filename)
    assert attachment.attachment_id is None


def test_a_location():
    message = normalized(fx.LOCATION)
    assert message.text == "[location 37.483307, -122.148981: Main store, 1 Hacker Way, Menlo Park, CA 94025]"
    assert message.metadata["location"]["latitude"] == 37.483307
    assert message.metadata["location"]["name"] == "Main store"


@pytest.mark.parametrize("payload, text, reply", [
    (fx.BUTTON_REPLY, "Change my order", {"type": "button_reply", "id": "change-order", "title": "Change my order"}),
    (fx.LIST_REPLY, "Express shipping", {"type": "list_reply", "id": "priority-express", "title": "Express shipping",
                                         "description": "Next business day"}),
    (fx.QUICK_REPLY_BUTTON, "Talk to an agent", {"type": "button", "title": "Talk to an agent", "payload": "TALK_TO_AGENT"}),
])
def test_button_and_list_replies_give_their_title_and_keep_the_payload(payload, text, reply):
    message = normalized(payload)
    assert message.text == text and message.metadata["reply"] == reply
    assert message.metadata["context_message_id"].startswith("wamid.our-")


def test_a_reaction_a_contact_card_and_an_unsupported_message_still_reach_the_agent():
    reaction = normalized(fx.REACTION)
    assert reaction.text == "[reaction \U0001F44D]" and reaction.metadata["reaction"]["message_id"] == "wamid.our-reply"
    card = normalized(fx.CONTACT_CARD)
    assert card.text == "[contact card: Barbara Johnson +1 (940) 555-1234]" and card.metadata["contacts"]
    unsupported = normalized(fx.UNSUPPORTED)
    assert unsupported.text == "[unsupported message not shown: Message type unknown]"
    assert unsupported.metadata["errors"][0]["code"] == 131051


def test_a_sender_without_a_profile_or_a_phone_like_id():
    payload = fx.received(fx.message("wamid.x", "text", sender="abc", text={"body": "hi"}), contacts=[])
    message = normalized(payload)
    assert message.contact == Contact(id="abc") and message.thread_id == "abc"


def test_a_customer_known_only_by_bsuid_is_threaded_and_named_by_it():
    message = normalized(fx.USERNAME_ONLY)
    assert message.thread_id == fx.BSUID and message.channel_message_id == "wamid.username-only"
    assert message.contact == Contact(id=fx.BSUID, name="Sheena Nelson")  # no phone: none is made up from the BSUID
    assert message.metadata == {"whatsapp_type": "text", "phone_number_id": fx.PHONE_NUMBER_ID,
                                "whatsapp_user_id": fx.BSUID, "whatsapp_username": fx.USERNAME}
    nameless = fx.received(fx.from_username("wamid.x", "text", text={"body": "hi"}),
                           contacts=[{"profile": {"username": fx.USERNAME}, "user_id": fx.BSUID}])
    assert normalized(nameless).contact.name == fx.USERNAME  # as WhatsApp shows such a customer


def test_a_customer_with_phone_and_bsuid_keeps_the_phone_identity_and_records_the_bsuid():
    message = normalized(fx.PHONE_AND_BSUID)
    assert message.thread_id == fx.WA_ID  # threads and contacts made before BSUIDs stay where they are
    assert message.contact == Contact(id=fx.WA_ID, name="Sheena Nelson", phone="+16505551234")
    assert (message.metadata["whatsapp_user_id"], message.metadata["whatsapp_parent_user_id"],
            message.metadata["whatsapp_username"]) == (fx.BSUID, fx.PARENT_BSUID, fx.USERNAME)


def test_statuses_become_receipts_keyed_by_our_wamid():
    def receipts(payload: dict) -> list[DeliveryStatus]:
        messages, found = whatsapp.normalize(whatsapp.Webhook.model_validate(payload), "default")
        assert messages == []
        return found

    [delivered] = receipts(fx.DELIVERED)
    assert (delivered.channel, delivered.channel_message_id, delivered.status) == ("whatsapp", fx.SENT_WAMID, "delivered")
    assert delivered.message_id is None and delivered.reason is None
    [failed] = receipts(fx.FAILED)
    assert failed.status == "failed"
    assert failed.reason.startswith("131047 Re-engagement message: Message failed to send because more than 24 hours")
    assert receipts(fx.status(fx.SENT_WAMID, "deleted")) == []
    # A reply to a username-only customer: the status names them by BSUID alone.
    [read] = receipts(fx.status(fx.SENT_WAMID, "read", recipient={"recipient_user_id": fx.BSUID}))
    assert (read.channel_message_id, read.status) == (fx.SENT_WAMID, "read")


# --- sender ---


@asynccontextmanager
async def graph(handler) -> AsyncIterator[tuple[Intake, str]]:
    """A local stand-in for graph.facebook.com, and an intake whose config points at it."""
    app = web.Application()
    app.router.add_post("/v21.0/{phone_number_id}/messages", handler)
    async with TestServer(app) as server, aiohttp.ClientSession() as http:
        base = str(server.make_url("/v21.0"))
        yield make_intake(http, graph_base_url=base), base


def reply(text: str = "It also comes in blue.", workspace_id: str = "default", thread_id: str = fx.WA_ID) -> OutboundMessage:
    return OutboundMessage(message_id="r1", workspace_id=workspace_id, conversation_id="c1", channel="whatsapp",
                           thread_id=thread_id, contact=Contact(id=thread_id), agent_id="ann", text=text)


async def test_the_sender_posts_a_text_message_and_returns_the_wamid():
    requests: list[tuple[str, dict, dict]] = []

    async def answer(request: web.Request) -> web.Response:
        requests.append((request.match_info["phone_number_id"], dict(request.headers), await request.json()))
        return web.json_response(fx.SEND_ANSWER)

    async with graph(answer) as (intake, _):
        sent = await whatsapp.WhatsAppSender(intake).send(reply())
    assert sent.state == "sent" and sent.channel_message_id == fx.SENT_WAMID
    [(phone_number_id, headers, body)] = requests
    assert phone_number_id == fx.PHONE_NUMBER_ID
    assert headers["Authorization"] == f"Bearer {fx.ACCESS_TOKEN}"
    assert body == {"messaging_product": "whatsapp", "recipient_type": "individual", "to": fx.WA_ID, "type": "text",
                    "text": {"preview_url": False, "body": "It also comes in blue."}}


async def test_the_sender_addresses_a_bsuid_in_recipient_not_to():
    """Meta answers a BSUID put in `to` with a 200 and a wamid, then never delivers: it goes in `recipient`."""
    bodies: list[dict] = []

    async def answer(request: web.Request) -> web.Response:
        bodies.append(await request.json())
        return web.json_response(fx.SEND_ANSWER_BSUID)

    async with graph(answer) as (intake, _):
        sent = await whatsapp.WhatsAppSender(intake).send(reply("On its way.", thread_id=fx.BSUID))
        await whatsapp.WhatsAppSender(intake).send(reply("On its way.", thread_id=fx.PARENT_BSUID))
    assert sent.channel_message_id == fx.SENT_WAMID
    assert bodies[0] == {"messaging_product": "whatsapp", "recipient_type": "individual", "recipient": fx.BSUID,
                         "type": "text", "text": {"preview_url": False, "body": "On its way."}}
    assert bodies[1]["recipient"] == fx.PARENT_BSUID and "to" not in bodies[1]


@pytest.mark.parametrize("status, document, retry", [
    (500, {"error": {"message": "An unknown error occurred", "code": 1}}, True),
    (503, None, True),
    (429, fx.THROTTLED, True),
    (400, fx.THROTTLED, True),  # throughput limit reported with a 400: the code decides
    (400, fx.INVALID_RECIPIENT, False),
    (401, {"error": {"message": "Invalid OAuth access token.", "code": 190}}, False),
])
async def test_graph_errors_say_whether_to_retry(status, document, retry):
    async def answer(_: web.Request) -> web.Response:
        if document is None:
            return web.Response(status=status, text="<html>upstream trouble</html>")
        return web.json_response(document, status=status)

    async with graph(answer) as (intake, _):
        with pytest.raises(SendError) as raised:
            await whatsapp.WhatsAppSender(intake).send(reply())
    assert raised.value.retry is retry
    assert f"HTTP {status}" in raised.value.reason
    if document is not None:
        assert str(document["error"]["code"]) in raised.value.reason
    assert fx.ACCESS_TOKEN not in raised.value.reason


async def test_an_unreachable_or_slow_graph_is_retried():
    released = asyncio.Event()

    async def slow(_: web.Request) -> web.Response:
        await released.wait()  # a provider that answers only after our timeout
        return web.json_response(fx.SEND_ANSWER)

    async with graph(slow) as (intake, _):
        intake.settings.send_timeout = 0.2
        with pytest.raises(SendError) as raised:
            await whatsapp.WhatsAppSender(intake).send(reply())
        assert raised.value.retry is True
        intake.configs[("whatsapp", "default")] = intake.configs[("whatsapp", "default")].model_copy(
            update={"graph_base_url": "http://127.0.0.1:9"})
        with pytest.raises(SendError) as raised:
            await whatsapp.WhatsAppSender(intake).send(reply())
        assert raised.value.retry is True and "unreachable" in raised.value.reason
        released.set()


async def test_no_config_or_too_long_a_text_fails_without_a_call():
    async def never(_: web.Request) -> web.Response:
        raise AssertionError("no call expected")

    async with graph(never) as (intake, _):
        with pytest.raises(SendError) as raised:
            await whatsapp.WhatsAppSender(intake).send(reply(workspace_id="other"))
        assert raised.value.retry is False and "not configured" in raised.value.reason
        with pytest.raises(SendError) as raised:
            await whatsapp.WhatsAppSender(intake).send(reply("x" * 4097))
        assert raised.value.retry is False and "4096" in raised.value.reason


def test_the_config_requires_its_credentials_and_defaults_the_graph_url():
    config = whatsapp.WhatsAppConfig.model_validate(fx.BENCH_CONFIG)
    assert config.graph_base_url == "https://graph.facebook.com/v21.0"
    with pytest.raises(ValueError):
        whatsapp.WhatsAppConfig.model_validate({k: v for k, v in fx.BENCH_CONFIG.items() if k != "phone_number_id"})
    with pytest.raises(ValueError):
        whatsapp.WhatsAppConfig.model_validate(fx.BENCH_CONFIG | {"app_secrt": "typo"})


def test_the_bench_request_is_a_valid_signed_call():
    path, headers, body = fx.bench_request("acme", fx.BENCH_CONFIG, 7)
    assert path == "/v1/webhooks/whatsapp/acme"
    assert headers["X-Hub-Signature-256"] == meta.signature_for(fx.APP_SECRET, body)
    assert normalized(json.loads(body)).text == "bench message 7"
    assert fx.bench_request("acme", fx.BENCH_CONFIG, 8)[2] != body
