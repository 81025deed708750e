"""The email channel: mail in over SMTP or a provider's inbound webhook, replies out over SMTP.

In:
- an SMTP listener (aiosmtpd, `INTAKE_SMTP_HOST`/`INTAKE_SMTP_PORT`, default 127.0.0.1:2525),
  started only when some workspace configures email; RCPT TO picks the workspace by address;
- Mailgun routes (`forward()` to `/v1/webhooks/email/<workspace>/mailgun`, parsed or raw MIME),
  verified by Mailgun's signature (HMAC-SHA256 of timestamp + token with the signing key);
- SendGrid Inbound Parse (`/v1/webhooks/email/<workspace>/sendgrid?token=<secret>`), raw mode or
  the default parsed mode: SendGrid does not sign, so the URL carries a secret token.

Threading is stateless: thread_id is the root of References, else In-Reply-To, else the mail's own
Message-ID; a reply carries In-Reply-To/References and a Message-ID of ours that names the thread,
so the customer's answer lands in the same conversation even from a client that sends only
In-Reply-To. Auto-replies, bounces and list mail are accepted and
dropped (never a conversation, never a reply: no mail loops).
"""

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from email.utils import format_datetime, formataddr
from typing import TYPE_CHECKING, Any, Literal

import aiosmtplib
import pydantic_core
import structlog
from aiohttp import web
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pymongo.errors import PyMongoError

# The module, not its names: context imports the channels package, which imports this module.
from services.intake import context as intake_context
from services.intake import csat
from services.intake.channels.base import (
    ChannelPlugin,
    SendError,
    Sent,
    message_id_for,
    webhook_operation,
    webhook_path,
)
from services.intake.channels.email_mime import (
    Form,
    MailError,
    MailFile,
    ParsedMail,
    automated_reason,
    headers_from_pairs,
    headers_from_text,
    parse_fields,
    parse_mime,
    read_form,
    reply_message_id,
    reply_subject,
    strip_quoted_reply,
    thread_id_for,
)
from shared import quick_replies
from shared.models import (
    MAX_METADATA_BYTES,
    MAX_TEXT_CHARS,
    Attachment,
    Contact,
    DeliveryStatus,
    InboundMessage,
    OutboundMessage,
)
from shared.web import Answer, Operation, http_error, model_response, query_parameter, read_limited, whole_number

if TYPE_CHECKING:
    from services.intake.context import Intake

log = structlog.get_logger(__name__)

CHANNEL = "email"
MAX_REFERENCES = 20
MAX_FILENAME_CHARS = 256
MAILGUN_FIELDS = ("timestamp", "token", "signature")
# Our name in the SMTP greeting (aiosmtpd would otherwise ask DNS for the machine's FQDN).
SMTP_HOSTNAME = "switchyard-intake"


class EmailConfig(BaseModel):
    """One workspace's mailbox: its address, the relay replies go out through, the webhook secrets."""

    model_config = ConfigDict(extra="forbid")

    # The support address customers write to; replies are sent from it.
    address: str = Field(min_length=3, max_length=320)
    display_name: str | None = Field(None, max_length=200)
    # The SMTP relay for replies (your provider's submission server, e.g. smtp.mailgun.org:587).
    relay_host: str = Field(min_length=1)
    relay_port: int = Field(587, ge=1, le=65535)
    relay_username: str | None = None
    relay_password: str | None = None
    relay_starttls: bool = True  # upgrade with STARTTLS (port 587)
    relay_tls: bool = False  # implicit TLS from the first byte (port 465)
    # Mailgun's HTTP webhook signing key (the dashboard's Webhooks page); enables the Mailgun routes.
    mailgun_signing_key: str | None = Field(None, min_length=8)
    # Mailgun retries for up to 8 hours and does not document re-signing retries, so there is no age
    # limit by default (a replay is harmless: it dedupes); set one to refuse old signatures anyway.
    mailgun_max_age_seconds: int | None = Field(None, gt=0)
    # A secret of your choosing, put in the SendGrid Inbound Parse URL as ?token=; enables that route.
    sendgrid_token: str | None = Field(None, min_length=16)
    # Cut quoted history ("On ... wrote:" then "> ..." lines) from text; the full text stays in metadata.
    strip_quoted_replies: bool = True

    @field_validator("address")
    @classmethod
    def _an_address(cls, address: str) -> str:
        local, at, domain = address.strip().rpartition("@")
        if not at or not local or "." not in domain or " " in address.strip():
            raise ValueError(f"{address!r} is not an email address")
        return address.strip().lower()

    @model_validator(mode="after")
    def _one_tls_mode(self) -> "EmailConfig":
        if self.relay_starttls and self.relay_tls:
            raise ValueError("relay_starttls and relay_tls exclude each other (587 uses STARTTLS, 465 TLS)")
        return self

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


