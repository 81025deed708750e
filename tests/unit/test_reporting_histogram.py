"""Duration histograms: exact to the second below 3 minutes, within 2 % above, mergeable, bounded."""

import math
import random

from services.reporting import histogram
from services.reporting.histogram import EDGES, EXACT_BELOW_SECONDS, bucket_of, histogram_of, percentiles
from services.reporting.rollup import merge


def exact_nearest_rank(values_s: list[float], p: float) -> float:
    ordered = sorted(values_s)
    return ordered[max(1, math.ceil(round(p * len(ordered), 9))) - 1]


def within_precision(estimate: float, exact: float) -> bool:
    """The documented precision: the whole second below 3 minutes, 2 % above."""
    if exact < EXACT_BELOW_SECONDS:
        return estimate == math.floor(exact)
    return abs(estimate - exact) <= 0.02 * exact


def test_bucket_edges_are_bounded_whole_seconds_and_at_most_4_percent_wide_above_3_minutes():
    assert histogram.BUCKETS <= 500
    assert EDGES[:EXACT_BELOW_SECONDS + 1] == tuple(range(EXACT_BELOW_SECONDS + 1))
    widths = [(EDGES[i + 1] - EDGES[i]) / EDGES[i] for i in range(EXACT_BELOW_SECONDS, len(EDGES) - 1)]
    assert max(widths) <= 0.04
    assert EDGES[-1] >= 400 * 86400


def test_small_durations_are_counted_in_their_whole_second():
    assert bucket_of(0) == 0
    assert bucket_of(59_999) == 59  # 59.999 s is 59 whole seconds
    assert bucket_of(60_000) == 60
    assert bucket_of(179_999) == 179
    assert bucket_of(-5_000) == 0  # clocks of two producers disagreeing: never negative


def test_percentiles_are_nearest_rank_and_exact_below_3_minutes():
    # 10 durations 1..10 s: p50 is the 5th smallest, p90 the 9th.
    hist = histogram_of(s * 1000 for s in range(1, 11))
    assert percentiles(hist, [0.5, 0.9]) == [5.0, 9.0]
    # 11 durations: p50 = ⌈5.5⌉ = 6th, p90 = ⌈9.9⌉ = 10th.
    hist = histogram_of(s * 1000 for s in range(1, 12))
    assert percentiles(hist, [0.5, 0.9]) == [6.0, 10.0]
    assert percentiles({}, [0.5, 0.9]) == [None, None]


def test_random_durations_percentiles_are_within_the_documented_precision():
    rng = random.Random(11)
    for _ in range(200):
        # log-uniform from 0.1 s to 100 days: both regions, and the edges between them
        values = [math.exp(rng.uniform(math.log(0.1), math.log(100 * 86400))) for _ in range(rng.randint(1, 60))]
        hist = histogram_of(int(v * 1000) for v in values)
        for p, estimate in zip((0.5, 0.9), percentiles(hist, [0.5, 0.9]), strict=True):
            exact = exact_nearest_rank([int(v * 1000) / 1000 for v in values], p)
            assert within_precision(estimate, exact), (p, estimate, exact)


def test_merged_histograms_are_the_histogram_of_all_durations():
    rng = random.Random(5)
    durations = [rng.randint(0, 30 * 86400 * 1000) for _ in range(500)]
    parts = [histogram_of(durations[i:i + 37]) for i in range(0, 500, 37)]
    assert merge(parts) == histogram_of(durations)
    assert sum(merge(parts).values()) == 500
