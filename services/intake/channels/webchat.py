"""The web chat channel: customers on the /chat page, over a WebSocket held by intake.

A session token (HMAC-signed workspace and contact id) lets a reloaded page continue its
conversation. Replies go to the customer's open sockets, on whichever intake replica holds them
(the socket relay, shared/relay.py); one who is away sees them in the history sent on reconnect. A chat whose last socket closed and that no socket of reopens within
`INTAKE_WEBCHAT_ABANDON_SECONDS` is left: intake tells the router (`thread.left`), which drops
a wait still on as abandoned (a conversation an agent holds stays theirs). Typing goes both ways as ephemeral signals (shared/ephemeral.py):
the page's `{"type": "typing"}` becomes `typing.contact` for the agent's desk, and the agent's
`typing.agent` becomes `{"type": "typing", "who": "agent"}` on the customer's sockets.
"""

import asyncio
import base64
import hashlib
import hmac
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal

import structlog
from aiohttp import web
from aiormq.exceptions import AMQPError, ChannelInvalidStateError
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from services.intake import csat
from services.intake.channels.api import MAX_TEXT_CHARS
from services.intake.channels.base import ChannelPlugin, Sent, message_id_for
from services.intake.files import file_link
from services.intake.settings import IntakeSettings
from shared import events, quick_replies
from shared.attachments import MAX_CONTENT_TYPE_CHARS, media_type, safe_filename
from shared.broker import Broker
from shared.csat import MAX_COMMENT_CHARS, SCORES
from shared.ephemeral import TYPING_INTERVAL, RateLimiter, SignalConsumer, TypingSignal, publish_signal
from shared.models import (
    QUICK_REPLY_ID,
    SYSTEM_AGENT,
    Attachment,
    Contact,
    InboundMessage,
    OutboundMessage,
    ThreadLeft,
    Wire,
    utcnow,
)
from shared.relay import SocketRelay
from shared.web import Form, FrameError, http_error, parse_frame

if TYPE_CHECKING:
    from services.intake.context import Intake

log = structlog.get_logger(__name__)
CHANNEL = "webchat"
CLIENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ChatFrame(Wire):
    """A frame from the customer's page: a message typed, or a quick reply pressed (`action`, its id;
    `text`, its title)."""

    type: Literal["message"]
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS)
    client_id: str = Field(min_length=1, max_length=64)
    action: str | None = Field(None, pattern=QUICK_REPLY_ID)


class TypingFrame(BaseModel):
    """`{"type": "typing"}` from the page: the customer is typing (never answered)."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["typing"]


class CsatFrame(Wire):
    """`{"type": "csat", "survey_id", "score": 1-5, "comment"?}`: the customer's answer to a survey
    frame (answered by `csat.recorded`, or `error` with the reason). The score is read by the CSAT
    rules, not here, so that "abc" or 6 gets the survey's own answer, not a frame error."""

    type: Literal["csat"]
    survey_id: str = Field(min_length=1, max_length=64)
    score: int | str
    comment: str | None = Field(None, max_length=MAX_COMMENT_CHARS)


# Every frame the page may send, told apart by "type"; read through shared.web.parse_frame.
CHAT_INPUT: TypeAdapter[ChatFrame | TypingFrame | CsatFrame] = TypeAdapter(
    Annotated[ChatFrame | TypingFrame | CsatFrame, Field(discriminator="type")]
)


class ChatSession(Wire):
    workspace_id: str
    contact_id: str

    @property
    def thread_id(self) -> str:
        return self.contact_id


def issue_token(secret: str, session: ChatSession) -> str:
    payload = base64.urlsafe_b64encode(f"{session.workspace_id}\x1f{session.contact_id}".encode()).decode()
    return f"{payload}.{_signature(secret, payload)}"


def read_token(secret: str, token: str) -> ChatSession | None:
    """The session a token stands for, or None if it is malformed or forged."""
    payload, _, signature = token.partition(".")
    # Bytes, not str: compare_digest raises TypeError on a str with a non-ASCII character.
    if not hmac.compare_digest(signature.encode(), _signature(secret, payload).encode()):
        return None
    try:
        workspace_id, contact_id = base64.urlsafe_b64decode(payload.encode()).decode().split("\x1f")
    except ValueError:  # binascii.Error and UnicodeDecodeError are ValueErrors
        return None
    return ChatSession(workspace_id=workspace_id, contact_id=contact_id)


