"""Hostile input against the shared HTTP plumbing, without broker or database: every one a 4xx, never a crash.

The same faults over the real services are in tests/service/test_hostile_input.py.
"""

import io
import logging
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from pydantic import BaseModel, field_validator

from services.agents.desk import typing_conversation
from services.intake.channels import telephony, webchat
from shared.attachments import content_disposition, media_type, safe_filename
from shared.logging import REDACTED, redact_event, redact_text, redacting_handler
from shared.models import Contact, InboundMessage
from shared.web import API_KEYS, FrameError, parse_frame, service_middlewares, validate_json, whole_number
from tests.raw_http import raw_request

DEEP = "[" * 100_000


# -- the input middleware ------------------------------------------------------------------------


async def echo(request: web.Request) -> web.Response:
    """A handler that trusts its input to be text, as every real one does (it encodes, hashes, stores it)."""
    header = request.headers.get("X-Signature", "")
    return web.json_response({"header": header.encode().hex(), "query": request.query.get("q", ""),
                              "path": request.match_info["name"]})


async def echo_body(request: web.Request) -> web.Response:
    return web.json_response(validate_json(await request.read(), Body).model_dump())


async def normalize_metadata(request: web.Request) -> web.Response:
    """A channel that passes provider facts on as metadata, as telegram's and twilio's do."""
    facts = await request.json()
    message = InboundMessage(message_id="m", channel="api", thread_id="t", contact=Contact(id="c"), text="hi",
                             metadata=facts)
    return web.json_response({"message_id": message.message_id}, status=202)


@pytest.fixture
async def echo_server():
    app = web.Application(middlewares=service_middlewares(public_prefixes=()))
    app[API_KEYS] = {}
    app.router.add_get("/echo/{name}", echo)
    app.router.add_post("/echo/{name}", echo_body)
    app.router.add_post("/normalize", normalize_metadata)
    client = TestClient(TestServer(app, host="127.0.0.1"))
    await client.start_server()
    yield client.server.port
    await client.close()


@pytest.mark.parametrize(("what", "target", "header"), [
    ("header X-Signature", b"/echo/a", b"\xff\xfe"),
    ("header X-Signature", b"/echo/a", b"\xed\xa0\x80"),  # an encoded surrogate
    ("header X-Signature", b"/echo/a", b"ok \xc3"),  # a truncated sequence
    ("the query string", b"/echo/a?q=%ff", b"fine"),  # aiohttp would hand the handler U+FFFD
    ("the query string", b"/echo/a?q=%ED%A0%80", b"fine"),
    ("the path", b"/echo/%ff%fe", b"fine"),
])
async def test_undecodable_headers_query_and_path_get_a_400_naming_them(echo_server, what, target, header):
    response = await raw_request(echo_server, "GET", target, [("X-Signature", header)])
    assert response.status == 400
    assert response.json()["error"]["message"] == f"{what} is not valid UTF-8"


@pytest.mark.parametrize("encoding", ["gzip", "deflate"])
async def test_a_body_that_does_not_decode_as_its_content_encoding_is_a_400(echo_server, encoding):
    response = await raw_request(echo_server, "POST", "/echo/a", [("Content-Encoding", encoding)], b'{"metadata": {}}')
    assert response.status == 400
    assert response.json()["error"]["detail"] == f"Can not decode content-encoding: {encoding}"


async def test_valid_utf8_still_passes(echo_server):
    response = await raw_request(echo_server, "GET", b"/echo/%C3%A9?q=%C2%B2", [("X-Signature", "²".encode())])
    assert response.status == 200
    assert response.json() == {"header": "c2b2", "query": "²", "path": "é"}


# -- numbers ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["²", "٣", "1_000", " 7", "7 ", "-1", "+1", "", "0x10", "1e3", "9" * 19, "9" * 5000, None])
def test_whole_number_refuses_what_isdigit_or_int_would_take(text):
    assert whole_number(text) is None


def test_whole_number_reads_ascii_digits():
    assert (whole_number("0"), whole_number("42"), whole_number("9" * 18)) == (0, 42, 10**18 - 1)


