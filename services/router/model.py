"""The routing core's state: agents, conversations, and what one input changed (the Outcome)."""

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shared.models import (
    ConversationAssigned,
    ConversationEnded,
    ConversationInfo,
    ConversationMessage,
    ConversationOffered,
    ConversationRevoked,
    InboundMessage,
    RoutingEvent,
)

AgentKey = tuple[str, str]  # (workspace_id, agent_id)
ThreadKey = tuple[str, str, str]  # (workspace_id, channel, thread_id)
Delivery = ConversationAssigned | ConversationMessage | ConversationOffered | ConversationRevoked | ConversationEnded


@dataclass
class Agent:
    workspace_id: str
    agent_id: str
    version: int
    skills: dict[str, int]
    max_conversations: int
    status: str
    channel_capacity: dict[str, int] = field(default_factory=dict)
    last_assigned_at: datetime | None = None
    last_assigned_seq: int = 0  # round robin order
    last_activity_at: datetime | None = None  # longest idle: last assigned, freed or came online
    missed_offers: int = 0
    # Derived, never stored: load per medium (offers reserve a unit), queue memberships.
    load: Counter = field(default_factory=Counter)
    memberships: dict[str, int] = field(default_factory=dict)  # queue -> lowest bullseye level

    @property
    def key(self) -> AgentKey:
        return (self.workspace_id, self.agent_id)

    @property
    def total(self) -> int:
        return sum(self.load.values())

    def has_room(self, media: str, exclusive: frozenset[str]) -> bool:
        """Online, under the total and the medium's limit, and not on an exclusive medium (a call)."""
        if self.status != "online" or self.total >= self.max_conversations:
            return False
        if any(self.load[m] for m in exclusive):
            return False
        default = 0 if media in exclusive else self.max_conversations
        return self.load[media] < self.channel_capacity.get(media, default)

    def qualifies(self, criteria: dict[str, int]) -> bool:
        return all(self.skills.get(skill, 0) >= level for skill, level in criteria.items())


@dataclass
class Offer:
    agent_id: str
    expires_at: datetime
    serial: int


