"""The Telegram channel's pure parts: the secret token check, Update normalization, the sender's error mapping."""

import json
from types import SimpleNamespace

import aiohttp
import pytest
from aiohttp import web
from pydantic import ValidationError

from services.intake.channels import telegram
from services.intake.channels.base import SendError, message_id_for
from shared.models import Contact, OutboundMessage
from tests.conftest import free_port, serve
from tests.fixtures import telegram as fx

CONFIG = telegram.TelegramConfig(**fx.BENCH_CONFIG)


def normalize(payload: dict, workspace_id: str = "default"):
    return telegram.normalize(telegram.parse_update(fx.body(payload)), workspace_id)


# -- the secret token ----------------------------------------------------------------------------


def test_the_configured_secret_token_is_accepted():
    assert telegram.verify_secret_token(CONFIG, fx.SECRET_TOKEN) is None


def test_a_missing_secret_token_is_refused_as_missing():
    assert telegram.verify_secret_token(CONFIG, None) == "missing"
    assert telegram.verify_secret_token(CONFIG, "") == "missing"


def test_a_wrong_secret_token_is_refused_as_wrong():
    assert telegram.verify_secret_token(CONFIG, fx.SECRET_TOKEN + "x") == "wrong"
    assert telegram.verify_secret_token(CONFIG, "other-secret") == "wrong"
    assert telegram.verify_secret_token(CONFIG, "sécret") == "wrong"  # non-ASCII compares, never raises


def test_a_secret_token_telegram_would_refuse_is_a_config_error():
    with pytest.raises(ValidationError):
        telegram.TelegramConfig(bot_token="1:x", secret_token="has spaces")
    assert CONFIG.base_url == "https://api.telegram.org"


# -- normalization -------------------------------------------------------------------------------


def test_a_text_message_is_keyed_by_chat_and_message_id():
    message = normalize(fx.TEXT)
    assert message.channel == "telegram"
    assert message.channel_message_id == f"{fx.CHAT_ID}:1365"
    assert message.message_id == message_id_for("default", "telegram", f"{fx.CHAT_ID}:1365")
    assert message.thread_id == str(fx.CHAT_ID)
    assert message.contact == Contact(id=str(fx.USER["id"]), name="Ada Lovelace")
    assert message.text == "Hello, my parcel has not arrived"
    assert message.attachments == []
    assert message.metadata["telegram_message_id"] == 1365


def test_the_same_update_twice_gives_the_same_message_id():
    assert normalize(fx.TEXT).message_id == normalize(fx.TEXT).message_id
    assert normalize(fx.TEXT, "other").message_id != normalize(fx.TEXT).message_id


def test_a_photo_is_referenced_by_its_largest_size_and_its_caption_is_the_text():
    message = normalize(fx.PHOTO)
    assert message.text == "the damaged box"
    (photo,) = message.attachments
    assert photo.url == "telegram:file/AgACAgQAAxkBAAIBlarge"
    assert photo.content_type == "image/jpeg" and photo.size == 98211


def test_a_photo_without_caption_gets_a_readable_text():
    message = normalize(fx.PHOTO_WITHOUT_CAPTION)
    assert message.text == "[photo]"
    assert message.attachments[0].url == "telegram:file/AgACAgQAAxkBAAIBonly"


def test_a_document_keeps_its_name_type_and_size():
    message = normalize(fx.DOCUMENT)
    (document,) = message.attachments
    assert document.url == "telegram:file/BQACAgQAAxkBAAIBdoc"
    assert (document.filename, document.content_type, document.size) == ("invoice-2024-118.pdf", "application/pdf", 48213)
    assert message.text == "[document invoice-2024-118.pdf]"


