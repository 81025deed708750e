"""The email channel without broker or database: MIME, threading, loop protection, webhook auth, replies.

The webhook tests run the channel's routes in a small aiohttp app whose Intake records what it
would publish (no broker here; the service tests go through the real one).
"""

import io
import json
import socket
from collections.abc import AsyncIterator
from typing import Any

import aiosmtplib
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from services.intake.channels import email as channel
from services.intake.channels.base import SendError, message_id_for
from services.intake.channels.email_mime import (
    MailError,
    automated_reason,
    html_to_text,
    message_ids,
    parse_mime,
    read_form,
    reply_message_id,
    reply_subject,
    strip_quoted_reply,
    thread_id_for,
)
from services.intake.context import INTAKE, Intake, IntakeMetrics
from services.intake.settings import IntakeSettings
from shared.models import (
    MAX_METADATA_BYTES,
    MAX_TEXT_CHARS,
    Attachment,
    Contact,
    DeliveryStatus,
    InboundMessage,
    OutboundMessage,
    ReplyContext,
)
from shared.web import error_middleware
from tests.conftest import serve
from tests.fixtures import email as fx

WORKSPACE = "default"


class FakeFiles:
    """Stands in for the GridFS store in unit tests: keeps what it is given."""

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}

    async def put(self, workspace_id: str, attachment_id: str, data: bytes, *, filename: str | None, content_type: str) -> Attachment:
        self.files[attachment_id] = data
        return Attachment(attachment_id=attachment_id, filename=filename, content_type=content_type, size=len(data))


class RecordingIntake(Intake):
    """The real Intake (reject, channel_config, metrics, size checks), publishing into lists."""

    def __init__(self, configs: dict | None = None, **settings: Any) -> None:
        base = IntakeSettings(api_keys={"k": WORKSPACE}, **settings)
        configs = configs if configs is not None else {(channel.CHANNEL, WORKSPACE): channel.EmailConfig(**fx.BENCH_CONFIG)}
        super().__init__(base, None, None, IntakeMetrics(CollectorRegistry()), FakeFiles(), configs)  # type: ignore[arg-type]
        self.published: list[InboundMessage] = []
        self.statuses: list[DeliveryStatus] = []

    async def publish_inbound(self, message: InboundMessage) -> None:
        self.published.append(message)

    async def publish_status(self, status: DeliveryStatus) -> None:
        self.statuses.append(status)


def config(**overrides: Any) -> channel.EmailConfig:
    return channel.EmailConfig(**{**fx.BENCH_CONFIG, **overrides})


@pytest.fixture
async def webhook() -> AsyncIterator[tuple[Any, RecordingIntake]]:
    """The channel's routes served by a real aiohttp server with a recording Intake."""
    intake = RecordingIntake()
    app = web.Application(middlewares=[error_middleware])
    app[INTAKE] = intake
    app.router.add_routes(channel.PLUGIN.routes)
    async with serve(app) as client:
        yield client, intake


# --- config ----------------------------------------------------------------------------------


def test_config_lowercases_the_address_and_refuses_what_cannot_work():
    assert config(address="Support@Shop.Example").address == "support@shop.example"
    for bad in ({"address": "not-an-address"}, {"relay_tls": True, "relay_starttls": True}, {"unknown_key": 1},
                {"sendgrid_token": "short"}):
        with pytest.raises(ValidationError):
            config(**bad)
    with pytest.raises(ValidationError):
        channel.EmailConfig(address=fx.SUPPORT)  # no relay for replies


def test_two_workspaces_on_one_address_fail_at_start():
    with pytest.raises(ValueError, match="both use"):
        channel.workspaces_by_address({"a": config(), "b": config()})
    assert channel.workspaces_by_address({"a": config(), "b": config(address="b@shop.example")}) == {
        fx.SUPPORT: "a", "b@shop.example": "b"}


def test_the_smtp_size_limit_leaves_room_for_a_file_over_the_attachment_limit():
    limit = channel.smtp_message_limit(1_000_000)
    assert limit > 1_000_000 * 4 // 3 + 64 * 1024


# --- MIME: charsets, encodings, bodies, files -----------------------------------------------


