"""The routing core: pure code, no I/O. Inputs are messages and events plus the time; outputs
are the deliveries and events to publish and what changed (see docs/routing.md for the rules).

- A new conversation is classified into a queue (config.classify), then goes to its last agent
  (reopened within the window), or to the best agent with room by the queue's strategy among
  those meeting its skill criteria, else it waits. Later messages follow their conversation.
- Waiting conversations are ordered by aged priority; an agent who gains room takes the head
  of the lists it qualifies for. Bullseye steps widen the criteria as a conversation waits.
- Offer queues offer instead of assigning; rejects and timeouts offer to the next agent.
- Timers (offers, bullseye, max wait, SLA, last-agent reservations, snoozes) fire from `tick(now)`.
- An assignee may set its conversation pending or snoozed: it keeps the conversation but not the
  capacity slot; a customer message, the snooze's end or the agent wakes it (on_state_request).
- Where the configuration's `bot` takes a new conversation, the bot answers it first (docs/bot.md):
  it waits for no agent until the bot hands it over, or is late, or the customer stays silent; then
  it is routed as if it had waited in its queue from the start.
"""

import heapq
import itertools
import math
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from services.router.config import (
    SKILLS_QUEUE_PREFIX,
    BotSettings,
    QueueConfig,
    RoutingConfig,
    choose_queue,
    priority_of,
    priority_parts,
    rule_labels,
)
from services.router.indexes import STRATEGY_KEYS, AgentIndex, AgentIndexKey, QueueLevels, WaitingIndex
from services.router.model import Agent, AgentKey, Conversation, Offer, Outcome, ThreadKey
from services.router.positions import QueuePosition, QueuePositions
from shared import events
from shared.models import (
    AgentSnapshot,
    BotDecision,
    ConversationAnswered,
    ConversationEnded,
    ConversationMessage,
    ConversationOffered,
    ConversationParked,
    ConversationResolved,
    ConversationRevoked,
    ConversationWoken,
    InboundMessage,
    IncidentClosing,
    IncidentLinked,
    NotAnswered,
    OfferAnswer,
    RoutingEvent,
    StateRequest,
    ThreadClosed,
    ThreadLeft,
    TransferRequest,
    new_id,
)

SLA_TARGETS = ("first_response", "resolution")
# Conversations of agents gone offline rerouted per step; new traffic is routed between steps.
REROUTE_SLICE = 10


