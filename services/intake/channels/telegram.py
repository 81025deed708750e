"""The Telegram channel: a bot's webhook in, the Bot API's sendMessage out.

Telegram POSTs one Update (https://core.telegram.org/bots/api#update) per call to
`/v1/webhooks/telegram/<workspace>`, with the secret given to setWebhook in the header
`X-Telegram-Bot-Api-Secret-Token`. Published: `message` (text, caption, photo, document and the
other file kinds, location, contact), `edited_message` (as a new message marked edited) and
`callback_query` (an inline keyboard button press, as a button reply: a press of one of our quick
replies, `qr:<id>`, as a message with `action` and the button's title as text; a press on a CSAT
survey's keyboard is handed to the agents service instead, docs/csat.md). Every other update type
(my_chat_member, chat_member, inline_query, channel_post, poll, message_reaction, ...) and
service messages without content (a member joined, a pinned message) are answered 200 and
not published: there is nothing a customer said in them.
"""

import hmac
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import aiohttp
import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from services.intake import (
    context,  # the module, not its names: context imports the channels package
    csat,
)
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
    provider_json,
    provider_refused,
    referenced_id,
    signature_header,
    url_filename,
    webhook_operation,
    webhook_path,
)
from shared import csat as csat_rules
from shared import quick_replies
from shared.models import Attachment, Contact, InboundMessage, OutboundMessage, QuickReply
from shared.web import Answer, http_error, model_response, read_limited

if TYPE_CHECKING:
    from services.intake.context import Intake

CHANNEL = "telegram"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
DEFAULT_BASE_URL = "https://api.telegram.org"
FILE_REFERENCE = "telegram:file/{file_id}"

log = structlog.get_logger(__name__)


class TelegramConfig(BaseModel):
    """A workspace's bot: its token (from @BotFather) and the webhook secret given to setWebhook."""

    bot_token: str = Field(min_length=1)
    # Telegram allows 1-256 characters A-Z, a-z, 0-9, _ and - in secret_token.
    secret_token: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9_-]+$")
    base_url: str = DEFAULT_BASE_URL


# -- the provider's payloads (extra fields allowed: Telegram adds fields over time) ----------------


class Provider(BaseModel):
    model_config = ConfigDict(extra="allow")


class User(Provider):
    id: int
    is_bot: bool = False
    first_name: str = ""
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = None  # IETF tag of the user's app language: picks the survey's question


class Chat(Provider):
    id: int
    type: str = "private"
    title: str | None = None
    username: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class File(Provider):
    """The fields every Telegram file object shares (PhotoSize, Document, Voice, Video, ...)."""

    file_id: str
    file_unique_id: str | None = None
    file_size: int | None = None
    file_name: str | None = None
    mime_type: str | None = None
    width: int | None = None
    height: int | None = None


class Location(Provider):
    latitude: float
    longitude: float


class SharedContact(Provider):
    phone_number: str
    first_name: str = ""
    last_name: str | None = None
    user_id: int | None = None


class Message(Provider):
    message_id: int
    date: int
    chat: Chat
    from_: User | None = Field(None, alias="from")
    sender_chat: Chat | None = None
    edit_date: int | None = None
    text: str | None = None
    caption: str | None = None
    photo: list[File] | None = None
    document: File | None = None
    audio: File | None = None
    voice: File | None = None
    video: File | None = None
    video_note: File | None = None
    animation: File | None = None
    sticker: File | None = None
    location: Location | None = None
    contact: SharedContact | None = None


class CallbackQuery(Provider):
    id: str
    from_: User = Field(alias="from")
    message: Message | None = None
    data: str | None = None


class Update(Provider):
    update_id: int
    message: Message | None = None
    edited_message: Message | None = None
    callback_query: CallbackQuery | None = None


# -- verify ------------------------------------------------------------------------------------