@pytest.mark.parametrize("timestamp", ["²", "١٧٠٠٠٠٠٠٠٠", "9" * 5000, "1_700_000_000", "-5"])
def test_a_pbx_timestamp_that_is_no_number_is_refused_not_crashed_on(timestamp):
    config = telephony.TelephonyConfig(secret="s" * 16, connect_url="http://pbx.example")
    headers = {telephony.TIMESTAMP_HEADER: timestamp, telephony.SIGNATURE_HEADER: "sha256=00"}
    assert check(config, headers) == (web.HTTPForbidden, f"stale or invalid {telephony.TIMESTAMP_HEADER}")


def check(config: telephony.TelephonyConfig, headers: dict[str, str]) -> Any:
    return telephony.check_signature(config, headers, b"{}", now=1_700_000_000)


# -- JSON: bodies and frames -----------------------------------------------------------------------


class Body(BaseModel):
    metadata: dict[str, Any] = {}


def test_a_deep_body_is_a_400_not_a_recursion_error():
    with pytest.raises(web.HTTPBadRequest) as raised:
        validate_json(DEEP.encode(), Body)
    assert '"malformed JSON"' in raised.value.text


class Zone(BaseModel):
    name: str

    @field_validator("name")
    @classmethod
    def _exists(cls, name: str) -> str:
        Path(f"/nonexistent-{name}").read_bytes()  # raises OSError, as ZoneInfo("Europe") does (IsADirectoryError)
        return name


def test_a_validator_that_raises_other_than_valueerror_is_still_a_422():
    with pytest.raises(web.HTTPUnprocessableEntity):
        validate_json(b'{"name": "x"}', Zone)


@pytest.mark.parametrize("data", [DEEP, "{" * 5000, '{"type": "typing", "x": ' + "[" * 300 + "]" * 300 + "}",
                                  "not json", "", '"\\ud800"'])
def test_frames_that_would_crash_json_loads_are_frame_errors(data):
    with pytest.raises(FrameError) as raised:
        parse_frame(data, webchat.CHAT_INPUT)
    assert raised.value.frame()["type"] == "error"
    assert webchat.is_typing(data) is False
    assert typing_conversation(data) is None


def test_the_chat_frames_still_parse():
    assert isinstance(parse_frame('{"type": "typing"}', webchat.CHAT_INPUT), webchat.TypingFrame)
    frame = parse_frame('{"type": "message", "text": "hi", "client_id": "c1"}', webchat.CHAT_INPUT)
    assert (frame.text, frame.client_id) == ("hi", "c1")


@pytest.mark.parametrize("token", ["x.é", "é.é", "\ufffd.\ufffd", "..", "", "a" * 5000])
def test_a_forged_chat_token_with_non_ascii_is_refused_not_crashed_on(token):
    assert webchat.read_token("secret", token) is None


# -- files: content types and names -------------------------------------------------------------


@pytest.mark.parametrize(("declared", "stored"), [
    ("text/plain; charset=utf-8", "text/plain; charset=utf-8"),
    ("IMAGE/PNG", "image/png"),
    ("application/pdf ; name=\"a;b.pdf\"", 'application/pdf; name="a;b.pdf"'),
    ("text/html\r\nSet-Cookie: x=1", "text/html"),
    ("text/plain; charset", "text/plain"),  # a parameter without a value is dropped
    ("text/" + "x" * 200, "application/octet-stream"),
    ("\udcff\udcfe", "application/octet-stream"),  # undecodable bytes in a multipart part header
    ("plain", "application/octet-stream"),
    ("", "application/octet-stream"),
    (None, "application/octet-stream"),
])
def test_content_types_are_stored_as_they_can_be_served(declared, stored):
    assert media_type(declared) == stored


def test_parameters_are_kept_only_while_they_fit():
    assert len(media_type("text/plain; " + "; ".join(f"p{i}=v" for i in range(50)))) <= 128


@pytest.mark.parametrize(("name", "safe"), [
    ("invoice.pdf", "invoice.pdf"),
    ("a\r\nb.txt", "ab.txt"),
    ("a\udcff.txt", "a.txt"),
    ("\u202egpj.exe", "gpj.exe"),  # a right-to-left override
    ("../../etc/passwd", ".._.._etc_passwd"),
    ("\x00\x01", None),
    ("x" * 300, "x" * 256),
])
def test_file_names_lose_control_characters_and_paths(name, safe):
    assert safe_filename(name) == safe


