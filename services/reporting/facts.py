"""The facts of one conversation, folded from all its events in any order (docs/metrics.md, "Facts").

Producers are different services with their own clocks and queues, so events arrive in any
order and some twice: the fold drops repeated event ids and walks the rest by
`ReportEvent.sort_key()`, so the same set of events always gives the same facts.

A reopen (a customer message after a resolution) makes the conversation open again: it stops
counting as resolved until it is resolved again; its resolution and handle times then run to
the last resolution (time spent resolved is not handle time); it counts as reopened within 7
days when a reopen came within 7 days of the resolution before it.

A conversation the pre-routing bot had first (docs/bot.md) records how the bot's part ended:
resolved by the bot, handed over (then it is a human conversation from its queue entry on), or
abandoned while with the bot; only a handed-over one can be queued, answered or abandoned.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from services.reporting.business import business_time
from services.reporting.model import ReportEvent
from services.router.config import BusinessHours, RoutingConfig
from shared.models import HANDOVER_CODES

VOICE_CHANNELS = frozenset({"voice"})  # a call: answered when picked up, ended by a hang-up
MILLISECOND = timedelta(milliseconds=1)


@dataclass(frozen=True)
class FoldSettings:
    """What the facts are measured against: the queues' configuration and the abandon threshold."""

    # Service level: a conversation answered within its queue's target (seconds from queue entry):
    # the queue's `service_level_seconds` in the routing configuration, else the default (80/20 is
    # the industry's classic).
    service_level_seconds: Mapping[str, float] = field(default_factory=dict)
    default_service_level_seconds: float = 20.0
    # An abandon within this many seconds of entering the queue is a short abandon.
    short_abandon_seconds: float = 10.0
    # Business hours per queue (from the routing configuration); a queue without is always open.
    hours: Mapping[str, BusinessHours] = field(default_factory=dict)
    reopen_window: timedelta = timedelta(days=7)

    def target_seconds(self, queue: str | None) -> float:
        """The queue's service-level target."""
        if queue is None:
            return self.default_service_level_seconds
        return self.service_level_seconds.get(queue, self.default_service_level_seconds)

    @classmethod
    def from_routing_config(cls, config: RoutingConfig, **overrides: Any) -> "FoldSettings":
        """Business hours from the router's queues; targets and thresholds as given."""
        hours = {queue.name: queue.hours for queue in config.queues if queue.hours is not None}
        targets = {queue.name: float(queue.service_level_seconds) for queue in config.queues
                   if queue.service_level_seconds is not None}
        return cls(hours=hours, **({"service_level_seconds": targets} | overrides))


@dataclass(frozen=True)
class Measured:
    """A duration: when it ended (its bucket), its length, and the part in business hours, in ms."""

    start: datetime
    end: datetime
    ms: int  # end - start, except handle time: the sum of its handling spans (time resolved left out)
    business_ms: int  # = ms for a queue without business hours
    agent_id: str | None = None  # the agent it counts for (docs/metrics.md, "Which bucket, which agent")


@dataclass(frozen=True)
class Transfer:
    at: datetime
    from_agent: str | None


@dataclass(frozen=True)
class SlaAlert:
    at: datetime
    level: str  # warning or breached
    target: str | None  # first_response or resolution
    agent_id: str | None  # who held the conversation then, if anyone