def verify_secret_token(config: TelegramConfig, header: str | None) -> str | None:
    """Why the call is refused ("missing"/"wrong" secret token), or None when it carries the right one."""
    if not header:
        return "missing"
    # Constant time: the comparison must not tell a caller how much of the secret it guessed.
    if not hmac.compare_digest(header.encode(), config.secret_token.encode()):
        return "wrong"
    return None


# -- normalize ---------------------------------------------------------------------------------


def normalize(update: Update, workspace_id: str) -> InboundMessage | None:
    """The update as one inbound message, or None for update types that carry nothing to route."""
    if update.message is not None:
        return _from_message(update.message, workspace_id, edited=False)
    if update.edited_message is not None:
        return _from_message(update.edited_message, workspace_id, edited=True)
    if update.callback_query is not None:
        return _from_callback_query(update.callback_query, workspace_id)
    return None


def channel_message_id(chat_id: int, message_id: int) -> str:
    """Telegram's message ids are unique per chat only, so the chat is part of the id."""
    return f"{chat_id}:{message_id}"


def _from_message(message: Message, workspace_id: str, *, edited: bool) -> InboundMessage | None:
    text, attachments, metadata = _content(message)
    if text is None:
        return None
    provider_id = channel_message_id(message.chat.id, message.message_id)
    metadata["telegram_message_id"] = message.message_id
    metadata["chat_type"] = message.chat.type
    if message.from_ is not None and message.from_.language_code:
        metadata["language"] = message.from_.language_code
    if edited:
        metadata.update(edited=True, original_message_id=provider_id, edit_date=message.edit_date)
        # Each edit is a message of its own: the edit date tells two edits of one message apart.
        provider_id = f"{provider_id}:edit:{message.edit_date or message.date}"
        text = f"[edited] {text}"
    return InboundMessage(
        message_id=message_id_for(workspace_id, CHANNEL, provider_id),
        workspace_id=workspace_id,
        channel=CHANNEL,
        channel_message_id=provider_id,
        thread_id=str(message.chat.id),
        contact=_contact(message.from_, message.sender_chat or message.chat, message.contact),
        text=text,
        attachments=attachments,
        metadata=metadata,
    )


def _content(message: Message) -> tuple[str | None, list[Attachment], dict[str, Any]]:
    """Readable text, file references and metadata; text None when the message has no content."""
    metadata: dict[str, Any] = {}
    attachments = _attachments(message)
    text = message.text if message.text is not None else message.caption
    if text is not None and message.text is not None:
        command, payload = _command(text)
        if command == "start":
            # A deep link (t.me/<bot>?start=<payload>) or the Start button: the conversation opener.
            metadata["command"] = "start"
            if payload:
                metadata["start_payload"] = payload
            return "/start", attachments, metadata
    if message.location is not None:
        metadata["location"] = {"latitude": message.location.latitude, "longitude": message.location.longitude}
        text = text or f"[location {message.location.latitude:.5f}, {message.location.longitude:.5f}]"
    if message.contact is not None:
        shared_fields = {"phone_number", "first_name", "last_name", "user_id"}
        metadata["shared_contact"] = message.contact.model_dump(include=shared_fields)
        card = message.contact
        text = text or "[contact " + " ".join(p for p in (card.first_name, card.last_name, card.phone_number) if p) + "]"
    if text is None and attachments:
        kind = _file_kind(message)
        name = attachments[0].filename
        text = f"[{kind} {name}]" if name else f"[{kind}]"
    return text, attachments, metadata


def _command(text: str) -> tuple[str | None, str]:
    """("start", "payload") for "/start payload" or "/start@SomeBot payload"; (None, "") for plain text."""
    if not text.startswith("/"):
        return None, ""
    word, _, payload = text[1:].partition(" ")
    return word.split("@", 1)[0].lower(), payload.strip()


