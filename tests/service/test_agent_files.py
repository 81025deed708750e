"""Files out, on the real broker and database: an agent uploads a file to a conversation and replies with
it; Telegram gets it by sendDocument / sendPhoto (multipart, as the Bot API takes uploads), the web chat
page gets a signed, expiring link intake serves, WhatsApp and Messenger get media messages by such a link,
Twilio an MMS with MediaUrls; voice cannot carry a file; a channel that cannot carry files, a missing part, a
file over the limit, a body that is not a form and an unknown attachment id are refused with reasons."""

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email import message_from_bytes, policy
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from tests.conftest import auth
from tests.fixtures import email as mail_fx
from tests.fixtures import messenger as mfx
from tests.fixtures import telegram as fx
from tests.fixtures import twilio as sms_fx
from tests.fixtures import voice as voice_fx
from tests.fixtures import whatsapp as wfx
from tests.service import test_channel_email as mail
from tests.service import test_channel_messenger as messenger
from tests.service import test_channel_twilio as sms
from tests.service import test_channel_voice as voice
from tests.service import test_channel_whatsapp as whatsapp
from tests.service.csat_helpers import assigned_to
from tests.service.helpers import running_apps, stand_in_server
from tests.service.test_csat_webchat import Chat

PDF = b"%PDF-1.4 a tiny invoice\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


def form(data: bytes, filename: str, content_type: str) -> aiohttp.FormData:
    body = aiohttp.FormData()
    body.add_field("file", data, filename=filename, content_type=content_type)
    return body


async def upload(apps, conversation_id: str, data: bytes, filename: str, content_type: str, headers=None):
    return await apps.agents.post(f"/v1/conversations/{conversation_id}/attachments",
                                  data=form(data, filename, content_type), headers=headers or auth())


@asynccontextmanager
async def bot_api() -> AsyncIterator[asyncio.Queue]:
    """The stand-in Bot API: each call as (method, fields, files) — JSON or multipart, as it came."""
    calls: asyncio.Queue = asyncio.Queue()

    async def method(request: web.Request) -> web.Response:
        if request.content_type == "multipart/form-data":
            posted = await request.post()
            fields = {k: v for k, v in posted.items() if isinstance(v, str)}
            files = {k: (v.filename, v.content_type, v.file.read()) for k, v in posted.items() if not isinstance(v, str)}
        else:
            fields, files = await request.json(), {}
        calls.put_nowait((request.match_info["method"], fields, files))
        return web.json_response(fx.SEND_OK)

    async with stand_in_server(("POST", "/bot{token}/{method}", method)) as base:
        calls.base = base
        yield calls


async def test_a_file_goes_out_through_telegram_as_document_and_photo(names):
    async with bot_api() as calls:
        channels = {"default": {"telegram": {**fx.BENCH_CONFIG, "base_url": calls.base}}}
        async with running_apps(names, channels=channels) as apps:
            await apps.put_agent("ann")
            desk = await apps.desk("ann")
            delivered = await apps.intake.post("/v1/webhooks/telegram/default", data=fx.body(fx.TEXT),
                                               headers=fx.headers(fx.SECRET_TOKEN))
            assert delivered.status == 200, await delivered.text()
            conversation_id = (await assigned_to(desk))["conversation_id"]

            pdf = await upload(apps, conversation_id, PDF, "invoice.pdf", "application/pdf")
            assert pdf.status == 201, await pdf.text()
            stored = await pdf.json()
            assert (stored["filename"], stored["content_type"], stored["size"]) == ("invoice.pdf", "application/pdf", len(PDF))
            png = await (await upload(apps, conversation_id, PNG, "box.png", "image/png")).json()

            reply = await apps.agents.post(f"/v1/conversations/{conversation_id}/messages", headers=auth(), json={
                "text": "Here is your invoice", "attachments": [stored["attachment_id"], png["attachment_id"]]})
            assert reply.status == 201, await reply.text()
            assert [a["filename"] for a in (await reply.json())["attachments"]] == ["invoice.pdf", "box.png"]

            got = [await asyncio.wait_for(calls.get(), 15) for _ in range(3)]
            assert got[0] == ("sendMessage", {"chat_id": fx.CHAT_ID, "text": "Here is your invoice"}, {})
            assert got[1] == ("sendDocument", {"chat_id": str(fx.CHAT_ID)},
                              {"document": ("invoice.pdf", "application/pdf", PDF)})
            assert got[2] == ("sendPhoto", {"chat_id": str(fx.CHAT_ID)}, {"photo": ("box.png", "image/png", PNG)})

            # A file alone (no text) is just the file.
            alone = await apps.agents.post(f"/v1/conversations/{conversation_id}/messages", headers=auth(),
                                           json={"text": "", "attachments": [stored["attachment_id"]]})
            assert alone.status == 201, await alone.text()
            method, _, files = await asyncio.wait_for(calls.get(), 15)
            assert (method, list(files)) == ("sendDocument", ["document"])


