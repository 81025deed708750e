"""The WhatsApp Cloud API channel: customers' WhatsApp messages in, agents' replies out.

Inbound: Meta POSTs `{"object": "whatsapp_business_account", "entry": [{"changes": [{"field":
"messages", "value": {...}}]}]}` to /v1/webhooks/whatsapp/<workspace>, signed with the app secret.
A value carries `messages[]` from customers (with `contacts[]` naming them) and/or `statuses[]`
for the messages we sent (sent, delivered, read, failed). Every message of the call is published
before the 200 goes out; a message's wamid makes Meta's retries harmless.

Customers are named by their phone number (`wa_id`, `from`) and, since 2026, by a business-scoped
user id (BSUID, `user_id`, `from_user_id`, e.g. "US.13491208655302741918"). A customer who adopts
a WhatsApp username may come with the BSUID alone: such a customer's thread is keyed by the BSUID.
A phone number, when there is one, stays the key, so existing threads and contacts do not move.

CSAT (docs/csat.md): a survey goes out as an interactive list of five rows; a reply naming one of
its rows (`csat:<survey>:<score>`) is handed to the agents service, not published.

Quick replies (README "Quick replies"): a reply with quick replies goes out as an interactive message
of type `button` (up to three reply buttons, each id `qr:<id>`); the customer's `button_reply` (or a
template quick-reply button's `button.payload`) in that form comes back with `action`.

Outbound: POST {graph_base_url}/{phone_number_id}/messages with a Bearer token, the customer in
`to` (phone) or `recipient` (BSUID); the answer's `messages[0].id` is the wamid later statuses name.

BSUIDs: https://developers.facebook.com/documentation/business-messaging/whatsapp/business-scoped-user-ids

Payloads: https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/payload-examples
Send API: https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages
"""

import re
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import structlog
from pydantic import Field, model_validator

from services.intake import csat
from services.intake.channels import meta
from services.intake.channels.base import (
    ChannelPlugin,
    FetchedMedia,
    MediaFetchError,
    SendError,
    Sent,
    download,
    fetch_config,
    lookup_json,
    message_id_for,
    over_limit,
    provider_refused,
    referenced_id,
)
from services.intake.files import file_link
from shared import csat as csat_rules
from shared import quick_replies
from shared.models import (
    Attachment,
    Contact,
    DeliveryStatus,
    InboundMessage,
    OutboundMessage,
    QuickReply,
    RejectedInput,
)
from shared.web import whole_number

if TYPE_CHECKING:
    from services.intake.context import Intake

log = structlog.get_logger(__name__)

CHANNEL = "whatsapp"
# ASCII digits only: str.isdigit() also takes "²" and other scripts' digits.
ASCII_DIGITS = re.compile(r"[0-9]+")
WEBHOOK_OBJECT = "whatsapp_business_account"
MEDIA_KINDS = ("image", "audio", "video", "document", "sticker")
RECEIPT_STATES = ("sent", "delivered", "read", "failed")
MAX_TEXT_CHARS = 4096  # the Cloud API's limit on a text message body
MAX_BUTTONS_BODY_CHARS = 1024  # the limit on an interactive message's body text
MEDIA_REFERENCE = "whatsapp:media/{media_id}"


class WhatsAppConfig(meta.MetaConfig):
    """A workspace's WhatsApp Business number."""

    # WhatsApp Manager > the number's "Phone number ID" (not the phone number itself).
    phone_number_id: str = Field(min_length=1)


# --- webhook payload (only the fields we use are declared; Meta's others pass through) ---


class Profile(meta.Payload):
    name: str | None = None
    username: str | None = None  # the WhatsApp username a customer chose (changeable: never a key)


class WaContact(meta.Payload):
    # A customer with a username may come without wa_id (their phone number): user_id names them then.
    wa_id: str | None = None
    user_id: str | None = None
    parent_user_id: str | None = None
    profile: Profile | None = None


class Text(meta.Payload):
    body: str