@dataclass(frozen=True)
class ConversationFacts:
    """Everything the metrics read of one conversation; times are aware, None where it did not happen."""

    conversation_id: str
    workspace_id: str
    channel: str | None = None
    first_queue: str | None = None
    queue: str | None = None  # the last queue: the one the conversation is grouped, targeted and timed by
    labels: tuple[str, ...] = ()  # the last set, sorted
    opened_at: datetime | None = None
    queued_at: datetime | None = None  # first entry into a queue
    offered_at: datetime | None = None  # first offer to an agent
    assigned_at: datetime | None = None  # first assignment (an accepted offer is one)
    answered_at: datetime | None = None  # first assignment; for a call, when an agent picked up
    answered_within_target: bool | None = None
    first_agent: str | None = None  # who answered
    final_agent: str | None = None  # who resolved it, else who holds it last
    first_reply_at: datetime | None = None
    first_reply_agent: str | None = None
    resolved_at: datetime | None = None  # the last resolution; None while open (after a reopen too)
    resolved_reason: str | None = None
    surveyed: bool = False  # a CSAT survey went out with that resolution
    reopens: int = 0
    reopened_within_window_at: datetime | None = None  # the first reopen within 7 days of a resolution
    abandoned_at: datetime | None = None  # the customer left before any agent answered
    abandon_reason: str | None = None
    short_abandon: bool = False
    transfers: tuple[Transfer, ...] = ()
    sla_alerts: tuple[SlaAlert, ...] = ()
    csat_score: int | None = None  # the latest valid answer
    csat_at: datetime | None = None
    # The pre-routing bot: given it first; how its part ended (resolved, handed_over, abandoned), when, why
    bot: bool = False
    bot_outcome: str | None = None
    bot_ended_at: datetime | None = None
    bot_handover_reason: str | None = None
    bot_handover_code: str | None = None  # one of shared.models.HANDOVER_CODES (None from events before codes)
    # Where it stands after its last event (the live view): with_bot, waiting, offered, assigned, resolved,
    # bot_resolved or abandoned; since when; the agent offered it or holding it; its priority when opened.
    state: str | None = None
    state_since: datetime | None = None
    state_agent: str | None = None
    entered_queue_at: datetime | None = None  # the last time it entered a queue (its wait now, while waiting)
    priority: int | None = None
    # Durations (docs/metrics.md has each formula)
    wait: Measured | None = None  # queue entry to answer
    first_response: Measured | None = None  # open to first agent reply
    responses: tuple[Measured, ...] = ()  # each customer message to the next agent reply
    handle: Measured | None = None  # assigned (a call: answered) to resolved, minus time spent resolved
    resolution: Measured | None = None  # open to the last resolution
    bot_time: Measured | None = None  # open to the end of the bot's part
    # Closed by the router with no agent (an incident resolved with its conversations), and why
    closed_at: datetime | None = None
    closed_reason: str | None = None


def unique_in_order(events: Iterable[ReportEvent]) -> list[ReportEvent]:
    """The events once each (by event_id), in time order."""
    by_id = {event.event_id: event for event in events}
    return sorted(by_id.values(), key=ReportEvent.sort_key)


def _tells_bot(event: ReportEvent) -> bool:
    """Whether the event says the bot was given the conversation first."""
    if event.type == "conversation.opened":
        return event.data.get("bot") is True
    return event.type in ("bot.handed_over", "bot.resolved")