@pytest.mark.parametrize(("raw", "subject", "text", "name"), [
    (fx.PLAIN, "Parcel not arrived", "Hello,\nmy parcel 42 has not arrived.", "Ada Lovelace"),
    (fx.UTF8_QUOTED_PRINTABLE, "Grüße: Paket 📦", "Grüße aus Köln — wo bleibt mein Paket? 📦", "Jürgen Groß"),
    (fx.KOI8_R, "Где мой заказ", "Здравствуйте! Где мой заказ?", "Ada Lovelace"),
    (fx.WINDOWS_1251, "Возврат денег", "Добрый день, прошу вернуть деньги.", "Ada Lovelace"),
    (fx.ISO_2022_JP, "荷物について", "荷物がまだ届きません。", "Ada Lovelace"),
    # Labels Python does not know: the whole text was lost (read as UTF-8).
    (fx.WINDOWS_874, "พัสดุ", fx.THAI, "สมชาย ใจดี"),
    (fx.ISO_8859_8_I, "הזמנה", fx.HEBREW, "דנה לוי"),
    # Narrow labels on their Windows supersets, as mailers send them: the superset's characters were lost.
    (fx.ISO_8859_1_AS_WINDOWS_1252, "Rückfrage – €", "Preis: 20 € – “Paket” …", "Ada Lovelace"),
    (fx.GB2312_AS_GBK, "包裹 镕", "我的包裹还没有到，镕 碁", "Ada Lovelace"),
    (fx.SHIFT_JIS_AS_CP932, "㈱のお問い合わせ", "荷物①の件、㈱まで。", "Ada Lovelace"),
    (fx.EUC_KR_AS_CP949, "똠 주문", "똠방각하, 주문이 아직 안 왔어요.", "Ada Lovelace"),
    (fx.ISO_2022_JP_NEC, "㈱のお問い合わせ", "荷物①の件、㈱まで。", "Ada Lovelace"),
], ids=["ascii", "utf8-qp-rfc2047", "koi8-r-8bit", "windows-1251-base64", "iso-2022-jp", "windows-874",
        "iso-8859-8-i", "iso-8859-1-is-windows-1252", "gb2312-is-gbk", "shift_jis-is-cp932", "euc-kr-is-cp949",
        "iso-2022-jp-nec-row-13"])
def test_every_charset_and_transfer_encoding_reads_as_unicode(raw, subject, text, name):
    mail = parse_mime(raw)
    assert (mail.subject, mail.text, mail.from_name, mail.from_address) == (subject, text, name, fx.CUSTOMER)
    assert mail.to == [fx.SUPPORT]


def test_an_unknown_charset_still_gives_text():
    mail = parse_mime(fx.mail("caf\xe9 ok\n".encode("latin-1"), content_type="text/plain; charset=x-unknown", transfer_encoding="8bit"))
    assert mail.text.startswith("caf") and mail.text.endswith("ok")


@pytest.mark.parametrize("content_type", ["text/plain; charset=x-unknown", "text/plain", "text/plain; charset=us-ascii"])
def test_an_unknown_missing_or_lying_charset_is_guessed_not_read_as_utf8(content_type):
    text = "Здравствуйте! Мой заказ номер 42 до сих пор не пришёл."
    mail = parse_mime(fx.mail(text.encode("koi8-r"), content_type=content_type, transfer_encoding="8bit"))
    assert mail.text == text


def test_html_without_a_mime_charset_is_read_in_its_meta_charset():
    assert parse_mime(fx.HTML_META_CHARSET).text == fx.THAI


def test_attachment_names_are_decoded_in_any_charset_and_encoding():
    mail = parse_mime(fx.NAMED_ATTACHMENTS)
    assert [(f.filename, f.data) for f in mail.files] == [
        ("ใบเสร็จ.pdf", b"%PDF-1"),  # RFC 2231 in windows-874
        ("חשבונית.pdf", b"%PDF-2"),  # RFC 2231 continuations in iso-8859-8-i
        ("ใบเสนอราคา.pdf", b"%PDF-3"),  # an RFC 2047 encoded word in a quoted name (Outlook)
        ("Größe.pdf", b"%PDF-4"),  # raw UTF-8
    ]


def test_a_raw_8bit_subject_is_read_in_its_likeliest_charset():
    mail = parse_mime(fx.RAW_8BIT_SUBJECT)
    assert (mail.subject, mail.text) == ("Возврат денег за заказ", "Верните деньги.")


def test_alternative_prefers_the_plain_part():
    assert parse_mime(fx.ALTERNATIVE).text == "The plain version."


def test_html_only_mail_becomes_readable_text():
    text = parse_mime(fx.HTML_ONLY).text
    assert text == "Hello team,\n\nsee my order (https://shop.example/orders/42)\nthanks\n\n- one\n- two"
    assert "alert" not in text and "color" not in text


def test_html_to_text_keeps_rows_and_preformatted_lines_and_drops_comments():
    assert html_to_text("<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>") == "a b\nc"
    assert html_to_text("<pre>one\ntwo</pre>") == "one\ntwo"
    assert html_to_text("<div>x<!-- hidden --></div><a href='mailto:a@b.c'>a@b.c</a>") == "x\na@b.c"