class Media(meta.Payload):
    id: str = Field(min_length=1, max_length=1024)
    mime_type: str | None = None
    caption: str | None = None
    filename: str | None = None
    sha256: str | None = None


class Location(meta.Payload):
    latitude: float
    longitude: float
    name: str | None = None
    address: str | None = None


class Choice(meta.Payload):
    id: str
    title: str
    description: str | None = None


class Interactive(meta.Payload):
    type: str
    button_reply: Choice | None = None
    list_reply: Choice | None = None


class Button(meta.Payload):
    text: str
    payload: str | None = None


class Reaction(meta.Payload):
    message_id: str | None = None
    emoji: str | None = None


class MessageContext(meta.Payload):
    id: str | None = None


class WaError(meta.Payload):
    code: int | None = None
    title: str | None = None
    message: str | None = None
    error_data: dict[str, Any] | None = None


class WaMessage(meta.Payload):
    # Ids become thread and contact ids (at most 256 characters): checked here, so a bad one is a 400.
    # `from` is the phone number, absent for a customer who hides it behind a username; `from_user_id`
    # (the BSUID) is there for every customer since the 2026 rollout.
    sender: str | None = Field(None, alias="from", min_length=1, max_length=256)
    from_user_id: str | None = Field(None, min_length=1, max_length=256)
    from_parent_user_id: str | None = Field(None, max_length=256)
    id: str = Field(min_length=1, max_length=1024)
    timestamp: str | None = None
    type: str
    text: Text | None = None
    image: Media | None = None
    audio: Media | None = None
    video: Media | None = None
    document: Media | None = None
    sticker: Media | None = None
    location: Location | None = None
    interactive: Interactive | None = None
    button: Button | None = None
    reaction: Reaction | None = None
    contacts: list[dict[str, Any]] = Field(default_factory=list)
    context: MessageContext | None = None
    errors: list[WaError] = Field(default_factory=list)

    @model_validator(mode="after")
    def _someone_sent_it(self) -> "WaMessage":
        if self.sender is None and self.from_user_id is None:
            raise ValueError("a message needs `from` (phone number) or `from_user_id` (business-scoped user id)")
        return self

    @property
    def author(self) -> str:
        """Who wrote: the phone number when Meta gives one (so threads and contacts stay as they were
        before BSUIDs), else the BSUID. The validator above makes sure there is one of them."""
        return self.sender or self.from_user_id or ""


class WaStatus(meta.Payload):
    id: str = Field(min_length=1, max_length=1024)
    status: str
    # Receipts are keyed by the wamid; whom the message went to (phone or BSUID) is not needed.
    recipient_id: str | None = None
    recipient_user_id: str | None = None
    errors: list[WaError] = Field(default_factory=list)


class ValueMetadata(meta.Payload):
    display_phone_number: str | None = None
    phone_number_id: str | None = None


class Value(meta.Payload):
    metadata: ValueMetadata | None = None
    # A malformed profile costs its message the customer's name, not the call.
    contacts: list[meta.each_or_rejected(WaContact)] = Field(default_factory=list)  # type: ignore[valid-type]
    messages: list[meta.each_or_rejected(WaMessage)] = Field(default_factory=list)  # type: ignore[valid-type]
    statuses: list[meta.each_or_rejected(WaStatus)] = Field(default_factory=list)  # type: ignore[valid-type]


class Change(meta.Payload):
    field: str | None = None
    value: Value


class Entry(meta.Payload):
    id: str | None = None
    changes: list[Change] = Field(default_factory=list)


class Webhook(meta.Payload):
    object: str
    entry: list[Entry]


# --- normalization ---


