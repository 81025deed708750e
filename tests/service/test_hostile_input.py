"""Hostile input against the three real services: always a 4xx JSON error, never a 500, a crash or silence.

First the faults an outside test found, each on its own; then a sweep that fires a table of hostile
requests at every route of each app (listed from app.router.routes(), so a new route is covered
the day it is added). Requests no client library will send go over a raw socket (tests/raw_http.py).
"""

import json
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from urllib.parse import quote

import pytest
from aiohttp import web
from gridfs import AsyncGridFSBucket
from pymongo import AsyncMongoClient

from shared.attachments import BUCKET
from tests.conftest import API_KEY, auth, free_port
from tests.fixtures import voice as voice_fx
from tests.fixtures.channels import ALL_CHANNELS
from tests.raw_http import RawResponse, raw_request
from tests.service.helpers import Apps, running_apps

DEEP = "[" * 100_000
BEARER = ("Authorization", f"Bearer {API_KEY}")
CHANNELS = ALL_CHANNELS
# Where each channel reads its proof of origin; the sweep spoils every one of them.
SIGNATURE_HEADERS = ("X-Twilio-Signature", "X-Hub-Signature-256", "X-Telegram-Bot-Api-Secret-Token",
                     "X-Switchyard-Signature", "X-Switchyard-Timestamp", "Authorization")


@asynccontextmanager
async def hostile_apps(names) -> AsyncIterator[Apps]:
    async with running_apps(names, channels=CHANNELS, smtp_port=free_port()) as apps:
        yield apps


def port(client) -> int:
    return client.server.port


def assert_json_error(response: RawResponse, status: int | None = None) -> dict:
    """A 4xx whose body is the one error document; returns its "error"."""
    assert 400 <= response.status < 500, (response.status, response.body[:500])
    if status is not None:
        assert response.status == status, response.body[:500]
    assert response.headers["content-type"].startswith("application/json"), response.headers
    error = response.json()["error"]
    assert error["status"] == response.status and isinstance(error["message"], str)
    return error


async def chat_token(apps: Apps) -> str:
    async with apps.intake.ws_connect("/v1/chat/ws?workspace=default") as ws:
        frame = await ws.receive_json(timeout=10)
        return frame["token"]


# -- numbers in the query --------------------------------------------------------------------------


async def test_a_conversation_limit_out_of_range_or_not_a_number_is_a_400(names):
    async with hostile_apps(names) as apps:
        for limit in (str(-(2**63) - 1), "-1", "0", "1001", "9" * 30, "²", "١", "1_0", " 5", "1.5", "abc", ""):
            response = await raw_request(port(apps.agents), "GET", f"/v1/conversations?limit={quote(limit)}", [BEARER])
            error = assert_json_error(response, 400)
            assert error["message"] == "limit must be a whole number from 1 to 1000", limit
        for fine in ("1", "1000"):
            assert (await apps.agents.get(f"/v1/conversations?limit={fine}", headers=auth())).status == 200


# -- undecodable headers -------------------------------------------------------------------------


async def post_with_key(apps: Apps, key: str | bytes) -> RawResponse:
    body = json.dumps({"contact": {"id": "c1"}, "text": "hi"}).encode()
    headers = [BEARER, ("Content-Type", "application/json"), ("Idempotency-Key", key)]
    return await raw_request(port(apps.intake), "POST", "/v1/messages", headers, body)


async def test_an_undecodable_idempotency_key_is_a_400_naming_the_header(names):
    async with hostile_apps(names) as apps:
        for key in (b"\xff\xfe", b"\xed\xa0\x80", b"caf\xe9"):
            response = await post_with_key(apps, key)
            assert assert_json_error(response, 400)["message"] == "header Idempotency-Key is not valid UTF-8"


async def test_an_empty_overlong_or_control_character_idempotency_key_is_a_400(names):
    """An empty key used to be a key: every message sent with one got the same id, all but the first dropped."""
    async with hostile_apps(names) as apps:
        for key in ("", " ", "x" * 256, "a\u200bb", "a\u2028b"):  # (a DEL or CR never gets past aiohttp's parser)
            assert "Idempotency-Key must be" in assert_json_error(await post_with_key(apps, key), 400)["message"]
        assert (await post_with_key(apps, "order-1")).status == 202