def test_an_edit_is_a_new_message_pointing_at_the_original():
    original, edited = normalize(fx.TEXT), normalize(fx.EDITED)
    assert edited.channel_message_id == f"{fx.CHAT_ID}:1365:edit:1441645600"
    assert edited.message_id != original.message_id
    assert edited.metadata["edited"] is True
    assert edited.metadata["original_message_id"] == original.channel_message_id
    assert edited.metadata["telegram_message_id"] == 1365
    assert edited.text == "[edited] Hello, my parcel has not arrived (order 42)"
    assert edited.thread_id == original.thread_id


def test_start_opens_a_conversation_with_the_command_in_metadata():
    message = normalize(fx.START)
    assert message.text == "/start"
    assert message.metadata["command"] == "start" and "start_payload" not in message.metadata


def test_a_deep_linked_start_keeps_its_payload():
    message = normalize(fx.START_WITH_PAYLOAD)
    assert message.text == "/start"
    assert message.metadata["start_payload"] == "order-42"


def test_start_addressed_to_the_bot_in_a_group_is_still_start():
    payload = fx.update(1, message=fx.message(5, text="/start@ShopBot vip"))
    message = normalize(payload)
    assert (message.text, message.metadata["command"], message.metadata["start_payload"]) == ("/start", "start", "vip")


def test_other_commands_stay_plain_text():
    message = normalize(fx.update(1, message=fx.message(6, text="/help me")))
    assert message.text == "/help me" and "command" not in message.metadata


def test_a_button_press_is_a_reply_in_the_chat_of_the_button():
    message = normalize(fx.CALLBACK_QUERY)
    assert message.channel_message_id == "callback:4382bfdwdsb323b2d9"
    assert message.thread_id == str(fx.CHAT_ID)
    assert message.contact.id == str(fx.USER["id"])
    assert message.text == "[button] yes_refund"
    assert message.metadata["callback_data"] == "yes_refund"
    assert message.metadata["button_message_id"] == f"{fx.CHAT_ID}:1371"


def test_updates_without_a_customer_message_are_not_published():
    assert normalize(fx.MY_CHAT_MEMBER) is None
    service_message = fx.update(2, message=fx.message(9, new_chat_members=[fx.USER]))
    assert normalize(service_message) is None


def test_a_location_is_rendered_and_kept_in_metadata():
    message = normalize(fx.LOCATION)
    assert message.text == "[location 52.52001, 13.40495]"
    assert message.metadata["location"] == {"latitude": 52.520008, "longitude": 13.404954}


def test_a_shared_own_contact_gives_the_phone_in_e164():
    message = normalize(fx.OWN_CONTACT)
    assert message.contact.phone == "+4915112345678"
    assert message.metadata["shared_contact"]["phone_number"] == "4915112345678"


def test_someone_elses_contact_card_is_not_the_senders_phone():
    card = {"phone_number": "+15550001", "first_name": "Bob", "user_id": 42}
    message = normalize(fx.update(3, message=fx.message(10, contact=card)))
    assert message.contact.phone is None and message.text == "[contact Bob +15550001]"


def test_a_group_message_is_threaded_by_the_group_and_contacted_by_the_user():
    message = normalize(fx.GROUP_TEXT)
    assert message.thread_id == "-100200300"
    assert message.contact.id == str(fx.USER["id"])
    assert message.channel_message_id == "-100200300:77"


def test_a_user_with_only_a_username_is_named_by_it():
    user = {"id": 5, "is_bot": False, "first_name": "", "username": "nobody"}
    message = normalize(fx.update(4, message={**fx.message(11, text="hi"), "from": user}))
    assert message.contact.name == "nobody"


@pytest.mark.parametrize("raw, expected", [
    (b"{not json", "malformed JSON"),
    (b'{"message": {"text": "no update id"}}', "not a Telegram Update"),
    (b'{"update_id": 1, "message": {"message_id": 1, "date": 1}}', "not a Telegram Update"),  # no chat
    (b"[]", "not a Telegram Update"),
])
def test_a_body_that_is_not_an_update_is_a_json_400(raw, expected):
    with pytest.raises(web.HTTPBadRequest) as caught:
        telegram.parse_update(raw)
    document = json.loads(caught.value.text)
    assert document["error"]["status"] == 400 and document["error"]["message"] == expected
    assert document["error"]["problems"]