class _Fold:
    """One walk over a conversation's ordered events; the handlers record only what happened."""

    def __init__(self, ordered: list[ReportEvent], settings: FoldSettings) -> None:
        self.settings = settings
        self.conversation_id = ordered[0].conversation_id or ""
        self.workspace_id = ordered[0].workspace_id
        # Known before the walk: whether it is a call decides how the earliest events count.
        self.channel = next((event.channel for event in ordered if event.channel), None)
        self.queues: list[str] = []
        self.labels: tuple[str, ...] = ()
        self.opened_at: datetime | None = None
        self.queued_at: datetime | None = None
        self.offered_at: datetime | None = None
        self.assigned_at: datetime | None = None
        self.assigned_agent: str | None = None
        self.holder: str | None = None
        self.pickup_at: datetime | None = None
        self.pickup_agent: str | None = None
        self.first_reply_at: datetime | None = None
        self.first_reply_agent: str | None = None
        self.waiting_since: datetime | None = None  # the first customer message no reply has answered yet
        self.responses: list[tuple[datetime, datetime, str | None]] = []
        self.resolutions: list[ReportEvent] = []
        self.resolved: ReportEvent | None = None  # the last resolution, while no reopen came after it
        self.reopens: list[datetime] = []
        self.reopened_within: datetime | None = None
        self.abandon: ReportEvent | None = None
        self.transfers: list[Transfer] = []
        self.sla: list[SlaAlert] = []
        self.csat: ReportEvent | None = None
        self.handle_from: datetime | None = None
        self.handled = timedelta(0)
        self.state: str | None = None
        self.state_since: datetime | None = None
        self.state_agent: str | None = None
        self.entered_queue_at: datetime | None = None
        self.priority: int | None = None
        # Known before the walk too: an abandon is the bot's or a queue's whatever the clocks say of the opening.
        self.bot = any(_tells_bot(event) for event in ordered)
        self.bot_end: ReportEvent | None = None  # what ended the bot's part: bot.resolved, bot.handed_over, abandon
        self.closed_event: ReportEvent | None = None  # conversation.closed: the router closed it, no agent held it

    def _now(self, state: str, event: ReportEvent, agent_id: str | None = None) -> None:
        if state != self.state or agent_id != self.state_agent:
            self.state, self.state_since, self.state_agent = state, event.at, agent_id

    @property
    def voice(self) -> bool:
        return self.channel in VOICE_CHANNELS

    @property
    def with_bot(self) -> bool:
        """The bot has it: given to the bot, and its part has not ended."""
        return self.bot and self.bot_end is None

    def apply(self, event: ReportEvent) -> None:
        if event.queue:
            self.queues.append(event.queue)
        handler = _HANDLERS.get(event.type)
        if handler is not None:
            handler(self, event)

    def opened(self, event: ReportEvent) -> None:
        if self.opened_at is None:
            self.opened_at = event.at
            # The opening message is a customer message waiting for a reply, whether or not its
            # message.created is among the events.
            self.waiting_since = self.waiting_since or event.at
            priority = event.data.get("priority")
            self.priority = priority if isinstance(priority, int) and not isinstance(priority, bool) else None
        if self.state is None and self.with_bot:
            self._now("with_bot", event)  # in no queue: nobody waits for an agent yet
        elif self.state is None:
            self._now("waiting", event)
            self.entered_queue_at = event.at

    def bot_handed_over(self, event: ReportEvent) -> None:
        self.bot_end = self.bot_end or event

    def bot_resolved(self, event: ReportEvent) -> None:
        if self.bot_end is None:
            self.bot_end = event
            self._now("bot_resolved", event)
            self.waiting_since = None  # the bot answered: no customer message waits for a person

    def queued(self, event: ReportEvent) -> None:
        self.queued_at = self.queued_at or event.at
        self.entered_queue_at = event.at
        self._now("waiting", event)

    def offered(self, event: ReportEvent) -> None:
        self.offered_at = self.offered_at or event.at
        self._now("offered", event, event.agent_id)

    def assigned(self, event: ReportEvent) -> None:
        if self.assigned_at is None:
            self.assigned_at, self.assigned_agent = event.at, event.agent_id
        self.holder = event.agent_id or self.holder
        self._now("assigned", event, event.agent_id)
        if not self.voice and self.handle_from is None:
            self.handle_from = event.at  # handling starts at an assignment; a call's when picked up

    def transferred(self, event: ReportEvent) -> None:
        if not event.data.get("rejected"):
            self.transfers.append(Transfer(event.at, event.data.get("from_agent")))

    def resolved_event(self, event: ReportEvent) -> None:
        self.resolutions.append(event)
        self.resolved = event
        self._now("resolved", event)
        self.holder = event.agent_id or self.holder
        if self.handle_from is not None:
            self.handled += event.at - self.handle_from
            self.handle_from = None
        self.waiting_since = None  # a last "thanks" left unanswered at the close is no response to wait for

    def reopened(self, event: ReportEvent) -> None:
        previous = self.resolutions[-1].at if self.resolutions else None
        self.reopens.append(event.at)
        if self.reopened_within is None and previous is not None and event.at - previous <= self.settings.reopen_window:
            self.reopened_within = event.at
        self.resolved = None

    def abandoned(self, event: ReportEvent) -> None:
        if self.with_bot:
            self.bot_end = event  # left the bot: abandoned with the bot, not in a queue
        else:
            self.abandon = event
        self._now("abandoned", event)

    def closed(self, event: ReportEvent) -> None:
        """Closed by the router with no agent (an incident's resolution answered the customer)."""
        if self.closed_event is None and self.resolved is None and self.abandon is None:
            self.closed_event = event
            self._now("closed", event)
            self.waiting_since = None

    def labels_changed(self, event: ReportEvent) -> None:
        labels = event.data.get("labels") or []
        self.labels = tuple(sorted({str(label) for label in labels}))

    def labeled(self, event: ReportEvent) -> None:
        added = event.data.get("labels") or []
        self.labels = tuple(sorted({*self.labels, *(str(label) for label in added)}))

    def message(self, event: ReportEvent) -> None:
        if event.data.get("direction") == "inbound":
            self.waiting_since = self.waiting_since or event.at
        elif event.data.get("direction") == "outbound":
            self.agent_replied(event)

    def agent_replied(self, event: ReportEvent) -> None:
        if self.first_reply_at is None:
            self.first_reply_at, self.first_reply_agent = event.at, event.agent_id
        if self.voice and self.pickup_at is None:
            self.pickup_at, self.pickup_agent = event.at, event.agent_id  # a call's first outbound: picked up
            self.handle_from = self.handle_from or event.at
        if self.waiting_since is not None:
            self.responses.append((self.waiting_since, event.at, event.agent_id))
            self.waiting_since = None

    def sla_alert(self, event: ReportEvent) -> None:
        level = "warning" if event.type == "sla.warning" else "breached"
        self.sla.append(SlaAlert(event.at, level, event.data.get("target"), event.agent_id))

    def csat_received(self, event: ReportEvent) -> None:
        score = event.data.get("score")
        # Producers refuse out-of-range answers; one that got through anyway is not averaged in.
        if isinstance(score, int) and not isinstance(score, bool) and 1 <= score <= 5:
            self.csat = event  # the latest answer wins; a repeated one has the same id