def _signature(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), payload.encode(), hashlib.sha256).hexdigest()[:32]


def new_session(workspace_id: str) -> ChatSession:
    return ChatSession(workspace_id=workspace_id, contact_id=f"web-{uuid.uuid4().hex}")


@dataclass(frozen=True)
class Customer:
    """What the page says of the customer: the name they typed, the email address they left (outside
    opening hours: kept on the contact so an agent can answer by email)."""

    name: str | None = None
    email: str | None = None
    language: str | None = None  # the page's language: the CSAT question is asked in it (docs/csat.md)


def normalize(frame: ChatFrame, session: ChatSession, customer: Customer) -> InboundMessage:
    return _inbound(session, frame.client_id, customer, frame.text, frame.action)


def _inbound(session: ChatSession, client_id: str, customer: Customer, text: str,
             action: str | None = None) -> InboundMessage:
    return InboundMessage(
        # The page's client_id makes a resent frame or upload (after a lost answer) the same message.
        message_id=message_id_for(session.workspace_id, CHANNEL, f"{session.contact_id}:{client_id}"),
        workspace_id=session.workspace_id,
        channel=CHANNEL,
        channel_message_id=client_id,
        thread_id=session.thread_id,
        contact=Contact(id=session.contact_id, name=customer.name, email=customer.email),
        metadata={"language": customer.language} if customer.language else {},
        text=text,
        action=action,
    )


@dataclass(frozen=True)
class Upload:
    client_id: str
    text: str
    filename: str
    content_type: str
    data: bytes


def read_upload(form: Form) -> Upload:
    """The file and fields of a chat upload, or a JSON 400/422 naming what is missing or wrong."""
    file = form.files.get("file")
    if file is None:
        raise http_error(web.HTTPBadRequest, "the form has no file field named 'file'")
    client_id = form.fields.get("client_id")
    if client_id is None or not CLIENT_ID.fullmatch(client_id):
        raise http_error(web.HTTPBadRequest, "client_id must be 1-64 letters, digits, '_' or '-'")
    text = form.fields.get("text", "")
    if len(text) > MAX_TEXT_CHARS:
        raise http_error(web.HTTPBadRequest, f"text must be at most {MAX_TEXT_CHARS} characters")
    if len(file.content_type) > MAX_CONTENT_TYPE_CHARS:
        raise http_error(web.HTTPUnprocessableEntity,
                         f"the file's Content-Type is over {MAX_CONTENT_TYPE_CHARS} characters")
    # The type as it will be served back (a bad one as octet-stream); the name without control characters.
    filename = safe_filename(file.filename) or "file"
    return Upload(client_id, text, filename, media_type(file.content_type), file.data)


# The upload form as /openapi.json declares it (read_upload checks the same).
UPLOAD_FORM: dict[str, Any] = {
    "type": "object",
    "properties": {
        # OpenAPI 3.1's way to say "a file" (3.0's format: binary): sent as a part with a filename.
        "file": {"type": "string", "contentMediaType": "application/octet-stream",
                 "description": "The file (its part's filename and type are kept)"},
        "client_id": {"type": "string", "pattern": f"^{CLIENT_ID.pattern}$",
                      "description": "The page's id for the message: a resend with the same id is the same message"},
        "text": {"type": "string", "maxLength": MAX_TEXT_CHARS, "description": "Text sent with the file"},
    },
    "required": ["file", "client_id"],
    # The page sends no other part (one would be ignored).
    "additionalProperties": False,
}


class UploadAck(Wire):
    """The upload is published: the page's client_id, our message id, and the stored file."""

    type: Literal["ack"] = "ack"
    client_id: str
    message_id: str
    attachment: Attachment


def normalize_upload(upload: Upload, session: ChatSession, customer: Customer) -> InboundMessage:
    return _inbound(session, upload.client_id, customer, upload.text or f"[file: {upload.filename}]")


