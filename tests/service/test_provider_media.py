"""Customers' files kept by providers: fetched at intake, stored in GridFS, downloadable from the agents service.

One local server stands in for every provider's file API (Telegram getFile and file download,
the WhatsApp media lookup and its media URL, Meta's CDN, Twilio's media URLs); the webhooks are
built by each provider's test fixture from its documented payloads.
"""

import asyncio
import base64
import mimetypes
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pymongo import AsyncMongoClient

from tests.conftest import auth
from tests.fixtures import messenger as ms
from tests.fixtures import telegram as tg
from tests.fixtures import twilio as tw
from tests.fixtures import whatsapp as wa
from tests.service.helpers import Apps, running_apps, stand_in_server

PUBLIC_URL = "https://switchyard.example.com"
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 12
JPEG = b"\xff\xd8\xff\xe0" + bytes(reversed(range(256))) * 9
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x01" * 700
TWILIO_BASIC = "Basic " + base64.b64encode(f"{tw.ACCOUNT_SID}:{tw.AUTH_TOKEN}".encode()).decode()
BEARER = f"Bearer {wa.ACCESS_TOKEN}"


@dataclass
class Providers:
    """The stand-in: serves `files` by path (query ignored), 404 for any other; records (path, Authorization)."""

    base: str = ""
    files: dict[str, bytes] = field(default_factory=dict)
    # Paths served without Content-Length, in small chunks: the size shows only while reading.
    streamed: set[str] = field(default_factory=set)
    requests: list[tuple[str, str | None]] = field(default_factory=list)

    def asked(self, path: str) -> int:
        return sum(1 for asked, _ in self.requests if asked == path)

    async def get_file(self, request: web.Request) -> web.Response:
        """Telegram's getFile: the token in the URL must be the bot's; the path is ours to choose."""
        self.requests.append((request.path, None))
        if request.match_info["token"] != tg.BOT_TOKEN:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        file_id = (await request.json())["file_id"]
        result = {"file_id": file_id, "file_unique_id": "AgADdoc", "file_path": f"documents/{file_id}.pdf"}
        return web.json_response({"ok": True, "result": result})

    async def media_lookup(self, request: web.Request) -> web.Response:
        """WhatsApp's GET /{media-id} (Bearer token required): where the media is, and what it is."""
        self.requests.append((request.path, request.headers.get("Authorization")))
        if request.headers.get("Authorization") != BEARER:
            return web.json_response({"error": {"message": "Invalid OAuth access token.", "code": 190}}, status=401)
        media_id = request.match_info["media_id"]
        data = self.files.get(f"/whatsapp-cdn/{media_id}")
        if data is None:
            return web.json_response({"error": {"message": "Unsupported get request.", "code": 100}}, status=404)
        return web.json_response({"messaging_product": "whatsapp", "url": f"{self.base}/whatsapp-cdn/{media_id}",
                                  "mime_type": "application/pdf", "sha256": "c0ffee", "file_size": str(len(data)),
                                  "id": media_id})

    async def twilio_media(self, request: web.Request) -> web.StreamResponse:
        """Twilio's media URL: basic auth with the account, then a redirect to its CDN (another origin)."""
        self.requests.append((request.path, request.headers.get("Authorization")))
        if request.headers.get("Authorization") != TWILIO_BASIC:
            return web.json_response({"code": 20003, "message": "Authenticate", "status": 401}, status=401)
        cdn = self.base.replace("127.0.0.1", "localhost")
        raise web.HTTPTemporaryRedirect(f"{cdn}/twilio-cdn/{request.match_info['media_sid']}")

    async def file(self, request: web.Request) -> web.StreamResponse:
        self.requests.append((request.path, request.headers.get("Authorization")))
        if request.path.startswith("/whatsapp-cdn/") and request.headers.get("Authorization") != BEARER:
            return web.Response(status=401)
        data = self.files.get(request.path)
        if data is None:
            return web.Response(status=404, text="not found")
        content_type = mimetypes.guess_type(request.path)[0] or "application/octet-stream"
        if request.path not in self.streamed:
            return web.Response(body=data, content_type=content_type)
        response = web.StreamResponse(headers={"Content-Type": content_type})  # chunked: no Content-Length to refuse it by
        await response.prepare(request)
        for start in range(0, len(data), 512):
            await response.write(data[start:start + 512])
        await response.write_eof()
        return response