def normalize(
    webhook: Webhook, workspace_id: str
) -> tuple[list[InboundMessage | RejectedInput], list[DeliveryStatus | RejectedInput]]:
    """The customers' messages and the receipts for ours that one webhook call carries, in order;
    an item that did not validate comes as a RejectedInput in its place."""
    messages: list[InboundMessage | RejectedInput] = []
    receipts: list[DeliveryStatus | RejectedInput] = []
    for entry in webhook.entry:
        for change in entry.changes:
            if change.field not in (None, "messages"):
                log.info("whatsapp.change_ignored", field=change.field)  # template and account updates
                continue
            people = contacts_by_id(change.value.contacts)
            messages += [meta.rejected_input(m, workspace_id, CHANNEL) if isinstance(m, meta.Rejected)
                         else to_inbound(m, change.value.metadata, people, workspace_id) for m in change.value.messages]
            receipts += [r for s in change.value.statuses if (r := receipt_or_rejected(s, workspace_id)) is not None]
    return messages, receipts


def receipt_or_rejected(status: "WaStatus | meta.Rejected", workspace_id: str) -> DeliveryStatus | RejectedInput | None:
    if isinstance(status, meta.Rejected):
        return meta.rejected_input(status, workspace_id, CHANNEL)
    return to_receipt(status, workspace_id)


def contacts_by_id(contacts: list["WaContact | meta.Rejected"]) -> dict[str, WaContact]:
    """The call's contacts under each id they carry (phone number and BSUID), for the messages to find."""
    for contact in contacts:
        if isinstance(contact, meta.Rejected):
            log.info("whatsapp.contact_ignored", reason=contact.reason[:300])
    return {key: contact for contact in contacts if isinstance(contact, WaContact)
            for key in (contact.wa_id, contact.user_id) if key}


def to_inbound(
    message: WaMessage, business: ValueMetadata | None, people: dict[str, WaContact], workspace_id: str
) -> InboundMessage:
    """One customer message in the one message model."""
    text, attachments, facts = render(message)
    metadata: dict[str, Any] = {"whatsapp_type": message.type, **facts}
    if business is not None and business.phone_number_id:
        metadata["phone_number_id"] = business.phone_number_id  # the business number it was sent to
    if message.context is not None and message.context.id:
        metadata["context_message_id"] = message.context.id  # the message it answers or quotes
    person = people.get(message.sender or "") or people.get(message.from_user_id or "")
    metadata.update(user_ids(message, person))
    return InboundMessage(
        message_id=message_id_for(workspace_id, CHANNEL, message.id),
        workspace_id=workspace_id,
        channel=CHANNEL,
        channel_message_id=message.id,
        thread_id=message.author,
        contact=Contact(id=message.author, name=meta.clip(name_of(person), 256), phone=phone_of(message.author)),
        text=text,
        attachments=attachments,
        metadata=metadata,
        action=quick_replies.action_of(button_payload(metadata)),  # a press of one of our quick replies
    )


def user_ids(message: WaMessage, person: WaContact | None) -> dict[str, str]:
    """The customer's BSUID, parent BSUID and username, kept beside a phone identity for when the phone goes."""
    found = {
        "whatsapp_user_id": message.from_user_id or (person.user_id if person else None),
        "whatsapp_parent_user_id": message.from_parent_user_id or (person.parent_user_id if person else None),
        "whatsapp_username": person.profile.username if person and person.profile else None,
    }
    return {key: value for key, value in found.items() if value}


def name_of(person: WaContact | None) -> str | None:
    """The profile name; a customer without one is shown by their username, as WhatsApp itself does."""
    if person is None or person.profile is None:
        return None
    return person.profile.name or person.profile.username


def phone_of(wa_id: str) -> str | None:
    """A wa_id is the number in international form without the "+"; E.164 puts it back."""
    return f"+{wa_id}" if ASCII_DIGITS.fullmatch(wa_id) and 6 <= len(wa_id) <= 15 else None