async def test_a_web_chat_customer_gets_a_signed_link_to_the_file_live_and_in_the_history(names):
    async with running_apps(names) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        chat = Chat(await apps.intake.ws_connect("/v1/chat/ws?workspace=default"))
        token = (await chat.next_frame())["token"]
        assert (await chat.next_frame())["type"] == "history"
        await chat.say("can I have the invoice?", "c1")
        conversation_id = (await assigned_to(desk))["conversation_id"]
        stored = await (await upload(apps, conversation_id, PDF, "invoice.pdf", "application/pdf")).json()
        reply = await apps.agents.post(f"/v1/conversations/{conversation_id}/messages", headers=auth(),
                                       json={"text": "Attached", "attachments": [stored["attachment_id"]]})
        assert reply.status == 201, await reply.text()

        frame = await chat.next_of("message")
        (file,) = frame["attachments"]
        assert (file["filename"], file["content_type"], file["size"]) == ("invoice.pdf", "application/pdf", len(PDF))
        assert file["url"].startswith("/v1/files/")
        fetched = await apps.intake.get(file["url"])  # no key: the signed link is the permission
        assert fetched.status == 200
        assert await fetched.read() == PDF
        assert fetched.headers["Content-Disposition"].startswith("attachment")
        assert fetched.headers["X-Content-Type-Options"] == "nosniff"
        forged = await apps.intake.get(file["url"][:-2] + ("AA" if not file["url"].endswith("AA") else "BB"))
        assert forged.status == 403
        assert "forged" in (await forged.json())["error"]["message"]
        await chat.ws.close()

        back = Chat(await apps.intake.ws_connect(f"/v1/chat/ws?session={token}"))
        assert (await back.next_frame())["type"] == "session"
        history = await back.next_frame()
        outbound = [m for m in history["messages"] if m["direction"] == "outbound"]
        assert [a["filename"] for a in outbound[0]["attachments"]] == ["invoice.pdf"]
        again = await apps.intake.get(outbound[0]["attachments"][0]["url"])
        assert await again.read() == PDF
        await back.ws.close()