FILE_KINDS = ("document", "audio", "voice", "video", "video_note", "animation", "sticker")
# Telegram photos are always re-encoded as JPEG; the other kinds carry a mime_type when known.
DEFAULT_CONTENT_TYPES = {
    "photo": "image/jpeg", "sticker": "image/webp", "voice": "audio/ogg", "video_note": "video/mp4",
}


def _file_kind(message: Message) -> str:
    if message.photo:
        return "photo"
    return next(kind for kind in FILE_KINDS if getattr(message, kind) is not None)


def _attachments(message: Message) -> list[Attachment]:
    """References to the files Telegram holds (fetched before publishing: `fetch_media`)."""
    found: list[tuple[str, File]] = []
    if message.photo:
        # Telegram sends one PhotoSize per resolution; the largest is the one a person wants to see.
        found.append(("photo", max(message.photo, key=lambda size: (size.width or 0) * (size.height or 0))))
    # An animation message also carries it as a document; one reference is enough.
    found += [(kind, getattr(message, kind)) for kind in FILE_KINDS
              if getattr(message, kind) is not None and not (kind == "document" and message.animation is not None)]
    return [
        Attachment(
            url=FILE_REFERENCE.format(file_id=file.file_id),
            content_type=file.mime_type or DEFAULT_CONTENT_TYPES.get(kind, "application/octet-stream"),
            filename=file.file_name,
            size=file.file_size,
        )
        for kind, file in found
    ]


def _contact(user: User | None, chat: Chat, shared: SharedContact | None) -> Contact:
    """The sender; a chat stands in when Telegram hides the user (anonymous admins, channels)."""
    if user is None:
        name = chat.title or " ".join(p for p in (chat.first_name, chat.last_name) if p) or chat.username
        return Contact(id=str(chat.id), name=name)
    name = " ".join(p for p in (user.first_name, user.last_name) if p) or user.username
    # Telegram never tells a bot the user's number, unless they share their own contact card.
    phone = None
    if shared is not None and shared.user_id == user.id:
        phone = shared.phone_number if shared.phone_number.startswith("+") else f"+{shared.phone_number}"
    return Contact(id=str(user.id), name=name, phone=phone)


def _from_callback_query(query: CallbackQuery, workspace_id: str) -> InboundMessage:
    """A button press on one of our inline keyboards, as the customer's reply: a quick reply's with its
    action and its button's title; another button's as "[button] <data>"."""
    # The query id is Telegram's for this one press: a second press is another message, a redelivery the same.
    provider_id = f"callback:{query.id}"
    chat = query.message.chat if query.message is not None else None
    metadata: dict[str, Any] = {"button": True, "callback_data": query.data, "callback_query_id": query.id}
    if query.message is not None:
        metadata["button_message_id"] = channel_message_id(query.message.chat.id, query.message.message_id)
    action = quick_replies.action_of(query.data)
    if action is not None:
        text = button_title(query.message, query.data) or action
    else:
        text = f"[button] {query.data}" if query.data else "[button]"
    return InboundMessage(
        message_id=message_id_for(workspace_id, CHANNEL, provider_id),
        workspace_id=workspace_id,
        channel=CHANNEL,
        channel_message_id=provider_id,
        # In a private chat the chat id is the user id, so both land in the same conversation.
        thread_id=str(chat.id if chat is not None else query.from_.id),
        contact=_contact(query.from_, chat or Chat(id=query.from_.id), None),
        text=text,
        metadata=metadata,
        action=action,
    )


def button_title(message: Message | None, data: str | None) -> str | None:
    """The title of the button carrying `data` in the keyboard of the message pressed (Telegram sends
    that message with the press); None when it is not there (an inaccessible old message)."""
    markup = (message.model_extra or {}).get("reply_markup") if message is not None else None
    rows = markup.get("inline_keyboard") if isinstance(markup, dict) else None
    for row in rows if isinstance(rows, list) else ():
        for button in row if isinstance(row, list) else ():
            if isinstance(button, dict) and button.get("callback_data") == data and isinstance(button.get("text"), str):
                return button["text"].strip() or None
    return None