def render(message: WaMessage) -> tuple[str, list[Attachment], dict[str, Any]]:
    """Readable text, attachments and the non-text facts of a message, by its type."""
    kind = message.type
    if kind == "text" and message.text is not None:
        return message.text.body, [], {}
    media = getattr(message, kind, None) if kind in MEDIA_KINDS else None
    if media is not None:
        return render_media(kind, media)
    if kind == "location" and message.location is not None:
        return render_location(message.location)
    if kind == "interactive" and message.interactive is not None:
        return render_interactive(message.interactive)
    if kind == "button" and message.button is not None:
        reply = {"type": "button", "title": message.button.text, "payload": message.button.payload}
        return message.button.text, [], {"reply": reply}
    if kind == "reaction" and message.reaction is not None:
        emoji = message.reaction.emoji
        facts = {"reaction": {"emoji": emoji, "message_id": message.reaction.message_id}}
        return (f"[reaction {emoji}]" if emoji else "[reaction removed]"), [], facts
    if kind == "contacts" and message.contacts:
        return render_contacts(message.contacts)
    # Unsupported or unknown types still reach the agent, saying what came (never a silent drop).
    problems = [e.title or e.message for e in message.errors if e.title or e.message]
    facts = {"errors": [e.model_dump(exclude_none=True) for e in message.errors]} if message.errors else {}
    return f"[{kind} message not shown{': ' + '; '.join(problems) if problems else ''}]", [], facts


def render_media(kind: str, media: Media) -> tuple[str, list[Attachment], dict[str, Any]]:
    attachment = Attachment(
        url=MEDIA_REFERENCE.format(media_id=media.id),
        content_type=meta.clip(media.mime_type, 128) or "application/octet-stream",
        filename=meta.clip(media.filename, 256),
    )
    label = f"[{kind}{' ' + media.filename if media.filename else ''}]"
    return media.caption or label, [attachment], {}


def render_location(location: Location) -> tuple[str, list[Attachment], dict[str, Any]]:
    place = ", ".join(p for p in (location.name, location.address) if p)
    text = f"[location {location.latitude}, {location.longitude}{': ' + place if place else ''}]"
    return text, [], {"location": location.model_dump(exclude_none=True)}


def render_interactive(interactive: Interactive) -> tuple[str, list[Attachment], dict[str, Any]]:
    choice = interactive.button_reply or interactive.list_reply
    if choice is None:  # e.g. a Flow's nfm_reply: keep what came for whoever reads the metadata
        return f"[{interactive.type} reply]", [], {"interactive": interactive.model_dump(exclude_none=True)}
    reply = {"type": interactive.type, "id": choice.id, "title": choice.title}
    if choice.description:
        reply["description"] = choice.description
    return choice.title, [], {"reply": reply}


def render_contacts(cards: list[dict[str, Any]]) -> tuple[str, list[Attachment], dict[str, Any]]:
    """Shared contact cards: names and numbers readable, the cards themselves in metadata."""
    shown = []
    for card in cards:
        name = (card.get("name") or {}).get("formatted_name") or "contact"
        phones = [p.get("phone") for p in card.get("phones") or [] if isinstance(p, dict) and p.get("phone")]
        shown.append(f"{name} {', '.join(phones)}".strip())
    return f"[contact card: {'; '.join(shown)}]", [], {"contacts": cards}


def to_receipt(status: WaStatus, workspace_id: str) -> DeliveryStatus | None:
    """A status for one of our messages, keyed by its wamid; None for states we do not track."""
    if status.status not in RECEIPT_STATES:
        log.info("whatsapp.status_ignored", status=status.status)
        return None
    reason = "; ".join(describe(e) for e in status.errors) or None
    return DeliveryStatus(workspace_id=workspace_id, channel=CHANNEL, channel_message_id=status.id,
                          status=status.status, reason=reason)


def describe(error: WaError) -> str:
    details = (error.error_data or {}).get("details")
    text = f"{error.code} {error.title or error.message or ''}".strip()
    return f"{text}: {details}" if details else text


async def handle(intake: "Intake", workspace_id: str, config: WhatsAppConfig, webhook: Webhook) -> None:
    """Publish each message and receipt of the call, in order, each confirmed by the broker."""
    messages, receipts = normalize(webhook, workspace_id)
    messages = await csat.take_answers(intake, messages, survey_payload)
    await intake.publish_all([*messages, *receipts])


