"""Facebook Messenger and Instagram Direct: one webhook shape, two channels.

Inbound: Meta POSTs `{"object": "page" | "instagram", "entry": [{"messaging": [event, ...]}]}`
to /v1/webhooks/messenger/<workspace> (Page events) or /v1/webhooks/instagram/<workspace>,
signed with the app secret. Each event has `sender.id` (the customer's page- or Instagram-scoped
id, PSID / IGSID) and one of:
- `message`: text, attachments, a quick reply's payload (echoes of our own sends are skipped);
- `postback`: a button press, published as a message whose text is the button title;
- `delivery`: `mids[]` of our messages delivered -> "delivered" receipts;
- `read`: Instagram names the message read (`mid`) -> a "read" receipt. Messenger gives a
  `watermark` instead (everything sent before it was read): a watermark receipt for the thread,
  which the agents service applies to every reply it sent there up to that time. A delivery
  without `mids` is the same with "delivered".

Outbound: POST {graph_base_url}/{page_id}/messages (or /me/messages) with a Bearer Page token;
the answer's `message_id` is the mid later receipts name. A CSAT survey (docs/csat.md) goes out
with five quick replies; a quick reply whose payload names a survey is handed to the agents
service, not published. A reply's own quick replies (README "Quick replies") go out as `text` quick
replies with the payload `qr:<id>`; a tapped one (or a postback with such a payload) comes back as a
message with `action`.

Webhook events: https://developers.facebook.com/docs/messenger-platform/webhooks
  reference/webhook-events/messages, messaging_postbacks, message-deliveries, message-reads
Instagram: https://developers.facebook.com/docs/messenger-platform/instagram/features/webhook
Send API: https://developers.facebook.com/docs/messenger-platform/reference/send-api
"""

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import structlog
from pydantic import Field

from services.intake import csat
from services.intake.channels import meta
from services.intake.channels.base import (
    ChannelPlugin,
    FetchedMedia,
    MediaFetchError,
    SendError,
    Sent,
    download,
    message_id_for,
    url_filename,
)
from services.intake.files import file_link
from shared import csat as csat_rules
from shared import quick_replies
from shared.models import Attachment, Contact, DeliveryStatus, InboundMessage, OutboundMessage, RejectedInput

if TYPE_CHECKING:
    from services.intake.context import Intake

log = structlog.get_logger(__name__)

CHANNEL = "messenger"
INSTAGRAM = "instagram"
WEBHOOK_OBJECTS = {CHANNEL: "page", INSTAGRAM: "instagram"}
# Send API text limits: Messenger 2000 characters, Instagram 1000 bytes of UTF-8.
MAX_TEXT = {CHANNEL: (2000, "characters"), INSTAGRAM: (1000, "bytes")}
MEDIA_TYPES = {"image": "image/*", "video": "video/*", "audio": "audio/*", "file": "application/octet-stream"}
MAX_URL_CHARS = 2048  # Attachment.url's limit; Meta's CDN links are usually well under it


class MessengerConfig(meta.MetaConfig):
    """A workspace's Facebook Page (or, for the instagram channel, the Instagram account's Page)."""

    # The Page ID replies are sent from; None sends to /me/messages (the Page the token belongs to).
    page_id: str | None = None
    # Send with the HUMAN_AGENT tag (answers up to 7 days after the customer's last message
    # instead of 24 hours); needs the Human Agent permission granted to the app.
    human_agent_tag: bool = False


# --- webhook payload (only the fields we use are declared; Meta's others pass through) ---


class Party(meta.Payload):
    # A PSID / IGSID becomes the thread and contact id (at most 256 characters): a bad one is a 400.
    id: str | None = Field(None, min_length=1, max_length=256)


class Coordinates(meta.Payload):
    lat: float
    long: float


class AttachmentPayload(meta.Payload):
    url: str | None = None
    title: str | None = None
    coordinates: Coordinates | None = None
    sticker_id: int | None = None


class MessageAttachment(meta.Payload):
    type: str
    payload: AttachmentPayload | None = None
    title: str | None = None
    url: str | None = None


class QuickReply(meta.Payload):
    payload: str


class ReplyTo(meta.Payload):
    mid: str | None = None


class Message(meta.Payload):
    mid: str = Field(min_length=1, max_length=1024)
    text: str | None = None
    is_echo: bool = False
    is_deleted: bool = False
    is_unsupported: bool = False
    quick_reply: QuickReply | None = None
    reply_to: ReplyTo | None = None
    attachments: list[MessageAttachment] = Field(default_factory=list)


