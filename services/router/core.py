"""The routing core: pure code, no I/O. Inputs are messages and events plus the time; outputs
are the deliveries to publish and which conversations and agents changed.

Rules of this slice:
- A conversation is keyed by (workspace, channel, thread) and needs the skills its first
  message names (none: anyone can take it).
- It goes to an online agent who has all those skills and spare capacity: least loaded first,
  ties to the agent idle the longest (earliest last assignment).
- When nobody fits it waits; waiting conversations are served highest priority first, then
  oldest, the moment an agent gains room (comes online, resolves one, gets more capacity or skills).
- Later messages go to the same agent; messages of a waiting conversation are held (the
  backlog) and handed over with the assignment, so the agent sees them in arrival order.
"""

from dataclasses import dataclass, field
from datetime import datetime

from shared.models import (
    AgentSnapshot,
    ConversationAssigned,
    ConversationInfo,
    ConversationMessage,
    ConversationResolved,
    InboundMessage,
    new_id,
)

AgentKey = tuple[str, str]  # (workspace_id, agent_id)
ThreadKey = tuple[str, str, str]  # (workspace_id, channel, thread_id)
Delivery = ConversationAssigned | ConversationMessage


@dataclass
class Agent:
    workspace_id: str
    agent_id: str
    version: int
    skills: dict[str, int]
    max_conversations: int
    status: str
    last_assigned_at: datetime | None = None
    load: int = 0  # derived from the open conversations, never stored

    @property
    def key(self) -> AgentKey:
        return (self.workspace_id, self.agent_id)

    def has_room(self) -> bool:
        return self.status == "online" and self.load < self.max_conversations

    def can_serve(self, conversation: "Conversation") -> bool:
        return all(skill in self.skills for skill in conversation.skills)


@dataclass
class Conversation:
    conversation_id: str
    first: InboundMessage  # the message that opened it: channel, thread, contact, skills, priority
    created_at: datetime
    waiting_since: datetime
    assignee_id: str | None = None
    assigned_at: datetime | None = None
    backlog: list[InboundMessage] = field(default_factory=list)
    # False until the assignment was published; the shell republishes unannounced ones at start.
    announced: bool = False

    @property
    def workspace_id(self) -> str:
        return self.first.workspace_id

    @property
    def thread_key(self) -> ThreadKey:
        return (self.first.workspace_id, self.first.channel, self.first.thread_id)

    @property
    def skills(self) -> list[str]:
        return self.first.skills

    @property
    def priority(self) -> int:
        return self.first.priority

    def waiting_order(self) -> tuple:
        return (-self.priority, self.waiting_since, self.conversation_id)

    def info(self) -> ConversationInfo:
        assert self.assignee_id is not None and self.assigned_at is not None
        return ConversationInfo(
            conversation_id=self.conversation_id,
            workspace_id=self.workspace_id,
            channel=self.first.channel,
            thread_id=self.first.thread_id,
            contact=self.first.contact,
            skills=self.skills,
            priority=self.priority,
            created_at=self.created_at,
            waiting_since=self.waiting_since,
            assignee_id=self.assignee_id,
            assigned_at=self.assigned_at,
        )

    def assignment(self) -> ConversationAssigned:
        return ConversationAssigned(conversation=self.info(), messages=list(self.backlog))


@dataclass
class Outcome:
    """What one input changed: deliveries in publish order, plus what the shell must persist."""

    deliveries: list[tuple[AgentKey, Delivery]] = field(default_factory=list)
    changed_conversations: set[str] = field(default_factory=set)
    closed_conversations: set[str] = field(default_factory=set)
    changed_agents: set[AgentKey] = field(default_factory=set)

    def merge(self, other: "Outcome") -> None:
        self.deliveries.extend(other.deliveries)
        self.changed_conversations |= other.changed_conversations
        self.closed_conversations |= other.closed_conversations
        self.changed_agents |= other.changed_agents