async def test_files_are_refused_with_reasons(names):
    async with running_apps(names, agents_settings={"max_attachment_bytes": 1024}) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        chat = Chat(await apps.intake.ws_connect("/v1/chat/ws?workspace=default"))
        await chat.next_frame(), await chat.next_frame()
        await chat.say("hello", "c1")
        webchat_id = (await assigned_to(desk))["conversation_id"]
        await apps.post("api-contact", "through the API")
        api_id = (await assigned_to(desk))["conversation_id"]

        cannot = await upload(apps, api_id, PDF, "invoice.pdf", "application/pdf")
        assert cannot.status == 422
        assert "the api channel cannot carry files" in (await cannot.json())["error"]["message"]
        too_big = await upload(apps, webchat_id, b"x" * 2048, "big.bin", "application/octet-stream")
        assert too_big.status == 413, await too_big.text()
        assert "over the 1024 byte limit" in (await too_big.json())["error"]["message"]
        not_a_form = await apps.agents.post(f"/v1/conversations/{webchat_id}/attachments", json={"file": "x"},
                                            headers=auth())
        assert not_a_form.status == 415
        no_file = aiohttp.FormData()
        no_file.add_field("other", "x")
        missing = await apps.agents.post(f"/v1/conversations/{webchat_id}/attachments", data=no_file, headers=auth())
        assert missing.status == 422
        assert "'file'" in (await missing.json())["error"]["message"]
        unknown = await apps.agents.post(f"/v1/conversations/{webchat_id}/messages", headers=auth(),
                                         json={"text": "see attached", "attachments": ["out-nope"]})
        assert unknown.status == 422
        assert "out-nope" in (await unknown.json())["error"]["message"]
        empty = await apps.agents.post(f"/v1/conversations/{webchat_id}/messages", headers=auth(), json={"text": " "})
        assert empty.status == 422
        gone = await apps.agents.post("/v1/conversations/nope/attachments", data=form(PDF, "a.pdf", "application/pdf"),
                                      headers=auth())
        assert gone.status == 404


async def uploaded(apps, conversation_id: str, data: bytes, filename: str, content_type: str) -> dict:
    response = await upload(apps, conversation_id, data, filename, content_type)
    assert response.status == 201, await response.text()
    return await response.json()


async def fetch_by_link(apps, link: str) -> bytes:
    """What the provider gets when it follows the signed link (absolute, on intake's INTAKE_PUBLIC_URL)."""
    parts = urlsplit(link)
    assert (parts.scheme, parts.netloc) == ("http", "127.0.0.1:8080") and parts.path.startswith("/v1/files/"), link
    response = await apps.intake.get(parts.path)  # intake answers here; the public URL is where providers reach it
    assert response.status == 200
    return await response.read()


async def test_whatsapp_and_messenger_get_files_as_media_by_signed_link(names):
    async with whatsapp.stand_in_graph() as graph:
        channels = {"default": {"whatsapp": {**wfx.BENCH_CONFIG, "graph_base_url": graph.base_url}}}
        async with running_apps(names, channels=channels) as apps:
            await apps.put_agent("ann")
            desk = await apps.desk("ann")
            assert await whatsapp.post_webhook(apps, wfx.TEXT) == 200
            conversation_id = (await assigned_to(desk))["conversation_id"]
            pdf = await uploaded(apps, conversation_id, PDF, "invoice.pdf", "application/pdf")
            png = await uploaded(apps, conversation_id, PNG, "box.png", "image/png")
            reply = await apps.agents.post(f"/v1/conversations/{conversation_id}/messages", headers=auth(), json={
                "text": "Here you are", "attachments": [pdf["attachment_id"], png["attachment_id"]]})
            assert reply.status == 201, await reply.text()
            bodies = [(await asyncio.wait_for(graph.requests.get(), 15))[2] for _ in range(3)]
            assert [b["type"] for b in bodies] == ["text", "document", "image"]
            assert all(b["to"] == wfx.WA_ID and b["messaging_product"] == "whatsapp" for b in bodies)
            assert bodies[1]["document"]["filename"] == "invoice.pdf"
            assert await fetch_by_link(apps, bodies[1]["document"]["link"]) == PDF
            assert await fetch_by_link(apps, bodies[2]["image"]["link"]) == PNG

    async with messenger.stand_in_graph() as graph, messenger.meta_stack(names, graph) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert await messenger.post_webhook(apps, mfx.TEXT) == 200
        conversation_id = (await assigned_to(desk))["conversation_id"]
        pdf = await uploaded(apps, conversation_id, PDF, "invoice.pdf", "application/pdf")
        reply = await apps.agents.post(f"/v1/conversations/{conversation_id}/messages", headers=auth(),
                                       json={"text": "", "attachments": [pdf["attachment_id"]]})
        assert reply.status == 201, await reply.text()
        _, _, _, body = await asyncio.wait_for(graph.requests.get(), 15)
        attachment = body["message"]["attachment"]
        assert (body["recipient"], attachment["type"], attachment["payload"]["is_reusable"]) == (
            {"id": mfx.PSID}, "file", False)
        assert await fetch_by_link(apps, attachment["payload"]["url"]) == PDF