def test_attachments_come_out_byte_for_byte_with_their_encoded_names():
    mail = parse_mime(fx.WITH_ATTACHMENTS)
    assert mail.text == "Invoice attached."
    assert [(f.filename, f.content_type, f.data) for f in mail.files] == [
        ("Rechnung März.pdf", "application/pdf", fx.PDF), ("photo.png", "image/png", fx.PNG)]


def test_a_mail_without_headers_or_bytes_is_refused():
    for raw in (b"", b"   \r\n"):
        with pytest.raises(MailError):
            parse_mime(raw)


# --- threading ------------------------------------------------------------------------------


def test_thread_id_is_the_references_root_else_in_reply_to_else_the_own_id():
    assert thread_id_for("<c@x>", "<b@x>", ["<a@x>", "<b@x>"]) == "a@x"
    assert thread_id_for("<c@x>", "<b@x>", []) == "b@x"
    assert thread_id_for("<c@x>", None, []) == "c@x"
    long_id = "<" + "x" * 300 + "@x>"
    assert thread_id_for(long_id, None, []).startswith("sha256:") and len(thread_id_for(long_id, None, [])) < 256


def test_our_reply_message_id_names_its_thread_so_in_reply_to_alone_threads():
    message_id = "0123456789abcdef0123456789abcdef"
    for thread in ("m1@customer.example", "sha256:" + "ab" * 32, "Ünïcode+tag@x.example"):
        ours = reply_message_id(message_id, thread, "shop.example")
        assert ours.startswith(f"<{message_id}.t") and ours.endswith("@shop.example>")
        assert message_ids(ours) == [ours]  # one msg-id token, as mail clients copy it
        assert thread_id_for("<answer@customer.example>", ours, []) == thread
        assert thread_id_for("<answer@customer.example>", None, [ours]) == thread
    auto = reply_message_id("auto:e1", "m1@customer.example", "shop.example")
    assert ":" not in auto and auto == reply_message_id("auto:e1", "m1@customer.example", "shop.example")
    # A forged id naming a thread key longer than ours can be is not ours: the plain rule (hashed).
    forged = reply_message_id(message_id, "x" * 260, "shop.example")
    assert thread_id_for("<a@x>", forged, []).startswith("sha256:")
    # Ids that only look like ours keep the plain rule.
    assert thread_id_for("<c@x>", "<0123.tabc@x>", []) == "0123.tabc@x"
    assert thread_id_for("<c@x>", f"<{message_id}.t1@x>", []) == f"{message_id}.t1@x"


def test_message_ids_are_read_with_or_without_brackets_and_folded():
    assert message_ids("<a@x>\r\n <b@x>  <c@x>") == ["<a@x>", "<b@x>", "<c@x>"]
    assert message_ids("bare@x") == ["<bare@x>"]
    assert message_ids(None) == [] and message_ids("two words") == []


def test_a_reply_threads_under_the_root_and_a_mail_without_message_id_gets_a_stable_one():
    reply = parse_mime(fx.REPLY_WITH_QUOTE)
    assert (reply.message_id, reply.in_reply_to, reply.references) == (
        "<m2@customer.example>", "<r1@shop.example>", ["<m1@customer.example>", "<r1@shop.example>"])
    raw = fx.mail("no id\n", message_id=None)
    assert parse_mime(raw).provider_id == parse_mime(raw).provider_id.lower() == parse_mime(raw).provider_id
    assert parse_mime(raw).provider_id.endswith("@switchyard.invalid>")
    assert parse_mime(raw).provider_id != parse_mime(fx.mail("other\n", message_id=None)).provider_id


@pytest.mark.parametrize(("subject", "expected"), [
    ("Parcel", "Re: Parcel"), ("Re: Parcel", "Re: Parcel"), ("RE:Parcel", "RE:Parcel"), ("AW: Paket", "AW: Paket"),
    ("Re[2]: x", "Re[2]: x"), ("", "Re: (no subject)"), (None, "Re: (no subject)"), ("Regarding  x", "Re: Regarding x"),
])
def test_reply_subject_never_doubles_re(subject, expected):
    assert reply_subject(subject) == expected


# --- quoted history ---------------------------------------------------------------------------


def test_quoted_history_is_cut_only_when_reliable():
    gmail = parse_mime(fx.REPLY_WITH_QUOTE).text
    assert strip_quoted_reply(gmail) == "Yes, order 42."
    assert strip_quoted_reply("Thanks!\nOn Tue, 12 Mar 2024, Shop wrote:\n> hi\n> there\n") == "Thanks!"
    assert strip_quoted_reply(parse_mime(fx.INLINE_QUOTE).text) is None  # text after the quote
    assert strip_quoted_reply("On Tue, Shop wrote:\n> only a quote\n") is None  # nothing new: keep it all
    assert strip_quoted_reply("Plain mail without quotes") is None


# --- loop protection -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(fx.AUTOMATED))
def test_machine_mail_is_recognised(kind):
    assert automated_reason(parse_mime(fx.AUTOMATED[kind]).headers) is not None


