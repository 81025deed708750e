"""Every frame the desk's WebSocket sends, as models: the contract between the service and the page.

`GET /v1/desk/frames.schema.json` serves their JSON Schema (a `oneOf` by `type`). The service's
tests read every frame a desk gets through `DESK_FRAME` (tests/service/helpers.py), so a frame
that leaves this contract fails a test instead of reaching a page that does not expect it.
The conversation and message inside a frame are the stored documents as the API shows them
(`ConversationOut`, `MessageOut` in models.py): described here by reference, not repeated.
"""

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

Conversation = Annotated[dict[str, Any], Field(description="A conversation as GET /v1/conversations/{id} shows it "
                                                          "(ConversationOut), without its messages")]
Message = Annotated[dict[str, Any], Field(description="A message as the conversation's `messages` show it "
                                                     "(MessageOut)")]


class Frame(BaseModel):
    model_config = ConfigDict(extra="forbid")


class WithConversation(Frame):
    conversation: Conversation
    messages: list[Message]


class Snapshot(Frame):
    """On connect: the agent's status, its open conversations with their messages, its open offers."""

    type: Literal["snapshot"]
    agent_id: str
    status: Literal["online", "away", "offline"]
    offers: list[dict[str, Any]]  # conversation.offered frames still open
    conversations: list[WithConversation]


class Assigned(WithConversation):
    """A conversation is the agent's now; `history: "fetch"` when it was someone else's before."""

    type: Literal["conversation.assigned"]
    history: Literal["fetch"] | None = None


class Offered(WithConversation):
    """Accept or reject before `expires_at` (POST /v1/conversations/{id}/offer)."""

    type: Literal["conversation.offered"]
    workspace_id: str
    expires_at: str


class TakenAway(Frame):
    """Off the agent's desk: revoked (rerouted, transferred, an offer gone) or ended by the channel."""

    type: Literal["conversation.revoked", "conversation.ended"]
    workspace_id: str
    conversation_id: str
    reason: str


class StateChanged(Frame):
    """The router set the agent's conversation pending or snoozed (its capacity slot freed), or woke it
    (`assigned`: open again, with the reason: the customer wrote, the snooze ended, the agent opened it)."""

    type: Literal["conversation.state"]
    workspace_id: str
    conversation_id: str
    status: Literal["assigned", "pending", "snoozed"]
    snoozed_until: str | None
    reason: str | None


class NewMessage(Frame):
    """A customer's message, the agent's own reply, or a note."""

    type: Literal["message"]
    conversation_id: str
    message: Message


class MessageStatus(Frame):
    """A reply's delivery: queued, sent, delivered, read, or failed with the reason."""

    type: Literal["message.status"]
    conversation_id: str
    message_id: str
    status: Literal["queued", "sent", "delivered", "read", "failed"]
    reason: str | None


class Sla(Frame):
    type: Literal["sla"]
    conversation_id: str
    target: str
    state: Literal["warning", "breached"]


class TransferRejected(Frame):
    type: Literal["transfer.rejected"]
    conversation_id: str
    reason: str


class Typing(Frame):
    """The customer is typing (ephemeral)."""

    type: Literal["typing"]
    conversation_id: str
    who: Literal["contact"]


class Presence(Frame):
    """The agent's presence changed, whoever changed it."""

    type: Literal["presence"]
    status: Literal["online", "away", "offline"]
    reason: Literal["request", "missed_offers", "desk_closed"]
    at: str


class Error(Frame):
    """What the desk sent was not understood; the socket stays open."""

    model_config = ConfigDict(extra="allow")  # the parse error's details (problems, ...)
    type: Literal["error"]
    message: str


DeskFrame = Annotated[Snapshot | Assigned | Offered | TakenAway | StateChanged | NewMessage | MessageStatus | Sla | TransferRejected
                      | Typing | Presence | Error, Field(discriminator="type")]
DESK_FRAME: TypeAdapter[DeskFrame] = TypeAdapter(DeskFrame)


def frames_schema() -> dict[str, Any]:
    """The JSON Schema of every frame, one of them by `type`."""
    return DESK_FRAME.json_schema()