ChatKey = tuple[str, str]  # (workspace, thread)
OnLeft = Callable[[str, str, datetime], Awaitable[None]]  # (workspace, thread, when its last socket closed)


CHAT_BACK = "chat.back"  # between replicas, on a chat's leaving key: a socket of it opened; never sent to a page
LEAVING = "leaving:"


def leaving_key(key: ChatKey) -> ChatKey:
    """The relay key a replica waiting for the chat to come back watches (not the chat's own key: a
    reply's `delivered` means a socket holds it, not a replica waiting)."""
    return key[0], LEAVING + key[1]


def chat_of_leaving_key(key: ChatKey) -> ChatKey:
    return key[0], key[1].removeprefix(LEAVING)


class ChatHub:
    """The customers' open sockets this process holds, by (workspace, thread), and the chats being left.

    With a broker, a frame sent here reaches the chat's sockets on every intake replica through the
    socket relay (shared/relay.py): this process's at once, the others' through the relay.

    When a chat's last socket closes, `on_left` is called after `left_after` seconds unless a socket
    of that chat opens meanwhile (a reload, a reconnect after a network blip), here or on another
    replica: while it waits, this process watches the chat's "leaving" key on the relay, and a
    replica where a socket of the chat opens says so there (`CHAT_BACK`). A chat whose socket closed
    as intake stopped is not counted as left."""

    def __init__(self, left_after: float = 60, on_left: OnLeft | None = None, broker: Broker | None = None) -> None:
        self._sockets: dict[ChatKey, set[web.WebSocketResponse]] = {}
        self.typing_limit = RateLimiter(TYPING_INTERVAL)  # per (workspace, thread): the customer's typing signals
        self.left_after = left_after
        self.on_left = on_left
        self._leaving: dict[ChatKey, asyncio.Task] = {}  # still in their wait: a socket opening cancels them
        self._tasks: set[asyncio.Task] = set()  # every one not done, awaited on close
        self._closing = False
        self.places = LastPlaces()
        self.relay = SocketRelay(broker, "intake", self.send_local, self.resync) if broker is not None else None

    async def add(self, session: ChatSession, ws: web.WebSocketResponse) -> None:
        """Hold a socket, and bind its chat's key before its history is read: a reply another replica
        sends after that read reaches it. Raises (the socket not held) if the broker would not bind."""
        key = (session.workspace_id, session.thread_id)
        self._sockets.setdefault(key, set()).add(ws)
        self._stop_leaving(key)
        if self.relay is not None:
            try:
                await self.relay.watch(key)
            except BaseException:
                self._forget(key, ws)
                raise
            await self.relay.publish(leaving_key(key), {"type": CHAT_BACK})  # another replica may be waiting

    async def remove(self, session: ChatSession, ws: web.WebSocketResponse) -> None:
        key = (session.workspace_id, session.thread_id)
        if not self._forget(key, ws):
            return
        if key not in self._sockets:
            self._start_leaving(key)
        if self.relay is not None:
            await self.relay.unwatch(key)

    def _forget(self, key: ChatKey, ws: web.WebSocketResponse) -> bool:
        sockets = self._sockets.get(key)
        if sockets is None or ws not in sockets:
            return False
        sockets.discard(ws)
        if not sockets:
            del self._sockets[key]
        return True

    def leaving(self, workspace_id: str, thread_id: str) -> bool:
        """Whether the chat's last socket closed and its wait for a return is on."""
        return (workspace_id, thread_id) in self._leaving

    def _start_leaving(self, key: ChatKey) -> None:
        if self.on_left is None or self._closing or key in self._leaving:
            return
        task = asyncio.create_task(self._leave(key, utcnow()), name=f"chat-left:{key[0]}:{key[1]}")
        self._leaving[key] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _stop_leaving(self, key: ChatKey) -> None:
        """The chat is back (a socket of it opened, here or on another replica): its wait ends."""
        leaving = self._leaving.pop(key, None)
        if leaving is not None:
            leaving.cancel()

    async def _leave(self, key: ChatKey, closed_at: datetime) -> None:
        watching = False
        try:
            if self.relay is not None:
                await self.relay.watch(leaving_key(key))  # a replica where the chat reopens tells us
                watching = True
            await asyncio.sleep(self.left_after)
        finally:
            if watching:
                await self.relay.unwatch(leaving_key(key))
        # Past the wait it is no longer cancelled by a socket opening: the customer is told as left.
        if self._leaving.get(key) is asyncio.current_task():
            del self._leaving[key]
        assert self.on_left is not None
        await self.on_left(key[0], key[1], closed_at)

    async def send(self, workspace_id: str, thread_id: str, frame: dict) -> bool:
        """To the chat's sockets wherever they are connected; whether some process holds one."""
        held_here = await self.send_local((workspace_id, thread_id), frame)
        held_elsewhere = self.relay is not None and await self.relay.publish_confirmed((workspace_id, thread_id), frame)
        return held_here > 0 or held_elsewhere

    async def send_local(self, key: ChatKey, frame: dict) -> int:
        """To this process's sockets of the chat only (a frame relayed here, or one every replica gets);
        how many took it. A queue place is remembered for a page that reloads (on this replica)."""
        if frame.get("type") == CHAT_BACK:  # on the chat's leaving key: not for a socket
            self._stop_leaving(chat_of_leaving_key(key))
            return 0
        self.places.note(key[0], key[1], frame)
        sent = 0
        for ws in list(self._sockets.get(key, ())):
            if not ws.closed:
                try:
                    await ws.send_json(frame)
                    sent += 1
                except (ConnectionError, RuntimeError):
                    continue
        return sent

    async def resync(self) -> None:
        """Frames may have been lost (a broker outage): every page here reconnects and gets its history again."""
        await self._close_every(1012, b"reconnect for a fresh history")

    async def close_all(self) -> None:
        """On stop: chats still in their wait are not left (their customers reconnect to the next intake)."""
        self._closing = True
        for task in self._leaving.values():
            task.cancel()
        self._leaving.clear()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._close_every(1001, b"server shutting down")

    async def _close_every(self, code: int, message: bytes) -> None:
        # At once: a page slow to answer the close does not hold up the others.
        await asyncio.gather(*(ws.close(code=code, message=message)
                               for sockets in list(self._sockets.values()) for ws in list(sockets)))