@pytest.mark.parametrize(("name", "header"), [
    ("invoice.pdf", 'attachment; filename="invoice.pdf"'),
    ('say "hi"\r\n.txt', "attachment; filename=\"say _hi_.txt\"; filename*=UTF-8''say%20%22hi%22.txt"),
    ("résumé.pdf", "attachment; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"),
    (None, 'attachment; filename="attachment"'),
])
def test_content_disposition_is_ascii_with_an_rfc6266_name(name, header):
    assert content_disposition(name) == header
    assert header.isascii() and "\r" not in header and "\n" not in header


# -- secrets in logs -----------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "secret"), [
    ('127.0.0.1 "GET /v1/agents/ann/ws?token=test-key HTTP/1.1" 101', "test-key"),
    ('"GET /v1/chat/ws?workspace=default&session=d2Vi.abcdef HTTP/1.1"', "d2Vi.abcdef"),
    ("POST /v1/webhooks/email/default/sendgrid?token=sg-secret-1", "sg-secret-1"),
    ("GET /v1/webhooks/whatsapp/default?hub.mode=subscribe&hub.verify_token=vt-1&hub.challenge=5", "vt-1"),
    ("headers={'Authorization': 'Bearer key-1'}", "key-1"),
    ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpwYXNz"),
    ("X-Twilio-Signature: sig-1=", "sig-1="),
])
def test_secrets_in_text_are_masked(line, secret):
    masked = redact_text(line)
    assert secret not in masked and REDACTED in masked


def test_structlog_events_lose_secret_keys_and_secrets_in_values():
    event = redact_event(None, "info", {
        "event": "x", "token": "t-1", "api_key": "k-1", "routing_key": "message.received",
        "url": "/v1/x?session=s-1&limit=5", "headers": {"Authorization": "Bearer b-1", "Accept": "*/*"},
        "exception": "ValueError: bad ?token=e-1",
    })
    assert event == {
        "event": "x", "token": REDACTED, "api_key": REDACTED, "routing_key": "message.received",
        "url": f"/v1/x?session={REDACTED}&limit=5", "headers": {"Authorization": REDACTED, "Accept": "*/*"},
        "exception": f"ValueError: bad ?token={REDACTED}",
    }


async def test_the_access_log_line_of_a_request_with_a_key_in_its_url_is_masked(echo_server):
    stream = io.StringIO()
    handler = redacting_handler(stream)
    access = logging.getLogger("aiohttp.access")
    level = access.level
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    try:
        response = await raw_request(echo_server, "GET", "/echo/a?token=test-key&session=s.sig&q=1",
                                     [("Referer", "http://x/chat?session=r.sig")])
        assert response.status == 200
    finally:
        access.removeHandler(handler)
        access.setLevel(level)
    line = stream.getvalue()
    assert "GET /echo/a?token=" in line
    for secret in ("test-key", "s.sig", "r.sig"):
        assert secret not in line


def test_configure_logging_masks_every_line():
    """The entry points' setup, in a process of its own: stdlib records (aiohttp's access log) and structlog events."""
    script = textwrap.dedent("""
        import logging, structlog
        from shared.logging import configure_logging
        configure_logging("info")
        logging.getLogger("aiohttp.access").info('127.0.0.1 "GET /v1/agents/a/ws?token=%s HTTP/1.1" 101', "key-1")
        structlog.get_logger().info("chat.opened", url="/v1/chat/ws?session=sess-1", token="key-2")
        try:
            raise ValueError("Bearer key-3")
        except ValueError:
            structlog.get_logger().exception("failed")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True,
                          cwd=Path(__file__).parents[2])
    assert done.stderr.count(REDACTED) >= 4, done.stderr
    for secret in ("key-1", "sess-1", "key-2", "key-3"):
        assert secret not in done.stderr


async def test_a_message_the_whole_path_cannot_carry_is_a_422_wherever_it_is_built(echo_server):
    """A channel's normalizer met a limit its own checks missed: the sender hears which, never a 500."""
    async with aiohttp.ClientSession() as session:
        url = f"http://127.0.0.1:{echo_server}/normalize"
        async with session.post(url, json={"a\u0000b": 1}) as response:
            body = await response.json()
            assert response.status == 422 and "NUL" in str(body["error"]["problems"])
        async with session.post(url, json={"fine": 1}) as response:
            assert response.status == 202
