"""Metrics from a merged rollup group: the names and formulas of docs/metrics.md.

Durations are in seconds; ratios are fractions (0.8, not 80); a ratio with nothing to divide by
is None, and so is a metric that does not apply to the grouping (no agent abandons a
conversation; no queue is online).
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from services.reporting import histogram
from services.reporting.intervals import BUCKET, tiles_by_interval
from services.reporting.rollup import GROUPINGS, Rollup, merge
from shared.models import HANDOVER_CODES

Metrics = dict[str, float | int | None]

COUNTS = (
    "opened", "queued", "answered", "answered_within_target", "resolved", "abandoned", "short_abandoned",
    "transferred", "reopened", "sla_warnings", "sla_breaches", "sla_breaches_first_response",
    "sla_breaches_resolution", "csat_responses", "surveyed",
    "bot_conversations", "bot_resolved", "bot_handed_over", "abandoned_with_bot", "closed_without_agent",
    *(f"bot_handed_over_{code}" for code in HANDOVER_CODES),
)
DURATIONS = (
    "first_response_time", "first_response_time_business", "response_time", "response_time_business",
    "wait_time", "wait_time_business", "handle_time", "resolution_time", "resolution_time_business", "bot_time",
)
PERCENTILES = (("p50", 0.5), ("p90", 0.9))
# Counted only where a conversation is, never for an agent (nobody answered them).
NOT_FOR_AGENTS = frozenset({"opened", "queued", "abandoned", "short_abandoned", "abandonment_rate",
                            "bot_conversations", "bot_resolved", "bot_handed_over", "abandoned_with_bot",
                            "deflection_rate", "bot_time_mean", "bot_time_p50", "bot_time_p90",
                            "closed_without_agent", *(f"bot_handed_over_{code}" for code in HANDOVER_CODES)})
AGENT_TIME = frozenset({"online_seconds", "occupied_seconds", "occupancy", "occupancy_weighted"})


@dataclass(frozen=True)
class ServiceLevelOptions:
    """Genesys Cloud's service-level calculation options (docs/metrics.md, "Service level")."""

    include_abandons: bool = True
    include_short_abandons: bool = False


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def service_level(counts: Mapping[str, int], options: ServiceLevelOptions = ServiceLevelOptions()) -> float | None:
    """Answered within target over answered plus the abandons the options count."""
    abandons = 0
    if options.include_abandons:
        abandons = counts.get("abandoned", 0)
        if not options.include_short_abandons:
            abandons -= counts.get("short_abandoned", 0)
    return _ratio(counts.get("answered_within_target", 0), counts.get("answered", 0) + abandons)


def _duration_metrics(name: str, duration: Mapping[str, Any] | None) -> Metrics:
    if not duration or not duration.get("count"):
        return {f"{name}_mean": None, **{f"{name}_{label}": None for label, _ in PERCENTILES}}
    ranks = histogram.percentiles(duration["histogram"], [p for _, p in PERCENTILES])
    return {f"{name}_mean": duration["sum_ms"] / duration["count"] / 1000,
            **{f"{name}_{label}": value for (label, _), value in zip(PERCENTILES, ranks, strict=True)}}


def metrics(group: Mapping[str, Any], grouping: str = "none",
            options: ServiceLevelOptions = ServiceLevelOptions()) -> Metrics:
    """Every metric of one (merged) rollup group, by the names of docs/metrics.md."""
    counts = group.get("counts", {})
    durations = group.get("durations", {})
    agent_ms = group.get("agent_ms", {})
    online = agent_ms.get("online", 0)
    result: Metrics = {name: counts.get(name, 0) for name in COUNTS}
    result["service_level"] = service_level(counts, options)
    result["abandonment_rate"] = _ratio(counts.get("abandoned", 0), counts.get("queued", 0))
    result["deflection_rate"] = _ratio(counts.get("bot_resolved", 0), counts.get("bot_conversations", 0))
    result["csat_mean"] = _ratio(counts.get("csat_score_sum", 0), counts.get("csat_responses", 0))
    result["csat_satisfied_share"] = _ratio(counts.get("csat_satisfied", 0), counts.get("csat_responses", 0))
    result["csat_response_rate"] = _ratio(counts.get("surveyed_answered", 0), counts.get("surveyed", 0))
    result["online_seconds"] = online / 1000
    result["occupied_seconds"] = agent_ms.get("occupied", 0) / 1000
    result["occupancy"] = _ratio(agent_ms.get("occupied", 0), online)
    result["occupancy_weighted"] = _ratio(agent_ms.get("weighted", 0), online)
    for name in DURATIONS:
        result |= _duration_metrics(name, durations.get(name))
    blank = NOT_FOR_AGENTS if grouping == "agent" else AGENT_TIME if grouping not in ("none", "agent") else ()
    return {name: (None if name in blank else value) for name, value in result.items()}


@dataclass(frozen=True)
class StoredRollups:
    """Stored rollups of several spans (15-minute buckets, UTC 1, 2, 6, 24 hours): by span, by UTC start.

    Read for one query (`ReportStore.bucket_rollups` with its interval and zone): each span holds
    the documents that `tiles_by_interval` with these spans names, a missing one had nothing."""

    by_span: Mapping[timedelta, Mapping[datetime, Rollup]]


def summary(bucket_rollups: Mapping[datetime, Rollup] | StoredRollups, start: datetime, end: datetime, interval: str, tz: str,
            grouping: str = "none", options: ServiceLevelOptions = ServiceLevelOptions()) -> list[dict[str, Any]]:
    """Rows {key, interval_start, metrics} of [start, end) per local interval, from stored bucket rollups.

    Only the asked grouping of each bucket is merged; a bucket missing from the mapping had nothing.
    A mapping is of 15-minute buckets; StoredRollups merges, per interval, the coarsest stored spans
    that tile it exactly (the same sums: a coarser rollup is the merge of its buckets).
    """
    if grouping not in GROUPINGS:
        raise ValueError(f"unknown grouping {grouping!r}: use one of {', '.join(GROUPINGS)}")
    rows = []
    by_span = bucket_rollups.by_span if isinstance(bucket_rollups, StoredRollups) else {BUCKET: bucket_rollups}
    for local_start, tiles in tiles_by_interval(start, end, interval, tz, tuple(by_span)):
        stored = (by_span[span].get(at) for at, span in tiles)
        merged = merge(rollup.get(grouping, {}) for rollup in stored if rollup is not None)
        for key in sorted(merged):
            rows.append({"key": {} if grouping == "none" else {grouping: key}, "interval_start": local_start,
                         "metrics": metrics(merged[key], grouping, options)})
    return rows