_HANDLERS = {
    "conversation.opened": _Fold.opened,
    "conversation.queued": _Fold.queued,
    "conversation.offered": _Fold.offered,
    "conversation.assigned": _Fold.assigned,
    "conversation.transferred": _Fold.transferred,
    "conversation.resolved": _Fold.resolved_event,
    "conversation.reopened": _Fold.reopened,
    "conversation.abandoned": _Fold.abandoned,
    "conversation.labels_changed": _Fold.labels_changed,
    "conversation.labeled": _Fold.labeled,
    "message.created": _Fold.message,
    "sla.warning": _Fold.sla_alert,
    "sla.breached": _Fold.sla_alert,
    "csat.received": _Fold.csat_received,
    "bot.handed_over": _Fold.bot_handed_over,
    "bot.resolved": _Fold.bot_resolved,
    "conversation.closed": _Fold.closed,
}

BOT_OUTCOMES = {"bot.resolved": "resolved", "bot.handed_over": "handed_over", "conversation.abandoned": "abandoned"}


def _ms(length: timedelta) -> int:
    return max(timedelta(0), length) // MILLISECOND  # producers' clocks may disagree: never negative


class _Measure:
    """Durations in calendar and business time, against the hours of the conversation's queue."""

    def __init__(self, hours: BusinessHours | None) -> None:
        self.hours = hours

    def __call__(self, start: datetime | None, end: datetime | None, agent_id: str | None = None) -> Measured | None:
        if start is None or end is None:
            return None
        ms = _ms(end - start)
        business_ms = ms if self.hours is None else _ms(business_time(start, end, self.hours))
        return Measured(start, end, ms, business_ms, agent_id)


def fold_conversation(events: Iterable[ReportEvent], settings: FoldSettings = FoldSettings()) -> ConversationFacts:
    """The facts of one conversation from all its events, in any order, repeats counted once."""
    ordered = unique_in_order(events)
    if not ordered:
        raise ValueError("a conversation's facts need at least one of its events")
    fold = _Fold(ordered, settings)
    for event in ordered:
        fold.apply(event)
    return _facts(fold, settings)