def webhook_targets(app: web.Application) -> Iterator[tuple[str, str]]:
    """(method, path) of every webhook route, its placeholders filled in (`default` workspace, `voice` channel)."""
    for route in app.router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/v1/webhooks/") and route.method in ("GET", "POST"):
            yield route.method, path.format(workspace="default", channel="voice")


async def test_every_webhook_refuses_undecodable_signature_headers_before_anything_else(names):
    async with hostile_apps(names) as apps:
        targets = sorted(set(webhook_targets(apps.intake.app)))
        assert len(targets) >= 16, targets
        for method, path in targets:
            for header in SIGNATURE_HEADERS:
                response = await raw_request(port(apps.intake), method, path, [(header, b"sha256=\xff\xfe\xed\xa0\x80")],
                                             b"{}" if method == "POST" else b"")
                error = assert_json_error(response, 400)
                assert error["message"] == f"header {header} is not valid UTF-8", (method, path)
            response = await raw_request(port(apps.intake), method, path + "?token=%ff", [], b"")
            assert assert_json_error(response, 400)["message"] == "the query string is not valid UTF-8"


async def test_a_pbx_timestamp_that_is_a_digit_but_no_number_is_a_403(names):
    async with hostile_apps(names) as apps:
        headers, body = voice_fx.pbx_request({"event": "call.incoming", "call_id": "c-1", "from": "+14155550123"})
        for timestamp in ("²", "١٧٠٠٠٠٠٠٠٠", "9" * 5000):
            response = await raw_request(port(apps.intake), "POST", "/v1/webhooks/telephony/default",
                                         list({**headers, "X-Switchyard-Timestamp": timestamp}.items()), body)
            assert "X-Switchyard-Timestamp" in assert_json_error(response, 403)["message"]


# -- web chat files ------------------------------------------------------------------------------


def multipart(content_type: bytes = b"text/plain", filename: bytes = b'filename="a.txt"', boundary: bytes = b"XyZ") -> bytes:
    return (b"--" + boundary + b'\r\nContent-Disposition: form-data; name="client_id"\r\n\r\nc1\r\n'
            b"--" + boundary + b'\r\nContent-Disposition: form-data; name="file"; ' + filename + b"\r\n"
            b"Content-Type: " + content_type + b"\r\n\r\nhello\r\n--" + boundary + b"--\r\n")


async def upload(apps: Apps, token: str, body: bytes, content_type: bytes = b"multipart/form-data; boundary=XyZ") -> RawResponse:
    return await raw_request(port(apps.intake), "POST", f"/v1/chat/messages?session={token}",
                             [("Content-Type", content_type)], body)