LEFT_ATTEMPTS = 5


async def tell_left(intake: "Intake", workspace_id: str, thread_id: str, closed_at: datetime) -> None:
    """Tell the router the customer left this chat (thread.left), retried a few times; a failure is logged."""
    seconds = intake.settings.webchat_abandon_seconds
    left = ThreadLeft(workspace_id=workspace_id, channel=CHANNEL, thread_id=thread_id, at=closed_at,
                      reason=f"chat closed, not back within {seconds:g} s")
    for attempt in range(1, LEFT_ATTEMPTS + 1):
        try:
            await intake.broker.publish(left, events.THREAD_LEFT, message_type=events.THREAD_LEFT,
                                        message_id=left.event_id, workspace_id=workspace_id)
            return
        except (AMQPError, ChannelInvalidStateError, ConnectionError, TimeoutError) as error:  # broker away or refusing
            log.warning("webchat.left_publish_failed", workspace_id=workspace_id, thread_id=thread_id,
                        attempt=attempt, error=repr(error))
            if attempt < LEFT_ATTEMPTS:
                await asyncio.sleep(min(0.5 * 2 ** (attempt - 1), 5))
    log.error("webchat.left_not_told", workspace_id=workspace_id, thread_id=thread_id)


def reply_frame(message: OutboundMessage, settings: IntakeSettings) -> dict:
    """A reply as the page shows it; `quick_replies` (id, title) only when it has buttons to show."""
    replies = [reply.model_dump() for reply in quick_replies.buttons_of(message)]
    return {
        "type": "message",
        "message_id": message.message_id,
        "direction": "outbound",
        "text": message.text,
        "agent_id": message.agent_id,
        "agent_name": message.agent_name,
        "created_at": message.created_at.isoformat(),
        "attachments": files_of(message.workspace_id, [a.model_dump() for a in message.attachments], settings),
        **({"quick_replies": replies} if replies else {}),
    }