class Postback(meta.Payload):
    title: str | None = None
    payload: str | None = None
    mid: str | None = None


class Delivery(meta.Payload):
    mids: list[str] = Field(default_factory=list)
    watermark: int | None = None


class Read(meta.Payload):
    watermark: int | None = None
    mid: str | None = None


class Event(meta.Payload):
    sender: Party
    recipient: Party | None = None
    timestamp: int | None = None
    message: Message | None = None
    postback: Postback | None = None
    delivery: Delivery | None = None
    read: Read | None = None


class Entry(meta.Payload):
    id: str | None = None
    messaging: list[meta.each_or_rejected(Event)] = Field(default_factory=list)  # type: ignore[valid-type]


class Webhook(meta.Payload):
    object: str
    entry: list[Entry]


# --- normalization ---


Item = InboundMessage | DeliveryStatus | RejectedInput


def normalize(webhook: Webhook, workspace_id: str, channel: str = CHANNEL) -> list[Item]:
    """The customers' messages and the receipts for ours that one webhook call carries, in order."""
    items: list[Item] = []
    for entry in webhook.entry:
        for event in entry.messaging:
            if isinstance(event, meta.Rejected):
                items.append(meta.rejected_input(event, workspace_id, channel))
            else:
                items += normalize_event(event, entry.id, workspace_id, channel)
    return items


def normalize_event(event: Event, account_id: str | None, workspace_id: str, channel: str) -> list[Item]:
    customer = event.sender.id
    if event.message is not None and event.message.is_echo:
        return []  # our own send (or one from the Page inbox) coming back
    if customer is None:
        log.info("messenger.event_without_sender_id", channel=channel)  # e.g. a chat plugin guest (user_ref)
        return []
    if event.message is not None:
        return message_of(event.message, customer, account_id, workspace_id, channel)
    if event.postback is not None:
        return [postback_of(event.postback, event.timestamp, customer, account_id, workspace_id, channel)]
    if event.delivery is not None:
        if event.delivery.mids:
            return [receipt(workspace_id, channel, mid, "delivered") for mid in event.delivery.mids]
        return watermark_receipt(workspace_id, channel, customer, event.delivery.watermark, "delivered")
    if event.read is not None:
        if event.read.mid:
            return [receipt(workspace_id, channel, event.read.mid, "read")]
        return watermark_receipt(workspace_id, channel, customer, event.read.watermark, "read")
    log.info("messenger.event_ignored", channel=channel, fields=sorted(event.model_extra or {}))
    return []


def receipt(workspace_id: str, channel: str, mid: str, status: str) -> DeliveryStatus:
    return DeliveryStatus(workspace_id=workspace_id, channel=channel, channel_message_id=mid, status=status)


def watermark_receipt(workspace_id: str, channel: str, customer: str, watermark: int | None, status: str) -> list[Item]:
    """Everything we sent the customer up to `watermark` (ms since the epoch) got this far."""
    try:
        up_to = datetime.fromtimestamp(watermark / 1000, tz=UTC) if watermark and watermark > 0 else None
    except (OverflowError, ValueError, OSError):
        up_to = None
    if up_to is None:
        log.info("messenger.receipt_without_usable_watermark", channel=channel, status=status, watermark=watermark)
        return []
    return [DeliveryStatus(workspace_id=workspace_id, channel=channel, thread_id=customer, up_to=up_to, status=status)]


def message_of(message: Message, customer: str, account_id: str | None, workspace_id: str, channel: str) -> list[Item]:
    if message.is_deleted:
        # The customer unsent an earlier message; same mid, so it cannot be a message of its own.
        log.info("messenger.unsend_ignored", channel=channel, mid=message.mid)
        return []
    attachments, renderings, facts = render_attachments(message, channel)
    parts = [message.text] if message.text else []
    text = " ".join(parts + renderings) or ("[unsupported message]" if message.is_unsupported else "[empty message]")
    action = None
    if message.quick_reply is not None:
        facts["quick_reply_payload"] = message.quick_reply.payload
        action = quick_replies.action_of(message.quick_reply.payload)  # the message's text is the reply's title
    if message.reply_to is not None and message.reply_to.mid:
        facts["reply_to_mid"] = message.reply_to.mid
    return [inbound(workspace_id, channel, message.mid, customer, account_id, text, attachments, facts, action)]