class RoutingCore:
    """All routing state of one partition, and the rules that change it."""

    def __init__(self) -> None:
        self.agents: dict[AgentKey, Agent] = {}
        self.conversations: dict[str, Conversation] = {}
        self.by_thread: dict[ThreadKey, str] = {}
        # Waiting conversation ids per workspace; sorted on demand (small in this slice).
        self.waiting: dict[str, set[str]] = {}

    # -- state loading (the shell rebuilds the core from MongoDB) ---------------------------

    def load_agent(self, agent: Agent) -> None:
        self.agents[agent.key] = agent

    def load_conversation(self, conversation: Conversation) -> None:
        self.conversations[conversation.conversation_id] = conversation
        self.by_thread[conversation.thread_key] = conversation.conversation_id
        if conversation.assignee_id is None:
            self.waiting.setdefault(conversation.workspace_id, set()).add(conversation.conversation_id)
        else:
            agent = self.agents.get((conversation.workspace_id, conversation.assignee_id))
            if agent is not None:
                agent.load += 1

    # -- inputs ----------------------------------------------------------------------------

    def on_message(self, message: InboundMessage, now: datetime) -> Outcome:
        """A customer's message: follow-up to its open conversation, or a new conversation."""
        key = (message.workspace_id, message.channel, message.thread_id)
        conversation_id = self.by_thread.get(key)
        if conversation_id is None:
            return self._open(message, now)
        conversation = self.conversations[conversation_id]
        outcome = Outcome()
        if conversation.assignee_id is None:
            if all(m.message_id != message.message_id for m in conversation.backlog):
                conversation.backlog.append(message)
                outcome.changed_conversations.add(conversation_id)
            return outcome
        delivery = ConversationMessage(
            conversation_id=conversation_id,
            workspace_id=conversation.workspace_id,
            assignee_id=conversation.assignee_id,
            message=message,
        )
        outcome.deliveries.append(((conversation.workspace_id, conversation.assignee_id), delivery))
        return outcome

    def on_agent(self, snapshot: AgentSnapshot, now: datetime) -> Outcome:
        """An agent's profile or presence changed; if they gained room, serve the waiting."""
        key = (snapshot.workspace_id, snapshot.agent_id)
        agent = self.agents.get(key)
        if agent is not None and snapshot.version <= agent.version:
            return Outcome()  # a stale or repeated snapshot
        if agent is None:
            agent = Agent(snapshot.workspace_id, snapshot.agent_id, snapshot.version, {}, 0, "offline")
            self.agents[key] = agent
        agent.version = snapshot.version
        agent.skills = dict(snapshot.skills)
        agent.max_conversations = snapshot.max_conversations
        agent.status = snapshot.status
        outcome = Outcome(changed_agents={key})
        outcome.merge(self._serve_waiting(agent, now))
        return outcome

    def on_resolved(self, event: ConversationResolved, now: datetime) -> Outcome:
        """A conversation closed: forget it (its thread opens a new one) and free its agent."""
        conversation = self.conversations.pop(event.conversation_id, None)
        if conversation is None:
            return Outcome()  # already resolved: a redelivery
        self.by_thread.pop(conversation.thread_key, None)
        self.waiting.get(conversation.workspace_id, set()).discard(conversation.conversation_id)
        outcome = Outcome(closed_conversations={conversation.conversation_id})
        if conversation.assignee_id is not None:
            agent = self.agents.get((conversation.workspace_id, conversation.assignee_id))
            if agent is not None:
                agent.load = max(0, agent.load - 1)
                outcome.merge(self._serve_waiting(agent, now))
        return outcome

    def mark_announced(self, conversation_ids: set[str]) -> None:
        """The shell published these assignments: their backlog has been handed over."""
        for conversation_id in conversation_ids:
            conversation = self.conversations.get(conversation_id)
            if conversation is not None and conversation.assignee_id is not None:
                conversation.announced = True
                conversation.backlog = []

    # -- rules -----------------------------------------------------------------------------

    def _open(self, message: InboundMessage, now: datetime) -> Outcome:
        conversation = Conversation(
            conversation_id=new_id(),
            first=message,
            created_at=message.received_at,
            waiting_since=now,
            backlog=[message],
        )
        self.conversations[conversation.conversation_id] = conversation
        self.by_thread[conversation.thread_key] = conversation.conversation_id
        outcome = Outcome(changed_conversations={conversation.conversation_id})
        agent = self.best_agent_for(conversation)
        if agent is None:
            self.waiting.setdefault(conversation.workspace_id, set()).add(conversation.conversation_id)
        else:
            outcome.merge(self._assign(conversation, agent, now))
        return outcome

    def best_agent_for(self, conversation: Conversation) -> Agent | None:
        """Least loaded online agent with every needed skill and room; ties to the longest idle."""
        candidates = [
            agent
            for agent in self.agents.values()
            if agent.workspace_id == conversation.workspace_id
            and agent.has_room()
            and agent.can_serve(conversation)
        ]
        if not candidates:
            return None
        return min(candidates, key=_idle_order)

    def _serve_waiting(self, agent: Agent, now: datetime) -> Outcome:
        outcome = Outcome()
        waiting_ids = self.waiting.get(agent.workspace_id)
        if not waiting_ids or not agent.has_room():
            return outcome
        queue = sorted((self.conversations[i] for i in waiting_ids), key=Conversation.waiting_order)
        for conversation in queue:
            if not agent.has_room():
                break
            if agent.can_serve(conversation):
                waiting_ids.discard(conversation.conversation_id)
                outcome.merge(self._assign(conversation, agent, now))
        return outcome

    def _assign(self, conversation: Conversation, agent: Agent, now: datetime) -> Outcome:
        conversation.assignee_id = agent.agent_id
        conversation.assigned_at = now
        conversation.announced = False
        agent.load += 1
        agent.last_assigned_at = now
        return Outcome(
            deliveries=[(agent.key, conversation.assignment())],
            changed_conversations={conversation.conversation_id},
            changed_agents={agent.key},
        )


def _idle_order(agent: Agent) -> tuple:
    never = agent.last_assigned_at is None
    return (agent.load, not never, agent.last_assigned_at or datetime.min, agent.agent_id)