async def test_broken_multipart_uploads_are_4xx_json(names):
    async with hostile_apps(names) as apps:
        token = await chat_token(apps)
        cases = [
            (multipart(), b"multipart/form-data", 400),  # no boundary
            (multipart(), b"multipart/form-data; boundary=", 400),
            (multipart(), b"multipart/form-data; boundary=" + b"x" * 100, 400),  # over 70 characters
            (multipart()[:60], b"multipart/form-data; boundary=XyZ", 400),  # truncated in a part's headers
            (multipart()[:-12], b"multipart/form-data; boundary=XyZ", 400),  # truncated in the file
            (multipart(content_type=b"text/" + b"x" * 200), b"multipart/form-data; boundary=XyZ", 422),
            (multipart(filename=b'filename="a\\"\r\nb.txt"'), b"multipart/form-data; boundary=XyZ", 400),
            (b'--XyZ\r\nContent-Disposition: form-data; name="text"\r\n\r\n\xff\xfe\r\n--XyZ--\r\n',
             b"multipart/form-data; boundary=XyZ", 400),  # a text field that is not UTF-8
            ((b'--XyZ\r\nContent-Disposition: form-data; name="text"\r\nContent-Type: text/plain; charset=nope\r\n\r\n'
              b"x\r\n--XyZ--\r\n"), b"multipart/form-data; boundary=XyZ", 400),  # a charset Python does not know
            (multipart().replace(b"Content-Type: text/plain", b"Content-Type: text/plain\r\nContent-Encoding: nope"),
             b"multipart/form-data; boundary=XyZ", 400),  # aiohttp raised RuntimeError
            (multipart().replace(b"Content-Type: text/plain", b"Content-Transfer-Encoding: base64"),
             b"multipart/form-data; boundary=XyZ", 400),
            (b'--XyZ\r\nContent-Disposition: form-data; name="x"\r\nContent-Type: multipart/mixed; boundary=Q\r\n\r\n'
             b"--Q\r\n\r\nq\r\n--Q--\r\n--XyZ--\r\n", b"multipart/form-data; boundary=XyZ", 400),  # nested
            (b"--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--\r\n", b"multipart/form-data; boundary=XyZ", 400),
            (multipart(), b"multipart/mixed; boundary=XyZ", 415),
            (b"client_id=%ff&text=\xff", b"application/x-www-form-urlencoded", 400),
            (b"{}", b"application/json", 415),
        ]
        for body, content_type, status in cases:
            assert_json_error(await upload(apps, token, body, content_type), status)


async def test_an_upload_with_a_charset_and_a_hostile_name_downloads(names):
    async with hostile_apps(names) as apps:
        token = await chat_token(apps)
        names_sent = {
            b"filename*=UTF-8''a%0D%0Ab%22c.txt": ("ab\"c.txt", "attachment; filename=\"ab_c.txt\"; filename*=UTF-8''ab%22c.txt"),
            b'filename="r\xc3\xa9sum\xc3\xa9.txt"': ("résumé.txt", "attachment; filename=\"r_sum_.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9.txt"),
            b'filename="bad\xff.txt"': ("bad.txt", 'attachment; filename="bad.txt"'),
        }
        for index, (filename, (stored_name, disposition)) in enumerate(names_sent.items()):
            body = multipart(content_type=b"text/plain; charset=utf-8", filename=filename).replace(b"c1", f"c{index}".encode())
            response = await upload(apps, token, body)
            assert response.status == 202, response.body
            attachment = response.json()["attachment"]
            assert (attachment["filename"], attachment["content_type"]) == (stored_name, "text/plain; charset=utf-8")
            download = await raw_request(port(apps.agents), "GET", f"/v1/attachments/{attachment['attachment_id']}", [BEARER])
            assert download.status == 200 and download.body == b"hello"
            assert download.headers["content-type"] == "text/plain; charset=utf-8"
            assert download.headers["content-disposition"] == disposition


async def test_a_file_stored_before_with_any_type_and_name_still_downloads(names):
    """What is already in GridFS was stored unchecked: the download makes it safe on the way out."""
    async with hostile_apps(names) as apps:
        client = AsyncMongoClient(names.infra.mongo_url)
        try:
            bucket = AsyncGridFSBucket(client[names.namespace], bucket_name=BUCKET)
            stored = [("f1", "a\r\nb.txt", "text/plain; charset=utf-8"), ("f2", "x\"y.txt", "text/" + "h" * 300),
                      ("f3", "z.bin", "\r\nSet-Cookie: a=b"), ("f4", "", None)]
            for file_id, filename, content_type in stored:
                await bucket.upload_from_stream_with_id(file_id, filename, b"data",
                                                        metadata={"workspace_id": "default", "content_type": content_type})
        finally:
            await client.close()
        expected = {"f1": ("text/plain; charset=utf-8", "attachment; filename=\"ab.txt\""),
                    "f2": ("application/octet-stream", "attachment; filename=\"x_y.txt\"; filename*=UTF-8''x%22y.txt"),
                    "f3": ("application/octet-stream", 'attachment; filename="z.bin"'),
                    "f4": ("application/octet-stream", 'attachment; filename="attachment"')}
        for file_id, (content_type, disposition) in expected.items():
            download = await raw_request(port(apps.agents), "GET", f"/v1/attachments/{file_id}", [BEARER])
            assert download.status == 200 and download.body == b"data", (file_id, download.status, download.body)
            assert (download.headers["content-type"], download.headers["content-disposition"]) == (content_type, disposition)


