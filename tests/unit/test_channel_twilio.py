"""The Twilio SMS channel's pure parts: the signature, form normalization, status mapping, the REST sender."""

import base64
import hashlib
import hmac
import json
from types import SimpleNamespace
from urllib.parse import urlencode

import aiohttp
import pytest
from aiohttp import web
from pydantic import ValidationError

from services.intake.channels import twilio
from services.intake.channels.base import SendError, message_id_for
from shared.models import Contact, OutboundMessage
from tests.conftest import free_port, serve
from tests.fixtures import twilio as fx

# -- the signature -------------------------------------------------------------------------------

# Twilio's published example (twilio-php docs/usage/validation.rst, the example of
# https://www.twilio.com/docs/usage/security#validating-requests): auth token, URL, POST variables
# and the X-Twilio-Signature Twilio sent for them.
DOC_TOKEN = "12345"
DOC_URL = "https://mycompany.com/myapp.php?foo=1&bar=2"
DOC_PARAMS = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234", "From": "+14158675309",
              "To": "+18005551212"}
DOC_SIGNATURE = "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_the_documented_example_signature_is_reproduced():
    assert twilio.compute_twilio_signature(DOC_TOKEN, DOC_URL, DOC_PARAMS) == DOC_SIGNATURE
    assert twilio.verify_twilio_signature(DOC_TOKEN, DOC_URL, DOC_PARAMS, DOC_SIGNATURE)


def test_the_algorithm_written_out_by_hand_agrees():
    # URL, then each parameter name+value sorted by name, HMAC-SHA1 keyed by the auth token, base64.
    data = DOC_URL + "CallSidCA1234567890ABCDE" + "Caller+14158675309" + "Digits1234" + "From+14158675309" + "To+18005551212"
    expected = base64.b64encode(hmac.new(DOC_TOKEN.encode(), data.encode(), hashlib.sha1).digest()).decode()
    assert expected == DOC_SIGNATURE
    params = fx.incoming_sms()
    url = "https://intake.example.com/v1/webhooks/sms/default"
    assert twilio.compute_twilio_signature(fx.AUTH_TOKEN, url, params) == fx.sign(fx.AUTH_TOKEN, url, params)


def test_order_of_the_parameters_as_sent_does_not_matter():
    pairs = list(DOC_PARAMS.items())[::-1]
    assert twilio.verify_twilio_signature(DOC_TOKEN, DOC_URL, pairs, DOC_SIGNATURE)


@pytest.mark.parametrize("token, url, params, signature", [
    ("54321", DOC_URL, DOC_PARAMS, DOC_SIGNATURE),  # another account's token
    (DOC_TOKEN, "https://mycompany.com/myapp.php?foo=1&bar=3", DOC_PARAMS, DOC_SIGNATURE),  # another URL
    (DOC_TOKEN, DOC_URL, {**DOC_PARAMS, "Digits": "9999"}, DOC_SIGNATURE),  # tampered parameter
    (DOC_TOKEN, DOC_URL, {**DOC_PARAMS, "Extra": "x"}, DOC_SIGNATURE),  # added parameter
    (DOC_TOKEN, DOC_URL, DOC_PARAMS, "RSOYDt4T1cUTdK1PDd93/VVr8B8"),  # truncated
    (DOC_TOKEN, DOC_URL, DOC_PARAMS, ""),  # missing
    (DOC_TOKEN, DOC_URL, DOC_PARAMS, "€uro"),  # not even base64; compared, never raises
])
def test_forged_signatures_are_refused(token, url, params, signature):
    assert not twilio.verify_twilio_signature(token, url, params, signature)


def test_the_signed_url_is_the_public_url_plus_the_path_and_query_as_called():
    intake = SimpleNamespace(settings=SimpleNamespace(public_url="https://intake.example.com/"))
    request = SimpleNamespace(raw_path="/v1/webhooks/sms/default?x=1")
    assert twilio.public_request_url(intake, request) == "https://intake.example.com/v1/webhooks/sms/default?x=1"


# -- the form ------------------------------------------------------------------------------------


def test_a_form_body_is_read_in_order_with_blank_values_kept():
    assert twilio.parse_form(b"Body=&From=%2B1415&To=%2B1") == [("Body", ""), ("From", "+1415"), ("To", "+1")]
    assert twilio.parse_form(b"") == []


@pytest.mark.parametrize("raw", [b'{"From": "+1"}', b"From=%2B1&junk", "Body=caf\xe9".encode("latin-1")])
def test_a_body_that_is_not_a_form_is_a_json_400(raw):
    with pytest.raises(web.HTTPBadRequest) as caught:
        twilio.parse_form(raw)
    assert json.loads(caught.value.text)["error"]["message"].startswith("malformed form body")