# --- from a parsed mail to a published message ----------------------------------------------


def email_configs(intake: "Intake") -> dict[str, EmailConfig]:
    """workspace -> its email config, for every workspace that configures email."""
    return {ws: config for (channel, ws), config in intake.configs.items() if channel == CHANNEL}


async def _store_files(
    intake: "Intake", workspace_id: str, message_id: str, files: list[MailFile]
) -> tuple[list[Attachment], list[dict]]:
    """Keep every file within the size limit; the others are left out and listed, never fatal."""
    limit = intake.settings.max_attachment_bytes
    stored, skipped = [], []
    for index, file in enumerate(files):
        if len(file.data) > limit:
            skipped.append({"filename": file.filename, "content_type": file.content_type, "size": len(file.data),
                            "reason": f"over the {limit} byte attachment limit"})
            continue
        # The message model bounds names and types; a mail does not, so long ones are cut.
        filename = file.filename[-MAX_FILENAME_CHARS:] if file.filename else None
        stored.append(await intake.store_attachment(
            workspace_id, message_id, index, file.data, filename=filename, content_type=file.content_type[:128]))
    return stored, skipped


TEXT_CUT = "\n[... text cut]"


def _cut(text: str, limit: int) -> str:
    """`text` within `limit` characters, the marker included when something was cut."""
    return text if len(text) <= limit else text[: limit - len(TEXT_CUT)] + TEXT_CUT