@asynccontextmanager
async def providers() -> AsyncIterator[Providers]:
    stand_in = Providers()
    async with stand_in_server(
        ("POST", "/bot{token}/getFile", stand_in.get_file),
        ("GET", "/v21.0/{media_id}", stand_in.media_lookup),
        ("GET", "/2010-04-01/Accounts/{sid}/Messages/{message_sid}/Media/{media_sid}", stand_in.twilio_media),
        ("GET", "/{path:.*}", stand_in.file),
    ) as base:
        stand_in.base = base
        yield stand_in


@asynccontextmanager
async def media_stack(names, stand_in: Providers, **overrides: Any) -> AsyncIterator[Apps]:
    """Every channel with files pointed at the stand-in, and an agent online to receive what comes."""
    channels = {"default": {
        "telegram": {**tg.BENCH_CONFIG, "base_url": stand_in.base},
        "whatsapp": {**wa.BENCH_CONFIG, "graph_base_url": f"{stand_in.base}/v21.0"},
        "messenger": {**ms.BENCH_CONFIG, "graph_base_url": f"{stand_in.base}/v21.0"},
        "sms": {**tw.BENCH_CONFIG, "base_url": stand_in.base},
    }}
    async with running_apps(names, channels=channels, public_url=PUBLIC_URL, **overrides) as apps:
        await apps.put_agent("ann", capacity=10)
        yield apps


# -- delivering each provider's webhook --------------------------------------------------------


async def deliver_telegram(apps: Apps, payload: dict = tg.DOCUMENT) -> None:
    response = await apps.intake.post("/v1/webhooks/telegram/default", data=tg.body(payload), headers=tg.headers())
    assert response.status == 200, await response.text()


async def deliver_whatsapp(apps: Apps, payload: dict = wa.DOCUMENT) -> None:
    body = wa.encode(payload)
    response = await apps.intake.post("/v1/webhooks/whatsapp/default", data=body, headers=wa.signed_headers(body))
    assert response.status == 200, await response.text()


async def deliver_messenger(apps: Apps, payload: dict) -> None:
    body = ms.encode(payload)
    response = await apps.intake.post("/v1/webhooks/messenger/default", data=body, headers=ms.signed_headers(body))
    assert response.status == 200, await response.text()


async def deliver_sms(apps: Apps, params: dict[str, str]) -> None:
    path = "/v1/webhooks/sms/default"
    headers, body = tw.signed_request(PUBLIC_URL, path, params)
    response = await apps.intake.post(path, data=body, headers=headers)
    assert response.status == 200, await response.text()


TELEGRAM_FILE = f"/file/bot{tg.BOT_TOKEN}/documents/BQACAgQAAxkBAAIBdoc.pdf"
WHATSAPP_FILE = "/whatsapp-cdn/1009123425562291"
MESSENGER_FILE = "/v/t59.2708-21/receipt.pdf"


def twilio_media_sid(n: int) -> str:
    return f"ME{str(n) * 32}"


# -- reading what the agents service stored -----------------------------------------------------


async def stored_messages(apps: Apps, channel: str, count: int = 1, timeout: float = 20) -> list[dict]:
    """The inbound messages of the channel's conversation, once `count` of them are stored (polling an HTTP view)."""
    async with asyncio.timeout(timeout):
        while True:
            listed = await (await apps.agents.get("/v1/conversations", params={"channel": channel}, headers=auth())).json()
            for conversation in listed["conversations"]:
                body = await (await apps.agents.get(f"/v1/conversations/{conversation['conversation_id']}",
                                                    headers=auth())).json()
                inbound = [m for m in body["messages"] if m["direction"] == "inbound"]
                if len(inbound) >= count:
                    return inbound
            await asyncio.sleep(0.05)  # the condition, not the pause, ends the wait


async def download(apps: Apps, attachment_id: str) -> bytes:
    response = await apps.agents.get(f"/v1/attachments/{attachment_id}", headers=auth())
    assert response.status == 200, await response.text()
    return await response.read()


async def stored_file_count(names) -> int:
    client = AsyncMongoClient(names.infra.mongo_url)
    try:
        return await client[names.namespace]["attachments.files"].count_documents({})
    finally:
        await client.close()


# -- the tests --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Case:
    channel: str
    served: dict[str, bytes]
    deliver: Callable[[Apps, Providers], Any]
    expected: list[tuple[bytes, str, str | None]]  # (bytes, content type, file name) per attachment