def files_of(workspace_id: str, attachments: list[dict], settings: IntakeSettings) -> list[dict]:
    """An agent's files as the page links them: name, type, size and a signed link (services/intake/files.py)."""
    return [{"filename": a.get("filename") or "file", "content_type": a.get("content_type"), "size": a.get("size"),
             "url": file_link(settings, workspace_id, a["attachment_id"])}
            for a in attachments if a.get("attachment_id")]


def notice_frame(message: OutboundMessage) -> dict:
    """A notice as the page shows it: `queue` (position, expected wait) or `notice` (joined, resolved)."""
    notice = message.notice
    assert notice is not None
    if notice.kind == "queue":
        return {"type": "queue", "position": notice.position, "expected_wait_seconds": notice.expected_wait_seconds}
    return {"type": "notice", "notice": notice.kind, "message_id": message.message_id,
            "agent_name": notice.agent_name, "created_at": message.created_at.isoformat()}


def frame_of(message: OutboundMessage, settings: IntakeSettings) -> dict:
    if message.notice is not None:
        return notice_frame(message)
    return survey_frame(message) if message.survey is not None else reply_frame(message, settings)


def survey_frame(message: OutboundMessage) -> dict:
    """A CSAT survey as the page shows it: the question, 1-5 to pick, a comment box."""
    assert message.survey is not None
    return {
        "type": "survey",
        "message_id": message.message_id,
        "survey_id": message.survey.survey_id,
        "question": message.survey.question,
        "scores": list(SCORES),
        "comment": True,
        "expires_at": message.survey.expires_at.isoformat(),
        "created_at": message.created_at.isoformat(),
    }


def history_of(conversation: dict, settings: IntakeSettings, names: dict[str, str] | None = None) -> list[dict]:
    """The history frame's messages: what the page shows of a conversation as the agents service gives
    it. Only the customer's and the replies: a private note (direction `note`) is the agents' own, never
    shown. Each reply with its agent's display name when `names` (agent id -> name) has it, and its
    files with fresh signed links."""
    fields = ("message_id", "direction", "text", "created_at", "status")
    names = names or {}
    workspace_id = conversation.get("workspace_id") or ""
    return [{**{f: m.get(f) for f in fields}, "agent_name": names.get(m.get("agent_id") or ""),
             **({"attachments": files_of(m.get("workspace_id") or workspace_id, m.get("attachments") or [], settings)}
                if m.get("direction") == "outbound" else {}),
             **choices_of(m)}
            for m in conversation.get("messages") or [] if m.get("direction") in ("inbound", "outbound")]


def choices_of(stored: dict) -> dict:
    """A stored message's quick replies (a reply's buttons) or action (the press), when the agents
    service keeps them, as the live frames carry them; nothing otherwise."""
    found: dict = {}
    if stored.get("direction") == "outbound" and stored.get("quick_replies"):
        found["quick_replies"] = [{"id": r.get("id"), "title": r.get("title")} for r in stored["quick_replies"]
                                  if isinstance(r, dict)]
    if stored.get("direction") == "inbound" and stored.get("action"):
        found["action"] = stored["action"]
    return found


def repliers(conversation: dict) -> set[str]:
    """The agents who replied in a conversation (a system reply's author is no one to name)."""
    return {m["agent_id"] for m in conversation.get("messages") or []
            if m.get("direction") == "outbound" and m.get("agent_id") and m["agent_id"] != SYSTEM_AGENT}


def pending_survey_frame(conversation: dict) -> dict | None:
    """The survey frame again for a conversation whose survey is still open (the page was away when
    it was sent, or reloaded); None when there is none, it is answered, or it has closed."""
    survey = conversation.get("csat")
    if not isinstance(survey, dict) or survey.get("status") != "pending":
        return None
    try:
        expires_at = datetime.fromisoformat(survey["expires_at"])
    except (KeyError, TypeError, ValueError):
        return None
    if expires_at <= utcnow():
        return None
    return {
        "type": "survey", "message_id": f"survey-{survey['survey_id']}", "survey_id": survey["survey_id"],
        "question": survey["question"], "scores": list(SCORES), "comment": True,
        "expires_at": survey["expires_at"], "created_at": survey["sent_at"],
    }


