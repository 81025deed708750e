"""The latency benchmark's pure pieces: its schedule, percentiles, windows and saturation rule (no clock)."""

import itertools
import math

import pytest

from bench.latency import (
    Sample,
    Saturation,
    Sent,
    Stats,
    Step,
    Traffic,
    achieved_rate,
    between,
    conversation_of,
    doubling_rates,
    expected_open,
    find_saturation,
    lag_for,
    last_index_of,
    message_count,
    parse_args,
    samples_of,
    saturation_reason,
    schedule,
    stats_of,
    sustain_rate_of,
    target_line,
    windows,
)
from bench.stack import DeskRecorder, percentile


def step(offered: float, achieved: float, p99: float, *, scheduled: int = 1000, errors: int = 0,
         missing: int = 0, verdict: str = "") -> Step:
    return Step(offered, 20.0, scheduled, errors, missing, achieved, Stats(scheduled, p99 / 2, p99, p99, p99), verdict)


# -- the schedule ------------------------------------------------------------------------------


def test_message_i_is_due_at_i_over_the_rate():
    assert schedule(4, 5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    due = schedule(640, 12800)
    assert len(due) == 12800 and due[-1] == pytest.approx(12799 / 640)
    assert all(b > a for a, b in itertools.pairwise(due))


def test_the_schedule_refuses_a_rate_that_is_not_positive():
    with pytest.raises(ValueError):
        schedule(0, 10)


def test_a_run_offers_rate_times_seconds_messages_and_at_least_one():
    assert message_count(30, 10) == 300
    assert message_count(2.5, 3) == 8  # 7.5 rounds to even: 8
    assert message_count(0.01, 1) == 1


def test_one_message_in_per_conversation_opens_a_conversation_at_every_rate():
    for rate, gap in ((10, 1.0), (640, 1.0), (30, 2.5)):
        lag = lag_for(rate, gap, 10)
        targets = [conversation_of(i, 10, lag) for i in range(20_000)]
        seen: set[int] = set()
        opened = [i for i, c in enumerate(targets) if not (c in seen or seen.add(c))]
        assert opened == list(range(0, 20_000, 10))  # exactly every 10th, from the very start
        assert all(c <= i // 10 for i, c in enumerate(targets))  # a follow-up goes to an opened conversation


def test_a_conversation_gets_its_messages_gap_seconds_apart_then_is_finished():
    rate, gap, per_conversation = 100, 1.0, 10
    lag = lag_for(rate, gap, per_conversation)
    assert lag == 10
    targets = [conversation_of(i, per_conversation, lag) for i in range(20_000)]
    mine = [i for i, c in enumerate(targets) if c == 500]  # well past the start-up wrap
    assert len(mine) == per_conversation
    assert [b - a for a, b in itertools.pairwise(mine)] == [lag * per_conversation + 1] * (per_conversation - 1)
    assert mine[-1] == last_index_of(500, per_conversation, lag)
    assert expected_open(rate, gap, per_conversation, 2.0) == pytest.approx(9 * 10 + 20)


def test_finished_conversations_are_those_whose_last_message_is_old_enough():
    traffic = Traffic(None, "http://intake", "hi", "r100", 100, 1.0, 10)  # no I/O until run
    traffic.next_index = 5000
    finished = traffic.finished(2.0)  # due 2 s (200 messages) before message 5000
    assert last_index_of(finished - 1, 10, traffic.lag) <= 4800 < last_index_of(finished, 10, traffic.lag)
    traffic.next_index = 10
    assert traffic.finished(2.0) == 0
    assert traffic.thread_of(0) == "r100-c0" and traffic.thread_of(10) == "r100-c1"


def test_rates_double_up_to_the_maximum():
    assert doubling_rates(10, 80) == [10, 20, 40, 80]
    assert doubling_rates(10, 100) == [10, 20, 40, 80]
    assert doubling_rates(5, 5) == [5]
    with pytest.raises(ValueError):
        doubling_rates(10, 5)


# -- percentiles and windows -------------------------------------------------------------------


def test_percentiles_are_nearest_rank():
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile(values, 99) == 99
    assert percentile(values, 100) == 100
    assert percentile([7.0], 99) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0) == 1.0
    assert math.isnan(percentile([], 50))


def test_stats_sort_their_input_and_are_nan_when_empty():
    stats = Stats.of([30.0, 10.0, 20.0, 1000.0])
    assert (stats.count, stats.p50, stats.p99, stats.max) == (4, 20.0, 1000.0, 1000.0)
    empty = Stats.of([])
    assert empty.count == 0 and math.isnan(empty.p99) and math.isnan(empty.max)


def test_latency_counts_from_the_due_time_and_a_frame_never_seen_is_missing():
    recorder = DeskRecorder()
    sent = Sent(start=100.0, due={"a": 100.0, "b": 100.5, "c": 101.0})
    recorder.on_frame({"type": "message", "message": {"message_id": "a", "direction": "inbound"}}, 100.2)
    # b sat in a stalled POST: its frame came at 102.5, 2 s after it was due, whenever it was sent.
    recorder.on_frame({"type": "conversation.assigned", "conversation": {"conversation_id": "k", "thread_id": "t"},
                       "messages": [{"message_id": "b"}]}, 102.5, "agent01")
    samples = {s.due: s.latency_ms for s in samples_of(sent, recorder)}
    assert samples[0.0] == pytest.approx(200.0)
    assert samples[0.5] == pytest.approx(2000.0)
    assert samples[1.0] == math.inf
    assert recorder.by_thread == {"t": "k"} and recorder.assigned["k"].agent_id == "agent01"
    stats, missing = stats_of(samples_of(sent, recorder))
    assert (stats.count, missing, stats.max) == (2, 1, pytest.approx(2000.0))


def test_samples_go_to_the_window_of_their_due_time():
    samples = [Sample(due, 10.0 * due) for due in (0.0, 59.9, 60.0, 119.0, 125.0)]
    rows = windows(samples, 60, 130)
    assert [(a, b) for a, b, _ in rows] == [(0, 60), (60, 120), (120, 130)]
    assert [[s.due for s in bucket] for _, _, bucket in rows] == [[0.0, 59.9], [60.0, 119.0], [125.0]]
    assert [s.due for s in between(samples, 59.9, 119.0)] == [59.9, 60.0]


def test_achieved_counts_arrivals_within_the_window():
    assert achieved_rate([0.5, 1.0, 9.9, 10.0, 10.1, 30.0], start=0.0, seconds=10.0) == pytest.approx(0.4)
    assert achieved_rate([], 0.0, 10.0) == 0.0


# -- saturation --------------------------------------------------------------------------------


def test_a_rate_kept_up_with_is_not_saturated():
    assert saturation_reason(step(100, 98, 120.0), reference_p99_ms=80.0) == ""


def test_achieved_below_90_percent_of_offered_is_saturation():
    assert "achieved 75% of offered" in saturation_reason(step(400, 300, 120.0), reference_p99_ms=80.0)


def test_p99_exploding_is_saturation_with_a_floor_of_one_second():
    assert "p99 over 1000 ms" in saturation_reason(step(100, 99, 1200.0), reference_p99_ms=50.0)
    assert saturation_reason(step(100, 99, 1200.0), reference_p99_ms=200.0) == ""  # under 10 x 200 ms
    assert "p99 over 2000 ms" in saturation_reason(step(100, 99, 2500.0), reference_p99_ms=200.0)
    assert "p99" in saturation_reason(step(100, 0, math.nan), reference_p99_ms=50.0)  # nothing arrived


def test_losing_more_than_one_percent_is_saturation():
    assert saturation_reason(step(100, 99, 100.0, errors=5, missing=5), 80.0) == ""
    assert "11 of 1000 failed or missing" in saturation_reason(step(100, 99, 100.0, errors=5, missing=6), 80.0)


def test_the_saturation_rate_is_the_highest_achieved_up_to_the_first_saturated_step():
    steps = [step(10, 10, 50), step(20, 20, 50), step(40, 39, 60), step(80, 55, 4000, verdict="achieved 69%"),
             step(160, 70, 9000, verdict="achieved 44%")]  # a step after the first saturated one is ignored
    assert find_saturation(steps) == Saturation(55, True, 80)
    assert sustain_rate_of(find_saturation(steps)) == 27.5
    assert find_saturation(steps[:3]) == Saturation(39, False, None)
    with pytest.raises(ValueError):
        find_saturation([])


def test_targets_print_pass_or_fail_and_nan_fails():
    assert target_line("sustained", 249.0, 250) == "target sustained: p99 <= 250 ms: PASS (p99 249.0 ms)"
    assert target_line("sustained", 251.0, 250).endswith("FAIL (p99 251.0 ms)")
    assert "FAIL" in target_line("shift", math.nan, 1000)


def test_arguments_have_defaults_for_every_mode_and_refuse_nonsense():
    config = parse_args([])
    assert (config.mode, config.sustain_seconds, config.sustain_rate) == ("all", 300.0, None)
    assert (config.shift_agents, config.shift_conversations, config.shift_messages, config.shift_rate) == (20, 200, 70, 30)
    assert parse_args(["--rates", "40,10,20"]).rates == [10, 20, 40]
    with pytest.raises(SystemExit):
        parse_args(["--rates", "10,-1"])
    with pytest.raises(SystemExit):
        parse_args(["--shift-agents", "1", "--shift-conversations", "500"])  # 500 on one agent: over its 100