CASES = [
    Case("telegram", {TELEGRAM_FILE: PDF}, lambda apps, _: deliver_telegram(apps),
         [(PDF, "application/pdf", "invoice-2024-118.pdf")]),
    Case("whatsapp", {WHATSAPP_FILE: PDF}, lambda apps, _: deliver_whatsapp(apps),
         [(PDF, "application/pdf", "invoice-2025-118.pdf")]),
    # Messenger says only "file": the CDN's answer tells the type, the URL the name.
    Case("messenger", {MESSENGER_FILE: PDF}, lambda apps, p: deliver_messenger(apps, ms.on_cdn(ms.FILE_WITH_TEXT, p.base)),
         [(PDF, "application/pdf", "receipt.pdf")]),
    Case("sms", {f"/twilio-cdn/{twilio_media_sid(1)}": JPEG, f"/twilio-cdn/{twilio_media_sid(2)}": PNG},
         lambda apps, _: deliver_sms(apps, tw.incoming_mms(7)),
         [(JPEG, "image/jpeg", None), (PNG, "image/png", None)]),
]


async def test_each_providers_file_is_fetched_stored_and_downloads_as_sent(names):
    async with providers() as stand_in, media_stack(names, stand_in) as apps:
        for case in CASES:
            stand_in.files.update(case.served)
            await case.deliver(apps, stand_in)
            [message] = await stored_messages(apps, case.channel)
            attachments = message["attachments"]
            assert len(attachments) == len(case.expected), case.channel
            for attachment, (data, content_type, filename) in zip(attachments, case.expected, strict=True):
                assert attachment["attachment_id"] and attachment["error"] is None, (case.channel, attachment)
                assert (attachment["size"], attachment["content_type"], attachment["filename"]) == (
                    len(data), content_type, filename), case.channel
                assert attachment["url"], "the provider's reference is kept"
                assert await download(apps, attachment["attachment_id"]) == data, case.channel
        # Each provider's credentials went where its API wants them, and only there.
        assert stand_in.requests.count((WHATSAPP_FILE, BEARER)) == 1
        assert ("/v21.0/1009123425562291", BEARER) in stand_in.requests
        assert (f"/bot{tg.BOT_TOKEN}/getFile", None) in stand_in.requests
        media_path = f"/2010-04-01/Accounts/{tw.ACCOUNT_SID}/Messages/{tw.message_sid(7)}/Media/{twilio_media_sid(1)}"
        assert (media_path, TWILIO_BASIC) in stand_in.requests
        # Twilio redirects to its CDN: the account's credentials do not follow to another origin.
        assert (f"/twilio-cdn/{twilio_media_sid(1)}", None) in stand_in.requests
        assert [a for p, a in stand_in.requests if p in (MESSENGER_FILE, TELEGRAM_FILE)] == [None, None]


async def test_a_file_the_provider_does_not_serve_leaves_the_reference_and_the_reason(names):
    async with providers() as stand_in, media_stack(names, stand_in) as apps:
        # Telegram's file is gone (404); one of the two MMS media is there, the other not.
        stand_in.files[f"/twilio-cdn/{twilio_media_sid(2)}"] = PNG
        await deliver_telegram(apps)
        await deliver_sms(apps, tw.incoming_mms(8))
        await deliver_whatsapp(apps)  # the media lookup answers 404 with Graph's error
        [telegram] = await stored_messages(apps, "telegram")
        [document] = telegram["attachments"]
        assert telegram["text"] == "[document invoice-2024-118.pdf]"
        assert (document["attachment_id"], document["error"]) == (None, "provider answered 404")
        assert document["url"] == "telegram:file/BQACAgQAAxkBAAIBdoc"

        [sms] = await stored_messages(apps, "sms")
        missing, present = sms["attachments"]
        assert (missing["attachment_id"], missing["error"]) == (None, "provider answered 404")
        assert missing["url"].startswith("https://api.twilio.com/2010-04-01/Accounts/")
        assert present["error"] is None and await download(apps, present["attachment_id"]) == PNG

        [whatsapp] = await stored_messages(apps, "whatsapp")
        [media] = whatsapp["attachments"]
        assert (media["attachment_id"], media["error"]) == (None, "provider answered 404: Unsupported get request.")
        assert media["url"] == "whatsapp:media/1009123425562291"
        assert await stored_file_count(names) == 1


