"""Agent time: online, occupied (holding at least one) and load-weighted, carried from bucket to bucket."""

import random
from datetime import timedelta
from itertools import pairwise

import pytest

from services.reporting.agent_time import AgentState, fold_agent, fold_agent_buckets
from tests.fixtures.reporting import Conversation, clock, status


def ann_morning():
    """ann (capacity 2) online 09:00, two chats overlapping, away 10:00, offline 10:30."""
    c1 = (Conversation("c1", "webchat").at("09:10:00", "conversation.assigned", agent="ann")
          .at("09:40:00", "conversation.resolved", agent="ann"))
    c2 = (Conversation("c2", "webchat").at("09:20:00", "conversation.assigned", agent="ann")
          .at("09:50:00", "conversation.transferred", agent="ann", from_agent="ann", to_agent="bob"))
    return [status("ann", "09:00:00", "online", 2), *c1.events, *c2.events,
            status("ann", "10:00:00", "away"), status("ann", "10:30:00", "offline")]


def test_online_occupied_and_weighted_time_by_hand():
    period = fold_agent("ann", ann_morning(), clock("08:00:00"), clock("11:00:00"))
    assert period.online_ms == 3600_000  # online 09:00 -> 10:00 (away does not count)
    assert period.occupied_ms == 40 * 60_000  # holding something 09:10 -> 09:50
    # 09:10-09:20 one of two (10 min × 1/2), 09:20-09:40 two (20 min × 1), 09:40-09:50 one (10 min × 1/2)
    assert period.weighted_ms == (5 + 20 + 5) * 60_000
    assert period.end_state == AgentState("offline", 2, frozenset())


def test_the_state_at_the_start_is_carried_in():
    held = AgentState("online", 2, frozenset({"c0"}))
    period = fold_agent("ann", [], clock("09:00:00"), clock("09:15:00"), held)
    assert (period.online_ms, period.occupied_ms, period.weighted_ms) == (900_000, 900_000, 450_000)
    assert period.end_state == held
    earlier = status("ann", "08:00:00", "offline")  # before the range: already in the state carried in
    assert fold_agent("ann", [earlier], clock("09:00:00"), clock("09:15:00"), held).online_ms == 900_000


def test_buckets_chain_their_states_and_add_up_to_the_whole_range():
    events = ann_morning()
    buckets = fold_agent_buckets("ann", events, clock("08:00:00"), clock("11:00:00"))
    whole = fold_agent("ann", events, clock("08:00:00"), clock("11:00:00"))
    assert len(buckets) == 12 and buckets[0].start == clock("08:00:00") and buckets[-1].end == clock("11:00:00")
    for before, after in pairwise(buckets):
        assert before.end == after.start
    assert sum(b.online_ms for b in buckets) == whole.online_ms
    assert sum(b.occupied_ms for b in buckets) == whole.occupied_ms
    assert abs(sum(b.weighted_ms for b in buckets) - whole.weighted_ms) <= len(buckets)  # rounded per span
    assert buckets[-1].end_state == whole.end_state
    # 09:15-09:30: one held until 09:20, two after: 5 min × 1/2 + 10 min × 1 = 12.5 min
    assert buckets[5].start == clock("09:15:00") and buckets[5].weighted_ms == 750_000


def test_every_release_frees_the_conversation_and_repeats_count_once():
    events = [
        status("ann", "09:00:00", "online", 4),
        *Conversation("a", "webchat").at("09:00:00", "conversation.assigned", agent="ann")
        .at("09:00:00", "conversation.assigned", agent="ann")  # twice: still one conversation
        .at("09:01:00", "conversation.resolved", agent="ann").events,
        *Conversation("b", "webchat").at("09:00:00", "conversation.assigned", agent="ann")
        .at("09:02:00", "conversation.queued", agent="ann", queue="billing", reason="rerouted").events,
        *Conversation("c", "webchat").at("09:00:00", "conversation.assigned", agent="ann")
        .at("09:03:00", "conversation.transferred", from_agent="ann", to_queue="tier2").events,
        *Conversation("d", "voice").at("09:00:00", "conversation.assigned", agent="ann")
        .at("09:04:00", "conversation.abandoned", agent="ann").events,
        *Conversation("e", "webchat").at("09:00:00", "conversation.assigned", agent="ann")
        .at("09:01:00", "conversation.transferred", from_agent="ann", rejected="offline")  # refused: kept
        .at("09:02:00", "conversation.resolved", agent="bob").events,  # someone else's: kept
    ]
    period = fold_agent("ann", events, clock("09:00:00"), clock("09:15:00"))
    # held 5 at first (load 4/4 = 1 capped), then 4, 3, 2, 1 after each minute: weighted by hand
    assert period.end_state.held == frozenset({"e"})
    assert period.occupied_ms == 900_000
    assert period.weighted_ms == 60_000 * (1 + 1 + 3 / 4 + 2 / 4) + 11 * 60_000 * (1 / 4)


def test_no_capacity_holding_something_counts_as_full():
    state = AgentState("online", 0, frozenset({"x"}))
    assert fold_agent("ann", [], clock("09:00:00"), clock("09:15:00"), state).weighted_ms == 900_000


def test_state_round_trips_through_plain_data():
    state = AgentState("online", 3, frozenset({"b", "a"}))
    assert state.as_dict() == {"status": "online", "max_conversations": 3, "held": ["a", "b"]}
    assert AgentState.from_dict(state.as_dict()) == state


def test_buckets_need_an_aligned_start():
    with pytest.raises(ValueError):
        fold_agent_buckets("ann", [], clock("09:07:00"), clock("10:00:00"))


def test_shuffled_and_repeated_events_give_the_same_time():
    events = ann_morning()
    expected = fold_agent_buckets("ann", events, clock("08:00:00"), clock("11:00:00"))
    rng = random.Random(2)
    for _ in range(20):
        mixed = events + rng.sample(events, k=4)
        rng.shuffle(mixed)
        assert fold_agent_buckets("ann", mixed, clock("08:00:00"), clock("11:00:00")) == expected


def test_an_event_at_the_end_of_a_bucket_belongs_to_the_next():
    events = [status("ann", "09:15:00", "online", 1)]
    first, second = fold_agent_buckets("ann", events, clock("09:00:00"), clock("09:30:00"))
    assert first.online_ms == 0 and first.end_state.status == "offline"
    assert second.online_ms == 900_000 and second.end - second.start == timedelta(minutes=15)
