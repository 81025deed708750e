"""The facts the agents service reports on the events exchange, built from what it stored (pure).

Each has an id its fact gives again (a redelivered delivery, a repeated resolve): reporting
stores each once. Agent replies need nothing here: the reply itself travels as
message.outbound.<channel>, which reporting binds too.
"""

from shared import events
from shared.models import (
    ConversationAssigned,
    ConversationEnded,
    ConversationInfo,
    ConversationMessage,
    ConversationResolved,
    InboundMessage,
    RoutingEvent,
)


def message_created(message: InboundMessage, conversation_id: str, queue: str | None) -> RoutingEvent:
    """A customer message stored in its conversation, at the time intake received it."""
    return RoutingEvent(
        event_id=f"{events.MESSAGE_CREATED}:{message.message_id}", type=events.MESSAGE_CREATED,
        workspace_id=message.workspace_id, conversation_id=conversation_id, queue=queue, at=message.received_at,
        details={"channel": message.channel, "direction": "inbound", "message_id": message.message_id},
    )


def messages_created(deliveries: list) -> list[RoutingEvent]:
    """Every customer message these deliveries carry (new or already stored: the ids tell repeats)."""
    created = []
    for delivery in deliveries:
        if isinstance(delivery, ConversationAssigned):
            info = delivery.conversation
            created += [message_created(m, info.conversation_id, info.queue) for m in delivery.messages]
        elif isinstance(delivery, ConversationMessage):
            created.append(message_created(delivery.message, delivery.conversation_id, None))
    return created


def resolution(conversation: dict) -> ConversationResolved:
    """A resolved conversation's document as the resolution: the same id and time however often it is told."""
    return ConversationResolved(
        event_id=f"resolved:{conversation['_id']}", workspace_id=conversation["workspace_id"],
        conversation_id=conversation["_id"], agent_id=conversation.get("assignee_id"),
        resolved_at=conversation["resolved_at"], reason=conversation.get("resolved_reason"),
        surveyed=conversation.get("csat") is not None,  # a survey went out with this resolution
    )


def ending(notice: ConversationEnded) -> ConversationResolved:
    """The channel ended the conversation (a call hung up): resolved then, for that reason."""
    return ConversationResolved(
        event_id=f"resolved:{notice.conversation_id}", workspace_id=notice.workspace_id,
        conversation_id=notice.conversation_id, agent_id=notice.agent_id, resolved_at=notice.ended_at,
        reason=notice.reason,
    )


def reopened(new: ConversationInfo, previous: dict) -> RoutingEvent:
    """The customer wrote again on a thread whose conversation was resolved: that one is reopened, as of
    the new message (the router opens a new conversation for it: `new_conversation_id`)."""
    resolved_at = previous.get("resolved_at")
    return RoutingEvent(
        event_id=f"{events.CONVERSATION_REOPENED}:{new.conversation_id}", type=events.CONVERSATION_REOPENED,
        workspace_id=new.workspace_id, conversation_id=previous["_id"], agent_id=previous.get("assignee_id"),
        queue=previous.get("queue"), at=new.created_at,
        details={"channel": new.channel, "new_conversation_id": new.conversation_id,
                 "resolved_at": resolved_at.isoformat() if resolved_at else None},
    )


def labels_changed(conversation: dict, agent_id: str | None) -> RoutingEvent:
    """The conversation's labels after a change, numbered by the change (a repeated publish has the same id)."""
    return RoutingEvent(
        event_id=f"{events.CONVERSATION_LABELS_CHANGED}:{conversation['_id']}:{conversation['labels_version']}",
        type=events.CONVERSATION_LABELS_CHANGED, workspace_id=conversation["workspace_id"],
        conversation_id=conversation["_id"], agent_id=agent_id, queue=conversation.get("queue"),
        at=conversation["labels_at"], details={"channel": conversation["channel"], "labels": conversation["labels"]},
    )