@pytest.mark.parametrize("missing", ["MessageSid", "From", "To"])
def test_a_webhook_without_its_required_parameters_is_a_json_400(missing):
    form = fx.incoming_sms()
    del form[missing]
    with pytest.raises(web.HTTPBadRequest) as caught:
        twilio.validate_form(twilio.IncomingSms, form, "incoming message webhook")
    document = json.loads(caught.value.text)
    assert document["error"]["message"] == "not a Twilio incoming message webhook"
    assert missing in json.dumps(document["error"]["problems"])


def sms(form: dict[str, str], workspace_id: str = "default"):
    return twilio.normalize_sms(twilio.IncomingSms.model_validate(form), form, workspace_id)


def test_an_sms_is_keyed_by_its_message_sid_and_threaded_by_the_sender():
    message = sms(fx.incoming_sms(5))
    assert message.channel == "sms"
    assert message.channel_message_id == fx.message_sid(5)
    assert message.message_id == message_id_for("default", "sms", fx.message_sid(5))
    assert message.thread_id == fx.CUSTOMER
    assert message.contact == Contact(id=fx.CUSTOMER, phone=fx.CUSTOMER)
    assert message.text == "Hi, is my order shipped?"
    assert message.metadata == {"to": fx.OUR_NUMBER, "num_segments": "1", "from_country": "US"}
    assert message.attachments == []


def test_an_mms_references_each_media_url_with_its_type():
    message = sms(fx.incoming_mms())
    assert message.text == "photos of the damage"
    assert [(a.url.rsplit("/", 1)[1], a.content_type) for a in message.attachments] == [
        ("ME" + "1" * 32, "image/jpeg"), ("ME" + "2" * 32, "image/png")]


def test_an_mms_without_text_gets_a_readable_text():
    message = sms({**fx.incoming_mms(), "Body": ""})
    assert message.text == "[image/jpeg] [image/png]"


def test_an_mms_missing_a_media_url_is_a_json_400():
    form = fx.incoming_mms()
    del form["MediaUrl1"]
    with pytest.raises(web.HTTPBadRequest) as caught:
        sms(form)
    assert "MediaUrl1" in json.loads(caught.value.text)["error"]["message"]


def test_a_sender_that_is_not_a_phone_number_has_no_phone():
    message = sms(fx.incoming_sms(From="whatsapp:+14155550123", ProfileName="Ada"))
    assert message.contact == Contact(id="whatsapp:+14155550123", name="Ada")


# -- status callbacks ----------------------------------------------------------------------------


def status(sid: str, state: str, code: str | None = None):
    callback = twilio.StatusCallback.model_validate(fx.status_callback(sid, state, code))
    return twilio.delivery_status(callback, "default")


@pytest.mark.parametrize("state", ["sent", "delivered", "read"])
def test_progress_callbacks_become_receipts_for_the_provider_id(state):
    receipt = status("SM1", state)
    assert (receipt.channel, receipt.channel_message_id, receipt.status, receipt.reason) == ("sms", "SM1", state, None)
    assert receipt.message_id is None and receipt.workspace_id == "default"


@pytest.mark.parametrize("state", ["undelivered", "failed"])
def test_undelivered_and_failed_become_failed_with_the_error_code(state):
    receipt = status("SM2", state, "30003")
    assert receipt.status == "failed"
    assert receipt.reason == f"Twilio {state}, error 30003"


@pytest.mark.parametrize("state", ["accepted", "scheduled", "queued", "sending", "receiving", "received"])
def test_steps_before_sent_are_not_recorded(state):
    assert status("SM3", state) is None


def test_the_status_callback_url_is_the_workspace_status_route():
    assert twilio.status_callback_url("https://intake.example.com/", "acme team") == \
        "https://intake.example.com/v1/webhooks/sms/acme%20team/status"


# -- config --------------------------------------------------------------------------------------


def test_a_config_needs_a_sender_and_real_looking_ids():
    assert twilio.SmsConfig(**fx.BENCH_CONFIG).base_url == "https://api.twilio.com"
    twilio.SmsConfig(account_sid=fx.ACCOUNT_SID, auth_token="t", messaging_service_sid=fx.MESSAGING_SERVICE_SID)
    with pytest.raises(ValidationError, match="phone_number or messaging_service_sid"):
        twilio.SmsConfig(account_sid=fx.ACCOUNT_SID, auth_token="t")
    with pytest.raises(ValidationError):
        twilio.SmsConfig(**{**fx.BENCH_CONFIG, "account_sid": "AC123"})
    with pytest.raises(ValidationError):
        twilio.SmsConfig(**{**fx.BENCH_CONFIG, "phone_number": "0155 1234"})