# -- WebSocket frames ----------------------------------------------------------------------------


async def test_a_deep_frame_on_the_chat_socket_is_answered_and_the_socket_stays_open(names):
    async with hostile_apps(names) as apps, apps.intake.ws_connect("/v1/chat/ws?workspace=default") as ws:
        assert (await ws.receive_json(timeout=10))["type"] == "session"
        assert (await ws.receive_json(timeout=10))["type"] == "history"
        for bad in (DEEP, "{" * 5000, "not json", '{"type": "dance"}'):
            await ws.send_str(bad)
            frame = await ws.receive_json(timeout=10)
            assert (frame["type"], frame["client_id"]) == ("error", None), frame
        await ws.send_bytes(b"\x00\x01")
        assert (await ws.receive_json(timeout=10))["type"] == "error"
        await ws.send_json({"type": "message", "text": "still here", "client_id": "c1"})
        frame = await ws.receive_json(timeout=10)
        assert (frame["type"], frame["client_id"]) == ("ack", "c1"), frame


async def test_a_deep_frame_on_the_desk_socket_is_answered_and_the_socket_stays_open(names):
    async with hostile_apps(names) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        for bad in (DEEP, "{" * 5000, "not json", '{"type": "typing"}'):
            await desk.ws.send_str(bad)
            assert (await desk.next_frame())["type"] == "error"
        await desk.ws.send_bytes(b"\x00\x01")
        assert (await desk.next_frame())["type"] == "error"
        assert not desk.ws.closed
        await apps.post("c1", "hello")
        assert (await desk.next_frame())["type"] == "conversation.assigned"  # the desk still gets its work


# -- a validator crashing on its input -----------------------------------------------------------


async def test_a_routing_config_naming_a_directory_as_its_time_zone_is_a_422(names):
    async with hostile_apps(names) as apps:
        for zone in ("Europe", "a" * 300):
            config = {"queues": [{"name": "default", "hours": {"timezone": zone, "weekly": {"mon": ["09:00-17:00"]}}}]}
            response = await apps.router.put("/v1/routing/config", json=config, headers=auth())
            assert response.status == 422, await response.text()
            assert (await response.json())["error"]["status"] == 422


# -- the sweep: every route, a table of hostile requests -----------------------------------------