async def test_sms_sends_files_as_mms_media_urls_and_voice_refuses_them(names):
    forms: asyncio.Queue = asyncio.Queue()

    async def create_message(request: web.Request) -> web.Response:
        posted = await request.post()
        forms.put_nowait((posted["Body"], posted.getall("MediaUrl", [])))
        return web.json_response(sms_fx.created_message("SM" + "d" * 32, posted["To"], posted["Body"]), status=201)

    async with stand_in_server(("POST", "/2010-04-01/Accounts/{sid}/Messages.json", create_message)) as base, \
            running_apps(names, **sms.settings(sms.MessagesApi(url=base))) as apps:
        conversation_id, _ = await sms.open_conversation(apps, sms_fx.incoming_sms(1))
        pdf = await uploaded(apps, conversation_id, PDF, "invoice.pdf", "application/pdf")
        png = await uploaded(apps, conversation_id, PNG, "box.png", "image/png")
        reply = await apps.agents.post(f"/v1/conversations/{conversation_id}/messages", headers=auth(), json={
            "text": "Both attached", "attachments": [pdf["attachment_id"], png["attachment_id"]]})
        assert reply.status == 201, await reply.text()
        body, media = await asyncio.wait_for(forms.get(), 15)
        assert body == "Both attached" and len(media) == 2
        for link, data in zip(media, (PDF, PNG), strict=True):
            parts = urlsplit(link)
            assert f"{parts.scheme}://{parts.netloc}" == sms.PUBLIC_URL and parts.path.startswith("/v1/files/")
            assert await (await apps.intake.get(parts.path)).read() == data

    async with voice.twilio_api() as api, running_apps(names, **voice.settings(api)) as apps:
        await voice.put_voice_agent(apps, "ann")
        desk = await apps.desk("ann")
        await voice.twiml_of(await voice.post_signed(apps, voice.WEBHOOK, voice_fx.incoming_call(1)))
        conversation_id = (await voice.frame_of(desk, "conversation.assigned"))["conversation"]["conversation_id"]
        refused = await upload(apps, conversation_id, PDF, "invoice.pdf", "application/pdf")
        assert refused.status == 422
        assert (await refused.json())["error"]["message"].startswith("the voice channel cannot carry files")


async def test_email_carries_an_agents_file_as_a_mime_attachment(names):
    relay = mail.Relay()
    async with mail.email_apps(names, relay) as (apps, smtp_port):
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert await mail.smtp_send(smtp_port, mail_fx.UTF8_QUOTED_PRINTABLE) == {}
        conversation_id = (await assigned_to(desk))["conversation_id"]
        pdf = await uploaded(apps, conversation_id, PDF, "invoice.pdf", "application/pdf")
        reply = await apps.agents.post(f"/v1/conversations/{conversation_id}/messages", headers=auth(),
                                       json={"text": "Invoice attached.", "attachments": [pdf["attachment_id"]]})
        assert reply.status == 201, await reply.text()
        envelope = await asyncio.wait_for(relay.received.get(), 20)
        sent = message_from_bytes(envelope.original_content, policy=policy.default)
        [attached] = list(sent.iter_attachments())
        assert (attached.get_filename(), attached.get_content_type(), attached.get_content()) == (
            "invoice.pdf", "application/pdf", PDF)