# -- webhook -----------------------------------------------------------------------------------


class WebhookAnswer(BaseModel):
    """The webhook's answer: empty, or the one Bot API call Telegram makes on our behalf."""

    model_config = ConfigDict(extra="forbid")

    method: Literal["answerCallbackQuery"] | None = None
    callback_query_id: str | None = None
    text: str | None = Field(None, max_length=200)  # shown to the user as a notification (0-200 characters)


def survey_answer_of(update: Update) -> tuple[CallbackQuery, str, str] | None:
    """(the press, survey id, raw score) when the update is a press on a survey's button, else None."""
    query = update.callback_query
    found = csat_rules.read_payload(query.data) if query is not None else None
    return (query, *found) if query is not None and found is not None else None


async def answer_survey(intake: "Intake", workspace_id: str, query: CallbackQuery, survey_id: str,
                        score: str) -> web.Response:
    """A survey button press: kept or refused by the agents service, never published as a message;
    the button's spinner stops with a thank-you or the reason (answerCallbackQuery's text)."""
    chat = query.message.chat if query.message is not None else None
    outcome = await csat.submit(intake, workspace_id, channel=CHANNEL, survey_id=survey_id, score=score,
                                thread_id=str(chat.id if chat is not None else query.from_.id))
    return model_response(WebhookAnswer(method="answerCallbackQuery", callback_query_id=query.id,
                                        text=outcome.polite_text()), exclude_none=True)


async def receive_update(request: web.Request) -> web.Response:
    """POST /v1/webhooks/telegram/{workspace}: one Update from the Bot API."""
    intake = request.app[context.INTAKE]
    workspace_id = request.match_info["workspace"]
    config: TelegramConfig = intake.channel_config(CHANNEL, workspace_id)
    body = await read_limited(request, intake.settings.max_body_bytes)
    refused = verify_secret_token(config, request.headers.get(SECRET_HEADER))
    if refused == "missing":
        raise intake.reject(CHANNEL, "missing secret token", web.HTTPUnauthorized)
    if refused is not None:
        raise intake.reject(CHANNEL, "wrong secret token", web.HTTPForbidden)
    update = parse_update(body)
    survey = survey_answer_of(update)
    if survey is not None:
        return await answer_survey(intake, workspace_id, *survey)
    message = normalize(update, workspace_id)
    if message is None:
        log.info("telegram.update_not_published", workspace_id=workspace_id, update_id=update.update_id,
                 kinds=sorted(k for k in (update.model_extra or {}) if k != "update_id"))
        return model_response(WebhookAnswer(), exclude_none=True)
    await intake.publish_inbound(message)
    if update.callback_query is not None:
        # Telegram accepts one Bot API call in the webhook's answer: this one stops the button's spinner.
        return model_response(WebhookAnswer(method="answerCallbackQuery", callback_query_id=update.callback_query.id),
                              exclude_none=True)
    return model_response(WebhookAnswer(), exclude_none=True)


def parse_update(body: bytes) -> Update:
    """The body as an Update, or a JSON 400 naming what is wrong with it."""
    try:
        return Update.model_validate_json(body)
    except ValidationError as error:
        problems = error.errors(include_url=False, include_context=False, include_input=False)
        message = "malformed JSON" if any(p["type"] == "json_invalid" for p in problems) else "not a Telegram Update"
        raise http_error(web.HTTPBadRequest, message, problems=problems) from None


# -- replies -----------------------------------------------------------------------------------


# sendPhoto takes these (up to 10 MB); anything else goes as a document. https://core.telegram.org/bots/api#sendphoto
PHOTO_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")
MAX_PHOTO_BYTES = 10 * 1024 * 1024