def button_payload(metadata: dict[str, Any]) -> str | None:
    """What the button the customer pressed carries: a reply button's or list row's id, a template
    quick-reply button's payload (None for anything else)."""
    reply = metadata.get("reply")
    found = reply.get("id", reply.get("payload")) if isinstance(reply, dict) else None
    return found if isinstance(found, str) else None


def survey_payload(message: InboundMessage) -> str | None:
    """The id of the list row or reply button the customer picked (a survey's is `csat:<survey>:<score>`)."""
    reply = message.metadata.get("reply")
    return reply.get("id") if isinstance(reply, dict) and isinstance(reply.get("id"), str) else None


# --- replies ---


class WhatsAppSender:
    """Sends agents' replies as WhatsApp text messages through the Cloud API."""

    channel = CHANNEL

    def __init__(self, intake: "Intake") -> None:
        self.intake = intake

    async def send(self, message: OutboundMessage) -> Sent:
        config = self.intake.configs.get((CHANNEL, message.workspace_id))
        if config is None:
            raise SendError(f"whatsapp is not configured for workspace {message.workspace_id!r}", retry=False)
        if len(message.text) > MAX_TEXT_CHARS:
            raise SendError(f"text is {len(message.text)} characters, WhatsApp allows {MAX_TEXT_CHARS}", retry=False)
        url = f"{config.graph_base_url.rstrip('/')}/{config.phone_number_id}/messages"
        envelope = {"messaging_product": "whatsapp", "recipient_type": "individual", **addressed_to(message.thread_id)}
        # The text, then each file as its own media message, fetched by WhatsApp from a signed link.
        contents = [content_of(message)] if message.text.strip() or not message.attachments else []
        contents += [media_message(a, file_link(self.intake.settings, message.workspace_id, a.attachment_id, absolute=True))
                     for a in message.attachments if a.attachment_id]
        answers = [await meta.graph_send(self.intake, url, config.access_token, {**envelope, **c}) for c in contents]
        return Sent("sent", channel_message_id=first_message_id(answers[0]))


def media_message(attachment: Attachment, link: str) -> dict[str, Any]:
    """A file as a media message by link: a JPEG or PNG as an image, anything else as a document with its name.
    https://developers.facebook.com/docs/whatsapp/cloud-api/reference/messages#media-object"""
    if attachment.content_type in ("image/jpeg", "image/png"):
        return {"type": "image", "image": {"link": link}}
    return {"type": "document", "document": {"link": link, "filename": attachment.filename or "file"}}


def content_of(message: OutboundMessage) -> dict[str, Any]:
    """A reply as text; a survey as an interactive list; quick replies as reply buttons."""
    if message.survey is not None:
        return survey_list(message)
    replies = quick_replies.buttons_of(message)
    if replies and message.text.strip() and len(message.text) <= MAX_BUTTONS_BODY_CHARS:
        return reply_buttons(message.text, replies)
    # Buttons need a body of 1-1024 characters: a longer text goes as text, the choices listed as for SMS.
    return {"type": "text", "text": {"preview_url": False, "body": quick_replies.with_choices(message)}}


def reply_buttons(body: str, replies: list[QuickReply]) -> dict[str, Any]:
    """An interactive `button` message: the text as body, up to three reply buttons, each id `qr:<id>`
    coming back as `interactive.button_reply.id` with the title.
    https://developers.facebook.com/docs/whatsapp/cloud-api/messages/interactive-reply-buttons-messages"""
    buttons = [{"type": "reply", "reply": {"id": quick_replies.payload(reply), "title": reply.title}} for reply in replies]
    return {"type": "interactive", "interactive": {"type": "button", "body": {"text": body},
                                                   "action": {"buttons": buttons}}}


