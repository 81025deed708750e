"""Per-bucket rollups: what every conversation and agent adds to a 15-minute bucket, by grouping.

A rollup is plain data, string keys and whole numbers only (JSON- and BSON-storable; integers so
that merging in any order gives exactly the same sums):

    {grouping: {key: group}}      grouping: none (key "all"), queue, agent, channel, label
    group = {
        "counts":    {name: int},                                   # only names that are not 0
        "durations": {name: {"count": int, "sum_ms": int, "histogram": {str(bucket): int}}},
        "agent_ms":  {"online": int, "occupied": int, "weighted": int},   # none and agent only
    }

`merge` adds rollups key by key. A bucket's rollup is a pure function of the facts of the
conversations that touch it and of the agents' time in it, so the service recomputes any
bucket from scratch, in any order, after a crash, and gets the same document.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.reporting import histogram
from services.reporting.agent_time import AgentTime
from services.reporting.facts import ConversationFacts, Measured
from services.reporting.intervals import BUCKET, bucket_start

Rollup = dict[str, dict[str, dict[str, Any]]]
GROUPINGS = ("none", "queue", "agent", "channel", "label")
ALL = "all"  # the one key of the "none" grouping


@dataclass(frozen=True)
class Contribution:
    """A count (ms None) or a duration sample, the instant that picks its bucket, the agent it counts for."""

    name: str
    at: datetime
    agent_id: str | None
    ms: int | None = None
    amount: int = 1  # what a count adds (a CSAT score adds itself to csat_score_sum)


def _count(name: str, at: datetime | None, agent_id: str | None) -> list[Contribution]:
    return [] if at is None else [Contribution(name, at, agent_id)]


def _duration(name: str, measured: Measured | None, agent_id: str | None, business: bool = True) -> list[Contribution]:
    """A duration counts in the bucket where it ends, in calendar time and (most) in business time."""
    if measured is None:
        return []
    calendar = Contribution(f"{name}_time", measured.end, agent_id, measured.ms)
    if not business:
        return [calendar]
    return [calendar, Contribution(f"{name}_time_business", measured.end, agent_id, measured.business_ms)]


def contributions(facts: ConversationFacts) -> list[Contribution]:
    """Everything a conversation adds to the rollups: THE attribution rule (docs/metrics.md, "Which bucket").

    Each contribution belongs to the bucket of the instant that completes it (Genesys Cloud's rule:
    a metric is emitted when what it measures completes). The agent is the one the metric is about.
    The instants do not depend on the fold's settings (answered_within_target and short_abandoned
    exist only under some, at the instant of answered and abandoned, which always exist), so
    `buckets_touched` is the same under every configuration.
    """
    f = facts
    answered_within = f.answered_at if f.answered_within_target else None
    resolved_surveyed = f.resolved_at if f.surveyed else None
    surveyed_answered = resolved_surveyed if f.csat_score is not None else None
    satisfied_at = f.csat_at if f.csat_score is not None and f.csat_score >= 4 else None
    def bot_ended(outcome: str) -> datetime | None:
        return f.bot_ended_at if f.bot_outcome == outcome else None

    found: list[Contribution] = [
        *_count("opened", f.opened_at, None),
        *_count("bot_conversations", f.opened_at if f.bot else None, None),
        *_count("bot_resolved", bot_ended("resolved"), None),
        *_count("bot_handed_over", bot_ended("handed_over"), None),
        *_count(f"bot_handed_over_{f.bot_handover_code}", bot_ended("handed_over") if f.bot_handover_code else None,
                None),
        *_count("abandoned_with_bot", bot_ended("abandoned"), None),
        *_count("closed_without_agent", f.closed_at, None),
        *_duration("bot", f.bot_time, None, business=False),
        *_count("queued", f.queued_at, None),
        *_count("answered", f.answered_at, f.first_agent),
        *_count("answered_within_target", answered_within, f.first_agent),
        *_count("resolved", f.resolved_at, f.final_agent),
        *_count("surveyed", resolved_surveyed, f.final_agent),
        *_count("surveyed_answered", surveyed_answered, f.final_agent),
        *_count("reopened", f.reopened_within_window_at, f.final_agent),
        *_count("abandoned", f.abandoned_at, None),
        *_count("short_abandoned", f.abandoned_at if f.short_abandon else None, None),
        *_count("csat_responses", f.csat_at, f.final_agent),
        *_count("csat_satisfied", satisfied_at, f.final_agent),
        *_duration("wait", f.wait, f.first_agent),
        *_duration("first_response", f.first_response, f.first_reply_agent),
        *_duration("handle", f.handle, f.final_agent, business=False),  # agents' working time: no hours
        *_duration("resolution", f.resolution, f.final_agent),
    ]
    for response in f.responses:
        found += _duration("response", response, response.agent_id)
    for transfer in f.transfers:
        found += _count("transferred", transfer.at, transfer.from_agent)
    for alert in f.sla_alerts:
        found += _count("sla_warnings" if alert.level == "warning" else "sla_breaches", alert.at, alert.agent_id)
        if alert.level == "breached" and alert.target in ("first_response", "resolution"):
            found += _count(f"sla_breaches_{alert.target}", alert.at, alert.agent_id)
    if f.csat_score is not None and f.csat_at is not None:
        found.append(Contribution("csat_score_sum", f.csat_at, f.final_agent, amount=f.csat_score))
    return found


def buckets_touched(facts: ConversationFacts) -> set[datetime]:
    """The buckets (UTC starts) this conversation adds anything to."""
    return {bucket_start(c.at) for c in contributions(facts)}


def _keys(facts: ConversationFacts, agent_id: str | None) -> Iterator[tuple[str, str]]:
    """The (grouping, key) rows a contribution counts in: the conversation's, and its agent's."""
    yield "none", ALL
    if facts.queue is not None:
        yield "queue", facts.queue
    if facts.channel is not None:
        yield "channel", facts.channel
    for label in facts.labels:
        yield "label", label
    if agent_id is not None:
        yield "agent", agent_id


def _group(rollup: Rollup, grouping: str, key: str) -> dict[str, Any]:
    return rollup.setdefault(grouping, {}).setdefault(key, {})


def _add(group: dict[str, Any], contribution: Contribution) -> None:
    if contribution.ms is None:
        counts = group.setdefault("counts", {})
        counts[contribution.name] = counts.get(contribution.name, 0) + contribution.amount
        return
    empty = {"count": 0, "sum_ms": 0, "histogram": {}}
    duration = group.setdefault("durations", {}).setdefault(contribution.name, empty)
    duration["count"] += 1
    duration["sum_ms"] += contribution.ms
    histogram.add(duration["histogram"], contribution.ms)


def _add_agent_time(rollup: Rollup, period: AgentTime) -> None:
    if not period.online_ms:
        return
    for grouping, key in (("none", ALL), ("agent", period.agent_id)):
        agent_ms = _group(rollup, grouping, key).setdefault("agent_ms", {"online": 0, "occupied": 0, "weighted": 0})
        agent_ms["online"] += period.online_ms
        agent_ms["occupied"] += period.occupied_ms
        agent_ms["weighted"] += period.weighted_ms


def bucket_rollup(facts: Iterable[ConversationFacts], agent_times: Iterable[AgentTime], bucket: datetime) -> Rollup:
    """The rollup of one bucket from the facts of the conversations touching it and the agents' time in it.

    Facts may touch other buckets too; only their contributions inside this one count. Agent
    times are the ones whose period starts in this bucket.
    """
    if bucket_start(bucket) != bucket:
        raise ValueError(f"{bucket} is not the start of a 15-minute bucket")
    return rollup_between(facts, agent_times, bucket, bucket + BUCKET)


def rollup_between(facts: Iterable[ConversationFacts], agent_times: Iterable[AgentTime], start: datetime,
                   end: datetime) -> Rollup:
    """The rollup of the contributions and agent periods starting in [start, end), whole buckets or not."""
    rollup: Rollup = {}
    for conversation in facts:
        for contribution in contributions(conversation):
            if start <= contribution.at < end:
                for grouping, key in _keys(conversation, contribution.agent_id):
                    _add(_group(rollup, grouping, key), contribution)
    for period in agent_times:
        if start <= period.start < end:
            _add_agent_time(rollup, period)
    return rollup


def add_into(total: dict[str, Any], part: dict[str, Any]) -> dict[str, Any]:
    """Add a rollup (or any part of one) into another, key by key; returns the total.

    The hot loop of every summary (a 30-day summary adds about a million histogram counts):
    an exact type test and a bound `get` instead of isinstance and setdefault."""
    get = total.get
    for key, value in part.items():
        if value.__class__ is dict:
            inner = get(key)
            if inner is None:
                total[key] = inner = {}
            add_into(inner, value)
        else:
            total[key] = get(key, 0) + value
    return total


def merge(rollups: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The sum of rollups (or of groups, or of any parts of the same shape); the inputs are left as they were."""
    total: dict[str, Any] = {}
    for rollup in rollups:
        add_into(total, rollup)
    return total