class WebChatSender:
    channel = CHANNEL

    def __init__(self, hub: ChatHub, settings: IntakeSettings) -> None:
        self.hub = hub
        self.settings = settings

    async def send(self, message: OutboundMessage) -> Sent:
        """Delivered if the customer's page is open; else sent, and shown from history on return."""
        frame = frame_of(message, self.settings)
        opened = await self.hub.send(message.workspace_id, message.thread_id, frame)  # on any intake replica
        return Sent("delivered" if opened else "sent")


class LastPlaces:
    """The last `queue` frame of each chat still waiting, so a page reloaded while waiting shows its place
    at once (the router tells a place again only when it changes). Forgotten when an agent joins or
    the conversation is resolved; at most `limit` chats, the oldest dropped first (best effort, per process)."""

    def __init__(self, limit: int = 20_000) -> None:
        self.limit = limit
        self._frames: dict[ChatKey, dict] = {}

    def note(self, workspace_id: str, thread_id: str, frame: dict) -> None:
        key = (workspace_id, thread_id)
        if frame["type"] == "queue":
            self._frames.pop(key, None)  # re-inserted last: the dict's order is the age
            self._frames[key] = frame
            if len(self._frames) > self.limit:
                del self._frames[next(iter(self._frames))]
        elif frame["type"] == "notice" or (frame["type"] == "message" and frame.get("direction") == "outbound"):
            self._frames.pop(key, None)

    def get(self, workspace_id: str, thread_id: str) -> dict | None:
        return self._frames.get((workspace_id, thread_id))


async def answer_survey(intake: "Intake", session: ChatSession, frame: CsatFrame) -> dict:
    """The page's survey answer, kept or refused by the agents service: `csat.recorded` or an `error` frame."""
    try:
        outcome = await csat.submit(intake, session.workspace_id, channel=CHANNEL, survey_id=frame.survey_id,
                                    thread_id=session.thread_id, score=frame.score, comment=frame.comment)
    except web.HTTPException:
        return {"type": "error", "survey_id": frame.survey_id, "reason": "unavailable",
                "message": "could not record your rating now, please try again"}
    if not outcome.kept:
        return {"type": "error", "survey_id": frame.survey_id, "reason": outcome.reason,
                "message": outcome.message or outcome.polite_text()}
    return {"type": "csat.recorded", "survey_id": frame.survey_id, "message": outcome.polite_text()}


def is_typing(data: str) -> bool:
    """Whether a frame from the page is `{"type": "typing"}` (it gets no answer, unlike a message)."""
    try:
        return isinstance(parse_frame(data, CHAT_INPUT), TypingFrame)
    except FrameError:
        return False


async def contact_typing(intake: "Intake", session: ChatSession) -> None:
    """Tell the assigned agent's desk the customer is typing: at most one signal per thread per interval."""
    if intake.chat.typing_limit.allow((session.workspace_id, session.thread_id)):
        signal = TypingSignal(workspace_id=session.workspace_id, channel=CHANNEL, thread_id=session.thread_id)
        await publish_signal(intake.broker, signal, events.TYPING_CONTACT)


@asynccontextmanager
async def agent_typing_relay(intake: "Intake") -> AsyncIterator[None]:
    """While intake runs, show `typing.agent` signals on the customer's open chat sockets."""

    async def show(signal: TypingSignal) -> None:
        if signal.channel == CHANNEL:  # every intake replica gets every signal: each shows it on its own sockets
            await intake.chat.send_local((signal.workspace_id, signal.thread_id), {"type": "typing", "who": "agent"})

    consumer = SignalConsumer(intake.broker, "intake", events.TYPING_AGENT, show)
    await consumer.start()
    try:
        yield
    finally:
        await consumer.stop()


PLUGIN = ChannelPlugin(name=CHANNEL, sender=lambda intake: WebChatSender(intake.chat, intake.settings), background=agent_typing_relay)
