"""What every channel's outbound side implements."""

import uuid
from typing import Protocol

from shared.models import DeliveryState, OutboundMessage

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


class Sender(Protocol):
    channel: str

    async def send(self, message: OutboundMessage) -> DeliveryState:
        """Send one reply; return "sent" or "delivered", or raise SendError."""
        ...