async def test_files_over_the_limit_are_refused_without_reading_them_whole(names):
    async with providers() as stand_in, media_stack(names, stand_in, max_attachment_bytes=1000) as apps:
        stand_in.files.update({MESSENGER_FILE: PDF, WHATSAPP_FILE: PDF, TELEGRAM_FILE: b"small enough"})
        stand_in.streamed.add(MESSENGER_FILE)  # chunked: only reading tells it is too big
        await deliver_messenger(apps, ms.on_cdn(ms.FILE_WITH_TEXT, stand_in.base))
        await deliver_whatsapp(apps)  # the lookup declares the size: the media itself is never asked for
        await deliver_telegram(apps)
        for channel in ("messenger", "whatsapp"):
            [message] = await stored_messages(apps, channel)
            [attachment] = message["attachments"]
            assert (attachment["attachment_id"], attachment["error"]) == (None, "over the 1000 byte limit"), channel
        assert stand_in.asked(WHATSAPP_FILE) == 0
        [telegram] = await stored_messages(apps, "telegram")
        assert await download(apps, telegram["attachments"][0]["attachment_id"]) == b"small enough"


async def test_a_redelivered_webhook_stores_its_file_once(names):
    async with providers() as stand_in, media_stack(names, stand_in) as apps:
        stand_in.files[TELEGRAM_FILE] = PDF
        await deliver_telegram(apps)
        [first] = await stored_messages(apps, "telegram")
        await deliver_telegram(apps)  # Telegram retries an update it thinks was not received
        await deliver_telegram(apps, tg.PHOTO_WITHOUT_CAPTION)  # a later message: once it is here, the retry was handled
        messages = await stored_messages(apps, "telegram", count=2)
        assert [m["message_id"] for m in messages][:1] == [first["message_id"]] and len(messages) == 2
        assert await stored_file_count(names) == 1
        # The retry found the file stored and did not ask Telegram for it again.
        assert stand_in.asked(TELEGRAM_FILE) == 1
        assert await download(apps, first["attachments"][0]["attachment_id"]) == PDF


async def test_the_files_of_a_batched_webhook_are_fetched_at_once_not_one_message_after_another(names):
    """Meta batches events: N slow files must cost one fetch timeout before the 200, not N."""
    state = {"in_flight": 0, "most_at_once": 0}
    all_asked = asyncio.Event()

    async def trickle(request: web.Request) -> web.StreamResponse:
        state["in_flight"] += 1
        state["most_at_once"] = max(state["most_at_once"], state["in_flight"])
        if state["most_at_once"] == 4:
            all_asked.set()
        response = web.StreamResponse(headers={"Content-Type": "application/pdf"})
        await response.prepare(request)
        try:
            await all_asked.wait()  # each file stalls until every one was asked for, or intake gives up
            await response.write(b"%PDF")
        finally:
            state["in_flight"] -= 1
        return response

    async with stand_in_server(("GET", "/{path:.*}", trickle)) as cdn:
        events = [ms.event(sender=f"69123456789000{i}", message={"mid": f"m_slow-{i}", "attachments": [
            {"type": "file", "payload": {"url": f"{cdn}/v/slow-{i}.pdf"}}]}) for i in range(4)]
        channels = {"default": {"messenger": ms.BENCH_CONFIG}}
        async with running_apps(names, channels=channels, send_timeout=5.0) as apps:
            await apps.put_agent("ann", capacity=5)  # conversations are stored once assigned
            body = ms.encode(ms.webhook(*events))
            response = await apps.intake.post("/v1/webhooks/messenger/default", data=body, headers=ms.signed_headers(body))
            assert response.status == 200
            assert state["most_at_once"] == 4
            # Each customer's message was published with its file stored (one conversation each).
            async with asyncio.timeout(20):
                while len(listed := (await (await apps.agents.get(
                        "/v1/conversations", params={"channel": "messenger"}, headers=auth())).json())["conversations"]) < 4:
                    await asyncio.sleep(0.05)  # the condition, not the pause, ends the wait
            for conversation in listed:
                body = await (await apps.agents.get(f"/v1/conversations/{conversation['conversation_id']}", headers=auth())).json()
                [attachment] = body["messages"][0]["attachments"]
                assert attachment["attachment_id"] and attachment.get("error") is None