def postback_of(postback: Postback, timestamp: int | None, customer: str, account_id: str | None,
                workspace_id: str, channel: str) -> InboundMessage:
    """A button press as a message: the button's title as text, its payload in metadata."""
    # Older postbacks carry no mid; the sender and the event time identify the press then.
    provider_id = postback.mid or f"{customer}:{timestamp}"
    facts = {"postback_payload": postback.payload, "postback_title": postback.title}
    action = quick_replies.action_of(postback.payload)
    text = postback.title or action or f"[button {postback.payload}]"
    return inbound(workspace_id, channel, provider_id, customer, account_id, text, [], facts, action)


def inbound(workspace_id: str, channel: str, provider_id: str, customer: str, account_id: str | None,
            text: str, attachments: list[Attachment], facts: dict[str, Any], action: str | None = None) -> InboundMessage:
    metadata = {k: v for k, v in facts.items() if v is not None}
    if account_id:
        metadata["account_id"] = account_id  # the Page (or Instagram account) that was written to
    return InboundMessage(
        message_id=message_id_for(workspace_id, channel, provider_id),
        workspace_id=workspace_id,
        channel=channel,
        channel_message_id=provider_id,
        thread_id=customer,
        contact=Contact(id=customer),
        text=text,
        attachments=attachments,
        metadata=metadata,
        action=action,
    )


def render_attachments(message: Message, channel: str) -> tuple[list[Attachment], list[str], dict[str, Any]]:
    """Files as attachments (Meta's CDN URL, fetched before publishing), everything as a readable bracket, facts in metadata."""
    attachments: list[Attachment] = []
    renderings: list[str] = []
    facts: dict[str, Any] = {}
    for index, item in enumerate(message.attachments):
        payload = item.payload or AttachmentPayload()
        url = payload.url or item.url
        if item.type == "location" and payload.coordinates is not None:
            where = payload.coordinates
            facts["location"] = {"latitude": where.lat, "longitude": where.long, "title": item.title or payload.title}
            renderings.append(f"[location {where.lat}, {where.long}]")
        elif item.type == "fallback":  # a shared link Messenger cannot show otherwise
            title = item.title or payload.title
            renderings.append(f"[link {' '.join(p for p in (title, url) if p) or 'without address'}]")
        elif url:
            attachments.append(Attachment(url=reference(url, channel, message.mid, index),
                                          content_type=MEDIA_TYPES.get(item.type, "application/octet-stream")))
            renderings.append("[sticker]" if payload.sticker_id else f"[{item.type}]")
        else:
            renderings.append(f"[{item.type}]")
    if message.attachments:
        facts["attachment_types"] = [item.type for item in message.attachments]
    return attachments, renderings, facts


def reference(url: str, channel: str, mid: str, index: int) -> str:
    """The CDN URL, or a reference to the message's attachment when the URL is too long to keep."""
    return url if len(url) <= MAX_URL_CHARS else f"{channel}:attachment/{mid}/{index}"


def cdn_url_of(reference: str | None) -> str | None:
    """The CDN URL an attachment refers to; None for the stand-in `reference` writes for a URL too long to keep."""
    if reference is None or not reference.startswith(("https://", "http://")):
        return None
    return reference


async def fetch_media(intake: "Intake", workspace_id: str, attachment: Attachment) -> FetchedMedia:
    """The file at Meta's CDN URL: a plain GET, no token (the URL itself is signed, and expires)."""
    url = cdn_url_of(attachment.url)
    if url is None:
        raise MediaFetchError(f"the CDN URL was over {MAX_URL_CHARS} characters and was not kept")
    fetched = await download(intake.http, url, intake.settings.max_attachment_bytes)
    return FetchedMedia(fetched.data, content_type=fetched.content_type, filename=url_filename(url))


def survey_payload(message: InboundMessage) -> str | None:
    """The payload of the quick reply the customer tapped (a survey's is `csat:<survey>:<score>`)."""
    payload = message.metadata.get("quick_reply_payload")
    return payload if isinstance(payload, str) else None


def handler_for(channel: str) -> meta.WebhookHandler:
    async def handle(intake: "Intake", workspace_id: str, config: MessengerConfig, webhook: Webhook) -> None:
        """Publish each message and receipt of the call, in order, each confirmed by the broker."""
        items = await csat.take_answers(intake, normalize(webhook, workspace_id, channel), survey_payload)
        await intake.publish_all(items)

    return handle


# --- replies ---


