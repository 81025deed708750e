"""The email channel over the real broker and database, with real mail clients and servers.

Mail comes in through smtplib to intake's SMTP listener, or as aiohttp form posts shaped like
Mailgun's and SendGrid's; replies go out to an aiosmtpd server standing in for the relay.
"""

import asyncio
import io
import os
import smtplib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email import message_from_bytes, policy
from typing import Any

import aiohttp
import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from services.intake.channels.email_mime import reply_message_id
from tests.conftest import auth, free_port
from tests.fixtures import email as fx
from tests.service.helpers import Apps, running_apps, texts


class Relay:
    """Stands in for the workspace's SMTP relay: keeps each mail, or answers every DATA with `answer`."""

    def __init__(self, answer: str | None = None) -> None:
        self.answer = answer
        self.attempts = 0
        self.received: asyncio.Queue[Envelope] = asyncio.Queue()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.attempts += 1
        if self.answer is not None:
            return self.answer
        self.received.put_nowait(envelope)
        return "250 2.0.0 OK"


@asynccontextmanager
async def relay_server(relay: Relay) -> AsyncIterator[int]:
    loop = asyncio.get_running_loop()
    port = free_port()
    server = await loop.create_server(lambda: SMTP(relay, hostname="relay.test", loop=loop), "127.0.0.1", port)
    try:
        yield port
    finally:
        server.close()
        await server.wait_closed()


@asynccontextmanager
async def email_apps(names, relay: Relay, **overrides: Any) -> AsyncIterator[tuple[Apps, int]]:
    """The three services with email configured for `default`; yields them and intake's SMTP port."""
    async with relay_server(relay) as relay_port:
        smtp_port = free_port()
        channels = {"default": {"email": {**fx.BENCH_CONFIG, "relay_port": relay_port}}}
        async with running_apps(names, channels=channels, smtp_port=smtp_port, **overrides) as apps:
            yield apps, smtp_port


async def smtp_send(port: int, raw: bytes, recipients: list[str] | None = None, sender: str = fx.CUSTOMER) -> dict:
    """Send one mail with the stdlib client, as a customer's mail server would."""

    def send() -> dict:
        with smtplib.SMTP("127.0.0.1", port, timeout=15) as client:
            return client.sendmail(sender, recipients or [fx.SUPPORT], raw)

    return await asyncio.to_thread(send)


async def reply(apps: Apps, conversation_id: str, text: str) -> dict:
    response = await apps.agents.post(f"/v1/conversations/{conversation_id}/messages", json={"text": text}, headers=auth())
    assert response.status == 201, await response.text()
    return await response.json()


async def conversation(apps: Apps, conversation_id: str) -> dict:
    return await (await apps.agents.get(f"/v1/conversations/{conversation_id}", headers=auth())).json()


async def failed_status(desk) -> dict:
    """The desk's status frame that reports the reply failed (it carries the reason)."""
    frames = await desk.frames_until(lambda f: any(x["type"] == "message.status" and x["status"] == "failed" for x in f))
    return frames[-1]


async def wait_for_reply_status(apps: Apps, conversation_id: str, status: str) -> dict:
    async with asyncio.timeout(20):
        while True:
            outbound = [m for m in (await conversation(apps, conversation_id))["messages"] if m["direction"] == "outbound"]
            if outbound and outbound[-1]["status"] == status:
                return outbound[-1]
            await asyncio.sleep(0.05)  # polling an HTTP view; the condition, not the sleep, ends it


