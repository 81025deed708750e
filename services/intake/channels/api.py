"""The API channel: external systems post messages over REST and get replies on a signed callback.

Callback request: POST <url>, JSON body {"type": "message.outbound", ...the OutboundMessage...},
headers `X-Switchyard-Timestamp: <unix seconds>` and
`X-Switchyard-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the workspace secret>`.

Quick replies: the external system owns its UI, so a reply's `quick_replies` travel in the callback
body as data (only when there are some: other bodies stay as they were), the text unchanged; it
posts the customer's choice back with `action` (the reply's id) and the title as `text`.
"""

import hashlib
import hmac
import re
import time
from typing import Annotated

import aiohttp
from pydantic import Field, field_validator

from services.intake.channels.base import ChannelPlugin, SendError, Sent, message_id_for
from services.intake.settings import CallbackTarget
from shared.models import (
    MAX_SKILLS,
    QUICK_REPLY_ID,
    Contact,
    InboundMessage,
    Metadata,
    OutboundMessage,
    Priority,
    Skill,
    Wire,
)
from shared.web import METADATA_SCHEMA

CHANNEL = "api"
MAX_TEXT_CHARS = 4096
# Text that is not blank: some character str.strip() keeps. The class lists Python's whitespace
# exactly (ECMA's \s is not the same set), so the document's pattern and the check agree.
WHITESPACE = "".join(chr(c) for c in range(0x110000) if chr(c).isspace())
NOT_BLANK = "[^" + "".join(f"\\u{ord(c):04x}" for c in WHITESPACE) + "]"
_NOT_BLANK = re.compile(NOT_BLANK)


class PostedMessage(Wire):
    """Body of POST /v1/messages."""

    contact: Contact
    text: str = Field(min_length=1, max_length=MAX_TEXT_CHARS, json_schema_extra={"pattern": NOT_BLANK})
    thread_id: str | None = Field(None, min_length=1, max_length=256)
    skills: list[Skill] = Field(default_factory=list, max_length=MAX_SKILLS)
    priority: Priority = 0
    metadata: Annotated[Metadata, METADATA_SCHEMA] = Field(default_factory=dict)
    # The id of the quick reply the customer chose, when the message is that choice (text: its title).
    action: str | None = Field(None, pattern=QUICK_REPLY_ID)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, text: str) -> str:
        if _NOT_BLANK.search(text) is None:
            raise ValueError("text is blank")
        return text


class Accepted(Wire):
    message_id: str


def normalize(posted: PostedMessage, workspace_id: str, idempotency_key: str | None) -> InboundMessage:
    """The posted message in the one message model; a repeated Idempotency-Key gives the same id."""
    return InboundMessage(
        message_id=message_id_for(workspace_id, CHANNEL, idempotency_key),
        workspace_id=workspace_id,
        channel=CHANNEL,
        channel_message_id=idempotency_key,
        thread_id=posted.thread_id or posted.contact.id,
        contact=posted.contact,
        text=posted.text,
        skills=posted.skills,
        priority=posted.priority,
        metadata=posted.metadata,
        action=posted.action,
    )


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


class CallbackSender:
    """Delivers replies to the workspace's callback URL, signed."""

    channel = CHANNEL

    def __init__(self, session: aiohttp.ClientSession, callbacks: dict[str, CallbackTarget], timeout: float) -> None:
        self.session = session
        self.callbacks = callbacks
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def send(self, message: OutboundMessage) -> Sent:
        target = self.callbacks.get(message.workspace_id)
        if target is None:
            raise SendError(f"no callback URL configured for workspace {message.workspace_id!r}", retry=False)
        # `survey` and `quick_replies` only when there are some (never a survey, today: the api channel
        # carries no CSAT survey), so the callback body external systems verify stays what it was.
        dumped = message.model_dump_json(exclude=unset_extras(message))
        body = b'{"type":"message.outbound",' + dumped.encode()[1:]
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Switchyard-Timestamp": timestamp,
            "X-Switchyard-Signature": sign(target.secret, timestamp, body),
        }
        try:
            async with self.session.post(target.url, data=body, headers=headers, timeout=self.timeout) as response:
                if response.status < 300:
                    return Sent("delivered")
                retry = response.status >= 500 or response.status in (408, 429)
                raise SendError(f"callback answered HTTP {response.status}", retry=retry)
        except (aiohttp.ClientError, TimeoutError) as error:
            raise SendError(f"callback unreachable: {error!r}", retry=True) from None


def unset_extras(message: OutboundMessage) -> set[str]:
    """The fields a callback body leaves out when empty: they came after external systems were built."""
    empty = {"survey": message.survey is None, "quick_replies": not message.quick_replies}
    return {name for name, is_empty in empty.items() if is_empty}


PLUGIN = ChannelPlugin(
    name=CHANNEL,
    sender=lambda intake: CallbackSender(intake.http, intake.settings.callbacks, intake.settings.send_timeout),
)