# -- the sender ----------------------------------------------------------------------------------


def reply(workspace_id: str = "default") -> OutboundMessage:
    return OutboundMessage(message_id="m1", workspace_id=workspace_id, conversation_id="c1", channel="sms",
                           thread_id=fx.CUSTOMER, contact=Contact(id=fx.CUSTOMER, phone=fx.CUSTOMER), agent_id="ann",
                           text="Shipped yesterday")


async def send_through(answer_status: int, answer: dict | str, **config_fields):
    """Send one reply to a stand-in Messages API answering as given; (the outcome, the requests it got)."""
    received: list[tuple[str, str | None, dict]] = []

    async def messages_api(request: web.Request) -> web.Response:
        received.append((request.path, request.headers.get("Authorization"), dict(await request.post())))
        if isinstance(answer, str):
            return web.Response(status=answer_status, text=answer)
        return web.json_response(answer, status=answer_status)

    provider = web.Application()
    provider.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", messages_api)
    async with serve(provider) as client, aiohttp.ClientSession() as http:
        config = twilio.SmsConfig(**{**fx.BENCH_CONFIG, "base_url": str(client.make_url("")), **config_fields})
        settings = SimpleNamespace(send_timeout=5, public_url="https://intake.example.com")
        sender = twilio.SmsSender(SimpleNamespace(configs={("sms", "default"): config}, http=http, settings=settings))
        try:
            return await sender.send(reply()), received
        except SendError as error:
            return error, received


async def test_a_reply_is_created_with_basic_auth_and_a_status_callback():
    sent, received = await send_through(201, fx.created_message("SM" + "a" * 32, fx.CUSTOMER, "Shipped yesterday"))
    assert sent.state == "sent" and sent.channel_message_id == "SM" + "a" * 32
    ((path, authorization, form),) = received
    assert path == f"/2010-04-01/Accounts/{fx.ACCOUNT_SID}/Messages.json"
    assert authorization == "Basic " + base64.b64encode(f"{fx.ACCOUNT_SID}:{fx.AUTH_TOKEN}".encode()).decode()
    assert form == {"To": fx.CUSTOMER, "From": fx.OUR_NUMBER, "Body": "Shipped yesterday",
                    "StatusCallback": "https://intake.example.com/v1/webhooks/sms/default/status"}


async def test_a_messaging_service_sends_in_place_of_a_number():
    _, received = await send_through(201, fx.created_message("SM" + "b" * 32, fx.CUSTOMER, "x"),
                                     phone_number=None, messaging_service_sid=fx.MESSAGING_SERVICE_SID)
    form = received[0][2]
    assert form["MessagingServiceSid"] == fx.MESSAGING_SERVICE_SID and "From" not in form


@pytest.mark.parametrize("status, answer, retry, words", [
    (400, fx.INVALID_TO, False, "error 21211: Invalid 'To' Phone Number"),
    (401, {"code": 20003, "message": "Authenticate", "status": 401}, False, "20003"),
    (429, fx.TOO_MANY_REQUESTS, True, "20429"),
    (500, "oops", True, "HTTP 500"),
    (503, {"code": 20500, "message": "Internal Server Error", "status": 503}, True, "20500"),
])
async def test_send_failures_say_whether_a_retry_can_help(status, answer, retry, words):
    error, _ = await send_through(status, answer)
    assert isinstance(error, SendError)
    assert error.retry is retry and words in error.reason


async def test_an_unreachable_api_is_retryable_and_a_missing_config_is_not():
    async with aiohttp.ClientSession() as http:
        config = twilio.SmsConfig(**fx.BENCH_CONFIG, base_url=f"http://127.0.0.1:{free_port()}")
        settings = SimpleNamespace(send_timeout=5, public_url="https://intake.example.com")
        sender = twilio.SmsSender(SimpleNamespace(configs={("sms", "default"): config}, http=http, settings=settings))
        with pytest.raises(SendError) as unreachable:
            await sender.send(reply())
        with pytest.raises(SendError) as unconfigured:
            await sender.send(reply("elsewhere"))
    assert unreachable.value.retry is True
    assert unconfigured.value.retry is False and "not configured" in unconfigured.value.reason


def test_the_benchmark_request_is_signed_for_the_default_public_url():
    path, headers, body = fx.bench_request("ws1", fx.BENCH_CONFIG, 9)
    pairs = twilio.parse_form(body)
    assert fx.BENCH_PUBLIC_URL == "http://127.0.0.1:8080"
    assert twilio.verify_twilio_signature(fx.AUTH_TOKEN, fx.BENCH_PUBLIC_URL + path, pairs, headers["X-Twilio-Signature"])
    assert dict(pairs)["Body"] == "benchmark message 9" and urlencode(pairs).encode() == body
