"""The voice channel's pure parts: Twilio's signature on call requests, TwiML shapes, normalization,
the config, the retry rule for call updates, SMS replies to callers, and the PBX webhook's signature and events."""

import xml.etree.ElementTree as ET
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from aiohttp import web
from pydantic import ValidationError

from services.intake.channels import telephony, twilio, voice
from services.intake.channels.base import SendError, message_id_for
from shared.models import Contact, OutboundMessage
from tests.conftest import serve
from tests.fixtures import twilio as sms_fx
from tests.fixtures import voice as fx

PUBLIC = "https://intake.example.com"
SETTINGS = SimpleNamespace(public_url=PUBLIC, send_timeout=5, send_max_attempts=4, send_retry_delay=0.001,
                           send_max_retry_delay=0.001)


def config(**fields) -> voice.VoiceConfig:
    return voice.VoiceConfig.model_validate({**fx.CONFIG, **fields})


def parse(twiml: str) -> ET.Element:
    assert twiml.startswith('<?xml version="1.0" encoding="UTF-8"?><Response')
    return ET.fromstring(twiml)


def verbs(root: ET.Element) -> list[str]:
    return [child.tag for child in root]


# -- the signature -------------------------------------------------------------------------------


def test_call_requests_are_signed_with_twilios_documented_algorithm():
    # Twilio's published example is itself a voice request (CallSid, Caller, Digits, From, To).
    doc_params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234", "From": "+14158675309",
                  "To": "+18005551212"}
    assert twilio.verify_twilio_signature("12345", "https://mycompany.com/myapp.php?foo=1&bar=2", doc_params,
                                          "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    url = PUBLIC + "/v1/webhooks/voice/default"
    params = fx.incoming_call(1)
    signature = sms_fx.sign(fx.AUTH_TOKEN, url, params)
    assert twilio.verify_twilio_signature(fx.AUTH_TOKEN, url, params, signature)


def test_a_forged_call_request_does_not_verify():
    url = PUBLIC + "/v1/webhooks/voice/default/status"
    params = fx.status_callback(fx.call_sid(1), "completed")
    signature = sms_fx.sign(fx.AUTH_TOKEN, url, params)
    assert not twilio.verify_twilio_signature("another-token", url, params, signature)
    assert not twilio.verify_twilio_signature(fx.AUTH_TOKEN, url, {**params, "CallStatus": "busy"}, signature)
    # The transcription URL carries the caller: a changed ?from= is a different URL.
    signed_url = voice.callback_url(SETTINGS, "default", "/voicemail/transcription", **{"from": fx.CALLER})
    signature = sms_fx.sign(fx.AUTH_TOKEN, signed_url, params)
    assert not twilio.verify_twilio_signature(fx.AUTH_TOKEN, signed_url.replace("0123", "9999"), params, signature)


# -- TwiML ---------------------------------------------------------------------------------------


def test_the_caller_holds_with_a_message_then_a_pause_that_redirects_to_hold():
    root = parse(voice.hold_twiml(config(hold_message="Hold on & <relax>"), PUBLIC + "/v1/webhooks/voice/default/hold"))
    assert verbs(root) == ["Say", "Pause", "Redirect"]
    assert root[0].text == "Hold on & <relax>"  # escaped in the XML, intact once parsed
    assert root[2].text == PUBLIC + "/v1/webhooks/voice/default/hold" and root[2].get("method") == "POST"


def test_with_hold_music_the_music_loops_until_the_call_is_redirected():
    root = parse(voice.hold_twiml(config(hold_music_url="https://example.com/music.mp3"), "unused"))
    assert verbs(root) == ["Say", "Play"]
    assert root[1].text == "https://example.com/music.mp3" and root[1].get("loop") == "0"


@pytest.mark.parametrize("target, noun, text", [
    ("client:ann", "Client", "ann"),
    ("sip:ann@pbx.example.com", "Sip", "sip:ann@pbx.example.com"),
    (fx.AGENT_NUMBER, "Number", fx.AGENT_NUMBER),
])
def test_the_agent_is_dialled_by_client_sip_or_number(target, noun, text):
    root = parse(voice.dial_twiml(config(caller_id=fx.OUR_NUMBER), target, PUBLIC + "/dialed"))
    (dial,) = root
    assert dial.tag == "Dial" and dial.get("action") == PUBLIC + "/dialed" and dial.get("timeout") == "20"
    assert [(child.tag, child.text) for child in dial] == [(noun, text)]
    # callerId only matters when dialling a phone number.
    assert dial.get("callerId") == (fx.OUR_NUMBER if noun == "Number" else None)
    # Without an answered URL the noun has no url; with one, Twilio requests it when the agent picks up.
    assert dial[0].get("url") is None
    hooked = parse(voice.dial_twiml(config(), target, PUBLIC + "/dialed", PUBLIC + "/answered?agent=ann"))
    assert (hooked[0][0].get("url"), hooked[0][0].get("method")) == (PUBLIC + "/answered?agent=ann", "POST")


def test_voicemail_records_with_a_transcription_and_says_goodbye_on_silence():
    settings = SimpleNamespace(public_url=PUBLIC + "/")
    root = parse(voice.voicemail_for(settings, config(voicemail_max_seconds=60), "acme corp", fx.CALLER))
    assert verbs(root) == ["Say", "Record", "Say", "Hangup"]
    record = root[1]
    assert record.get("transcribe") == "true" and record.get("maxLength") == "60"
    assert record.get("action") == PUBLIC + "/v1/webhooks/voice/acme%20corp/voicemail/recorded"
    callback = urlsplit(record.get("transcribeCallback"))
    assert callback.path == "/v1/webhooks/voice/acme%20corp/voicemail/transcription"
    assert parse_qs(callback.query) == {"from": [fx.CALLER]}


# -- normalization -------------------------------------------------------------------------------


def test_a_call_is_one_message_keyed_by_its_call_sid():
    form = fx.incoming_call(7, CallerName="ANN CALLER")
    call = twilio.validate_form(voice.IncomingCall, form, "incoming call webhook")
    message = voice.normalize_call(call, "default")
    assert (message.channel, message.thread_id, message.channel_message_id) == ("voice", fx.call_sid(7), fx.call_sid(7))
    assert message.contact == Contact(id=fx.CALLER, name="ANN CALLER", phone=fx.CALLER)
    assert message.text == f"Incoming call from {fx.CALLER}"
    assert message.metadata == {"kind": "call", "call_sid": fx.call_sid(7), "to": fx.OUR_NUMBER}
    # Twilio's retry of the same call is the same message: the router and the agents service keep one.
    again = voice.normalize_call(twilio.validate_form(voice.IncomingCall, fx.incoming_call(7), "x"), "default")
    assert again.message_id == message.message_id == message_id_for("default", "voice", fx.call_sid(7))
    assert voice.normalize_call(call, "other").message_id != message.message_id


def test_an_anonymous_caller_has_no_phone():
    call = twilio.validate_form(voice.IncomingCall, fx.incoming_call(8, caller="anonymous"), "x")
    assert voice.normalize_call(call, "default").contact == Contact(id="anonymous")


@pytest.mark.parametrize("change", [{"CallSid": "SM" + "0" * 32}, {"CallSid": ""}, {"From": ""}])
def test_a_call_request_without_a_call_sid_or_caller_is_a_json_400(change):
    with pytest.raises(web.HTTPBadRequest) as raised:
        twilio.validate_form(voice.IncomingCall, {**fx.incoming_call(9), **change}, "incoming call webhook")
    assert "not a Twilio incoming call webhook" in raised.value.text


def test_a_voicemail_is_a_message_on_its_own_channel_with_the_recording():
    message = voice.voicemail_message("default", fx.call_sid(3), fx.CALLER, " call me back ", fx.recording_url(fx.call_sid(3)),
                                      {"call_sid": fx.call_sid(3)})
    assert (message.channel, message.thread_id, message.text) == ("voicemail", fx.call_sid(3), "call me back")
    assert message.attachments[0].url == fx.recording_url(fx.call_sid(3))
    assert message.message_id != voice.call_message("default", fx.call_sid(3), fx.CALLER, metadata={}).message_id
    silent = voice.voicemail_message("default", fx.call_sid(3), fx.CALLER, None, None, {})
    assert silent.text == "(voicemail, no transcription)" and silent.attachments == []


# -- the config ----------------------------------------------------------------------------------


def test_agents_are_dialled_by_their_target_or_as_a_voice_sdk_client():
    voice_config = config(agents={"ann": "sip:ann@pbx.example.com", "bob": fx.AGENT_NUMBER})
    assert voice_config.target("ann") == "sip:ann@pbx.example.com"
    assert voice_config.target("bob") == fx.AGENT_NUMBER
    assert voice_config.target("carl") == "client:carl"


@pytest.mark.parametrize("fields", [
    {"agents": {"ann": "555-1234"}},
    {"agents": {"ann": "client:"}},
    {"account_sid": "AC123"},
    {"caller_id": "0123"},
    {"voicemail_max_seconds": 600},
])
def test_a_bad_config_is_refused_at_start(fields):
    with pytest.raises(ValidationError):
        config(**fields)


# -- connecting calls ----------------------------------------------------------------------------


async def test_a_call_update_is_retried_while_the_call_is_not_in_progress_and_on_5xx_only():
    calls = RoutedCallsProbe()
    failures = [SendError("Twilio Calls/CA1 failed (HTTP 400, error 21220: Invalid call state)", retry=False),
                SendError("Twilio unreachable", retry=True)]
    assert await calls.with_retries(calls.failing(failures)) is None
    assert calls.attempts == 3
    calls.attempts = 0
    problem = await calls.with_retries(calls.failing([SendError("HTTP 400, error 21201", retry=False)] * 9))
    assert problem == "HTTP 400, error 21201" and calls.attempts == 1
    calls.attempts = 0
    problem = await calls.with_retries(calls.failing([SendError("HTTP 503", retry=True)] * 9))
    assert problem == "HTTP 503" and calls.attempts == SETTINGS.send_max_attempts


class RoutedCallsProbe(voice.RoutedCalls):
    def __init__(self) -> None:
        super().__init__(SimpleNamespace(http=None, settings=SETTINGS))
        self.attempts = 0

    def failing(self, errors: list[SendError]):
        async def attempt() -> None:
            self.attempts += 1
            if errors:
                raise errors.pop(0)
        return attempt


def test_each_plugin_owns_its_calls_by_thread_id():
    assert voice.RoutedCalls.owns(None, fx.call_sid(1))  # type: ignore[arg-type]
    assert not voice.RoutedCalls.owns(None, "pbx:1234")  # type: ignore[arg-type]
    assert telephony.PbxCalls.owns(None, "pbx:1234")  # type: ignore[arg-type]
    assert not telephony.PbxCalls.owns(None, fx.call_sid(1))  # type: ignore[arg-type]


# -- SMS replies to callers ----------------------------------------------------------------------


def reply(channel: str, contact: Contact) -> OutboundMessage:
    return OutboundMessage(message_id="m1", workspace_id="default", conversation_id="c1", channel=channel,
                           thread_id=fx.call_sid(5), contact=contact, agent_id="ann", text="We will call you back at 3")


async def send_reply(message: OutboundMessage, **config_fields):
    received: list[dict] = []

    async def messages_api(request: web.Request) -> web.Response:
        received.append(dict(await request.post()))
        return web.json_response(sms_fx.created_message("SM" + "e" * 32, fx.CALLER, "x"), status=201)

    provider = web.Application()
    provider.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", messages_api)
    async with serve(provider) as client, aiohttp.ClientSession() as http:
        voice_config = config(base_url=str(client.make_url("")), **config_fields)
        intake = SimpleNamespace(configs={("voice", "default"): voice_config}, http=http, settings=SETTINGS)
        sender = voice.CallerSmsSender(intake, message.channel)
        try:
            return await sender.send(message), received
        except SendError as error:
            return error, received


async def test_a_reply_on_a_voicemail_goes_to_the_callers_number_as_sms():
    sent, received = await send_reply(reply("voicemail", Contact(id=fx.CALLER, phone=fx.CALLER)))
    assert sent.channel_message_id == "SM" + "e" * 32
    assert received == [{"To": fx.CALLER, "From": fx.OUR_NUMBER, "Body": "We will call you back at 3",
                         "StatusCallback": PUBLIC + "/v1/webhooks/voice/default/replies/voicemail/status"}]


async def test_a_reply_needs_a_number_to_send_from_and_to():
    no_sender, _ = await send_reply(reply("voice", Contact(id=fx.CALLER, phone=fx.CALLER)), phone_number=None)
    assert isinstance(no_sender, SendError) and not no_sender.retry and "phone_number" in no_sender.reason
    anonymous, received = await send_reply(reply("voice", Contact(id="anonymous")))
    assert isinstance(anonymous, SendError) and not anonymous.retry and received == []


# -- the PBX webhook -----------------------------------------------------------------------------


PBX = telephony.TelephonyConfig(secret=fx.PBX_SECRET, connect_url="https://pbx.example.com/switchyard")


def test_a_pbx_event_signed_with_the_secret_and_fresh_is_accepted():
    headers, body = fx.pbx_request({"event": "call.ended", "call_id": "1700000000.42"}, timestamp=1_000_000)
    assert telephony.check_signature(PBX, headers, body, now=1_000_100) is None
    # The same algorithm as the API channel's callbacks, which the PBX verifies our POSTs with.
    assert headers["X-Switchyard-Signature"] == telephony.api.sign(fx.PBX_SECRET, "1000000", body)


@pytest.mark.parametrize("change, status, words", [
    ({"X-Switchyard-Signature": None}, 401, "missing"),
    ({"X-Switchyard-Timestamp": None}, 401, "missing"),
    ({"X-Switchyard-Timestamp": "1000100"}, 403, "invalid X-Switchyard-Signature"),  # signed for another time
    ({"X-Switchyard-Timestamp": "yesterday"}, 403, "stale"),
    ({"X-Switchyard-Signature": "sha256=" + "0" * 64}, 403, "invalid X-Switchyard-Signature"),
])
def test_a_forged_or_unsigned_pbx_event_is_refused(change, status, words):
    headers, body = fx.pbx_request({"event": "call.ended", "call_id": "1"}, timestamp=1_000_000)
    headers = {k: v for k, v in {**headers, **change}.items() if v is not None}
    cls, reason = telephony.check_signature(PBX, headers, body, now=1_000_000)
    assert cls.status_code == status and words in reason


def test_a_replayed_pbx_event_is_refused_once_stale():
    headers, body = fx.pbx_request({"event": "call.ended", "call_id": "1"}, timestamp=1_000_000)
    cls, reason = telephony.check_signature(PBX, headers, body, now=1_000_000 + 301)
    assert cls.status_code == 403 and "stale" in reason


def test_pbx_events_are_validated():
    event = telephony.parse_event(b'{"event": "call.incoming", "call_id": "abc.1", "from": "+14155550123", "to": "600"}')
    assert (event.thread_id, event.from_) == ("pbx:abc.1", "+14155550123")
    with pytest.raises(web.HTTPBadRequest):
        telephony.parse_event(b"{not json")
    for bad in (b'{"event": "call.incoming", "call_id": "abc"}',  # no caller
                b'{"event": "call.transferred", "call_id": "abc"}',  # unknown event
                b'{"event": "call.ended", "call_id": "a b"}',  # not an id
                b'{"event": "call.ended", "call_id": "abc", "colour": "red"}'):  # unknown field
        with pytest.raises(web.HTTPUnprocessableEntity):
            telephony.parse_event(bad)