def test_a_persons_mail_is_not_machine_mail_even_with_auto_submitted_no():
    assert automated_reason(parse_mime(fx.AUTO_SUBMITTED_NO).headers) is None
    assert automated_reason(parse_mime(fx.PLAIN).headers) is None
    assert automated_reason(parse_mime(fx.PLAIN).headers, envelope_sender="") == "bounce"  # MAIL FROM:<>


def test_a_delivery_failure_names_our_message_and_why():
    mail = parse_mime(fx.delivery_failure("<r9@shop.example>"))
    assert automated_reason(mail.headers) is not None
    assert mail.bounce is not None and mail.bounce.original_message_id == "<r9@shop.example>"
    assert "550 5.1.1 user unknown" in mail.bounce.reason
    assert mail.files == []


# --- forms ------------------------------------------------------------------------------------


def test_a_multipart_form_keeps_every_byte_and_a_urlencoded_form_reads_too():
    blob = bytes(range(256)) * 3 + b"\r\n--not-the-boundary\r\n"
    content_type, body = fx.multipart_form({"a": "héllo\r\nworld"}, {"attachment-1": ("f.bin", "application/pdf", blob)})
    form = read_form(content_type, body)
    assert form.text("a") == "héllo\r\nworld"
    assert form.files["attachment-1"].data == blob and form.files["attachment-1"].filename == "f.bin"
    urlencoded = read_form("application/x-www-form-urlencoded", b"a=1&b=caf%C3%A9&a=2")
    assert (urlencoded.text("a"), urlencoded.text("b")) == ("1", "café")


def test_a_form_field_is_read_in_the_charset_its_part_or_the_form_names():
    content_type, body = fx.multipart_form(
        {"body-plain": fx.THAI.encode("cp874"), "subject": fx.HEBREW.encode("iso8859_8"), "plain": "Grüße"},
        field_types={"body-plain": "text/plain; charset=windows-874"})
    form = read_form(content_type, body)
    assert form.text("body-plain") == fx.THAI  # the part's own charset (RFC 7578 section 4.4)
    assert form.text("subject", "iso-8859-8-i") == fx.HEBREW  # a charset the caller knows (SendGrid's `charsets`)
    assert form.text("plain") == "Grüße"  # no charset: UTF-8
    content_type, body = fx.multipart_form({"_charset_": "windows-874", "note": fx.THAI.encode("cp874")})
    assert read_form(content_type, body).text("note") == fx.THAI  # the form's _charset_ (RFC 7578 section 4.6)


@pytest.mark.parametrize(("content_type", "body"), [
    ("application/json", b"{}"), ("", b"x"), ("multipart/form-data", b"no boundary"),
    ("application/x-www-form-urlencoded", b"\xff\xfe"),
])
def test_a_body_that_is_not_a_form_is_refused(content_type, body):
    with pytest.raises(MailError):
        read_form(content_type, body)


# --- normalization ---------------------------------------------------------------------------


async def test_normalize_gives_contact_thread_metadata_and_a_stable_id():
    intake = RecordingIntake()
    reply = parse_mime(fx.REPLY_WITH_QUOTE)
    message = await channel.normalize(intake, WORKSPACE, config(), reply, "smtp")
    assert message.contact == Contact(id=fx.CUSTOMER, email=fx.CUSTOMER, name="Ada Lovelace")
    assert message.thread_id == "m1@customer.example"
    assert message.message_id == message_id_for(WORKSPACE, "email", "<m2@customer.example>")
    assert message.channel_message_id == "<m2@customer.example>"
    assert message.text == "Yes, order 42."
    assert message.metadata["full_text"].startswith("Yes, order 42.\n\nOn Tue")
    assert message.metadata["subject"] == "Re: Parcel not arrived"
    assert message.metadata["references"] == ["<m1@customer.example>", "<r1@shop.example>"]
    assert message.metadata["in_reply_to"] == "<r1@shop.example>" and message.metadata["message_id"] == "<m2@customer.example>"
    again = await channel.normalize(intake, WORKSPACE, config(), parse_mime(fx.REPLY_WITH_QUOTE), "smtp")
    assert again.message_id == message.message_id


async def test_quote_stripping_can_be_turned_off():
    message = await channel.normalize(RecordingIntake(), WORKSPACE, config(strip_quoted_replies=False),
                                      parse_mime(fx.REPLY_WITH_QUOTE), "smtp")
    assert "> Which order is it?" in message.text and "full_text" not in message.metadata