class MessengerSender:
    """Sends agents' replies through the Send API (Messenger and Instagram share it)."""

    def __init__(self, intake: "Intake", channel: str = CHANNEL) -> None:
        self.intake = intake
        self.channel = channel

    async def send(self, message: OutboundMessage) -> Sent:
        config = self.intake.configs.get((self.channel, message.workspace_id))
        if config is None:
            raise SendError(f"{self.channel} is not configured for workspace {message.workspace_id!r}", retry=False)
        check_length(self.channel, message.text)
        url = f"{config.graph_base_url.rstrip('/')}/{config.page_id or 'me'}/messages"
        # The text, then each file as its own message (one attachment each), fetched by Meta from a signed link.
        bodies = [send_body(config, message)] if message.text.strip() or not message.attachments else []
        bodies += [file_body(config, message, a, file_link(self.intake.settings, message.workspace_id,
                                                           a.attachment_id, absolute=True))
                   for a in message.attachments if a.attachment_id]
        answers = [await meta.graph_send(self.intake, url, config.access_token, body) for body in bodies]
        answer = answers[0]
        mid = answer.get("message_id")
        if not mid:
            log.warning("messenger.send_answer_without_id", channel=self.channel, answer=str(answer)[:300])
        return Sent("sent", channel_message_id=str(mid) if mid else None)


def send_body(config: MessengerConfig, message: OutboundMessage) -> dict[str, Any]:
    body: dict[str, Any] = {"recipient": {"id": message.thread_id}, "message": {"text": message.text}}
    if message.survey is not None:
        # Quick replies 1-5 under the question; the tapped one comes back as message.quick_reply.payload.
        body["message"]["quick_replies"] = [
            {"content_type": "text", "title": str(score),
             "payload": csat_rules.button_payload(message.survey.survey_id, score)}
            for score in csat_rules.SCORES]
    elif replies := quick_replies.buttons_of(message):
        # The reply's own quick replies; the tapped one comes back as message.quick_reply.payload, its title as text.
        body["message"]["quick_replies"] = [
            {"content_type": "text", "title": reply.title, "payload": quick_replies.payload(reply)} for reply in replies]
    if config.human_agent_tag:
        body |= {"messaging_type": "MESSAGE_TAG", "tag": "HUMAN_AGENT"}
    else:
        body["messaging_type"] = "RESPONSE"
    return body


def file_body(config: MessengerConfig, message: OutboundMessage, attachment: Attachment, link: str) -> dict[str, Any]:
    """A file by URL: https://developers.facebook.com/docs/messenger-platform/send-messages#url"""
    kind = next((k for k in ("image", "video", "audio") if attachment.content_type.startswith(k + "/")), "file")
    body = send_body(config, message.model_copy(update={"survey": None, "quick_replies": []}))
    body["message"] = {"attachment": {"type": kind, "payload": {"url": link, "is_reusable": False}}}
    return body


def check_length(channel: str, text: str) -> None:
    limit, unit = MAX_TEXT[channel]
    size = len(text.encode()) if unit == "bytes" else len(text)
    if size > limit:
        raise SendError(f"text is {size} {unit}, {channel} allows {limit}", retry=False)


class InstagramConfig(MessengerConfig):
    """A workspace's Instagram professional account, messaged through its linked Facebook Page.

    `page_id` is that Page's ID (or the Instagram account ID); `access_token` the Page token with
    instagram_manage_messages.
    """


# Instagram messaging is part of the Messenger Platform: the same webhook shape.
WEBHOOK_DOCS = "https://developers.facebook.com/docs/messenger-platform/webhooks"
PLUGIN = ChannelPlugin(
    name=CHANNEL,
    routes=meta.webhook_routes(CHANNEL, WEBHOOK_OBJECTS[CHANNEL], Webhook, handler_for(CHANNEL)),
    operations=meta.webhook_operations(CHANNEL, "Messenger", WEBHOOK_DOCS),
    sender=lambda intake: MessengerSender(intake, CHANNEL),
    config=MessengerConfig,
    fetch_media=fetch_media,
)

INSTAGRAM_PLUGIN = ChannelPlugin(
    name=INSTAGRAM,
    routes=meta.webhook_routes(INSTAGRAM, WEBHOOK_OBJECTS[INSTAGRAM], Webhook, handler_for(INSTAGRAM)),
    operations=meta.webhook_operations(INSTAGRAM, "Instagram", WEBHOOK_DOCS),
    sender=lambda intake: MessengerSender(intake, INSTAGRAM),
    config=InstagramConfig,
    fetch_media=fetch_media,
)