@dataclass
class Conversation:
    conversation_id: str
    first: InboundMessage  # the message that opened it: channel, thread, contact
    created_at: datetime
    waiting_since: datetime
    queue: str
    priority: int
    media: str
    reason: str  # why this queue (classification)
    queued_at: datetime  # entered its current queue: bullseye, max wait and SLA count from here
    queue_gen: int = 0  # grows on every queue entry; timers of an older entry are stale
    step: int = 0  # bullseye level reached
    assignee_id: str | None = None
    assigned_at: datetime | None = None
    assignment_seq: int = 0
    answered: bool = False
    offer: Offer | None = None
    declined: set[str] = field(default_factory=set)  # agents who rejected or missed its offer
    declined_at: datetime | None = None  # the latest decline; declined_retry_seconds after it, all may try again
    pinned_to: str | None = None  # reserved for one agent (last agent, transfer to agent)
    pinned_until: datetime | None = None  # None: until that agent can take it or goes offline
    pin_serial: int = 0
    max_wait_done: bool = False
    left_queue: bool = False  # a call whose max wait sent it to voicemail: never routed again
    # Messages that came while it waited, handed over with the assignment (stored one document each).
    backlog: list[InboundMessage] = field(default_factory=list)
    sla: dict[str, dict[str, Any]] = field(default_factory=dict)  # target -> {due_at, warn_at, state}
    decision: dict[str, Any] | None = None
    transfers: list[dict[str, Any]] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)  # what label rules added (sorted); an agent may remove one
    # Lifecycle (docs/routing.md): "pending" (waiting on the customer) or "snoozed" (until `parked_until`
    # or the customer's next message) keeps the assignee but frees its capacity slot.
    parked: str | None = None
    parked_until: datetime | None = None
    park_serial: int = 0
    last_customer_at: datetime | None = None  # the latest customer message routed (a park asked before it wakes at once)
    # The priority's sources, {"message", "queue", "rule"} (capped at 10 in `priority`); empty before they were kept.
    priority_parts: dict[str, int] = field(default_factory=dict)
    # The pre-routing bot (docs/bot.md): "asked" (waiting for the bot's answer), "answered" (waiting
    # for the customer's reply to it), None (not with the bot). `bot_until`: when the router hands it
    # to human routing unless the bot decided first; `bot_session` names the session's decisions.
    bot: str | None = None
    bot_until: datetime | None = None
    bot_session: int = 0
    incident_id: str | None = None  # the open incident it was linked to (docs/incidents.md)
    # How many events were made about it: the next event's id counts on from here, also after a
    # rebuild, so an input handled again over the same saved state gives the same ids.
    event_seq: int = 0

    @property
    def workspace_id(self) -> str:
        return self.first.workspace_id

    @property
    def thread_key(self) -> ThreadKey:
        return (self.first.workspace_id, self.first.channel, self.first.thread_id)

    @property
    def waiting(self) -> bool:
        return self.assignee_id is None and self.offer is None and not self.left_queue and self.bot is None

    def info(self, agent_id: str, at: datetime) -> ConversationInfo:
        return ConversationInfo(
            conversation_id=self.conversation_id,
            workspace_id=self.workspace_id,
            channel=self.first.channel,
            thread_id=self.first.thread_id,
            contact=self.first.contact,
            skills=self.first.skills,
            priority=self.priority,
            created_at=self.created_at,
            waiting_since=self.waiting_since,
            assignee_id=agent_id,
            assigned_at=at,
            queue=self.queue,
            assignment_seq=self.assignment_seq,
            routing=self.decision,
            sla={k: {**v, "due_at": v["due_at"].isoformat(), "warn_at": v["warn_at"].isoformat()} for k, v in self.sla.items()},
            transfers=self.transfers,
            labels=self.labels,
        )

    def handover(self) -> list[Delivery]:
        """The assignment with as much of the backlog as fits in one delivery, then the rest as messages, in order."""
        assert self.assignee_id is not None and self.assigned_at is not None
        head, rest = split_by_size(self.backlog, ASSIGNMENT_MESSAGES_BYTES)
        assigned = ConversationAssigned(conversation=self.info(self.assignee_id, self.assigned_at), messages=head)
        return [assigned, *(ConversationMessage(conversation_id=self.conversation_id, workspace_id=self.workspace_id,
                                                assignee_id=self.assignee_id, message=m) for m in rest)]

    def offer_preview(self) -> list[InboundMessage]:
        """What an offer shows of the backlog: the first messages, up to a size a desk frame and a stored offer take."""
        return split_by_size(self.backlog, OFFER_PREVIEW_BYTES)[0]


# A waiting conversation may hold many messages of up to 100,000 characters each; one delivery (an
# AMQP message, a stored offer: MongoDB documents hold 16 MiB) carries only the first ones.
ASSIGNMENT_MESSAGES_BYTES = 1024 * 1024
OFFER_PREVIEW_BYTES = 256 * 1024


def split_by_size(messages: list[InboundMessage], budget: int) -> tuple[list[InboundMessage], list[InboundMessage]]:
    """The longest prefix whose JSON fits in `budget` bytes (the first message always), and the rest."""
    if len(messages) < 2:
        return list(messages), []  # the usual handover, a conversation assigned as it opens: nothing to weigh
    size = 0
    for n, message in enumerate(messages):
        size += len(message.model_dump_json().encode())
        if size > budget and n > 0:
            return messages[:n], messages[n:]
    return list(messages), []


@dataclass
class Outcome:
    """What one input changed: deliveries in publish order, events, and what the shell persists."""

    deliveries: list[tuple[AgentKey, Delivery]] = field(default_factory=list)
    events: list[RoutingEvent] = field(default_factory=list)
    changed_conversations: set[str] = field(default_factory=set)
    closed_conversations: set[str] = field(default_factory=set)
    changed_agents: set[AgentKey] = field(default_factory=set)
    changed_threads: set[ThreadKey] = field(default_factory=set)  # last-agent memory
    # What happened to backlogs, in order: ("add", conversation_id, position, message) for a message
    # a waiting conversation holds, ("clear", conversation_id) when it was handed over or closed.
    backlog_changes: list[tuple] = field(default_factory=list)

    def merge(self, other: "Outcome") -> None:
        self.deliveries.extend(other.deliveries)
        self.events.extend(other.events)
        self.changed_conversations |= other.changed_conversations
        self.closed_conversations |= other.closed_conversations
        self.changed_agents |= other.changed_agents
        self.changed_threads |= other.changed_threads
        self.backlog_changes.extend(other.backlog_changes)