def _fit_full_text(full_text: str, metadata: dict) -> str:
    """The uncut text, cut so that the metadata stays within the message model's limit."""
    budget = MAX_METADATA_BYTES - len(json.dumps(metadata, ensure_ascii=False).encode()) - 1024
    while len(full_text) > len(TEXT_CUT) and len(json.dumps(full_text, ensure_ascii=False).encode()) > budget:
        full_text = _cut(full_text, max(len(TEXT_CUT), len(full_text) * 3 // 4))
    return full_text


def _visible_text(mail: ParsedMail, config: EmailConfig) -> tuple[str, str | None]:
    """The text the agent reads, and the full text when quoted history was cut from it."""
    text = _cut(mail.text, MAX_TEXT_CHARS)
    if config.strip_quoted_replies:
        visible = strip_quoted_reply(text)
        if visible is not None:
            return visible, text
    return text, None


def _render(text: str, attachments: list[Attachment], skipped: list[dict]) -> str:
    notes = [f"[attachment {s['filename'] or 'without a name'} left out: {s['size']} bytes, {s['reason']}]"
             for s in skipped]
    if not text.strip() and not attachments and not notes:
        return "[no text]"
    return "\n\n".join(part for part in [text, *notes] if part)


async def normalize(intake: "Intake", workspace_id: str, config: EmailConfig, mail: ParsedMail, source: str,
                    envelope_sender: str | None = None) -> InboundMessage:
    """The mail as one InboundMessage of this workspace, its files stored."""
    address = mail.from_address or (envelope_sender or "").lower() or None
    if not address:
        raise MailError("the mail has no From address")
    provider_id = mail.provider_id
    message_id = message_id_for(workspace_id, CHANNEL, provider_id)
    attachments, skipped = await _store_files(intake, workspace_id, message_id, mail.files)
    text, full_text = _visible_text(mail, config)
    metadata: dict = {
        "message_id": provider_id,
        "subject": mail.subject,
        "in_reply_to": mail.in_reply_to,
        "references": mail.references,
        "to": mail.to,
        "source": source,
    }
    if full_text is not None:
        metadata["full_text"] = _fit_full_text(full_text, metadata)
    if skipped:
        metadata["skipped_attachments"] = skipped
    return InboundMessage(
        message_id=message_id,
        workspace_id=workspace_id,
        channel=CHANNEL,
        channel_message_id=provider_id,
        thread_id=thread_id_for(provider_id, mail.in_reply_to, mail.references),
        contact=Contact(id=address[:256], email=address[:320], name=mail.from_name[:256] if mail.from_name else None),
        text=_render(text, attachments, skipped),
        attachments=attachments,
        metadata=metadata,
    )


async def accept_mail(intake: "Intake", workspace_id: str, config: EmailConfig, mail: ParsedMail, source: str,
                      envelope_sender: str | None = None) -> InboundMessage | None:
    """Publish a person's mail; count and drop machine mail (publishing a bounce as a failed status)."""
    reason = automated_reason(mail.headers, envelope_sender)
    if reason is not None:
        # Counted with the refused calls (reason "automated:<kind>") and logged: accepted, never answered.
        intake.metrics.rejected.labels(channel=CHANNEL, reason=f"automated:{reason}").inc()
        log.info("email.automated_mail_dropped", workspace_id=workspace_id, reason=reason,
                 message_id=mail.message_id, sender=mail.from_address)
        # Only a bounce of one of our own Message-IDs becomes a status: anyone can send a DSN.
        if mail.bounce is not None and mail.bounce.original_message_id.endswith(f"@{config.domain}>"):
            await intake.publish_status(DeliveryStatus(
                workspace_id=workspace_id, channel=CHANNEL, channel_message_id=mail.bounce.original_message_id,
                status="failed", reason=mail.bounce.reason))
        return None
    message = await normalize(intake, workspace_id, config, mail, source, envelope_sender)
    await intake.publish_inbound(message)
    return message


# --- webhooks -------------------------------------------------------------------------------


def mailgun_signature(signing_key: str, timestamp: str, token: str) -> str:
    """Mailgun's signature: hex HMAC-SHA256 of timestamp + token with the webhook signing key."""
    return hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


def verify_mailgun(intake: "Intake", config: EmailConfig, form: Form) -> None:
    """A 401 without signature fields, a 403 with a wrong (or, if configured, stale) one."""
    if config.mailgun_signing_key is None:
        raise intake.reject(CHANNEL, "mailgun inbound is not enabled for this workspace", web.HTTPForbidden)
    timestamp, token, signature = (form.text(name) or "" for name in MAILGUN_FIELDS)
    if not (timestamp and token and signature):
        raise intake.reject(CHANNEL, "missing Mailgun signature fields (timestamp, token, signature)",
                            web.HTTPUnauthorized)
    expected = mailgun_signature(config.mailgun_signing_key, timestamp, token)
    # Bytes: compare_digest raises TypeError on a str with a non-ASCII character.
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise intake.reject(CHANNEL, "invalid Mailgun signature", web.HTTPForbidden)
    if config.mailgun_max_age_seconds is not None:
        sent_at = whole_number(timestamp)  # not int(): it takes " 7 ", "1_000" and other scripts' digits
        if sent_at is None:
            raise intake.reject(CHANNEL, "invalid Mailgun timestamp", web.HTTPForbidden)
        if abs(time.time() - sent_at) > config.mailgun_max_age_seconds:
            raise intake.reject(CHANNEL, "stale Mailgun timestamp", web.HTTPForbidden)


def verify_sendgrid(intake: "Intake", config: EmailConfig, token: str | None) -> None:
    """SendGrid signs nothing: the secret token in the URL is the proof. 401 without, 403 wrong."""
    if config.sendgrid_token is None:
        raise intake.reject(CHANNEL, "sendgrid inbound is not enabled for this workspace", web.HTTPForbidden)
    if not token:
        raise intake.reject(CHANNEL, "missing token query parameter", web.HTTPUnauthorized)
    if not hmac.compare_digest(token.encode(), config.sendgrid_token.encode()):
        raise intake.reject(CHANNEL, "invalid token", web.HTTPForbidden)


def mail_from_mailgun(form: Form) -> ParsedMail:
    """Mailgun's raw-MIME post (body-mime) or its parsed post (message-headers, body-plain, attachment-N)."""
    raw = form.raw("body-mime")
    if raw is not None:
        return parse_mime(raw)
    headers_json = form.text("message-headers")
    if headers_json is None:
        raise MailError("neither body-mime nor message-headers in the Mailgun post")
    try:
        # pydantic's parser, not json.loads: that one raises RecursionError on 100,000 "[" (a 500).
        pairs = pydantic_core.from_json(headers_json)
        headers = headers_from_pairs([(str(name), str(value)) for name, value in pairs])
    except (ValueError, TypeError):
        raise MailError("message-headers is not a JSON list of [name, value] pairs") from None
    files = [form.files[name] for name in sorted(form.files, key=_attachment_order) if name.startswith("attachment")]
    return parse_fields(headers, form.text("body-plain") or "", form.text("body-html") or "", files)


def mail_from_sendgrid(form: Form) -> ParsedMail:
    """SendGrid's raw post (the MIME message in `email`) or its default parsed post.

    The parsed post carries the raw header block in `headers`, the bodies in `text` and `html`
    in their original charsets, which `charsets` (JSON, field -> charset) names, and the files
    as attachment1..N."""
    raw = form.raw("email")
    if raw is not None:
        return parse_mime(raw)
    headers = form.text("headers")
    if headers is None:
        raise MailError("neither `email` (raw mode: \"POST the raw, full MIME message\") nor `headers` "
                        "(parsed mode) in the SendGrid post")
    labels = _sendgrid_charsets(form.text("charsets"))
    files = [form.files[name] for name in sorted(form.files, key=_attachment_order) if name.startswith("attachment")]
    text, html = (form.text(name, labels.get(name)) or "" for name in ("text", "html"))
    return parse_fields(headers_from_text(headers), text, html, files)


def _sendgrid_charsets(value: str | None) -> dict[str, str]:
    """SendGrid's `charsets` field ({"text": "iso-8859-1", ...}); a broken one names nothing."""
    try:
        found = pydantic_core.from_json(value or "{}")  # not json.loads: RecursionError on deep nesting
    except ValueError:
        return {}
    return {str(k): v for k, v in found.items() if isinstance(v, str)} if isinstance(found, dict) else {}


def _attachment_order(name: str) -> tuple[int, str]:
    # ASCII digits through whole_number: isdigit() lets "²" through to int(), which refuses it.
    return (whole_number("".join(ch for ch in name if "0" <= ch <= "9")) or 0, name)


async def _read_form(request: web.Request, intake: "Intake") -> Form:
    body = await read_limited(request, intake.settings.body_limit_for_files)
    try:
        return read_form(request.headers.get("Content-Type", ""), body)
    except MailError as error:
        raise http_error(web.HTTPBadRequest, str(error)) from None


class MailAccepted(BaseModel):
    """A mail published (`message_id`), or ignored because it is automated (an auto-reply, a bounce: `reason`)."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["accepted", "ignored"]
    message_id: str | None = None
    reason: str | None = None


async def _accept_or_400(intake: "Intake", workspace_id: str, config: EmailConfig, build, source: str) -> web.Response:
    try:
        mail = build()
        message = await accept_mail(intake, workspace_id, config, mail, source)
    except MailError as error:
        raise http_error(web.HTTPBadRequest, str(error)) from None
    if message is None:
        return model_response(MailAccepted(status="ignored", reason="automated mail"), exclude_none=True)
    return model_response(MailAccepted(status="accepted", message_id=message.message_id), exclude_none=True)


async def mailgun_webhook(request: web.Request) -> web.Response:
    """POST from a Mailgun route's forward(); 200 once published (Mailgun retries anything but 200/406)."""
    intake = request.app[intake_context.INTAKE]
    workspace_id = request.match_info["workspace"]
    config: EmailConfig = intake.channel_config(CHANNEL, workspace_id)
    form = await _read_form(request, intake)
    verify_mailgun(intake, config, form)
    return await _accept_or_400(intake, workspace_id, config, lambda: mail_from_mailgun(form), "mailgun")


async def sendgrid_webhook(request: web.Request) -> web.Response:
    """POST from SendGrid Inbound Parse, raw (field `email`) or parsed (`headers`, `text`, `html`, `charsets`)."""
    intake = request.app[intake_context.INTAKE]
    workspace_id = request.match_info["workspace"]
    config: EmailConfig = intake.channel_config(CHANNEL, workspace_id)
    verify_sendgrid(intake, config, request.query.get("token"))
    form = await _read_form(request, intake)
    return await _accept_or_400(intake, workspace_id, config, lambda: mail_from_sendgrid(form), "sendgrid")


# --- the SMTP listener ----------------------------------------------------------------------


def smtp_message_limit(max_attachment_bytes: int) -> int:
    """The SMTP SIZE limit: room for a file a bit over the attachment limit, base64-encoded.

    A message whose file is over the attachment limit must still arrive (the file is left out, the
    text kept), so the limit is twice the attachment limit in base64 (x4/3) plus 256 KiB of text.
    Past it the sending server gets 552 and bounces the mail to its author (not a silent drop).
    """
    return 2 * max_attachment_bytes * 4 // 3 + 256 * 1024


class InboundSMTPHandler:
    """aiosmtpd handler: RCPT TO must be a workspace's address; DATA is parsed and published."""

    def __init__(self, intake: "Intake", configs: dict[str, EmailConfig]) -> None:
        self.intake = intake
        self.configs = configs
        self.workspaces = workspaces_by_address(configs)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if address.strip().lower() not in self.workspaces:
            return f"550 5.1.1 <{address}>: no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", errors="surrogateescape")
        workspaces = list(dict.fromkeys(self.workspaces[a.strip().lower()] for a in envelope.rcpt_tos))
        # aiosmtpd keeps the null reverse-path of a bounce as "<>".
        envelope_sender = "" if envelope.mail_from in (None, "", "<>") else envelope.mail_from
        try:
            mail = parse_mime(raw)
            for workspace_id in workspaces:
                await accept_mail(self.intake, workspace_id, self.configs[workspace_id], mail, "smtp",
                                  envelope_sender=envelope_sender)
        except MailError as error:
            return f"550 5.6.0 {error}"
        except web.HTTPException:  # the broker did not confirm: the sending server will try again
            return "451 4.3.0 temporarily unable to accept the message, try again later"
        except Exception:  # never lose a mail to a bug: a 4xx makes the sender keep and retry it
            log.exception("email.smtp_data_failed", rcpt_tos=envelope.rcpt_tos)
            return "451 4.3.0 temporarily unable to accept the message, try again later"
        return "250 2.0.0 OK: queued"


def workspaces_by_address(configs: dict[str, EmailConfig]) -> dict[str, str]:
    """address -> workspace; two workspaces on one address cannot be told apart, so that fails at start."""
    found: dict[str, str] = {}
    for workspace_id, config in sorted(configs.items()):
        if config.address in found:
            raise ValueError(f"workspaces {found[config.address]!r} and {workspace_id!r} both use {config.address}")
        found[config.address] = workspace_id
    return found


@asynccontextmanager
async def smtp_listener(intake: "Intake") -> AsyncIterator[None]:
    """Listen for SMTP while intake runs, but only if some workspace configures email.

    Several intakes without email on one machine therefore never fight over the port.
    """
    configs = email_configs(intake)
    if not configs:
        yield
        return
    handler = InboundSMTPHandler(intake, configs)
    settings = intake.settings
    loop = asyncio.get_running_loop()
    limit = smtp_message_limit(settings.max_attachment_bytes)
    server = await loop.create_server(
        lambda: SMTP(handler, data_size_limit=limit, enable_SMTPUTF8=True, hostname=SMTP_HOSTNAME, loop=loop),
        host=settings.smtp_host, port=settings.smtp_port,
    )
    log.info("email.smtp_listening", host=settings.smtp_host, port=settings.smtp_port,
             addresses=sorted(handler.workspaces))
    try:
        yield
    finally:
        server.close()
        await server.wait_closed()


# --- replies --------------------------------------------------------------------------------


def reply_threading(message: OutboundMessage) -> tuple[str | None, list[str], str]:
    """(In-Reply-To, References, Subject) of a reply, from the customer message it answers."""
    metadata = message.reply_to.metadata if message.reply_to is not None else {}
    parent = metadata.get("message_id") or (message.reply_to.channel_message_id if message.reply_to else None)
    if parent is None and "@" in message.thread_id:
        parent = f"<{message.thread_id}>"  # no reply context: answer the thread's root
    references = [str(r) for r in metadata.get("references") or []]
    if parent is not None and parent not in references:
        references.append(parent)
    if len(references) > MAX_REFERENCES:  # keep the root (the thread key) and the latest ones
        references = references[:1] + references[-(MAX_REFERENCES - 1):]
    return parent, references, reply_subject(metadata.get("subject"))


def build_reply(message: OutboundMessage, config: EmailConfig, files: list[MailFile]) -> EmailMessage:
    """The agent's reply as a mail from the workspace's address, threaded under the customer's."""
    recipient = message.contact.email or (message.contact.id if "@" in message.contact.id else None)
    if recipient is None:
        raise SendError("the contact has no email address", retry=False)
    in_reply_to, references, subject = reply_threading(message)
    mail = EmailMessage()
    mail["From"] = formataddr((config.display_name or "", config.address)) if config.display_name else config.address
    mail["To"] = formataddr((message.contact.name or "", recipient)) if message.contact.name else recipient
    mail["Subject"] = subject
    mail["Date"] = format_datetime(message.created_at)
    mail["Message-ID"] = reply_message_id(message.message_id, message.thread_id, config.domain)
    if in_reply_to is not None:
        mail["In-Reply-To"] = in_reply_to
    if references:
        mail["References"] = " ".join(references)
    if message.survey is not None:
        # A survey is machine mail (RFC 3834): auto-responders must not answer it.
        mail["Auto-Submitted"] = "auto-generated"
    # No Auto-Submitted header on a reply: an agent's reply is a person's mail, and the customer's auto-responder may answer it.
    mail.set_content(message.text)
    for file in files:
        maintype, _, subtype = file.content_type.partition("/")
        mail.add_attachment(file.data, maintype=maintype or "application", subtype=subtype or "octet-stream",
                            filename=file.filename or "attachment")
    return mail


def _smtp_error(error: Exception) -> SendError:
    """An SMTP failure as a SendError: 4xx and connection trouble are worth a retry, 5xx are not."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in error.recipients]
        detail = "; ".join(f"{r.code} {r.message}" for r in error.recipients)
        temporary = bool(codes) and all(400 <= code < 500 for code in codes)
        return SendError(f"relay refused the recipient: {detail}", retry=temporary)
    if isinstance(error, aiosmtplib.SMTPResponseException):
        return SendError(f"relay answered {error.code} {error.message}", retry=400 <= error.code < 500)
    if isinstance(error, aiosmtplib.SMTPNotSupported):
        return SendError(f"relay does not support what the config asks: {error}", retry=False)
    return SendError(f"relay unreachable: {error!r}", retry=True)


class EmailSender:
    """Sends agents' replies through the workspace's SMTP relay."""

    channel = CHANNEL

    def __init__(self, intake: "Intake") -> None:
        self.intake = intake

    async def send(self, message: OutboundMessage) -> Sent:
        config = self.intake.configs.get((CHANNEL, message.workspace_id))
        if not isinstance(config, EmailConfig):
            raise SendError(f"email is not configured for workspace {message.workspace_id!r}", retry=False)
        if message.survey is not None:
            message = csat.with_link(self.intake, message)  # the question and a signed link to the survey page
        elif message.quick_replies:  # no buttons in a mail: the choices as a numbered line under the text
            message = message.model_copy(update={"text": quick_replies.with_choices(message, "\n\n")})
        try:
            mail = build_reply(message, config, await self._files(message))
        except (ValueError, TypeError) as error:  # a header the mail cannot carry: trying again cannot help
            raise SendError(f"cannot build the mail: {error}", retry=False) from None
        except PyMongoError as error:
            raise SendError(f"attachment store unavailable: {error!r}", retry=True) from None
        try:
            await aiosmtplib.send(
                mail, hostname=config.relay_host, port=config.relay_port,
                username=config.relay_username, password=config.relay_password,
                start_tls=config.relay_starttls, use_tls=config.relay_tls,
                local_hostname=config.domain, timeout=self.intake.settings.send_timeout,
            )
        except (aiosmtplib.SMTPException, OSError) as error:
            raise _smtp_error(error) from None
        return Sent("sent", channel_message_id=str(mail["Message-ID"]))

    async def _files(self, message: OutboundMessage) -> list[MailFile]:
        """Files the agent attached that sit in the attachment store."""
        files = []
        for attachment in message.attachments:
            if attachment.attachment_id is None:
                continue
            stored = await self.intake.attachments.get(message.workspace_id, attachment.attachment_id)
            if stored is None:
                raise SendError(f"attachment {attachment.attachment_id} not found", retry=False)
            files.append(MailFile(stored.attachment.filename, stored.attachment.content_type, stored.data))
        return files


def _form(fields: dict[str, str], required: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """A provider's post as multipart/form-data or urlencoded (both are read); `attachment<N>` parts are files."""
    properties: dict[str, Any] = {name: {"type": "string", "description": text} for name, text in fields.items()}
    properties["attachment1"] = {"type": "string", "contentMediaType": "application/octet-stream",
                                 "description": "attachment1 .. attachmentN: the mail's files (multipart only)"}
    schema = {"type": "object", "properties": properties, "required": list(required)}
    return {"multipart/form-data": schema, "application/x-www-form-urlencoded": schema}


MAILGUN_FORM = _form({
    "timestamp": "Mailgun's signature: Unix seconds", "token": "Mailgun's signature: a random token",
    "signature": "Mailgun's signature: hex HMAC-SHA256 of timestamp + token with the webhook signing key",
    "body-mime": "The raw MIME message (routes whose URL ends in mime)",
    "message-headers": "Parsed mode: the headers as a JSON list of [name, value]",
    "body-plain": "Parsed mode: the text part", "body-html": "Parsed mode: the HTML part",
}, MAILGUN_FIELDS)
SENDGRID_FORM = _form({
    "email": "Raw mode: the full MIME message", "headers": "Parsed mode: the headers as text",
    "text": "Parsed mode: the text part", "html": "Parsed mode: the HTML part",
    "charsets": "Parsed mode: a JSON object naming each field's charset",
})
MAIL_ANSWERS = (Answer(200, "Published, or ignored as automated mail", MailAccepted),)


def _operations() -> list[Operation]:
    mailgun = "Mailgun: a route's forward() of an inbound mail (signed in the form: 401 unsigned, 403 forged)"
    return [
        webhook_operation("POST", webhook_path(CHANNEL, "/mailgun"), mailgun, MAIL_ANSWERS, content=MAILGUN_FORM),
        webhook_operation("POST", webhook_path(CHANNEL, "/mailgun/mime"), mailgun + ", raw MIME", MAIL_ANSWERS,
                          content=MAILGUN_FORM),
        webhook_operation("POST", webhook_path(CHANNEL, "/sendgrid"), "SendGrid Inbound Parse: an inbound mail",
                          MAIL_ANSWERS, content=SENDGRID_FORM, parameters=(
                              query_parameter("token", "The workspace's secret token (401 without, 403 wrong)",
                                              required=True),)),
    ]


PLUGIN = ChannelPlugin(
    name=CHANNEL,
    operations=_operations(),
    routes=[
        web.post(webhook_path(CHANNEL, "/mailgun"), mailgun_webhook),
        # Mailgun posts the raw MIME (body-mime) only to URLs ending in "mime".
        web.post(webhook_path(CHANNEL, "/mailgun/mime"), mailgun_webhook),
        web.post(webhook_path(CHANNEL, "/sendgrid"), sendgrid_webhook),
    ],
    sender=EmailSender,
    background=smtp_listener,
    config=EmailConfig,
)