def survey_list(message: OutboundMessage) -> dict[str, Any]:
    """A survey as an interactive list of five rows, 1 to 5 (reply buttons allow only three), each
    row's id `csat:<survey>:<score>` coming back as `interactive.list_reply.id`."""
    assert message.survey is not None
    survey = message.survey
    rows = [{"id": csat_rules.button_payload(survey.survey_id, score), "title": str(score)} for score in csat_rules.SCORES]
    label = csat_rules.LIST_BUTTON.get(survey.language, csat_rules.LIST_BUTTON["en"])
    return {"type": "interactive", "interactive": {
        "type": "list",
        "body": {"text": message.text},
        "action": {"button": label, "sections": [{"title": "1-5", "rows": rows}]},
    }}


def addressed_to(thread_id: str) -> dict[str, str]:
    """The send request's recipient: a phone number (a wa_id, digits only) in `to`, a BSUID in `recipient`.

    Meta accepts a BSUID put in `to` with a 200 and a wamid, then never delivers it."""
    return {"to": thread_id} if ASCII_DIGITS.fullmatch(thread_id) else {"recipient": thread_id}


def first_message_id(answer: dict[str, Any]) -> str | None:
    """The wamid of the sent message; None (logged) if Graph accepted it but said nothing usable."""
    messages = answer.get("messages")
    if isinstance(messages, list) and messages and isinstance(messages[0], dict) and messages[0].get("id"):
        return str(messages[0]["id"])
    log.warning("whatsapp.send_answer_without_id", answer=str(answer)[:300])
    return None


# --- media ---


def media_id_of(reference: str | None) -> str | None:
    """The media id in a `whatsapp:media/<id>` reference (as `render_media` writes it); None for anything else."""
    return referenced_id(reference, MEDIA_REFERENCE.format(media_id=""))


async def fetch_media(intake: "Intake", workspace_id: str, attachment: Attachment) -> FetchedMedia:
    """A customer's media: GET /{media-id} gives a short-lived URL, fetched with the same Bearer token.

    https://developers.facebook.com/docs/whatsapp/cloud-api/reference/media
    """
    media_id = media_id_of(attachment.url)
    if media_id is None:
        raise MediaFetchError("not a WhatsApp media reference")
    config = fetch_config(intake, CHANNEL, workspace_id, WhatsAppConfig)
    headers = {"Authorization": f"Bearer {config.access_token}"}
    lookup_url = f"{config.graph_base_url.rstrip('/')}/{quote(media_id, safe='')}"
    status, answer = await lookup_json(intake.http, "GET", lookup_url, headers=headers)
    media_url, mime_type, file_size = media_of(status, answer)
    limit = intake.settings.max_attachment_bytes
    if file_size is not None and file_size > limit:
        raise over_limit(limit)
    fetched = await download(intake.http, media_url, limit, headers=headers)
    return FetchedMedia(fetched.data, content_type=mime_type or fetched.content_type)


def media_of(status: int, answer: dict[str, Any] | None) -> tuple[str, str | None, int | None]:
    """The media lookup's answer as (url, mime_type, file_size); MediaFetchError with Graph's reason otherwise."""
    answer = answer or {}
    if status >= 400:
        error = answer.get("error")
        raise provider_refused(status, error.get("message") if isinstance(error, dict) else None)
    url = answer.get("url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise MediaFetchError("the media lookup answered without a URL")
    mime_type = answer.get("mime_type") if isinstance(answer.get("mime_type"), str) else None
    # Graph's examples show file_size as a string of digits, some answers as a number.
    size = str(answer.get("file_size", ""))
    return url, mime_type, whole_number(size)


PLUGIN = ChannelPlugin(
    name=CHANNEL,
    routes=meta.webhook_routes(CHANNEL, WEBHOOK_OBJECT, Webhook, handle),
    operations=meta.webhook_operations(
        CHANNEL, "WhatsApp", "https://developers.facebook.com/docs/whatsapp/cloud-api/webhooks/components"),
    sender=WhatsAppSender,
    config=WhatsAppConfig,
    fetch_media=fetch_media,
)