PARAMETER_VALUES = ["x", "%C3%A9%E2%80%AE", "%ff%fe", "%ED%A0%80", "%00", "a" * 2000, "..%2F..", "%20", "default"]
QUERIES = [
    "limit=" + str(-(2**63) - 1), "limit=" + "9" * 30, "limit=%C2%B2", "limit=", "limit=-1&limit=0",
    "token=%ff", "session=%C3%A9.%C3%A9", "session=x.%00", "session=" + "a" * 3000, "workspace=%00", "workspace=%ff",
    "name=" + "n" * 3000, "status=%00", "assignee_id=%00&channel=%C3%A9", "agent=%C3%A9&conversation=%00&from=" + "9" * 100,
    "hub.mode=subscribe&hub.verify_token=%C3%A9&hub.challenge=%00",
]
HEADERS: list[list[tuple[str, bytes]]] = [
    [("Idempotency-Key", b"\xff")], [("Idempotency-Key", b"\xed\xa0\x80")], [("Idempotency-Key", b"")],
    [("X-Switchyard-Timestamp", "²".encode()), ("X-Switchyard-Signature", b"sha256=00")],
    [("X-Twilio-Signature", "é".encode())], [("X-Hub-Signature-256", "sha256=é".encode())],
    [("X-Telegram-Bot-Api-Secret-Token", "é".encode())], [("Authorization", b"Bearer \xff")],
    [("Accept", b"\xc3")], [("Cookie", b"a=\xfe")], [("Content-Type", b"application/\xff")],
    *([(name, b"sha256=\xff\xfe")] for name in SIGNATURE_HEADERS),
]
BODIES: list[tuple[str, bytes]] = [
    ("application/json", b""), ("application/json", DEEP.encode()), ("application/json", b"{" * 5000),
    ("application/json", b'{"metadata": ' + b'{"a": ' * 150 + b"1" + b"}" * 151),
    ("application/json", b"\xff\xfe"), ("application/json", b"null"), ("application/json", b"[]"),
    ("application/json", b'{"text": "\\ud800", "contact": {"id": "\\udfff"}}'),
    ("application/json", b'{"max_conversations": 1e999999, "priority": -99999999999999999999999, "limit": 1e400}'),
    ("application/json", b'{"name": "\\u0000", "status": "\\u202e", "to_agent": "..", "agent_id": "' + b"a" * 5000 + b'"}'),
    ("application/json; charset=nope", b"{}"), ("text/plain", b"hello"), ("application/xml", b"<a/>"),
    ("multipart/form-data", b"--x\r\n"), ("multipart/form-data; boundary=x", b"--x\r\nContent-Disposition: form-data\r\n"),
    ("application/x-www-form-urlencoded", b"%ff=%fe&\xff=1&a"), ("application/x-www-form-urlencoded", b"&" * 5000),
]


def route_table(app: web.Application) -> list[tuple[str, str]]:
    """(method, path template) of every route but the HEAD twins aiohttp adds to GETs."""
    return sorted({(route.method, route.resource.canonical) for route in app.router.routes()
                   if route.method != "HEAD" and route.resource is not None})


def fill(template: str, value: str) -> str:
    for name in ("workspace", "channel", "agent_id", "conversation_id", "contact_id", "attachment_id", "token",
                 "response_id", "subscription_id", "delivery_id", "message_id"):
        template = template.replace("{" + name + "}", "default" if name == "workspace" and value == "x" else value)
    assert "{" not in template, template
    return template


def hostile_requests(method: str, template: str) -> Iterator[tuple[str, str, list, bytes]]:
    """(method, target, headers, body): path values, queries, headers, bodies, and methods the route does not take."""
    path = fill(template, "x")
    for value in PARAMETER_VALUES:
        yield method, fill(template, value), [BEARER], b""
    for query in QUERIES:
        yield method, f"{path}?{query}", [BEARER], b""
    for headers in HEADERS:
        yield method, path, [BEARER, *headers], b""
    if method in ("POST", "PUT"):
        for content_type, body in BODIES:
            yield method, path, [BEARER, ("Content-Type", content_type)], body
        yield method, path, [BEARER, ("Content-Type", "application/json"), ("Content-Encoding", "gzip")], b"{}"
    for other in ("DELETE", "PATCH", "OPTIONS"):
        yield other, path, [BEARER], b""


async def sweep(client, app: web.Application) -> list[str]:
    """Every hostile request at every route of `app`; the ones answered with a 5xx or a non-JSON error."""
    failures: list[str] = []
    for method, template in route_table(app):
        for request in hostile_requests(method, template):
            response = await raw_request(port(client), *request)
            if response.status >= 500 or response.status >= 400 and not _is_json_error(response):
                failures.append(f"{request[0]} {request[1][:120]} {request[2][1:]} {request[3][:40]!r} -> "
                                f"{response.status} {response.body[:200]!r}")
    return failures


def _is_json_error(response: RawResponse) -> bool:
    try:
        error = response.json()["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return error.get("status") == response.status and isinstance(error.get("message"), str)


@pytest.mark.parametrize("service", ["intake", "agents", "router"])
async def test_every_route_answers_hostile_input_with_a_4xx_json_error(names, service):
    async with hostile_apps(names) as apps:
        await apps.put_agent("x")
        client = getattr(apps, service)
        failures = await sweep(client, client.app)
        assert not failures, "\n".join(failures)