def _facts(fold: _Fold, settings: FoldSettings) -> ConversationFacts:
    queue = fold.queues[-1] if fold.queues else None
    measure = _Measure(settings.hours.get(queue) if queue else None)
    if fold.voice:
        answered_at, first_agent = fold.pickup_at, fold.pickup_agent
    else:
        answered_at, first_agent = fold.assigned_at, fold.assigned_agent
    resolved, abandon = fold.resolved, fold.abandon
    if fold.voice and answered_at is None and resolved is not None:
        abandon, resolved = resolved, None  # a call that ended before anyone picked up was abandoned
    if answered_at is not None:
        abandon = None  # answered: the customer was served, whatever happened to it later
    queue_entry = fold.queued_at or fold.opened_at
    wait = measure(queue_entry, answered_at, first_agent)
    abandon_wait = _ms(abandon.at - queue_entry) if abandon is not None and queue_entry is not None else None
    resolved_at = resolved.at if resolved is not None else None
    return ConversationFacts(
        conversation_id=fold.conversation_id,
        workspace_id=fold.workspace_id,
        channel=fold.channel,
        first_queue=fold.queues[0] if fold.queues else None,
        queue=queue,
        labels=fold.labels,
        opened_at=fold.opened_at,
        queued_at=fold.queued_at,
        offered_at=fold.offered_at,
        assigned_at=fold.assigned_at,
        answered_at=answered_at,
        answered_within_target=None if wait is None else wait.ms <= settings.target_seconds(queue) * 1000,
        first_agent=first_agent,
        final_agent=fold.holder,
        first_reply_at=fold.first_reply_at,
        first_reply_agent=fold.first_reply_agent,
        resolved_at=resolved_at,
        resolved_reason=resolved.data.get("reason") if resolved is not None else None,
        surveyed=bool(resolved is not None and resolved.data.get("surveyed")),
        reopens=len(fold.reopens),
        reopened_within_window_at=fold.reopened_within,
        abandoned_at=abandon.at if abandon is not None else None,
        abandon_reason=abandon.data.get("reason") if abandon is not None else None,
        short_abandon=abandon_wait is not None and abandon_wait < settings.short_abandon_seconds * 1000,
        transfers=tuple(fold.transfers),
        sla_alerts=tuple(fold.sla),
        csat_score=fold.csat.data["score"] if fold.csat is not None else None,
        csat_at=fold.csat.at if fold.csat is not None else None,
        state=fold.state,
        state_since=fold.state_since,
        state_agent=fold.state_agent,
        entered_queue_at=fold.entered_queue_at,
        priority=fold.priority,
        bot=fold.bot,
        bot_outcome=BOT_OUTCOMES[fold.bot_end.type] if fold.bot_end is not None else None,
        bot_ended_at=fold.bot_end.at if fold.bot_end is not None else None,
        bot_handover_reason=fold.bot_end.data.get("reason") if _handed_over(fold.bot_end) else None,
        bot_handover_code=_handover_code(fold.bot_end),
        closed_at=fold.closed_event.at if fold.closed_event is not None and answered_at is None else None,
        closed_reason=fold.closed_event.data.get("reason") if fold.closed_event is not None else None,
        wait=wait,
        first_response=measure(fold.opened_at, fold.first_reply_at, fold.first_reply_agent),
        responses=tuple(m for m in (measure(*r) for r in fold.responses) if m is not None),
        handle=_handle(fold, resolved_at),
        resolution=measure(fold.opened_at, resolved_at, fold.holder),
        bot_time=measure(fold.opened_at, fold.bot_end.at if fold.bot_end is not None else None),
    )


def _handed_over(bot_end: ReportEvent | None) -> bool:
    return bot_end is not None and bot_end.type == "bot.handed_over"


def _handover_code(bot_end: ReportEvent | None) -> str | None:
    """Why the bot handed it over, when the event says so in a code the reports know."""
    code = bot_end.data.get("code") if bot_end is not None and _handed_over(bot_end) else None
    return code if code in HANDOVER_CODES else None


def _handle(fold: _Fold, resolved_at: datetime | None) -> Measured | None:
    """Handle time counts once the conversation is resolved (again), ending at that resolution."""
    start = fold.pickup_at if fold.voice else fold.assigned_at
    if resolved_at is None or start is None:
        return None
    ms = _ms(fold.handled)
    return Measured(start, resolved_at, ms, ms, fold.holder)