# -- the sender ----------------------------------------------------------------------------------


def reply(thread_id: str = str(fx.CHAT_ID), workspace_id: str = "default") -> OutboundMessage:
    return OutboundMessage(message_id="m1", workspace_id=workspace_id, conversation_id="c1", channel="telegram",
                           thread_id=thread_id, contact=Contact(id=thread_id), agent_id="ann", text="We are on it")


async def send_through(answer_status: int, answer: dict | str, message: OutboundMessage | None = None):
    """Send one reply to a stand-in Bot API answering as given; (the outcome, the requests it got)."""
    received: list[tuple[str, dict]] = []

    async def bot_api(request: web.Request) -> web.Response:
        received.append((request.path, await request.json()))
        if isinstance(answer, str):
            return web.Response(status=answer_status, text=answer)
        return web.json_response(answer, status=answer_status)

    provider = web.Application()
    provider.router.add_post("/bot{token}/{method}", bot_api)
    async with serve(provider) as client, aiohttp.ClientSession() as http:
        config = telegram.TelegramConfig(**fx.BENCH_CONFIG, base_url=str(client.make_url("")))
        intake = SimpleNamespace(configs={("telegram", "default"): config}, http=http, settings=SimpleNamespace(send_timeout=5))
        sender = telegram.TelegramSender(intake)
        try:
            return await sender.send(message or reply()), received
        except SendError as error:
            return error, received


async def test_a_reply_is_sent_with_send_message_and_keyed_like_inbound_messages():
    sent, received = await send_through(200, fx.SEND_OK)
    assert received == [(f"/bot{fx.BOT_TOKEN}/sendMessage", {"chat_id": fx.CHAT_ID, "text": "We are on it"})]
    assert sent.state == "sent" and sent.channel_message_id == f"{fx.CHAT_ID}:1400"


@pytest.mark.parametrize("status, answer, retry, words", [
    (403, fx.SEND_BLOCKED, False, "blocked"),
    (400, fx.SEND_CHAT_NOT_FOUND, False, "chat not found"),
    (429, fx.SEND_TOO_MANY, True, "Too Many Requests"),
    (502, "<html>Bad Gateway</html>", True, "502"),
    (500, {"ok": False, "error_code": 500, "description": "Internal Server Error"}, True, "Internal"),
])
async def test_send_failures_say_whether_a_retry_can_help(status, answer, retry, words):
    error, _ = await send_through(status, answer)
    assert isinstance(error, SendError)
    assert error.retry is retry and words in error.reason


async def test_an_unreachable_bot_api_is_retryable():
    async with aiohttp.ClientSession() as http:
        config = telegram.TelegramConfig(**fx.BENCH_CONFIG, base_url=f"http://127.0.0.1:{free_port()}")
        intake = SimpleNamespace(configs={("telegram", "default"): config}, http=http, settings=SimpleNamespace(send_timeout=5))
        with pytest.raises(SendError) as caught:
            await telegram.TelegramSender(intake).send(reply())
    assert caught.value.retry is True


async def test_a_workspace_without_a_bot_fails_without_retry():
    async with aiohttp.ClientSession() as http:
        intake = SimpleNamespace(configs={}, http=http, settings=SimpleNamespace(send_timeout=5))
        with pytest.raises(SendError) as caught:
            await telegram.TelegramSender(intake).send(reply())
    assert caught.value.retry is False and "not configured" in caught.value.reason


def test_the_benchmark_request_is_a_valid_signed_update():
    path, headers, body = fx.bench_request("ws1", fx.BENCH_CONFIG, 7)
    assert path == "/v1/webhooks/telegram/ws1"
    assert telegram.verify_secret_token(CONFIG, headers[telegram.SECRET_HEADER]) is None
    assert normalize(json.loads(body)).text == "benchmark message 7"
