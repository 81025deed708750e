"""Agent time: seconds online, occupied and load-weighted, folded from one agent's events over a range.

The state at the range's start (presence, capacity, conversations held) is carried in, and the
state at its end carried out, so consecutive 15-minute buckets chain without rereading history.

An agent holds a conversation from its assignment until a resolution, an abandon, a transfer away
(data.from_agent) or a conversation.queued naming the agent (taken back: a reroute, a call that
rang out). Offers are not held: an offered conversation is not yet the agent's work.
"""

from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from services.reporting.facts import MILLISECOND, unique_in_order
from services.reporting.intervals import BUCKET, bucket_start, bucket_starts
from services.reporting.model import ReportEvent

_RELEASES = frozenset({"conversation.resolved", "conversation.abandoned", "conversation.queued"})


@dataclass(frozen=True)
class AgentState:
    """What an agent is at an instant: presence, total capacity, the conversations held."""

    status: str = "offline"
    max_conversations: int = 0
    held: frozenset[str] = field(default_factory=frozenset)

    def as_dict(self) -> dict[str, Any]:
        """Plain data, to store between buckets."""
        return {"status": self.status, "max_conversations": self.max_conversations, "held": sorted(self.held)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AgentState":
        return cls(data["status"], data["max_conversations"], frozenset(data["held"]))

    def load(self) -> float:
        """Held over capacity, at most 1 (an agent with no stated capacity holding anything is full)."""
        if not self.held:
            return 0.0
        if self.max_conversations <= 0:
            return 1.0
        return min(1.0, len(self.held) / self.max_conversations)


@dataclass(frozen=True)
class AgentTime:
    """One agent's time over [start, end), in milliseconds, and the state it ended in."""

    agent_id: str
    start: datetime
    end: datetime
    online_ms: int
    occupied_ms: int  # online and holding at least one conversation
    weighted_ms: int  # online time × load (held / max_conversations, at most 1)
    end_state: AgentState


def apply(state: AgentState, event: ReportEvent, agent_id: str) -> AgentState:
    """The agent's state after one event (events not about this agent change nothing)."""
    conversation = event.conversation_id
    if event.type == "agent.status_changed" and event.agent_id == agent_id:
        maximum = event.data.get("max_conversations", state.max_conversations)
        return replace(state, status=event.data.get("status", state.status), max_conversations=int(maximum))
    if conversation is None:
        return state
    if event.type == "conversation.assigned" and event.agent_id == agent_id:
        return replace(state, held=state.held | {conversation})
    releases = (event.type in _RELEASES and event.agent_id == agent_id) or (
        event.type == "conversation.transferred" and event.data.get("from_agent") == agent_id
        and not event.data.get("rejected"))
    if releases:
        return replace(state, held=state.held - {conversation})
    return state


def fold_agent(agent_id: str, events: Iterable[ReportEvent], start: datetime, end: datetime,
               state: AgentState = AgentState()) -> AgentTime:
    """The agent's time over [start, end) from the state at start and the events inside the range."""
    inside = [e for e in unique_in_order(events) if start <= e.at < end]  # earlier ones are in `state`
    return _fold_ordered(agent_id, inside, start, end, state)


def fold_agent_buckets(agent_id: str, events: Iterable[ReportEvent], start: datetime, end: datetime,
                       state: AgentState = AgentState()) -> list[AgentTime]:
    """The agent's time per 15-minute bucket over [start, end), each bucket starting from the last one's state."""
    if bucket_start(start) != start:
        raise ValueError(f"{start} is not the start of a 15-minute bucket")
    ordered = unique_in_order(events)
    times = [event.at for event in ordered]
    periods = []
    for bucket in bucket_starts(start, end):
        bucket_end = bucket + BUCKET
        inside = ordered[bisect_left(times, bucket):bisect_left(times, bucket_end)]
        period = _fold_ordered(agent_id, inside, bucket, bucket_end, state)
        periods.append(period)
        state = period.end_state
    return periods


def _fold_ordered(agent_id: str, inside: list[ReportEvent], start: datetime, end: datetime,
                  state: AgentState) -> AgentTime:
    online = occupied = weighted = 0
    cursor = start
    for event in [*inside, None]:
        until = end if event is None else event.at
        span = (until - cursor) // MILLISECOND
        if span > 0 and state.status == "online":
            online += span
            occupied += span if state.held else 0
            weighted += round(span * state.load())
        if event is not None:
            state, cursor = apply(state, event, agent_id), event.at
    return AgentTime(agent_id, start, end, online, occupied, weighted, state)