async def test_a_file_over_the_limit_is_left_out_and_said_so_the_rest_is_stored():
    intake = RecordingIntake(max_attachment_bytes=500)
    message = await channel.normalize(intake, WORKSPACE, config(), parse_mime(fx.WITH_ATTACHMENTS), "smtp")
    assert [a.filename for a in message.attachments] == ["photo.png"]
    assert list(intake.attachments.files.values()) == [fx.PNG]
    [skipped] = message.metadata["skipped_attachments"]
    assert skipped["filename"] == "Rechnung März.pdf" and skipped["size"] == len(fx.PDF)
    assert message.text.startswith("Invoice attached.") and "Rechnung März.pdf left out" in message.text


async def test_a_very_long_file_name_is_cut_keeping_its_extension():
    raw = fx.with_attachments([("x" * 400 + ".pdf", "application/pdf", fx.PDF)])
    message = await channel.normalize(RecordingIntake(), WORKSPACE, config(), parse_mime(raw), "smtp")
    [attachment] = message.attachments
    assert len(attachment.filename) == 256 and attachment.filename.endswith(".pdf")


async def test_a_mail_without_a_sender_address_is_refused_unless_the_envelope_names_one():
    mail = parse_mime(fx.mail("hi\n", sender="undisclosed"))
    with pytest.raises(MailError):
        await channel.normalize(RecordingIntake(), WORKSPACE, config(), mail, "smtp")
    message = await channel.normalize(RecordingIntake(), WORKSPACE, config(), mail, "smtp", envelope_sender="Bob@X.example")
    assert message.contact.id == "bob@x.example" and message.contact.name is None


async def test_machine_mail_is_accepted_but_not_published_and_a_bounce_becomes_a_failed_status():
    intake = RecordingIntake()
    for raw in (fx.AUTOMATED["auto-submitted"], fx.delivery_failure("<r9@shop.example>")):
        assert await channel.accept_mail(intake, WORKSPACE, config(), parse_mime(raw), "smtp") is None
    assert intake.published == []
    [status] = intake.statuses
    assert (status.channel, status.channel_message_id, status.status) == ("email", "<r9@shop.example>", "failed")
    # A report about a Message-ID that is not ours is dropped without a status.
    foreign = parse_mime(fx.delivery_failure("<x@elsewhere.example>"))
    await channel.accept_mail(intake, WORKSPACE, config(), foreign, "smtp")
    assert len(intake.statuses) == 1
    counted = intake.metrics.rejected.labels(channel="email", reason="automated:auto-submitted")._value.get()
    assert counted == 3


# --- webhooks: Mailgun ----------------------------------------------------------------------


async def post_form(client, path: str, fields: dict, files: dict | None = None):
    content_type, body = fx.multipart_form(fields, files)
    return await client.post(path, data=body, headers={"Content-Type": content_type})


MAILGUN = f"/v1/webhooks/email/{WORKSPACE}/mailgun"


async def test_mailgun_parsed_post_with_a_valid_signature_is_published(webhook):
    client, intake = webhook
    fields = {**fx.mailgun_parsed_fields(text="Where is my parcel?"), **fx.mailgun_signed()}
    response = await post_form(client, MAILGUN, fields, {"attachment-1": ("label.pdf", "application/pdf", fx.PDF)})
    assert response.status == 200, await response.text()
    [message] = intake.published
    assert message.text == "Where is my parcel?" and message.thread_id == "mg1@customer.example"
    assert message.contact.name == "Ada Lovelace" and message.metadata["source"] == "mailgun"
    assert [a.filename for a in message.attachments] == ["label.pdf"]
    assert (await response.json())["message_id"] == message.message_id


async def test_mailgun_raw_mime_and_urlencoded_posts_are_published(webhook):
    client, intake = webhook
    # body-mime carries 8bit KOI8-R: posted as bytes, as Mailgun posts the message unchanged.
    fields = {"recipient": fx.SUPPORT, "sender": fx.CUSTOMER, "body-mime": fx.KOI8_R, **fx.mailgun_signed()}
    response = await post_form(client, MAILGUN + "/mime", fields)
    assert response.status == 200, await response.text()
    assert intake.published[-1].text == "Здравствуйте! Где мой заказ?"
    urlencoded = {**fx.mailgun_parsed_fields(text="no files", message_id="<u1@x.example>"), **fx.mailgun_signed()}
    response = await client.post(MAILGUN, data=urlencoded)
    assert response.status == 200 and intake.published[-1].text == "no files"


async def test_mailgun_parsed_post_in_a_charset_python_does_not_know_is_read(webhook):
    client, intake = webhook
    fields = {**fx.mailgun_parsed_fields(text="", subject=fx.encoded_word_as("พัสดุ", "cp874", "windows-874")),
              **fx.mailgun_signed(), "body-plain": fx.THAI.encode("cp874")}
    files = {"attachment-1": ("ใบเสร็จ.pdf", "application/pdf", fx.PDF)}
    content_type, body = fx.multipart_form(fields, files, field_types={"body-plain": "text/plain; charset=windows-874"})
    response = await client.post(MAILGUN, data=body, headers={"Content-Type": content_type})
    assert response.status == 200, await response.text()
    [message] = intake.published
    assert (message.text, message.metadata["subject"]) == (fx.THAI, "พัสดุ")
    assert [a.filename for a in message.attachments] == ["ใบเสร็จ.pdf"]