async def test_mail_in_reply_out_and_the_customers_answer_lands_in_the_same_conversation(names):
    relay = Relay()
    async with email_apps(names, relay) as (apps, smtp_port):
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert await smtp_send(smtp_port, fx.UTF8_QUOTED_PRINTABLE) == {}
        [assigned] = await desk.frames_until(lambda f: f)
        assert assigned["type"] == "conversation.assigned"
        conversation_id = assigned["conversation"]["conversation_id"]
        [first] = assigned["messages"]
        assert first["text"] == "Grüße aus Köln — wo bleibt mein Paket? 📦"
        contact = assigned["conversation"]["contact"]
        assert contact == {"id": fx.CUSTOMER, "email": fx.CUSTOMER, "name": "Jürgen Groß", "phone": None}
        assert assigned["conversation"]["thread_id"] == "m1@customer.example"

        sent = await reply(apps, conversation_id, "Ihr Paket ist unterwegs.")
        envelope = await asyncio.wait_for(relay.received.get(), 20)
        assert envelope.mail_from == fx.SUPPORT and envelope.rcpt_tos == [fx.CUSTOMER]
        mail = message_from_bytes(envelope.original_content, policy=policy.default)
        assert mail["Subject"] == "Re: Grüße: Paket 📦"
        assert mail["In-Reply-To"] == "<m1@customer.example>"
        assert mail["References"] == "<m1@customer.example>"
        assert mail["From"] == "Shop Support <support@shop.example>"
        assert mail["Message-ID"] == reply_message_id(sent["message_id"], "m1@customer.example", "shop.example")
        assert mail["Auto-Submitted"] is None
        assert mail.get_content().strip() == "Ihr Paket ist unterwegs."
        stored = await wait_for_reply_status(apps, conversation_id, "sent")
        assert stored["message_id"] == sent["message_id"]

        # The customer's client answers our mail: In-Reply-To ours, References the chain (RFC 5322 3.6.4).
        answer = fx.mail(
            f"Danke!\n\nOn Tue, 12 Mar 2024 at 11:00, Shop Support <{fx.SUPPORT}> wrote:\n> Ihr Paket ist unterwegs.\n",
            message_id="<m2@customer.example>", subject="Re: Paket",
            headers={"In-Reply-To": mail["Message-ID"], "References": f"<m1@customer.example> {mail['Message-ID']}"},
        )
        await smtp_send(smtp_port, answer)
        frames = await desk.frames_until(lambda f: "Danke!" in texts(f))
        message_frame = frames[-1]
        assert message_frame["type"] == "message" and message_frame["conversation_id"] == conversation_id
        assert message_frame["message"]["metadata"]["full_text"].startswith("Danke!\n\nOn Tue")
        history = await conversation(apps, conversation_id)
        assert [m["direction"] for m in history["messages"]] == ["inbound", "outbound", "inbound"]

        # A client that answers with In-Reply-To alone: our Message-ID names the thread.
        terse = fx.mail("Noch eine Frage.", message_id="<m3@customer.example>", subject="Re: Paket",
                        headers={"In-Reply-To": mail["Message-ID"]})
        await smtp_send(smtp_port, terse)
        frames = await desk.frames_until(lambda f: "Noch eine Frage." in texts(f))
        assert frames[-1]["type"] == "message" and frames[-1]["conversation_id"] == conversation_id


async def test_unknown_recipients_are_refused_with_550(names):
    async with email_apps(names, Relay()) as (_, smtp_port):
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            await smtp_send(smtp_port, fx.PLAIN, recipients=["nobody@shop.example"])
        assert refused.value.recipients["nobody@shop.example"][0] == 550


async def test_machine_mail_is_accepted_over_smtp_and_never_opens_a_conversation(names):
    async with email_apps(names, Relay()) as (apps, smtp_port):
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        for raw in fx.AUTOMATED.values():
            assert await smtp_send(smtp_port, raw) == {}
        assert await smtp_send(smtp_port, fx.PLAIN, sender="") == {}  # MAIL FROM:<> is a bounce
        await smtp_send(smtp_port, fx.mail("A person, at last.\n", message_id="<person@customer.example>"))
        [assigned] = await desk.frames_until(lambda f: f)
        assert [m["text"] for m in assigned["messages"]] == ["A person, at last."]
        listed = await (await apps.agents.get("/v1/conversations", headers=auth())).json()
        assert len(listed["conversations"]) == 1


async def test_a_file_over_the_limit_is_left_out_and_the_mail_kept(names):
    big = os.urandom(5000)
    raw = fx.with_attachments([("big.bin", "application/octet-stream", big), ("photo.png", "image/png", fx.PNG)],
                              text="Two files.")
    async with email_apps(names, Relay(), max_attachment_bytes=2000) as (apps, smtp_port):
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert await smtp_send(smtp_port, raw) == {}
        [assigned] = await desk.frames_until(lambda f: f)
        [message] = assigned["messages"]
        assert message["text"].startswith("Two files.") and "big.bin left out" in message["text"]
        assert message["metadata"]["skipped_attachments"][0]["size"] == 5000
        [attachment] = message["attachments"]
        assert attachment["filename"] == "photo.png"
        download = await apps.agents.get(f"/v1/attachments/{attachment['attachment_id']}", headers=auth())
        assert download.status == 200 and await download.read() == fx.PNG


def mailgun_form(fields: dict[str, str], files: dict[str, tuple[str, str, bytes]] | None = None) -> aiohttp.FormData:
    form = aiohttp.FormData(default_to_multipart=True)
    for name, value in fields.items():
        form.add_field(name, value)
    for name, (filename, content_type, data) in (files or {}).items():
        form.add_field(name, data, filename=filename, content_type=content_type)
    return form


MAILGUN = "/v1/webhooks/email/default/mailgun"


