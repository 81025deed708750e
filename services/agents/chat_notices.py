"""Lines a web chat customer sees that are nobody's message: "Ann joined", "This conversation was resolved".

Built here (pure) and published by the service to intake's web chat outbound queue, best effort: a
notice lost to a broker hiccup costs a line on the page, never an assignment or a resolve. Their ids
are deterministic (per assignment, per resolve), so a redelivered assignment's repeat is shown once.
Only web chat has them: other channels' customers get no system lines.
"""

from datetime import datetime

from shared.models import SYSTEM_AGENT, ChatNotice, ConversationInfo, OutboundMessage, utcnow

NOTICE_CHANNELS = frozenset({"webchat"})


def display_name(agent: dict | None, agent_id: str) -> str:
    """What a customer calls the agent: the profile's name, else the agent id."""
    return ((agent or {}).get("name") or "").strip() or agent_id


def joined(info: ConversationInfo, agent_name: str) -> OutboundMessage:
    return OutboundMessage(
        message_id=f"joined:{info.conversation_id}:{info.assignment_seq}", workspace_id=info.workspace_id,
        conversation_id=info.conversation_id, channel=info.channel, thread_id=info.thread_id, contact=info.contact,
        agent_id=SYSTEM_AGENT, text="", created_at=info.assigned_at or utcnow(),
        notice=ChatNotice(kind="joined", agent_name=agent_name),
    )


def resolved(conversation: dict) -> OutboundMessage:
    at: datetime = conversation.get("resolved_at") or utcnow()
    return OutboundMessage(
        message_id=f"resolved:{conversation['_id']}:{at.isoformat()}", workspace_id=conversation["workspace_id"],
        conversation_id=conversation["_id"], channel=conversation["channel"], thread_id=conversation["thread_id"],
        contact=conversation["contact"], agent_id=SYSTEM_AGENT, text="", created_at=at,
        notice=ChatNotice(kind="resolved"),
    )
