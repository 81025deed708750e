"""Mergeable duration histograms: percentiles from merged buckets with a bounded, documented error.

A histogram is a sparse dict {str(bucket index): count}, so it is plain data (JSON, BSON) and two
are merged by adding counts key by key. Bucket edges are whole seconds:

- below EXACT_BELOW_SECONDS (3 minutes) every bucket is one second wide, so a duration is known
  to the second (it is counted as its whole seconds, truncated);
- above, each bucket is at most MAX_RELATIVE_WIDTH (4 %) wider than its lower edge, so its
  midpoint is within 2 % of any duration in it;
- past LAST_EDGE_SECONDS (400 days) one open bucket holds the rest, reported as its lower edge.

Percentiles are nearest-rank (docs/metrics.md, "Percentiles").
"""

import math
from bisect import bisect_right
from collections.abc import Iterable, Mapping

Histogram = dict[str, int]

EXACT_BELOW_SECONDS = 180
MAX_RELATIVE_WIDTH = 0.04
LAST_EDGE_SECONDS = 400 * 86400


def _edges() -> tuple[int, ...]:
    edges = list(range(EXACT_BELOW_SECONDS + 1))
    while edges[-1] < LAST_EDGE_SECONDS:
        # floor keeps every bucket within 4 % of its lower edge; edges stay whole seconds.
        edges.append(max(edges[-1] + 1, math.floor(edges[-1] * (1 + MAX_RELATIVE_WIDTH))))
    return tuple(edges)


EDGES = _edges()  # bucket i is [EDGES[i], EDGES[i + 1]) seconds; the last one is [EDGES[-1], ∞)
BUCKETS = len(EDGES)


def bucket_of(milliseconds: int) -> int:
    """The index of the bucket a duration falls in (a negative duration counts as zero)."""
    seconds = max(0, milliseconds) // 1000
    if seconds < EXACT_BELOW_SECONDS:
        return seconds
    return bisect_right(EDGES, seconds) - 1


def representative(index: int) -> float:
    """The value a bucket stands for: its whole second, its midpoint, or the open bucket's lower edge."""
    if index < EXACT_BELOW_SECONDS or index == BUCKETS - 1:
        return float(EDGES[index])
    return (EDGES[index] + EDGES[index + 1]) / 2


def add(histogram: Histogram, milliseconds: int) -> None:
    """Count one duration."""
    key = str(bucket_of(milliseconds))
    histogram[key] = histogram.get(key, 0) + 1


def histogram_of(durations_ms: Iterable[int]) -> Histogram:
    """A histogram of these durations."""
    histogram: Histogram = {}
    for milliseconds in durations_ms:
        add(histogram, milliseconds)
    return histogram


def percentiles(histogram: Mapping[str, int], ranks: Iterable[float]) -> list[float | None]:
    """Nearest-rank percentiles (0 < p ≤ 1): the bucket holding the ⌈p·n⌉-th smallest duration; None when empty."""
    total = sum(histogram.values())
    if total == 0:
        return [None for _ in ranks]
    ordered = sorted((int(key), count) for key, count in histogram.items() if count)
    answers: list[float | None] = []
    for p in ranks:
        wanted = max(1, math.ceil(round(p * total, 9)))  # round: 0.07 * 100 is 7.000000000000001
        seen = 0
        for index, count in ordered:
            seen += count
            if seen >= wanted:
                answers.append(representative(index))
                break
    return answers