async def test_mailgun_parsed_post_with_only_html_reads_the_html(webhook):
    client, intake = webhook
    fields = {**fx.mailgun_parsed_fields(text="", html="<p>Only <i>HTML</i></p>"), **fx.mailgun_signed()}
    assert (await post_form(client, MAILGUN, fields)).status == 200
    assert intake.published[-1].text == "Only HTML"


@pytest.mark.parametrize(("change", "status"), [
    ({"signature": "0" * 64}, 403),
    ({"token": "another-token"}, 403),
    ({"signature": ""}, 401),
    ({"timestamp": None}, 401),
])
async def test_mailgun_forged_or_missing_signatures_are_refused_before_anything_is_published(webhook, change, status):
    client, intake = webhook
    fields = {**fx.mailgun_parsed_fields(text="x"), **fx.mailgun_signed()}
    for name, value in change.items():
        if value is None:
            del fields[name]
        else:
            fields[name] = value
    response = await post_form(client, MAILGUN, fields)
    assert response.status == status
    assert (await response.json())["error"]["message"]
    assert intake.published == []


async def test_mailgun_signed_with_another_key_is_refused(webhook):
    client, intake = webhook
    fields = {**fx.mailgun_parsed_fields(text="x"), **fx.mailgun_signed("key-someone-elses-key")}
    assert (await post_form(client, MAILGUN, fields)).status == 403 and intake.published == []


async def test_mailgun_stale_timestamps_are_refused_when_a_max_age_is_set():
    intake = RecordingIntake()
    form = read_form(*fx.multipart_form(fx.mailgun_signed(timestamp="1000000000")))
    channel.verify_mailgun(intake, config(), form)  # no max age: an old (retried) post is fine
    with pytest.raises(web.HTTPForbidden):
        channel.verify_mailgun(intake, config(mailgun_max_age_seconds=900), form)


async def test_webhooks_answer_json_errors_for_bad_bodies_and_unknown_workspaces(webhook):
    client, intake = webhook
    response = await client.post(MAILGUN, data=b"{}", headers={"Content-Type": "application/json"})
    assert response.status == 400 and "multipart" in (await response.json())["error"]["message"]
    fields = {**fx.mailgun_signed(), "message-headers": "not json"}
    response = await post_form(client, MAILGUN, fields)
    assert response.status == 400 and "message-headers" in (await response.json())["error"]["message"]
    response = await post_form(client, MAILGUN, fx.mailgun_signed())
    assert response.status == 400 and "body-mime" in (await response.json())["error"]["message"]
    response = await post_form(client, "/v1/webhooks/email/nowhere/mailgun", fx.mailgun_signed())
    assert response.status == 404
    too_big = io.BytesIO(b"x" * (intake.settings.body_limit_for_files + 1))
    response = await client.post(MAILGUN, data=too_big, headers={"Content-Type": "multipart/form-data; boundary=x"})
    assert response.status == 413 and "error" in await response.json()
    assert intake.published == []


async def test_a_route_the_workspace_did_not_enable_is_forbidden():
    intake = RecordingIntake({(channel.CHANNEL, WORKSPACE): config(mailgun_signing_key=None, sendgrid_token=None)})
    app = web.Application(middlewares=[error_middleware])
    app[INTAKE] = intake
    app.router.add_routes(channel.PLUGIN.routes)
    async with serve(app) as client:
        assert (await post_form(client, MAILGUN, fx.mailgun_signed())).status == 403
        response = await post_form(client, f"/v1/webhooks/email/{WORKSPACE}/sendgrid?token=x", {"email": fx.PLAIN})
        assert response.status == 403
    assert intake.published == []


async def test_automated_mail_through_the_webhook_is_200_and_unpublished(webhook):
    client, intake = webhook
    headers = [["Auto-Submitted", "auto-replied"]]
    fields = {**fx.mailgun_parsed_fields(text="out of office", extra_headers=headers), **fx.mailgun_signed()}
    response = await post_form(client, MAILGUN, fields)
    assert response.status == 200 and (await response.json())["status"] == "ignored"
    assert intake.published == []


async def test_the_bench_request_is_a_valid_signed_post(webhook):
    client, intake = webhook
    for index in (1, 2):
        path, headers, body = fx.bench_request(WORKSPACE, fx.BENCH_CONFIG, index)
        response = await client.post(path, data=body, headers=headers)
        assert response.status == 200, await response.text()
    assert [m.text for m in intake.published] == ["bench message 1", "bench message 2"]
    assert len({m.message_id for m in intake.published}) == 2