async def test_mailgun_posts_are_verified_published_once_and_bad_ones_refused(names):
    async with email_apps(names, Relay(), max_attachment_bytes=4096) as (apps, _):
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        forged = {**fx.mailgun_parsed_fields(text="forged"), **fx.mailgun_signed("key-not-the-signing-key")}
        response = await apps.intake.post(MAILGUN, data=mailgun_form(forged))
        assert response.status == 403 and (await response.json())["error"]["message"] == "invalid Mailgun signature"
        unsigned = fx.mailgun_parsed_fields(text="unsigned")
        assert (await apps.intake.post(MAILGUN, data=mailgun_form(unsigned))).status == 401

        fields = fx.mailgun_parsed_fields(text="Where is my parcel?", message_id="<mg-once@customer.example>")
        files = {"attachment-1": ("label.pdf", "application/pdf", fx.PDF)}
        for _ in range(2):  # Mailgun retries: a fresh token and signature, the same mail
            response = await apps.intake.post(MAILGUN, data=mailgun_form({**fields, **fx.mailgun_signed()}, files))
            assert response.status == 200, await response.text()
        later = fx.mailgun_parsed_fields(text="Any news?", message_id="<mg-later@customer.example>",
                                         extra_headers=[["In-Reply-To", "<mg-once@customer.example>"],
                                                        ["References", "<mg-once@customer.example>"]])
        assert (await apps.intake.post(MAILGUN, data=mailgun_form({**later, **fx.mailgun_signed()}))).status == 200
        frames = await desk.frames_until(lambda f: "Any news?" in texts(f))
        assert texts(frames) == ["Where is my parcel?", "Any news?"]
        assert frames[0]["messages"][0]["attachments"][0]["filename"] == "label.pdf"

        response = await apps.intake.post(MAILGUN, data=b"not a form", headers={"Content-Type": "text/plain"})
        assert response.status == 400 and "error" in await response.json()
        oversize = io.BytesIO(b"x" * (4096 + 256 * 1024 + 1))
        response = await apps.intake.post(MAILGUN, data=oversize, headers={"Content-Type": "multipart/form-data; boundary=x"})
        assert response.status == 413 and "error" in await response.json()


async def test_a_sendgrid_raw_post_with_the_token_reaches_the_desk_and_without_it_nothing_does(names):
    async with email_apps(names, Relay()) as (apps, _):
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        path = "/v1/webhooks/email/default/sendgrid"
        form = aiohttp.FormData({"to": fx.SUPPORT, "from": fx.CUSTOMER, "email": fx.ISO_2022_JP.decode("ascii")})
        assert (await apps.intake.post(path + "?token=not-the-right-token", data=form)).status == 403
        form = aiohttp.FormData({"to": fx.SUPPORT, "from": fx.CUSTOMER, "email": fx.ISO_2022_JP.decode("ascii")})
        response = await apps.intake.post(f"{path}?token={fx.SENDGRID_TOKEN}", data=form)
        assert response.status == 200, await response.text()
        [assigned] = await desk.frames_until(lambda f: f)
        assert [m["text"] for m in assigned["messages"]] == ["荷物がまだ届きません。"]


async def test_a_relay_that_keeps_refusing_ends_the_reply_failed_with_its_answer(names):
    relay = Relay(answer="451 4.3.0 mailbox busy, try later")
    async with email_apps(names, relay, send_max_attempts=2, send_retry_delay=0.01) as (apps, smtp_port):
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        await smtp_send(smtp_port, fx.PLAIN)
        [assigned] = await desk.frames_until(lambda f: f)
        conversation_id = assigned["conversation"]["conversation_id"]
        await reply(apps, conversation_id, "We are on it.")
        failed = await failed_status(desk)
        assert "451" in failed["reason"] and "after 2 attempts" in failed["reason"]
        assert relay.attempts == 2


async def test_a_bounce_of_our_reply_marks_it_failed_and_opens_nothing(names):
    relay = Relay()
    async with email_apps(names, relay) as (apps, smtp_port):
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        await smtp_send(smtp_port, fx.PLAIN)
        [assigned] = await desk.frames_until(lambda f: f)
        conversation_id = assigned["conversation"]["conversation_id"]
        await reply(apps, conversation_id, "Shipped.")
        envelope = await asyncio.wait_for(relay.received.get(), 20)
        our_id = message_from_bytes(envelope.original_content, policy=policy.default)["Message-ID"]
        await wait_for_reply_status(apps, conversation_id, "sent")
        assert await smtp_send(smtp_port, fx.delivery_failure(our_id), sender="") == {}
        failed = await failed_status(desk)
        assert "550 5.1.1" in failed["reason"]
        await wait_for_reply_status(apps, conversation_id, "failed")
        listed = await (await apps.agents.get("/v1/conversations", headers=auth())).json()
        assert len(listed["conversations"]) == 1