class TelegramSender:
    """Sends agents' replies with the workspace bot's sendMessage, and their files with sendPhoto or sendDocument."""

    channel = CHANNEL

    def __init__(self, intake: "Intake") -> None:
        self.intake = intake
        self.timeout = aiohttp.ClientTimeout(total=intake.settings.send_timeout)

    async def send(self, message: OutboundMessage) -> Sent:
        config = self.intake.configs.get((CHANNEL, message.workspace_id))
        if config is None:
            raise SendError(f"telegram is not configured for workspace {message.workspace_id!r}", retry=False)
        assert isinstance(config, TelegramConfig)
        chat_id = _chat_id(message.thread_id)
        answers = []
        if message.text.strip() or not message.attachments:
            answers.append(await self._call(config, "sendMessage", {"chat_id": chat_id, "text": message.text,
                                                                     **keyboard(message)}))
        for attachment in message.attachments:
            answers.append(await self._send_file(config, message.workspace_id, chat_id, attachment))
        result = answers[0].get("result") or {}
        sent_id = result.get("message_id") if isinstance(result, dict) else None
        return Sent("sent", channel_message_id=channel_message_id(chat_id, sent_id) if sent_id is not None else None)

    async def _send_file(self, config: TelegramConfig, workspace_id: str, chat_id: int | str,
                         attachment: Attachment) -> dict[str, Any]:
        """An agent's file, uploaded (multipart): a photo as sendPhoto (Telegram shows it inline), else sendDocument.
        A file sent and then a retry of a later one sends that file again: the Bot API has no idempotency key."""
        stored = await self.intake.attachments.get(workspace_id, attachment.attachment_id or "")
        if stored is None:
            raise SendError(f"attachment {attachment.attachment_id} not found", retry=False)
        photo = stored.attachment.content_type in PHOTO_TYPES and len(stored.data) <= MAX_PHOTO_BYTES
        field = "photo" if photo else "document"
        form = aiohttp.FormData()
        form.add_field("chat_id", str(chat_id))
        form.add_field(field, stored.data, filename=stored.attachment.filename or "file",
                       content_type=stored.attachment.content_type)
        return await self._call(config, "sendPhoto" if photo else "sendDocument", form)

    async def _call(self, config: TelegramConfig, method: str, payload: dict[str, Any] | aiohttp.FormData) -> dict[str, Any]:
        """One Bot API call (JSON, or multipart with a file); its answer when ok, else SendError
        (retryable for 429, 5xx, the network)."""
        url = f"{config.base_url.rstrip('/')}/bot{config.bot_token}/{method}"
        body = {"data": payload} if isinstance(payload, aiohttp.FormData) else {"json": payload}
        try:
            async with self.intake.http.post(url, **body, timeout=self.timeout) as response:
                status = response.status
                try:
                    answer = await response.json(content_type=None)
                except ValueError:
                    answer = None
        except (aiohttp.ClientError, TimeoutError) as error:
            raise SendError(f"Telegram unreachable: {error!r}", retry=True) from None
        if isinstance(answer, dict) and answer.get("ok") is True:
            return answer
        _raise_for_answer(method, status, answer)


def keyboard(message: OutboundMessage) -> dict[str, Any]:
    """The inline keyboard under the text: a survey's, or the quick replies'; nothing for a plain reply."""
    if message.survey is not None:
        return survey_keyboard(message)
    replies = quick_replies.buttons_of(message)
    return quick_reply_keyboard(replies) if replies else {}


def survey_keyboard(message: OutboundMessage) -> dict[str, Any]:
    """A survey's buttons: one row 1-5 under the question, each carrying `csat:<survey>:<score>`
    back as callback_data (at most 64 bytes) in a callback_query; nothing for an ordinary reply."""
    if message.survey is None:
        return {}
    row = [{"text": str(score), "callback_data": csat_rules.button_payload(message.survey.survey_id, score)}
           for score in csat_rules.SCORES]
    return {"reply_markup": {"inline_keyboard": [row]}}