# --- webhooks: SendGrid -----------------------------------------------------------------------


SENDGRID = f"/v1/webhooks/email/{WORKSPACE}/sendgrid"


async def test_sendgrid_raw_post_with_the_token_is_published(webhook):
    client, intake = webhook
    fields = {"to": fx.SUPPORT, "from": fx.CUSTOMER, "envelope": json.dumps({"to": [fx.SUPPORT], "from": fx.CUSTOMER}),
              "email": fx.WINDOWS_1251, "charsets": json.dumps({"to": "UTF-8"})}
    response = await post_form(client, f"{SENDGRID}?token={fx.SENDGRID_TOKEN}", fields)
    assert response.status == 200, await response.text()
    [message] = intake.published
    assert message.text == "Добрый день, прошу вернуть деньги." and message.metadata["source"] == "sendgrid"


@pytest.mark.parametrize(("query", "status"), [("", 401), ("?token=", 401), ("?token=wrong-token-wrong-token", 403)])
async def test_sendgrid_without_the_right_token_is_refused(webhook, query, status):
    client, intake = webhook
    response = await post_form(client, SENDGRID + query, {"email": fx.PLAIN})
    assert response.status == status and intake.published == []


async def test_sendgrid_parsed_post_is_read_in_the_charsets_it_names(webhook):
    client, intake = webhook
    fields = fx.sendgrid_parsed_fields(
        text=fx.HEBREW.encode("iso8859_8"), html=f"<p>{fx.THAI}</p>".encode("cp874"),
        charsets={"to": "UTF-8", "from": "UTF-8", "subject": "UTF-8", "text": "iso-8859-8-i", "html": "windows-874"},
        subject_word=fx.encoded_word_as("พัสดุ", "cp874", "windows-874"))
    files = {"attachment1": ("חשבונית.pdf", "application/pdf", fx.PDF)}
    response = await post_form(client, f"{SENDGRID}?token={fx.SENDGRID_TOKEN}", fields, files)
    assert response.status == 200, await response.text()
    [message] = intake.published
    assert (message.text, message.metadata["subject"], message.thread_id) == (fx.HEBREW, "พัสดุ", "sg1@customer.example")
    assert message.contact.email == fx.CUSTOMER and message.metadata["source"] == "sendgrid"
    assert [a.filename for a in message.attachments] == ["חשבונית.pdf"]
    # Only HTML: read in the charset `charsets` names for it.
    fields = {**fields, "text": b"", "headers": str(fields["headers"]).replace("sg1@", "sg2@")}
    assert (await post_form(client, f"{SENDGRID}?token={fx.SENDGRID_TOKEN}", fields)).status == 200
    assert intake.published[-1].text == fx.THAI


async def test_a_sendgrid_post_neither_raw_nor_parsed_is_refused_with_a_hint(webhook):
    client, intake = webhook
    response = await post_form(client, f"{SENDGRID}?token={fx.SENDGRID_TOKEN}", {"text": "hi", "from": fx.CUSTOMER})
    assert response.status == 400 and "raw, full MIME" in (await response.json())["error"]["message"]
    assert intake.published == []


# --- replies --------------------------------------------------------------------------------


def outbound(**fields: Any) -> OutboundMessage:
    base = {
        "message_id": "a1b2c3", "workspace_id": WORKSPACE, "conversation_id": "conv", "channel": "email",
        "thread_id": "m1@customer.example", "contact": Contact(id=fx.CUSTOMER, email=fx.CUSTOMER, name="Ada Lovelace"),
        "agent_id": "ann", "text": "Your parcel ships today.",
        "reply_to": ReplyContext(channel_message_id="<m2@customer.example>", metadata={
            "message_id": "<m2@customer.example>", "subject": "Re: Parcel not arrived",
            "references": ["<m1@customer.example>", "<r1@shop.example>"]}),
    }
    return OutboundMessage(**{**base, **fields})


def test_a_reply_is_threaded_under_the_customers_mail():
    mail = channel.build_reply(outbound(), config(), [])
    assert mail["From"] == "Shop Support <support@shop.example>"
    assert mail["To"] == "Ada Lovelace <ada@customer.example>"
    assert mail["Subject"] == "Re: Parcel not arrived"
    assert mail["In-Reply-To"] == "<m2@customer.example>"
    assert mail["References"] == "<m1@customer.example> <r1@shop.example> <m2@customer.example>"
    assert mail["Message-ID"] == reply_message_id("a1b2c3", "m1@customer.example", "shop.example")
    assert thread_id_for("<m3@customer.example>", mail["Message-ID"], []) == "m1@customer.example"
    assert mail["Auto-Submitted"] is None  # an agent's reply is a person's mail
    assert mail.get_content().strip() == "Your parcel ships today."