class RoutingCore:
    """All routing state of one partition, and the rules that change it."""

    def __init__(self, config: RoutingConfig | None = None) -> None:
        self.config = config or RoutingConfig()
        self.agents: dict[AgentKey, Agent] = {}
        self.conversations: dict[str, Conversation] = {}
        self.by_thread: dict[ThreadKey, str] = {}
        self.last_agents: dict[ThreadKey, tuple[str, datetime]] = {}
        self.held: dict[AgentKey, set[str]] = {}  # assigned to or offered to each agent
        self.pinned: dict[AgentKey, set[str]] = {}  # waiting, reserved for one agent
        # Conversations of agents gone offline, routed again a slice at a time (reroute_pending).
        self.to_reroute: deque[str] = deque()
        self.skill_queues: dict[str, set[str]] = {}  # per workspace, queues named by message skills
        self.with_skill: dict[tuple[str, str], set[AgentKey]] = {}  # (workspace, skill) -> agents
        self.agent_index = AgentIndex()
        self.waiting = WaitingIndex()
        self.wait_average: dict[tuple[str, str], float] = {}  # (workspace, queue) -> seconds
        self.positions = QueuePositions()  # what waiting web chat customers were told of their place
        self._timers: list[tuple] = []
        self._last_opened = datetime.min.replace(tzinfo=UTC)  # the latest new conversation's waiting_since
        self._serials = itertools.count(1)
        self._assignments = itertools.count(1)
        self._apply_config(self.config)

    def _apply_config(self, config: RoutingConfig) -> None:
        self.config = config
        self.queue_levels = QueueLevels(config.queues)
        self.exclusive = frozenset(config.exclusive_media)
        self.media = frozenset({"chat", *config.channel_media.values()})

    # -- state loading (the shell rebuilds the core from MongoDB) ---------------------------

    @classmethod
    def rebuilt(cls, config: RoutingConfig, agents: list[Agent], conversations: list[Conversation],
                last_agents: dict[ThreadKey, tuple[str, datetime]]) -> "RoutingCore":
        """A core holding this saved state (a standby taking over, a core dropped after an error)."""
        core = cls(config)
        core.load_state(agents, conversations, last_agents)
        return core

    def load_state(self, agents: list[Agent], conversations: list[Conversation],
                   last_agents: dict[ThreadKey, tuple[str, datetime]]) -> None:
        """Agents, open conversations and last-agent memory into a new core; loads and indexes are recomputed.

        Built in bulk, as a standby must do it fast: each index is sorted once when everything is
        in, memberships are worked out once per agent (skill queues named by the conversations
        included), and nothing is routed here (the shell calls route_waiting next)."""
        for agent in agents:
            self.agents[agent.key] = agent
            self.media |= set(agent.channel_capacity)
            self._index_skills(agent, {})
        seq = max((a.last_assigned_seq for a in agents), default=0)
        self._assignments = itertools.count(seq + 1)
        # Offer and pin serials are stored: new ones must not repeat them, or a stale timer matches.
        serial = max((max(c.offer.serial if c.offer else 0, c.pin_serial or 0, c.park_serial, c.bot_session)
                      for c in conversations), default=0)
        self._serials = itertools.count(serial + 1)
        waiting: list[tuple[Conversation, float]] = []
        for conversation in conversations:
            self._register(conversation)
            if conversation.queue.startswith(SKILLS_QUEUE_PREFIX):
                self.skill_queues.setdefault(conversation.workspace_id, set()).add(conversation.queue)
            holder = conversation.assignee_id or (conversation.offer and conversation.offer.agent_id)
            agent = self.agents.get((conversation.workspace_id, holder)) if holder else None
            if agent is not None and conversation.parked is None:
                agent.load[conversation.media] += 1
                self.held.setdefault(agent.key, set()).add(conversation.conversation_id)
            elif agent is None and conversation.waiting:
                if conversation.pinned_to is None:
                    waiting.append((conversation, self._score(conversation)))
                else:
                    self._enqueue(conversation)  # reserved for one agent
            self._schedule_conversation_timers(conversation)
        self.waiting.fill(waiting)
        self.last_agents.update(last_agents)
        for agent in self.agents.values():
            agent.memberships = self._memberships(agent)
        self.agent_index.fill({key: self._index_entries(agent) for key, agent in self.agents.items()})
        for agent in self.agents.values():
            if agent.status == "offline":
                self._reroute_later(agent)  # a reroute the previous replica had not finished

    def set_config(self, config: RoutingConfig, now: datetime) -> Outcome:
        """Replace the configuration live: memberships and indexes follow, waiting ones are served."""
        self._apply_config(config)
        self.agent_index = AgentIndex()
        outcome = Outcome()
        for conversation in self.conversations.values():
            # A removed queue's conversations move to the default queue; fewer bullseye steps cap the step.
            queue = self.config.queue(conversation.queue)
            moved = queue.name != conversation.queue
            conversation.queue = queue.name
            conversation.step = min(conversation.step, len(queue.expand))
            if conversation.conversation_id in self.waiting:
                self._enqueue(conversation)
            if moved and conversation.waiting:  # its wait goes on in another queue
                outcome.events.append(self._queued(conversation, now, "rerouted"))
                outcome.changed_conversations.add(conversation.conversation_id)
        for agent in self.agents.values():
            agent.memberships = self._memberships(agent)
            self._reindex(agent)
        outcome.merge(self.route_waiting(now))
        return outcome

    def route_waiting(self, now: datetime) -> Outcome:
        """Give every agent with room what waits for it (after a rebuild or a config change).

        Only agents something waits for are tried: a reservation, or a queue of theirs with a
        conversation in it (a floor of 10,000 agents with one busy queue tries its few hundred)."""
        outcome = Outcome()
        queues = self.waiting.queues()
        for agent in list(self.agents.values()):
            if self.pinned.get(agent.key) or any((agent.workspace_id, q) in queues for q in agent.memberships):
                outcome.merge(self._serve(agent, now))
        return outcome

    # -- inputs ----------------------------------------------------------------------------

    def on_message(self, message: InboundMessage, now: datetime) -> Outcome:
        """A customer's message: follow-up to its open conversation, or a new conversation."""
        conversation_id = self.by_thread.get((message.workspace_id, message.channel, message.thread_id))
        if conversation_id is None:
            outcome = self._open(message, now)
            conversation = self._of_thread(message.workspace_id, message.channel, message.thread_id)
        else:
            conversation = self.conversations[conversation_id]
            outcome = self._follow_up(conversation, message, now)
        if self.config.incidents is not None and conversation is not None:  # off: not even a call
            outcome.merge(self._to_surges(conversation, message, now))
        return outcome

    def _follow_up(self, conversation: Conversation, message: InboundMessage, now: datetime) -> Outcome:
        """A later message of an open conversation: to its assignee, or kept until it has one."""
        conversation_id = conversation.conversation_id
        conversation.last_customer_at = now
        outcome, added = self._label(conversation, message, now)
        if conversation.parked is not None:
            outcome.merge(self._wake(conversation, now, "the customer wrote", self.config.wake_reserve_seconds))
        if conversation.bot is not None:  # the bot decides what the reply means; a human sees it in the backlog
            first = conversation.first
            outcome.events.append(self._event(
                events.BOT_MESSAGE, conversation, now, session=conversation.bot_session, message_id=message.message_id,
                text=message.text, action=message.action, contact=first.contact.model_dump(mode="json"),
                language=first.metadata.get("language"), first_text=first.text[:1000]))
        if conversation.assignee_id is None:  # waiting or offered: held until assigned, in order
            if all(m.message_id != message.message_id for m in conversation.backlog):
                conversation.backlog.append(message)
                outcome.backlog_changes.append(("add", conversation_id, len(conversation.backlog) - 1, message))
            return outcome
        delivery = ConversationMessage(
            conversation_id=conversation_id, workspace_id=conversation.workspace_id,
            assignee_id=conversation.assignee_id, message=message, labels=added,
        )
        outcome.deliveries.append(((conversation.workspace_id, conversation.assignee_id), delivery))
        return outcome

    def _label(self, conversation: Conversation, message: InboundMessage, now: datetime) -> tuple[Outcome, list[str]]:
        """Labels the label rules add for this message (each once per conversation), and their event."""
        if not self.config.label_rules:
            return Outcome(), []
        added = sorted(rule_labels(self.config, message) - set(conversation.labels))
        if not added:
            return Outcome(), []
        conversation.labels = sorted({*conversation.labels, *added})
        event = self._event(events.CONVERSATION_LABELED, conversation, now, labels=added)
        return Outcome(events=[event], changed_conversations={conversation.conversation_id}), added

    def on_agent(self, snapshot: AgentSnapshot, now: datetime) -> Outcome:
        """An agent's profile or presence changed: reroute what presence demands, serve the waiting."""
        key = (snapshot.workspace_id, snapshot.agent_id)
        agent = self.agents.get(key)
        if agent is not None and snapshot.version <= agent.version:
            return Outcome()  # a stale or repeated snapshot
        if agent is None:
            agent = Agent(snapshot.workspace_id, snapshot.agent_id, snapshot.version, {}, 0, "offline")
            self.agents[key] = agent
        came_online = snapshot.status == "online" and agent.status != "online"
        agent.version = snapshot.version
        self._index_skills(agent, agent.skills, snapshot.skills)
        agent.skills = dict(snapshot.skills)
        agent.max_conversations = snapshot.max_conversations
        agent.channel_capacity = dict(snapshot.channel_capacity)
        agent.status = snapshot.status
        self.media |= set(agent.channel_capacity)
        if came_online:
            agent.last_activity_at = now
            agent.missed_offers = 0
        agent.memberships = self._memberships(agent)
        outcome = Outcome(changed_agents={key})
        if agent.status != "online":
            outcome.merge(self._withdraw_offers(agent, now))
        if agent.status == "offline":
            outcome.merge(self._release_on_offline(agent, now))
        self._reindex(agent)
        outcome.merge(self._serve(agent, now))
        return outcome

    def on_resolved(self, event: ConversationResolved, now: datetime) -> Outcome:
        """A conversation closed: forget it (its thread opens a new one) and free its agent."""
        conversation = self.conversations.get(event.conversation_id)
        if conversation is None:
            return Outcome()  # already resolved: a redelivery
        outcome = _closing(conversation)
        agent = self._holder(conversation)
        if agent is not None and conversation.offer is not None:  # the offer card must leave the desk
            outcome.deliveries.append(_revoked(agent, conversation, "offer withdrawn: conversation resolved"))
        self._forget(conversation)
        if conversation.assignee_id is not None:
            self.last_agents[conversation.thread_key] = (conversation.assignee_id, now)
            outcome.changed_threads.add(conversation.thread_key)
        if agent is not None:
            agent.last_activity_at = now
            outcome.changed_agents.add(agent.key)
            self._reindex(agent)
            outcome.merge(self._serve(agent, now))
        return outcome

    def on_not_answered(self, missed: NotAnswered, now: datetime) -> Outcome:
        """The assignee never picked up (a call rang out): routed to the next agent, counted as a missed offer."""
        conversation = self._of_thread(missed.workspace_id, missed.channel, missed.thread_id)
        if conversation is None or conversation.assignee_id is None or conversation.answered:
            return Outcome()
        if missed.agent_id is not None and missed.agent_id != conversation.assignee_id:
            return Outcome()  # a late report about an earlier assignment
        outcome = Outcome(changed_conversations={conversation.conversation_id})
        agent = self._unassign(conversation, now, f"not answered: {missed.reason}", outcome)
        if agent is None:
            return outcome
        self._decline(conversation, agent, now)
        self._count_miss(agent, conversation, events.CONVERSATION_NOT_ANSWERED, now, outcome)
        outcome.merge(self._requeue(conversation, now, "requeued"))
        outcome.merge(self._serve(agent, now))
        return outcome

    def on_thread_closed(self, closed: ThreadClosed, now: datetime) -> Outcome:
        """The channel ended the thread (a call hung up): the agent is freed, or the wait abandoned."""
        conversation = self._of_thread(closed.workspace_id, closed.channel, closed.thread_id)
        if conversation is None:
            return Outcome()
        if conversation.assignee_id is None:  # still waiting (or offered): the customer abandoned
            return self._abandon(conversation, now, closed.reason)
        return self._end(conversation, closed.reason, now, ended_at=closed.at)

    def _end(self, conversation: Conversation, reason: str, now: datetime, *, ended_at: datetime | None = None) -> Outcome:
        """End an assigned conversation for its agent (who is told, and whose slot is free again)."""
        assert conversation.assignee_id is not None
        outcome = _closing(conversation)
        agent = self.agents[(conversation.workspace_id, conversation.assignee_id)]
        self._forget(conversation)
        outcome.deliveries.append((agent.key, ConversationEnded(
            workspace_id=agent.workspace_id, conversation_id=conversation.conversation_id, agent_id=agent.agent_id,
            reason=reason, ended_at=ended_at or now,
        )))
        self.last_agents[conversation.thread_key] = (agent.agent_id, now)
        agent.last_activity_at = now
        agent.missed_offers = 0  # it was theirs to the end: misses before it were not in a row
        outcome.changed_threads.add(conversation.thread_key)
        outcome.changed_agents.add(agent.key)
        self._reindex(agent)
        outcome.merge(self._serve(agent, now))
        return outcome

    def on_thread_left(self, left: ThreadLeft, now: datetime) -> Outcome:
        """The customer left (a web chat closed, not back in time): a wait still on is abandoned as of
        when they left; a conversation an agent holds stays theirs (the customer reads replies on return)."""
        conversation = self._of_thread(left.workspace_id, left.channel, left.thread_id)
        if conversation is None or conversation.assignee_id is not None:
            return Outcome()
        return self._abandon(conversation, now, left.reason, left_at=max(left.at, conversation.queued_at))

    def _abandon(self, conversation: Conversation, now: datetime, reason: str, *,
                 left_at: datetime | None = None) -> Outcome:
        """The customer left while it waited (or was offered): forgotten, reported abandoned at `left_at` (else now)."""
        left_at = left_at or now
        waited = (left_at - conversation.waiting_since).total_seconds()
        return self._close_unheld(conversation, now, "withdrawn: customer left", lambda: self._event(
            events.CONVERSATION_ABANDONED, conversation, left_at, reason=reason, waited_seconds=round(waited, 1)))

    def _close_unheld(self, conversation: Conversation, now: datetime, withdrawn: str,
                      event: Callable[[], RoutingEvent]) -> Outcome:
        """Close one nobody holds (waiting, offered, with the bot): an offer out is withdrawn (`withdrawn` says
        why to the agent, who may then take other work), it is forgotten, and `event()` says what ended it."""
        outcome = _closing(conversation)
        offered_to = self._holder(conversation)
        if offered_to is not None:
            outcome.merge(self._take_back_offer(conversation, offered_to, now, withdrawn))
        self._forget(conversation)
        outcome.events.append(event())
        if offered_to is not None:
            outcome.merge(self._serve(offered_to, now))
        return outcome

    def on_answered(self, event: ConversationAnswered, now: datetime) -> Outcome:
        """The assignee replied for the first time: first response met, not rerouted if offline."""
        conversation = self.conversations.get(event.conversation_id)
        if conversation is None or conversation.assignee_id != event.agent_id or conversation.answered:
            return Outcome()
        conversation.answered = True
        self.agents[(conversation.workspace_id, event.agent_id)].missed_offers = 0  # the misses were not in a row
        target = conversation.sla.get("first_response")
        if target is not None and target["state"] in ("ok", "warning"):
            target["state"] = "met"
        return Outcome(changed_conversations={conversation.conversation_id})

    def on_offer_answer(self, answer: OfferAnswer, now: datetime) -> Outcome:
        """Accepted: it is the agent's. Rejected: offered to the next agent."""
        conversation = self.conversations.get(answer.conversation_id)
        if conversation is None or conversation.offer is None or conversation.offer.agent_id != answer.agent_id:
            return Outcome()  # a late answer to an offer that expired or moved on
        agent = self.agents[(conversation.workspace_id, answer.agent_id)]
        if answer.accepted:
            conversation.offer = None
            agent.missed_offers = 0
            decision = {**(conversation.decision or {}), "rule": "offer accepted"}
            return self._assign(conversation, agent, now, decision, reserved=True)
        outcome = self._take_back_offer(conversation, agent, now, "rejected")
        outcome.merge(self._requeue(conversation, now, "requeued"))
        outcome.merge(self._serve(agent, now))
        return outcome

    def on_transfer(self, request: TransferRequest, now: datetime) -> Outcome:
        """Move a conversation to an agent or a queue, keeping its history and the note."""
        conversation = self.conversations.get(request.conversation_id)
        if conversation is None:
            return Outcome()
        problem = self._transfer_problem(conversation, request)
        if problem is not None:
            return Outcome(events=[self._event(events.CONVERSATION_TRANSFERRED, conversation, now,
                                               agent_id=request.by_agent, rejected=problem)],
                           changed_conversations={conversation.conversation_id})  # its event count
        record = {"at": now.isoformat(), "from_agent": conversation.assignee_id, "from_queue": conversation.queue,
                  "by": request.by_agent, "to_agent": request.to_agent, "to_queue": request.to_queue,
                  "note": request.note, "escalation": request.escalation}
        conversation.transfers.append(record)
        outcome = Outcome(changed_conversations={conversation.conversation_id})
        offered_to = self._holder(conversation) if conversation.offer is not None else None
        if offered_to is not None:  # a supervisor moves an offered one: the offer goes first
            outcome.merge(self._take_back_offer(conversation, offered_to, now, "withdrawn: transferred"))
        previous = self._unassign(conversation, now, "transferred", outcome)
        conversation.answered = False  # the next agent's first reply is the first response again
        if request.to_queue is not None:
            self._enter_queue(conversation, request.to_queue, now, "transfer")
        # Made before the routing that follows, so that its id sorts before the next assignment's.
        outcome.events.append(self._event(events.CONVERSATION_TRANSFERRED, conversation, now, **record))
        if request.to_queue is not None:
            outcome.merge(self._requeue(conversation, now, "transferred"))
        else:
            outcome.events.append(self._queued(conversation, now, "transferred"))
            outcome.merge(self._pin(conversation, request.to_agent, None, now, "transfer to agent"))
        if previous is not None:
            outcome.merge(self._serve(previous, now))
        return outcome

    def on_state_request(self, request: StateRequest, now: datetime) -> Outcome:
        """The assignee sets its conversation pending or snoozed (its capacity slot is freed) or open
        again (it counts again, at once if the agent has room, else as soon as it has)."""
        conversation = self.conversations.get(request.conversation_id)
        if (conversation is None or conversation.assignee_id != request.agent_id
                or conversation.assignment_seq != request.assignment_seq):
            return Outcome()  # resolved, moved on or reassigned since: the request is stale
        if request.state == "open":
            if conversation.parked is None:
                return Outcome()
            return self._wake(conversation, now, "opened by the agent", None)
        if conversation.last_customer_at is not None and conversation.last_customer_at > request.at:
            # The customer wrote after the agent asked: parking it now would hide a new message.
            return Outcome() if conversation.parked is None else self._wake(conversation, now, "the customer wrote", None)
        return self._park(conversation, request.state, request.until if request.state == "snoozed" else None, now)

    def tick(self, now: datetime) -> Outcome:
        """Fire every timer that is due: offers, bullseye steps, max waits, SLA, reservations."""
        outcome = Outcome()
        while self._timers and self._timers[0][0] <= now:
            _, _, kind, conversation_id, generation, extra = heapq.heappop(self._timers)
            conversation = self.conversations.get(conversation_id)
            if conversation is not None:
                outcome.merge(TIMER_HANDLERS[kind](self, conversation, generation, extra, now))
        return outcome

    def next_timer(self) -> datetime | None:
        return self._timers[0][0] if self._timers else None

    def queue_positions(self) -> list[QueuePosition]:
        """Waiting web chat customers whose place changed since the last call (services/router/positions.py)."""
        return self.positions.sweep(self.waiting, self.conversations)

    def waiting_in_order(self, workspace_id: str) -> list[Conversation]:
        """The workspace's waiting conversations, best first (reserved ones included)."""
        queued = [self.conversations[cid] for _, cid in self.waiting.in_order(workspace_id)]
        reserved = [self.conversations[cid] for key, ids in self.pinned.items() if key[0] == workspace_id for cid in ids]
        return queued + sorted(reserved, key=self._score)

    # -- opening and routing ---------------------------------------------------------------

    def _open(self, message: InboundMessage, now: datetime) -> Outcome:
        queue, reason, boost = choose_queue(self.config, message, now)
        parts = priority_parts(self.config, message, queue, boost)
        priority = priority_of(parts)
        # The shell hands a whole batch the same `now`: each new conversation waits from a distinct,
        # later instant, so those opened together keep their arrival order (ties would otherwise fall
        # to the random conversation id).
        waiting_since = self._last_opened = max(now, self._last_opened + timedelta(microseconds=1))
        conversation = Conversation(
            conversation_id=new_id(), first=message, created_at=message.received_at, waiting_since=waiting_since,
            queue=queue, priority=priority, priority_parts=parts, media=self.config.media_of(message.channel),
            reason=reason, queued_at=now, backlog=[message],
        )
        self._register(conversation)
        self._note_queue(conversation)
        self._start_queue_timers(conversation, now)
        # Opened when the customer wrote (intake's time); waiting in its queue from now.
        opened = self._event(events.CONVERSATION_OPENED, conversation, conversation.created_at,
                             priority=priority, skills=list(message.skills))
        last = self._last_agent(conversation, now)
        bot = self.config.bot if last is None else None  # a customer back soon after goes to their agent
        to_bot = bot is not None and bot.takes(queue, message.channel)
        if to_bot:
            opened.details["bot"] = True  # reporting counts what the bot was given (docs/bot.md)
        first_events = [opened] if to_bot else [opened, self._queued(conversation, now, "opened")]
        outcome = Outcome(events=first_events, changed_conversations={conversation.conversation_id},
                          backlog_changes=[("add", conversation.conversation_id, 0, message)])
        outcome.merge(self._label(conversation, message, now)[0])
        if to_bot:
            outcome.merge(self._to_bot(conversation, bot, now))
        elif last is not None:
            wait = timedelta(seconds=self.config.last_agent_wait_seconds)
            outcome.merge(self._pin(conversation, last.agent_id, now + wait, now, "last agent"))
        else:
            outcome.merge(self._route(conversation, now))
        return outcome

    # -- surges and incidents (docs/incidents.md) ---------------------------------------------

    def _to_surges(self, conversation: Conversation, message: InboundMessage, now: datetime) -> Outcome:
        """Hand the message to surge detection, where the configuration turns it on (else nothing)."""
        settings = self.config.incidents
        if settings is None or not settings.enabled or message.action is not None or not message.text.strip():
            return Outcome()  # off, a button pressed (an answer, not a report), or nothing to read
        event = self._event(events.SURGE_MESSAGE, conversation, now, message_id=message.message_id,
                            text=message.text[:1000], received_at=message.received_at.isoformat())
        return Outcome(events=[event], changed_conversations={conversation.conversation_id})

    def on_incident_linked(self, linked: IncidentLinked, now: datetime) -> Outcome:
        """A conversation belongs to an open incident: its status reply once, and its queue if it still waits."""
        conversation = self.conversations.get(linked.conversation_id)
        settings = self.config.incidents
        if conversation is None or settings is None or conversation.incident_id is not None:
            return Outcome()  # closed meanwhile, detection turned off, or linked before (a repeat)
        conversation.incident_id = linked.incident_id
        outcome = Outcome(changed_conversations={conversation.conversation_id})
        if settings.status_reply:
            outcome.events.append(self._auto_reply(conversation, now, settings.status_reply,
                                                   incident_id=linked.incident_id))
        # Only one that waits for anyone: one reserved for its last agent stays theirs.
        if settings.queue and conversation.waiting and conversation.pinned_to is None and conversation.queue != settings.queue:
            self._enter_queue(conversation, settings.queue, now, "incident")
            # Its priority takes the incident queue's (a team for the problem may be served first).
            conversation.priority_parts = {**conversation.priority_parts, "queue": self.config.queue(settings.queue).priority}
            conversation.priority = priority_of(conversation.priority_parts)
            outcome.merge(self._requeue(conversation, now, "incident"))
        return outcome

    def on_incident_closing(self, closing: IncidentClosing, now: datetime) -> Outcome:
        """A resolved incident's one reply to each of its conversations still open here; when asked, those
        an agent holds are ended for them (the agents service resolves them) and the others closed."""
        outcome = Outcome()
        present = [self.conversations[cid] for cid in dict.fromkeys(closing.conversation_ids)
                   if cid in self.conversations and self.conversations[cid].workspace_id == closing.workspace_id]
        # Those agents hold now: ending one frees a slot that a waiting linked one may take, and that
        # one, given to an agent just now, stays theirs.
        held = {c.conversation_id for c in present if c.assignee_id is not None}
        for conversation in present:
            conversation_id = conversation.conversation_id
            if closing.reply:
                outcome.events.append(self._auto_reply(conversation, now, closing.reply, incident_id=closing.incident_id))
                outcome.changed_conversations.add(conversation_id)
            if not closing.resolve:
                continue
            if conversation_id in held:
                outcome.merge(self._end(conversation, "the incident was resolved", now))
            elif conversation.assignee_id is None:  # not one given to an agent meanwhile
                closed = partial(self._event, events.CONVERSATION_CLOSED, conversation, now,
                                 reason="the incident was resolved", incident_id=closing.incident_id)
                outcome.merge(self._close_unheld(conversation, now, "withdrawn: conversation closed", closed))
        return outcome

    # -- the pre-routing bot (docs/bot.md) ----------------------------------------------------

    def on_bot_decision(self, decision: BotDecision, now: datetime) -> Outcome:
        """What the bot did: answered (now wait for the customer), resolved, or hand over to a human."""
        conversation = self.conversations.get(decision.conversation_id)
        if conversation is None or conversation.bot is None or conversation.bot_session != decision.session:
            return Outcome()  # a repeat, or about a session the router already ended
        if decision.decision == "answered":
            if conversation.bot != "asked":
                return Outcome()
            # A configuration that dropped the bot meanwhile: to a human at the next tick.
            reply_seconds = self.config.bot.reply_seconds if self.config.bot else 0
            return self._bot_waits(conversation, "answered", reply_seconds, now)
        if decision.decision == "resolved":
            return self._bot_resolved(conversation, now)
        return self._hand_over(conversation, now, decision.reason or "the bot handed it over",
                               decision.code or "other_question")

    def _to_bot(self, conversation: Conversation, bot: BotSettings, now: datetime) -> Outcome:
        """The bot answers it first: nobody is offered it until the bot decides or its time is up."""
        conversation.bot_session = next(self._serials)
        outcome = self._bot_waits(conversation, "asked", bot.answer_seconds, now)
        first = conversation.first
        assert conversation.bot_until is not None
        outcome.events.append(self._event(
            events.BOT_REQUESTED, conversation, now, session=conversation.bot_session, message_id=first.message_id,
            text=first.text, contact=first.contact.model_dump(mode="json"), language=first.metadata.get("language"),
            min_score=bot.min_score, answer_by=conversation.bot_until.isoformat()))
        return outcome

    def _bot_waits(self, conversation: Conversation, state: str, seconds: float, now: datetime) -> Outcome:
        conversation.bot = state
        conversation.bot_until = now + timedelta(seconds=seconds)
        self._schedule(conversation.bot_until, "bot", conversation, conversation.bot_session, state)
        return Outcome(changed_conversations={conversation.conversation_id})

    def _on_bot_late(self, conversation: Conversation, session: int, state: str, now: datetime) -> Outcome:
        if conversation.bot != state or conversation.bot_session != session:
            return Outcome()  # stale: the bot decided in time
        if state == "asked":
            return self._hand_over(conversation, now, "the bot did not answer in time", "bot_late")
        return self._hand_over(conversation, now, "the customer did not reply to the bot", "no_reply")

    def _hand_over(self, conversation: Conversation, now: datetime, reason: str, code: str) -> Outcome:
        """To human routing at once, as if it had waited in its queue from the start (its bullseye
        steps, max wait and SLA count from when it opened)."""
        conversation.bot = conversation.bot_until = None
        outcome = Outcome(events=[self._event(events.BOT_HANDED_OVER, conversation, now, reason=reason, code=code),
                                  self._queued(conversation, now, "handed over by the bot")],
                          changed_conversations={conversation.conversation_id})
        self._schedule_wait_timers(conversation)  # steps that fell due meanwhile are due now
        outcome.merge(self._route(conversation, now))
        return outcome

    def _bot_resolved(self, conversation: Conversation, now: datetime) -> Outcome:
        """The customer said the bot's answer solved it: closed, no human ever needed."""
        outcome = _closing(conversation)
        self._forget(conversation)
        waited = (now - conversation.waiting_since).total_seconds()
        outcome.events.append(self._event(events.BOT_RESOLVED, conversation, now, duration_seconds=round(waited, 1)))
        return outcome

    def _last_agent(self, conversation: Conversation, now: datetime) -> Agent | None:
        """The agent of this thread's previous conversation, if it closed within the window."""
        last = self.last_agents.get(conversation.thread_key)
        if last is None or (now - last[1]).total_seconds() > self.config.last_agent_window_seconds:
            return None
        agent = self.agents.get((conversation.workspace_id, last[0]))
        return agent if agent is not None and agent.status == "online" else None

    def _route(self, conversation: Conversation, now: datetime) -> Outcome:
        """Give it to the best agent with room, or put it in its queue's waiting list."""
        found = self._best_agent(conversation)
        if found is None:
            self._enqueue(conversation)
            return Outcome(changed_conversations={conversation.conversation_id})
        agent, decision = found
        return self._give(conversation, agent, now, decision)

    def _queued(self, conversation: Conversation, now: datetime, reason: str) -> RoutingEvent:
        """It waits in its queue from now: opened, requeued (an offer or a call not taken), transferred,
        overflowed, or rerouted (taken from an agent gone offline, or its queue removed)."""
        return self._event(events.CONVERSATION_QUEUED, conversation, now, reason=reason)

    def _requeue(self, conversation: Conversation, now: datetime, reason: str) -> Outcome:
        """Back to waiting in its queue (an event says so and why), then routed: an agent may take it at once."""
        outcome = Outcome(events=[self._queued(conversation, now, reason)],
                          changed_conversations={conversation.conversation_id})
        outcome.merge(self._route(conversation, now))
        return outcome

    def _best_agent(self, conversation: Conversation) -> tuple[Agent, dict[str, Any]] | None:
        """The head of the agent index over every bullseye level the conversation has reached."""
        queue = self.config.queue(conversation.queue)
        keys: list[AgentIndexKey] = [
            (conversation.workspace_id, queue.name, level, conversation.media) for level in range(conversation.step + 1)
        ]
        heads = [entry for key in keys if (entry := self.agent_index.best(key, conversation.declined))]
        if not heads:
            return None
        best = min(heads)
        agent = self.agents[(conversation.workspace_id, best[-1])]
        decision = self._decision(conversation, queue, agent, "best agent by strategy",
                                  candidates=sum(self.agent_index.size(k) for k in keys),
                                  considered=[e[-1] for k in keys for e in self.agent_index.head(k, 3)])
        return agent, decision

    def _give(self, conversation: Conversation, agent: Agent, now: datetime, decision: dict[str, Any]) -> Outcome:
        if self.config.queue(conversation.queue).mode == "offer":
            return self._offer(conversation, agent, now, decision)
        return self._assign(conversation, agent, now, decision)

    def _assign(self, conversation: Conversation, agent: Agent, now: datetime, decision: dict[str, Any],
                *, reserved: bool = False) -> Outcome:
        self.waiting.discard(conversation.conversation_id)
        self._unpin(conversation)
        conversation.assignee_id = agent.agent_id
        conversation.assigned_at = now
        conversation.assignment_seq += 1
        conversation.decision = {**decision, "at": now.isoformat()}
        if not reserved:
            self._hold(agent, conversation)
        agent.last_assigned_at = agent.last_activity_at = now
        agent.last_assigned_seq = next(self._assignments)
        self._reindex(agent)
        self._note_wait(conversation, now)
        self.positions.note_assignment(conversation.workspace_id, conversation.queue, now)
        handover = [(agent.key, delivery) for delivery in conversation.handover()]
        # The deliveries carry the backlog now (the commit's outbox holds them until published).
        cleared = [("clear", conversation.conversation_id)] if conversation.backlog else []
        conversation.backlog = []
        return Outcome(
            deliveries=handover,
            changed_conversations={conversation.conversation_id},
            changed_agents={agent.key},
            backlog_changes=cleared,
        )

    def _offer(self, conversation: Conversation, agent: Agent, now: datetime, decision: dict[str, Any]) -> Outcome:
        self.waiting.discard(conversation.conversation_id)
        self._unpin(conversation)
        timeout = timedelta(seconds=self.config.queue(conversation.queue).offer_timeout_seconds)
        conversation.offer = Offer(agent.agent_id, now + timeout, next(self._serials))
        conversation.decision = {**decision, "at": now.isoformat()}
        self._hold(agent, conversation)
        self._reindex(agent)
        self._schedule(conversation.offer.expires_at, "offer", conversation, conversation.offer.serial)
        offered = ConversationOffered(conversation=conversation.info(agent.agent_id, now),
                                      messages=conversation.offer_preview(), expires_at=conversation.offer.expires_at)
        event = self._event(events.CONVERSATION_OFFERED, conversation, now, agent_id=agent.agent_id,
                            expires_at=conversation.offer.expires_at.isoformat())
        return Outcome(deliveries=[(agent.key, offered)], events=[event],
                       changed_conversations={conversation.conversation_id}, changed_agents={agent.key})

    def _serve(self, agent: Agent, now: datetime) -> Outcome:
        """While the agent has room, give it the best conversation waiting for it."""
        outcome = Outcome()
        while (found := self._next_for(agent)) is not None:
            conversation, rule = found
            queue = self.config.queue(conversation.queue)
            outcome.merge(self._give(conversation, agent, now, self._decision(conversation, queue, agent, rule)))
        return outcome

    def _next_for(self, agent: Agent) -> tuple[Conversation, str] | None:
        """Reserved conversations first, then the head of every waiting list the agent qualifies for."""
        if agent.status != "online":
            return None
        rooms = {m for m in self.media if agent.has_room(m, self.exclusive)}
        if not rooms:
            return None
        reserved = [self.conversations[c] for c in self.pinned.get(agent.key, ())]
        reserved = [c for c in reserved if c.media in rooms]
        if reserved:
            return min(reserved, key=self._score), "reserved for this agent"
        best = None
        declined = lambda conversation_id: agent.agent_id in self.conversations[conversation_id].declined
        for queue_name, level in agent.memberships.items():
            steps = len(self.config.queue(queue_name).expand)
            for media in rooms:
                for step in range(level, steps + 1):
                    entry = self.waiting.first((agent.workspace_id, queue_name, media, step), declined)
                    if entry is not None and (best is None or entry < best):
                        best = entry
        if best is None:
            return None
        return self.conversations[best[1]], "agent gained room: longest aged wait it can take"

    # -- offers, presence, transfers -------------------------------------------------------

    def _decline(self, conversation: Conversation, agent: Agent, now: datetime) -> None:
        """Skip this agent for the conversation, until declined_retry_seconds pass without another decline."""
        conversation.declined.add(agent.agent_id)
        conversation.declined_at = now
        self._schedule(now + timedelta(seconds=self.config.declined_retry_seconds), "declined", conversation,
                       conversation.queue_gen)

    def _take_back_offer(self, conversation: Conversation, agent: Agent, now: datetime, reason: str) -> Outcome:
        assert conversation.offer is not None
        conversation.offer = None
        self._decline(conversation, agent, now)
        self._release(agent, conversation)
        self._reindex(agent)
        self._schedule_wait_timers(conversation)
        return Outcome(deliveries=[_revoked(agent, conversation, f"offer {reason}")],
                       changed_conversations={conversation.conversation_id}, changed_agents={agent.key})

    def _withdraw_offers(self, agent: Agent, now: datetime) -> Outcome:
        outcome = Outcome()
        for conversation_id in list(self.held.get(agent.key, ())):
            conversation = self.conversations[conversation_id]
            if conversation.offer is not None:
                outcome.merge(self._take_back_offer(conversation, agent, now, f"withdrawn: agent {agent.status}"))
                outcome.merge(self._requeue(conversation, now, "requeued"))
        return outcome

    def _release_on_offline(self, agent: Agent, now: datetime) -> Outcome:
        """Reservations for an offline agent are routed at once; what it holds is rerouted in slices."""
        outcome = Outcome()
        for conversation_id in list(self.pinned.get(agent.key, ())):
            conversation = self.conversations[conversation_id]
            self._unpin(conversation)
            outcome.merge(self._route(conversation, now))
        self._reroute_later(agent)
        return outcome

    def _reroute_later(self, agent: Agent) -> None:
        self.to_reroute.extend(sorted(c for c in self.held.get(agent.key, ()) if self._reroutes(self.conversations[c])))

    def _reroutes(self, conversation: Conversation) -> bool:
        """Whether an offline agent's conversation goes to someone else (answered ones per queue)."""
        # A call is live on the agent's phone, not on the desk: it ends with thread.closed, and
        # one never picked up comes back as thread.not_answered.
        live_call = conversation.media in self.exclusive
        answered = conversation.answered or live_call
        return not answered or self.config.queue(conversation.queue).reroute_answered_on_offline

    def reroute_pending(self, now: datetime, limit: int = REROUTE_SLICE) -> Outcome:
        """Route again up to `limit` unanswered conversations of agents gone offline.

        A shift change takes hundreds of conversations from their agents at once: the shell calls
        this a slice at a time, with new traffic routed between slices, so it is not held behind
        the whole reroute. A conversation whose agent came back meanwhile stays with them."""
        outcome = Outcome()
        moved = 0
        while self.to_reroute and moved < limit:
            conversation = self.conversations.get(self.to_reroute.popleft())
            agent = self._holder(conversation) if conversation is not None else None
            if conversation is None or agent is None or conversation.assignee_id != agent.agent_id:
                continue
            if agent.status != "offline" or not self._reroutes(conversation):
                continue
            self._unassign(conversation, now, "agent offline", outcome)
            outcome.merge(self._requeue(conversation, now, "rerouted"))
            moved += 1
        return outcome

    def _park(self, conversation: Conversation, state: str, until: datetime | None, now: datetime) -> Outcome:
        agent = self._holder(conversation)
        outcome = Outcome(changed_conversations={conversation.conversation_id})
        conversation.parked, conversation.parked_until = state, until
        conversation.park_serial = next(self._serials)
        if until is not None:
            self._schedule(until, "wake", conversation, conversation.park_serial)
        if agent is not None:
            self._release(agent, conversation)
            self._reindex(agent)
            outcome.changed_agents.add(agent.key)
            outcome.deliveries.append((agent.key, ConversationParked(
                workspace_id=conversation.workspace_id, conversation_id=conversation.conversation_id,
                agent_id=agent.agent_id, assignment_seq=conversation.assignment_seq, state=state, until=until)))
            outcome.merge(self._serve(agent, now))
        return outcome

    def _wake(self, conversation: Conversation, now: datetime, reason: str, reserve_seconds: float | None) -> Outcome:
        """Open a parked conversation again: it counts against its agent's capacity at once if the
        agent has room; else it goes back to waiting, reserved for that agent (for `reserve_seconds`,
        None: until the agent has room or goes offline), so no agent is ever over capacity."""
        agent = self._holder(conversation)
        conversation.parked = conversation.parked_until = None
        conversation.park_serial = next(self._serials)  # a pending wake timer is stale now
        outcome = Outcome(changed_conversations={conversation.conversation_id})
        if agent is not None and agent.has_room(conversation.media, self.exclusive):
            self._hold(agent, conversation)
            self._reindex(agent)
            outcome.changed_agents.add(agent.key)
            outcome.deliveries.append((agent.key, ConversationWoken(
                workspace_id=conversation.workspace_id, conversation_id=conversation.conversation_id,
                agent_id=agent.agent_id, assignment_seq=conversation.assignment_seq, reason=reason)))
            return outcome
        self._unassign(conversation, now, f"woke while the agent had no room ({reason})", outcome)
        conversation.waiting_since = now
        outcome.events.append(self._queued(conversation, now, "woken"))
        if agent is not None and agent.status == "online":
            until = None if reserve_seconds is None else now + timedelta(seconds=reserve_seconds)
            outcome.merge(self._pin(conversation, agent.agent_id, until, now, "woken: back to its agent"))
        else:
            outcome.merge(self._route(conversation, now))
        return outcome

    def _on_snooze_ended(self, conversation: Conversation, serial: int, _: Any, now: datetime) -> Outcome:
        if conversation.parked is None or conversation.park_serial != serial:
            return Outcome()
        return self._wake(conversation, now, "the snooze ended", self.config.wake_reserve_seconds)

    def _unassign(self, conversation: Conversation, now: datetime, reason: str, outcome: Outcome) -> Agent | None:
        """Take a conversation from its assignee (who is told); it becomes a waiting one."""
        agent = self._holder(conversation)
        if agent is None or conversation.assignee_id is None:
            return None
        conversation.assignee_id = None
        conversation.assigned_at = None
        conversation.assignment_seq += 1
        conversation.parked = conversation.parked_until = None  # whoever takes it next has it open
        self._release(agent, conversation)
        self._reindex(agent)
        self._schedule_wait_timers(conversation)
        outcome.deliveries.append(_revoked(agent, conversation, reason))
        outcome.changed_agents.add(agent.key)
        outcome.changed_conversations.add(conversation.conversation_id)
        return agent

    def _transfer_problem(self, conversation: Conversation, request: TransferRequest) -> str | None:
        if conversation.assignee_id is None and not request.by_supervisor:
            return "the conversation is not assigned"  # waiting, offered or reserved: only a supervisor moves it
        if conversation.left_queue:
            return "the conversation left the queue (a call sent to voicemail)"
        if request.to_queue is not None:
            known = {q.name for q in self.config.queues} | self.skill_queues.get(conversation.workspace_id, set())
            return None if request.to_queue in known else f"unknown queue {request.to_queue!r}"
        target = self.agents.get((conversation.workspace_id, request.to_agent or ""))
        if target is None or target.status != "online":
            return f"agent {request.to_agent!r} is not online"
        if request.to_agent == conversation.assignee_id:
            return "the conversation is already this agent's"
        return None

    def _pin(self, conversation: Conversation, agent_id: str, until: datetime | None, now: datetime,
             rule: str) -> Outcome:
        """Reserve a conversation for one agent: theirs at once if they have room, else when they do."""
        agent = self.agents[(conversation.workspace_id, agent_id)]
        queue = self.config.queue(conversation.queue)
        self._unpin(conversation)  # one reservation at a time
        if agent.has_room(conversation.media, self.exclusive):
            return self._give(conversation, agent, now, self._decision(conversation, queue, agent, rule))
        self.waiting.discard(conversation.conversation_id)
        conversation.pinned_to, conversation.pinned_until = agent_id, until
        conversation.pin_serial = next(self._serials)
        self.pinned.setdefault(agent.key, set()).add(conversation.conversation_id)
        if until is not None:
            self._schedule(until, "pin", conversation, conversation.pin_serial)
        return Outcome(changed_conversations={conversation.conversation_id})

    def _unpin(self, conversation: Conversation) -> None:
        if conversation.pinned_to is not None:
            self.pinned.get((conversation.workspace_id, conversation.pinned_to), set()).discard(conversation.conversation_id)
            conversation.pinned_to = conversation.pinned_until = None

    # -- timers ----------------------------------------------------------------------------

    def _schedule(self, when: datetime, kind: str, conversation: Conversation, generation: int, extra: Any = None) -> None:
        heapq.heappush(self._timers, (when, next(self._serials), kind, conversation.conversation_id, generation, extra))

    def _enter_queue(self, conversation: Conversation, queue: str, now: datetime, reason: str) -> None:
        """Move to another queue: criteria, bullseye, max wait and SLA start again there."""
        self.waiting.discard(conversation.conversation_id)
        conversation.queue = self.config.queue(queue).name
        conversation.reason = reason
        conversation.queued_at = now
        conversation.queue_gen += 1
        conversation.step = 0
        conversation.declined.clear()
        conversation.declined_at = None
        conversation.max_wait_done = False
        self._start_queue_timers(conversation, now)

    def _start_queue_timers(self, conversation: Conversation, now: datetime) -> None:
        sla = self.config.queue(conversation.queue).sla
        conversation.sla = {}
        for target, seconds in (("first_response", sla.first_response_seconds), ("resolution", sla.resolution_seconds)):
            if seconds is not None:
                conversation.sla[target] = {
                    "due_at": now + timedelta(seconds=seconds),
                    "warn_at": now + timedelta(seconds=seconds * sla.warning_ratio),
                    "state": "ok",
                }
        self._schedule_conversation_timers(conversation)

    def _schedule_conversation_timers(self, conversation: Conversation) -> None:
        """Every timer the conversation's state implies (also after a rebuild); stale ones are skipped."""
        generation = conversation.queue_gen
        self._schedule_wait_timers(conversation)
        for target, state in conversation.sla.items():
            self._schedule(state["warn_at"], "sla", conversation, generation, (target, "warning"))
            self._schedule(state["due_at"], "sla", conversation, generation, (target, "breached"))
        if conversation.offer is not None:
            self._schedule(conversation.offer.expires_at, "offer", conversation, conversation.offer.serial)
        if conversation.pinned_to is not None and conversation.pinned_until is not None:
            self._schedule(conversation.pinned_until, "pin", conversation, conversation.pin_serial)
        if conversation.parked is not None and conversation.parked_until is not None:
            self._schedule(conversation.parked_until, "wake", conversation, conversation.park_serial)
        if conversation.bot is not None and conversation.bot_until is not None:
            self._schedule(conversation.bot_until, "bot", conversation, conversation.bot_session, conversation.bot)
        if conversation.declined and conversation.declined_at is not None:
            self._schedule(conversation.declined_at + timedelta(seconds=self.config.declined_retry_seconds), "declined",
                           conversation, generation)

    def _schedule_wait_timers(self, conversation: Conversation) -> None:
        """Bullseye steps and max wait, at their times from entering the queue.

        Also when a conversation goes back to waiting (an offer declined, a call rung out, an agent
        gone offline): a step or max wait that fell due while an agent had it was skipped then, and
        is due now. Timers still pending get a twin; the handlers ignore the second."""
        queue = self.config.queue(conversation.queue)
        generation = conversation.queue_gen
        for level, step in enumerate(queue.expand, start=1):
            if conversation.step < level:
                self._schedule(conversation.queued_at + timedelta(seconds=step.after_seconds), "expand", conversation, generation, level)
        if queue.max_wait is not None and not conversation.max_wait_done:
            self._schedule(conversation.queued_at + timedelta(seconds=queue.max_wait.seconds), "max_wait", conversation, generation)

    def _on_offer_timeout(self, conversation: Conversation, serial: int, _: Any, now: datetime) -> Outcome:
        offer = conversation.offer
        if offer is None or offer.serial != serial:
            return Outcome()
        agent = self.agents[(conversation.workspace_id, offer.agent_id)]
        outcome = self._take_back_offer(conversation, agent, now, "timed out")
        self._count_miss(agent, conversation, events.OFFER_EXPIRED, now, outcome)
        outcome.merge(self._requeue(conversation, now, "requeued"))
        outcome.merge(self._serve(agent, now))
        return outcome

    def _count_miss(self, agent: Agent, conversation: Conversation, event_type: str, now: datetime, outcome: Outcome) -> None:
        """An offer let time out, or a call let ring out: after several in a row the agent is set away."""
        agent.missed_offers += 1
        missed = self._event(event_type, conversation, now, agent_id=agent.agent_id, missed_in_a_row=agent.missed_offers)
        outcome.events.append(missed)
        if agent.missed_offers >= self.config.missed_offers_before_away:
            agent.status = "away"
            self._reindex(agent)
            outcome.merge(self._withdraw_offers(agent, now))
            outcome.events.append(self._event(events.AGENT_SET_AWAY, None, now, agent_id=agent.agent_id,
                                              workspace_id=agent.workspace_id, event_id=f"{missed.event_id}:away",
                                              missed_offers=agent.missed_offers))

    def _on_expand(self, conversation: Conversation, generation: int, level: int, now: datetime) -> Outcome:
        if generation != conversation.queue_gen or conversation.assignee_id is not None or conversation.step >= level:
            return Outcome()
        conversation.step = level
        outcome = Outcome(changed_conversations={conversation.conversation_id})
        if conversation.conversation_id in self.waiting:
            self.waiting.discard(conversation.conversation_id)
            outcome.merge(self._route(conversation, now))
        return outcome

    def _on_max_wait(self, conversation: Conversation, generation: int, _: Any, now: datetime) -> Outcome:
        if generation != conversation.queue_gen or not conversation.waiting or conversation.max_wait_done:
            return Outcome()
        rule = self.config.queue(conversation.queue).max_wait
        if rule is None:  # the configuration changed since the timer was set
            return Outcome()
        conversation.max_wait_done = True
        outcome = Outcome(changed_conversations={conversation.conversation_id})
        waited = (now - conversation.waiting_since).total_seconds()
        outcome.events.append(self._event(events.CONVERSATION_MAX_WAIT, conversation, now, action=rule.action,
                                          waited_seconds=round(waited, 1), contact=conversation.first.contact.model_dump()))
        if rule.action == "overflow":
            assert rule.overflow_queue is not None
            self._unpin(conversation)
            self._enter_queue(conversation, rule.overflow_queue, now, "overflow")
            outcome.merge(self._requeue(conversation, now, "overflowed"))
        elif rule.action == "callback" and conversation.media in self.exclusive:
            # The caller is on the way to voicemail: an agent freeing up now must not be dialled in.
            conversation.left_queue = True
            self.waiting.discard(conversation.conversation_id)
        elif rule.action == "auto_reply":
            minutes = self.expected_wait_minutes(conversation)
            outcome.events.append(self._auto_reply(conversation, now, rule.message.format(minutes=minutes)))
        return outcome

    def _on_sla(self, conversation: Conversation, generation: int, extra: tuple[str, str], now: datetime) -> Outcome:
        target, level = extra
        state = conversation.sla.get(target)
        if generation != conversation.queue_gen or state is None or state["state"] in ("met", "breached"):
            return Outcome()
        if level == "warning" and state["state"] != "ok":
            return Outcome()
        state["state"] = level
        name = events.SLA_WARNING if level == "warning" else events.SLA_BREACHED
        event = self._event(name, conversation, now, agent_id=conversation.assignee_id, target=target,
                            due_at=state["due_at"].isoformat())
        return Outcome(events=[event], changed_conversations={conversation.conversation_id})

    def _on_declined_expired(self, conversation: Conversation, generation: int, _: Any, now: datetime) -> Outcome:
        due = conversation.declined_at and conversation.declined_at + timedelta(seconds=self.config.declined_retry_seconds)
        if generation != conversation.queue_gen or not conversation.declined or due is None or due > now:
            return Outcome()  # stale: the queue changed, or a later decline moved the time on
        conversation.declined.clear()
        conversation.declined_at = None
        outcome = Outcome(changed_conversations={conversation.conversation_id})
        if conversation.conversation_id in self.waiting:
            self.waiting.discard(conversation.conversation_id)
            outcome.merge(self._route(conversation, now))
        return outcome

    def _on_pin_expired(self, conversation: Conversation, serial: int, _: Any, now: datetime) -> Outcome:
        if conversation.pinned_to is None or conversation.pin_serial != serial:
            return Outcome()
        self._unpin(conversation)
        return self._route(conversation, now)

    # -- bookkeeping -----------------------------------------------------------------------

    def _of_thread(self, workspace_id: str, channel: str, thread_id: str) -> Conversation | None:
        conversation_id = self.by_thread.get((workspace_id, channel, thread_id))
        return self.conversations.get(conversation_id) if conversation_id else None

    def _register(self, conversation: Conversation) -> None:
        self.conversations[conversation.conversation_id] = conversation
        self.by_thread[conversation.thread_key] = conversation.conversation_id

    def _forget(self, conversation: Conversation) -> None:
        self.conversations.pop(conversation.conversation_id, None)
        self.by_thread.pop(conversation.thread_key, None)
        self.waiting.discard(conversation.conversation_id)
        self._unpin(conversation)
        agent = self._holder(conversation)
        if agent is not None:
            self._release(agent, conversation)

    def _enqueue(self, conversation: Conversation) -> None:
        if conversation.pinned_to is not None:
            self.pinned.setdefault((conversation.workspace_id, conversation.pinned_to), set()).add(conversation.conversation_id)
        else:
            self.waiting.add(conversation, self._score(conversation))

    def _score(self, conversation: Conversation) -> float:
        """Aged priority: each point of priority counts as `aging_seconds_per_priority` of waiting."""
        return conversation.waiting_since.timestamp() - conversation.priority * self.config.aging_seconds_per_priority

    def _holder(self, conversation: Conversation) -> Agent | None:
        holder = conversation.assignee_id or (conversation.offer.agent_id if conversation.offer else None)
        return self.agents.get((conversation.workspace_id, holder)) if holder else None

    def _hold(self, agent: Agent, conversation: Conversation) -> None:
        agent.load[conversation.media] += 1
        self.held.setdefault(agent.key, set()).add(conversation.conversation_id)

    def _release(self, agent: Agent, conversation: Conversation) -> None:
        if conversation.conversation_id in self.held.get(agent.key, ()):
            self.held[agent.key].discard(conversation.conversation_id)
            agent.load[conversation.media] = max(0, agent.load[conversation.media] - 1)

    def _note_queue(self, conversation: Conversation) -> None:
        """A queue named by message skills becomes known: agents' memberships include it."""
        if not conversation.queue.startswith("skills:"):
            return
        known = self.skill_queues.setdefault(conversation.workspace_id, set())
        if conversation.queue in known:
            return
        known.add(conversation.queue)
        skills = self.config.queue(conversation.queue).skills
        holders = [self.with_skill.get((conversation.workspace_id, skill), set()) for skill in skills]
        for key in min(holders, key=len):  # only agents holding its rarest skill can qualify
            agent = self.agents[key]
            if agent.qualifies(skills):
                agent.memberships[conversation.queue] = 0
                self._reindex(agent)

    def _index_skills(self, agent: Agent, old: dict[str, int], new: dict[str, int] | None = None) -> None:
        """Keep `with_skill` current: who holds each skill, for new skill queues."""
        new = agent.skills if new is None else new
        for skill in set(old) - set(new):
            self.with_skill.get((agent.workspace_id, skill), set()).discard(agent.key)
        for skill in new:
            self.with_skill.setdefault((agent.workspace_id, skill), set()).add(agent.key)

    def _memberships(self, agent: Agent) -> dict[str, int]:
        """Each queue the agent may serve, with the lowest bullseye level whose criteria it meets:
        configured queues (found by the agent's skills), then the workspace's skill queues."""
        memberships = self.queue_levels.memberships(agent)
        for name in sorted(self.skill_queues.get(agent.workspace_id, ())):
            for level, criteria in enumerate(self.config.queue(name).criteria()):
                if agent.qualifies(criteria):
                    memberships[name] = level
                    break
        return memberships

    def _reindex(self, agent: Agent) -> None:
        """Put the agent in exactly the agent-index lists where it has room, with fresh sort keys."""
        self.agent_index.update(agent, self._index_entries(agent))

    def _index_entries(self, agent: Agent) -> dict[AgentIndexKey, tuple]:
        """The agent-index lists where the agent has room, each with its sort key there."""
        wanted: dict[AgentIndexKey, tuple] = {}
        rooms = [m for m in self.media if agent.has_room(m, self.exclusive)]
        for queue_name, level in agent.memberships.items():
            if not rooms:
                break
            queue = self.config.queue(queue_name)
            entry = STRATEGY_KEYS[queue.strategy](queue, agent)
            for media in rooms:
                wanted[(agent.workspace_id, queue_name, level, media)] = entry
        return wanted

    def _note_wait(self, conversation: Conversation, now: datetime) -> None:
        """A moving average of waits per queue, for the expected wait an auto-reply quotes."""
        key = (conversation.workspace_id, conversation.queue)
        waited = (now - conversation.waiting_since).total_seconds()
        previous = self.wait_average.get(key)
        self.wait_average[key] = waited if previous is None else 0.8 * previous + 0.2 * waited

    def expected_wait_minutes(self, conversation: Conversation) -> int:
        """Recent average wait in the queue, scaled by how many wait ahead; at least one minute."""
        average = self.wait_average.get((conversation.workspace_id, conversation.queue), 60.0)
        ahead = self.waiting.position(conversation.conversation_id)
        return max(1, math.ceil(average * (1 + ahead) / 60))

    def _decision(self, conversation: Conversation, queue: QueueConfig, agent: Agent, rule: str,
                  candidates: int = 1, considered: list[str] | None = None) -> dict[str, Any]:
        return {
            "queue": queue.name, "classified_by": conversation.reason, "rule": rule, "strategy": queue.strategy,
            "mode": queue.mode, "bullseye_step": conversation.step, "priority": conversation.priority,
            "priority_parts": conversation.priority_parts,
            "candidates": candidates, "considered": considered or [agent.agent_id], "chosen": agent.agent_id,
        }

    def _auto_reply(self, conversation: Conversation, now: datetime, text: str, **details: Any) -> RoutingEvent:
        """A text the agents service stores in the conversation and sends its customer (not an agent's)."""
        return self._event(events.CONVERSATION_AUTO_REPLY, conversation, now, text=text,
                           contact=conversation.first.contact.model_dump(),
                           reply_to_message_id=conversation.first.message_id, **details)

    def _event(self, name: str, conversation: Conversation | None, now: datetime, *, agent_id: str | None = None,
               workspace_id: str | None = None, event_id: str | None = None, **details: Any) -> RoutingEvent:
        """An event at `now`. One about a conversation is numbered in it, `<conversation>:<n>:<type>`
        (n in six digits): a replayed input gives the same ids, and the ids of one conversation's events
        at the same time sort in the order they were made. The caller saves the conversation (its count)."""
        if conversation is not None:
            conversation.event_seq += 1
            event_id = f"{conversation.conversation_id}:{conversation.event_seq:06d}:{name}"
        assert event_id is not None, "an event about no conversation is given its id"
        return RoutingEvent(
            event_id=event_id, type=name, at=now,
            workspace_id=workspace_id or (conversation.workspace_id if conversation else "default"),
            conversation_id=conversation.conversation_id if conversation else None,
            agent_id=agent_id, queue=conversation.queue if conversation else None,
            details={"channel": conversation.first.channel, "thread_id": conversation.first.thread_id, **details}
            if conversation else details,
        )


def _closing(conversation: Conversation) -> Outcome:
    """The outcome of closing a conversation: its document goes, and its backlog if it holds one."""
    cleared = [("clear", conversation.conversation_id)] if conversation.backlog else []
    return Outcome(closed_conversations={conversation.conversation_id}, backlog_changes=cleared)


def _revoked(agent: Agent, conversation: Conversation, reason: str) -> tuple[AgentKey, ConversationRevoked]:
    """Tell the agent the conversation is no longer theirs (offer gone, rerouted, transferred)."""
    return agent.key, ConversationRevoked(
        workspace_id=agent.workspace_id, conversation_id=conversation.conversation_id, agent_id=agent.agent_id,
        assignment_seq=conversation.assignment_seq, reason=reason,
    )


TIMER_HANDLERS = {
    "offer": RoutingCore._on_offer_timeout,
    "expand": RoutingCore._on_expand,
    "max_wait": RoutingCore._on_max_wait,
    "sla": RoutingCore._on_sla,
    "pin": RoutingCore._on_pin_expired,
    "declined": RoutingCore._on_declined_expired,
    "wake": RoutingCore._on_snooze_ended,
    "bot": RoutingCore._on_bot_late,
}
