"""The agents service applies a batch of deliveries in phases: each conversation's order is kept,
different conversations go together, kind by kind (a shift change is a few bulk writes)."""

from datetime import UTC, datetime

from services.agents.store import delivery_phases
from shared.models import (
    Contact,
    ConversationAssigned,
    ConversationInfo,
    ConversationMessage,
    ConversationRevoked,
    InboundMessage,
)

T = datetime(2026, 12, 4, tzinfo=UTC)


def revoked(conversation: str, agent: str = "old") -> ConversationRevoked:
    return ConversationRevoked(workspace_id="default", conversation_id=conversation, agent_id=agent,
                               assignment_seq=2, reason="agent offline")


def assigned(conversation: str, agent: str = "new") -> ConversationAssigned:
    info = ConversationInfo(conversation_id=conversation, workspace_id="default", channel="webchat", thread_id=conversation,
                            contact=Contact(id=conversation), created_at=T, waiting_since=T, assignee_id=agent,
                            assigned_at=T, assignment_seq=3)
    return ConversationAssigned(conversation=info, messages=[])


def message(conversation: str, text: str) -> ConversationMessage:
    inbound = InboundMessage(message_id=f"{conversation}:{text}", channel="webchat", thread_id=conversation,
                             contact=Contact(id=conversation), text=text)
    return ConversationMessage(conversation_id=conversation, workspace_id="default", assignee_id="new", message=inbound)


def names(phase: list) -> list[str]:
    return [f"{type(d).__name__[12:]}:{getattr(d, 'conversation_id', None) or d.conversation.conversation_id}" for d in phase]


def test_a_reroute_of_many_conversations_is_two_phases_revocations_then_assignments():
    batch = [d for c in ("c1", "c2", "c3") for d in (revoked(c), assigned(c))]
    assert [names(p) for p in delivery_phases(batch)] == [
        ["Revoked:c1", "Revoked:c2", "Revoked:c3"], ["Assigned:c1", "Assigned:c2", "Assigned:c3"]]


def test_each_conversation_keeps_its_order_across_phases():
    batch = [assigned("c1"), message("c1", "a"), revoked("c1"), message("c2", "b"), assigned("c1"), revoked("c2")]
    phases = [names(p) for p in delivery_phases(batch)]
    assert phases == [["Assigned:c1", "Message:c1", "Message:c2"], ["Revoked:c1", "Revoked:c2"], ["Assigned:c1"]]
    flattened = [name for phase in phases for name in phase]
    for conversation in ("c1", "c2"):
        assert [n for n in flattened if n.endswith(conversation)] == [n for n in names(batch) if n.endswith(conversation)]


def test_a_batch_of_one_kind_is_one_phase_in_batch_order():
    batch = [message("c1", "a"), message("c2", "b"), message("c1", "c")]
    assert delivery_phases(batch) == [batch]
