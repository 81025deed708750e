"""What every channel module provides, and what intake gives it.

A channel module (one file under `channels/`) exports `PLUGIN = ChannelPlugin(...)` (or several,
when one provider serves two channels, as Twilio does SMS and voice):
- `routes`: its webhooks, mounted under `/v1/webhooks/<channel>/<workspace>/...` (public: each
  webhook verifies the provider's own signature or token instead of an API key);
- `sender`: builds the object that sends agents' replies out (intake consumes the channel's
  outbound queue and hands each reply to it);
- `background`: optional; a long-running part of the channel (the SMTP listener) as an async
  context manager entered when intake starts and left when it stops;
- `config`: the pydantic model of the channel's per-workspace credentials, read from
  `INTAKE_CHANNELS` / `INTAKE_CHANNELS_FILE` and validated at start.

Adding a channel touches only this folder and the list in `channels/__init__.py`.
"""

import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from aiohttp import web
from pydantic import BaseModel

from shared.models import DeliveryState, OutboundMessage

if TYPE_CHECKING:
    from services.intake.context import Intake

# Stable message ids from a channel's own ids: a provider's retry maps to the same message.
MESSAGE_ID_NAMESPACE = uuid.UUID("6f1b8c3e-8f0e-4a55-9a3c-5b2b1c1d7e42")


def message_id_for(workspace_id: str, channel: str, channel_message_id: str | None) -> str:
    if channel_message_id is None:
        return uuid.uuid4().hex
    return uuid.uuid5(MESSAGE_ID_NAMESPACE, f"{workspace_id}\x1f{channel}\x1f{channel_message_id}").hex


class SendError(Exception):
    """A send failed. `retry` says whether trying again could help (a 5xx, a timeout) or not (a 4xx)."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


@dataclass(frozen=True)
class Sent:
    """A send that worked: how far it got, and the provider's id for the message (for receipts)."""

    state: DeliveryState = "sent"
    channel_message_id: str | None = None


class Sender(Protocol):
    channel: str

    async def send(self, message: OutboundMessage) -> Sent:
        """Send one reply, or raise SendError."""
        ...


@dataclass(frozen=True)
class ChannelPlugin:
    name: str
    routes: Sequence[web.RouteDef] = ()
    sender: "Callable[[Intake], Sender] | None" = None
    background: "Callable[[Intake], AbstractAsyncContextManager[None]] | None" = None
    config: type[BaseModel] | None = None


def webhook_path(channel: str, suffix: str = "") -> str:
    """The webhook route of a channel; the provider is given it with the workspace filled in."""
    return f"/v1/webhooks/{channel}/{{workspace}}{suffix}"