def test_a_reply_without_context_answers_the_thread_root_and_a_first_subject_gets_re():
    mail = channel.build_reply(outbound(reply_to=None), config(), [])
    assert (mail["In-Reply-To"], mail["References"], mail["Subject"]) == (
        "<m1@customer.example>", "<m1@customer.example>", "Re: (no subject)")
    first = outbound(reply_to=ReplyContext(metadata={"message_id": "<m1@customer.example>", "subject": "Parcel"}))
    assert channel.build_reply(first, config(), [])["Subject"] == "Re: Parcel"


def test_long_reference_chains_keep_the_root_and_the_latest():
    references = [f"<r{i}@x>" for i in range(40)]
    message = outbound(reply_to=ReplyContext(metadata={"message_id": "<last@x>", "references": references}))
    kept = str(channel.build_reply(message, config(), [])["References"]).split()
    assert len(kept) == channel.MAX_REFERENCES and kept[0] == "<r0@x>" and kept[-1] == "<last@x>"


def test_a_reply_carries_files_and_needs_an_address():
    mail = channel.build_reply(outbound(), config(), [channel.MailFile("a.pdf", "application/pdf", fx.PDF)])
    [part] = list(mail.iter_attachments())
    assert part.get_filename() == "a.pdf" and part.get_content() == fx.PDF
    with pytest.raises(SendError) as error:
        channel.build_reply(outbound(contact=Contact(id="crm-17")), config(), [])
    assert error.value.retry is False


@pytest.mark.parametrize(("error", "retry"), [
    (aiosmtplib.SMTPResponseException(451, "try later"), True),
    (aiosmtplib.SMTPResponseException(554, "rejected"), False),
    (aiosmtplib.SMTPAuthenticationError(535, "bad credentials"), False),
    (aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(550, "no such user", "x@y")]), False),
    (aiosmtplib.SMTPRecipientsRefused([aiosmtplib.SMTPRecipientRefused(452, "mailbox full", "x@y")]), True),
    (aiosmtplib.SMTPConnectError("refused"), True),
    (aiosmtplib.SMTPServerDisconnected("gone"), True),
    (aiosmtplib.SMTPNotSupported("no STARTTLS"), False),
    (ConnectionRefusedError(), True),
])
def test_smtp_failures_are_retried_only_when_a_retry_can_help(error, retry):
    assert channel._smtp_error(error).retry is retry


async def test_a_reply_the_mail_cannot_carry_fails_without_retry():
    sender = channel.EmailSender(RecordingIntake())
    with pytest.raises(SendError) as error:
        await sender.send(outbound(contact=Contact(id=fx.CUSTOMER, email=fx.CUSTOMER, name="Ada\r\nBcc: x@evil.example")))
    assert error.value.retry is False and "cannot build" in error.value.reason


async def test_a_workspace_without_email_cannot_send():
    sender = channel.EmailSender(RecordingIntake({}))
    with pytest.raises(SendError) as error:
        await sender.send(outbound())
    assert error.value.retry is False


async def test_the_listener_does_not_start_without_an_email_workspace():
    with socket.socket() as taken:  # another intake holds the port: binding it would fail
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        intake = RecordingIntake({}, smtp_port=taken.getsockname()[1])
        async with channel.smtp_listener(intake):
            pass
        with pytest.raises(OSError):
            async with channel.smtp_listener(RecordingIntake(smtp_port=taken.getsockname()[1])):
                pass


async def test_a_very_long_mail_is_cut_to_what_the_message_model_carries():
    """The uncut text kept in metadata is cut to the metadata limit (it was a 500 once limits were checked)."""
    # 93,000 characters: within the text limit, but some 260 KB as UTF-8, over the metadata's.
    quoted = "\n".join("> " + "返金はまだですか。" * 3 + "長" for _ in range(3000))
    body = "Still waiting for my refund.\n\nOn Tue, Shop <s@shop.example> wrote:\n" + quoted
    message = await channel.normalize(RecordingIntake(), WORKSPACE, config(), parse_mime(fx.mail(body)), "smtp")
    assert message.text == "Still waiting for my refund."
    assert message.metadata["full_text"].endswith("[... text cut]")
    assert len(json.dumps(message.metadata, ensure_ascii=False).encode()) <= MAX_METADATA_BYTES


async def test_a_mail_over_the_text_limit_is_cut_with_the_marker_inside_the_limit():
    message = await channel.normalize(RecordingIntake(), WORKSPACE, config(), parse_mime(fx.mail("x" * 150_000)), "smtp")
    assert len(message.text) == MAX_TEXT_CHARS and message.text.endswith("[... text cut]")