# Titles up to this many characters in all share one row; longer ones get a row each (a phone's
# row of three is about this wide before Telegram cuts titles short).
ONE_ROW_CHARS = 30


def quick_reply_keyboard(replies: list[QuickReply]) -> dict[str, Any]:
    """Quick replies as inline buttons, each carrying `qr:<id>` back as callback_data."""
    buttons = [{"text": reply.title, "callback_data": quick_replies.payload(reply)} for reply in replies]
    fits = sum(len(reply.title) for reply in replies) <= ONE_ROW_CHARS
    return {"reply_markup": {"inline_keyboard": [buttons] if fits else [[button] for button in buttons]}}


def _raise_for_answer(method: str, status: int, answer: Any) -> NoReturn:
    """A failed call as SendError: 429 and 5xx may pass, other 4xx (blocked, chat not found) will not."""
    code = status
    description = f"HTTP {status}"
    if isinstance(answer, dict):
        code = answer.get("error_code") or status
        description = answer.get("description") or description
    retry = code == 429 or code >= 500 or status >= 500
    raise SendError(f"Telegram {method} failed ({code}): {description}", retry=retry)


def _chat_id(thread_id: str) -> int | str:
    """Chat ids are integers; a channel's "@username" is passed as it is."""
    try:
        return int(thread_id)
    except ValueError:
        return thread_id


# -- files -------------------------------------------------------------------------------------


def file_id_of(reference: str | None) -> str | None:
    """The file_id in a `telegram:file/<file_id>` reference (as `_attachments` writes it); None for anything else."""
    return referenced_id(reference, FILE_REFERENCE.format(file_id=""))


async def fetch_media(intake: "Intake", workspace_id: str, attachment: Attachment) -> FetchedMedia:
    """The file a `telegram:file/<file_id>` reference names: getFile gives its path, then the file is downloaded.

    https://core.telegram.org/bots/api#getfile (bots may download files of up to 20 MB).
    """
    file_id = file_id_of(attachment.url)
    if file_id is None:
        raise MediaFetchError("not a Telegram file reference")
    config = fetch_config(intake, CHANNEL, workspace_id, TelegramConfig)
    base = config.base_url.rstrip("/")
    status, answer = await lookup_json(intake.http, "POST", f"{base}/bot{config.bot_token}/getFile",
                                       json={"file_id": file_id})
    file_path, file_size = _file_of(status, answer)
    limit = intake.settings.max_attachment_bytes
    if file_size is not None and file_size > limit:
        raise over_limit(limit)
    fetched = await download(intake.http, f"{base}/file/bot{config.bot_token}/{file_path}", limit)
    return FetchedMedia(fetched.data, content_type=fetched.content_type, filename=url_filename(file_path))


def _file_of(status: int, answer: dict[str, Any] | None) -> tuple[str, int | None]:
    """getFile's answer as (file_path, file_size); MediaFetchError with Telegram's description when it failed."""
    result = (answer or {}).get("result")
    if status < 400 and (answer or {}).get("ok") is True and isinstance(result, dict) and result.get("file_path"):
        size = result.get("file_size")
        return str(result["file_path"]), size if isinstance(size, int) else None
    if status >= 400 or (answer or {}).get("ok") is False:
        raise provider_refused(status, (answer or {}).get("description"))
    raise MediaFetchError("getFile answered without a file_path")


PLUGIN = ChannelPlugin(
    name=CHANNEL,
    routes=[web.post(webhook_path(CHANNEL), receive_update)],
    operations=[webhook_operation("POST", webhook_path(CHANNEL), "Telegram: one Update from the Bot API", (
        Answer(200, "Received (and published); may carry one Bot API call", WebhookAnswer),
    ), parameters=(signature_header(SECRET_HEADER, "The secret_token given to setWebhook"),),
        content=provider_json("An Update", "https://core.telegram.org/bots/api#update"))],
    sender=TelegramSender,
    config=TelegramConfig,
    fetch_media=fetch_media,
)
