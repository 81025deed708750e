"""The facts of one conversation from its events: any order, repeats once, reopens, calls, abandons."""

import random
from datetime import date, timedelta

import pytest

from services.reporting.facts import FoldSettings, fold_conversation
from services.router.config import BusinessHours, QueueConfig, RoutingConfig
from tests.fixtures.reporting import Conversation, clock

SETTINGS = FoldSettings(service_level_seconds={"billing": 60, "phone": 20})


def chat() -> Conversation:
    """A web chat in billing: open 10:00, queued, ann at 10:00:30, replies, resolved 10:30 with a survey."""
    return (Conversation("c1", "webchat")
            .at("10:00:00", "conversation.opened").inbound("10:00:00")
            .at("10:00:00", "conversation.queued", queue="billing", reason="opened")
            .at("10:00:30", "conversation.assigned", agent="ann", queue="billing")
            .reply("10:01:00", "ann")
            .inbound("10:06:00").inbound("10:07:00")  # two in a row: the clock runs from the first
            .reply("10:08:00", "ann")
            .inbound("10:29:00")  # "thanks", never answered before the close: no response interval
            .at("10:30:00", "conversation.resolved", agent="ann", surveyed=True))


def test_a_chat_gives_its_times_and_durations():
    facts = fold_conversation(chat().events, SETTINGS)
    assert (facts.channel, facts.queue, facts.first_queue) == ("webchat", "billing", "billing")
    assert facts.opened_at == facts.queued_at == clock("10:00:00")
    assert facts.assigned_at == facts.answered_at == clock("10:00:30")
    assert (facts.first_agent, facts.final_agent, facts.first_reply_agent) == ("ann", "ann", "ann")
    assert facts.first_reply_at == clock("10:01:00")
    assert facts.resolved_at == clock("10:30:00") and facts.surveyed
    assert facts.wait.ms == 30_000 and facts.answered_within_target  # 30 s ≤ billing's 60 s
    assert facts.first_response.ms == 60_000
    assert [(r.ms, r.agent_id) for r in facts.responses] == [(60_000, "ann"), (120_000, "ann")]  # 10:06 -> 10:08
    assert facts.handle.ms == 29 * 60_000 + 30_000  # 10:00:30 -> 10:30:00
    assert facts.resolution.ms == 30 * 60_000
    assert facts.abandoned_at is None and facts.reopens == 0


def test_any_order_and_repeats_give_the_same_facts():
    events = chat().at("10:31:00", "csat.received", score=4).events
    expected = fold_conversation(events, SETTINGS)
    rng = random.Random(7)
    for _ in range(50):
        mixed = events + rng.sample(events, k=rng.randint(0, len(events)))
        rng.shuffle(mixed)
        assert fold_conversation(mixed, SETTINGS) == expected


def test_the_queue_target_is_inclusive_and_the_last_queue_decides():
    facts = fold_conversation(chat().events, FoldSettings(service_level_seconds={"billing": 30}))
    assert facts.answered_within_target  # exactly 30 s
    facts = fold_conversation(chat().events, FoldSettings(service_level_seconds={"billing": 29.9}))
    assert not facts.answered_within_target
    facts = fold_conversation(chat().events, FoldSettings(default_service_level_seconds=20))
    assert not facts.answered_within_target  # billing has no target here: the default 20 s


def test_a_call_is_answered_when_picked_up_and_handled_until_the_hang_up():
    call = (Conversation("k1", "voice")
            .at("09:30:00", "conversation.opened").at("09:30:00", "conversation.queued", queue="phone")
            .at("09:30:05", "conversation.assigned", agent="bob", queue="phone")
            .reply("09:30:15", "bob", call_answered=True)
            .at("09:36:15", "conversation.resolved", agent="bob", reason="call completed"))
    facts = fold_conversation(call.events, SETTINGS)
    assert facts.assigned_at == clock("09:30:05") and facts.answered_at == clock("09:30:15")
    assert facts.wait.ms == 15_000 and facts.answered_within_target  # queued -> picked up, ≤ 20 s
    assert facts.handle.ms == 360_000  # picked up -> hung up; the 10 s of ringing is in neither
    assert facts.resolved_reason == "call completed"


def test_a_call_is_a_call_even_when_its_first_events_name_no_channel():
    call = (Conversation("k4", "voice")
            .at("09:30:00", "conversation.opened").at("09:30:00", "conversation.queued", queue="phone")
            .at("09:30:05", "conversation.assigned", agent="bob", queue="phone")
            .reply("09:30:15", "bob", call_answered=True)
            .at("09:36:15", "conversation.resolved", agent="bob", reason="call completed"))
    events = [e.model_copy(update={"channel": None}) if e.at < clock("09:30:15") else e for e in call.events]
    facts = fold_conversation(events, SETTINGS)
    assert facts.channel == "voice" and facts.answered_at == clock("09:30:15")
    assert facts.handle.ms == 360_000


def test_a_call_that_ended_before_anyone_picked_up_is_abandoned_not_resolved():
    call = (Conversation("k2", "voice")
            .at("11:10:00", "conversation.opened").at("11:10:00", "conversation.queued", queue="phone")
            .at("11:10:40", "conversation.assigned", agent="bob", queue="phone")  # ringing
            .at("11:10:50", "conversation.resolved", agent="bob", reason="call completed"))
    facts = fold_conversation(call.events, SETTINGS)
    assert facts.resolved_at is None and facts.handle is None and facts.answered_at is None
    assert facts.abandoned_at == clock("11:10:50") and facts.abandon_reason == "call completed"
    assert not facts.short_abandon  # 50 s in the queue


def test_short_abandon_is_below_the_configured_threshold():
    def left_after(seconds: int, settings: FoldSettings = SETTINGS):
        call = (Conversation("k3", "voice").at("11:00:00", "conversation.opened")
                .at("11:00:00", "conversation.queued", queue="phone")
                .at(clock("11:00:00") + timedelta(seconds=seconds), "conversation.abandoned", reason="hung up"))
        return fold_conversation(call.events, settings)

    assert left_after(9).short_abandon and left_after(9).abandoned_at == clock("11:00:09")
    assert not left_after(10).short_abandon  # the default threshold is 10 s: 10 s is not below it
    assert left_after(10, FoldSettings(short_abandon_seconds=15)).short_abandon


def test_an_answered_conversation_that_is_left_waiting_later_is_not_abandoned():
    events = (chat().at("10:10:00", "conversation.transferred", agent="ann", from_agent="ann", to_queue="tier2")
              .at("10:10:00", "conversation.queued", queue="tier2", reason="transferred")
              .at("10:12:00", "conversation.abandoned", queue="tier2", reason="closed")).events
    facts = fold_conversation([e for e in events if e.type != "conversation.resolved"], SETTINGS)
    assert facts.abandoned_at is None and facts.answered_at is not None
    assert facts.queue == "tier2" and facts.first_queue == "billing"
    assert len(facts.transfers) == 1 and facts.transfers[0].from_agent == "ann"


def test_a_refused_transfer_is_not_a_transfer():
    events = chat().at("10:05:00", "conversation.transferred", agent="ann", rejected="agent is offline").events
    assert fold_conversation(events, SETTINGS).transfers == ()


def test_a_reopen_takes_the_conversation_out_of_resolved_until_it_is_resolved_again():
    reopened = chat().at("12:00:00", "conversation.reopened").inbound("12:00:00")
    facts = fold_conversation(reopened.events, SETTINGS)
    assert facts.resolved_at is None and facts.handle is None and facts.resolution is None
    assert facts.reopens == 1 and facts.reopened_within_window_at == clock("12:00:00")

    reopened.at("12:01:00", "conversation.assigned", agent="cid", queue="billing").reply("12:03:00", "cid")
    reopened.at("12:10:00", "conversation.resolved", agent="cid", surveyed=False)
    facts = fold_conversation(reopened.events, SETTINGS)
    assert facts.resolved_at == clock("12:10:00") and facts.final_agent == "cid" and not facts.surveyed
    assert facts.resolution.ms == 130 * 60_000  # open 10:00 -> last resolution 12:10
    # handled 10:00:30 -> 10:30:00 and 12:01 -> 12:10; the 91 minutes resolved are not handle time
    assert facts.handle.ms == (29 * 60 + 30 + 9 * 60) * 1000
    assert [r.ms for r in facts.responses][-1] == 180_000  # 12:00 -> 12:03
    assert facts.first_agent == "ann"


def test_a_reopen_more_than_7_days_after_the_resolution_is_not_a_reopen_within_7_days():
    late = chat().at(clock("10:30:01") + timedelta(days=7), "conversation.reopened").events
    assert fold_conversation(late, SETTINGS).reopened_within_window_at is None
    in_time = chat().at(clock("10:30:00") + timedelta(days=7), "conversation.reopened").events
    assert fold_conversation(in_time, SETTINGS).reopened_within_window_at is not None


def test_csat_keeps_the_latest_valid_answer():
    events = (chat().at("10:40:00", "csat.received", score=3).at("10:45:00", "csat.received", score=2)
              .at("10:50:00", "csat.received", score=9).at("10:51:00", "csat.received", score=True)).events
    facts = fold_conversation(events, SETTINGS)
    assert (facts.csat_score, facts.csat_at) == (2, clock("10:45:00"))


def test_rule_labels_add_to_the_set_and_an_agents_edit_replaces_it():
    events = (chat().at("10:00:30", "conversation.labeled", labels=["refund"])
              .at("10:01:00", "conversation.labeled", labels=["delivery"])
              .at("10:02:00", "conversation.labels_changed", labels=["delivery"])  # the agent removed refund
              .at("10:03:00", "conversation.labeled", labels=["outage"])).events
    assert fold_conversation(events, SETTINGS).labels == ("delivery", "outage")
    assert fold_conversation(list(reversed(events)), SETTINGS).labels == ("delivery", "outage")  # any arrival order


def test_labels_are_the_last_set():
    events = (chat().at("10:02:00", "conversation.labels_changed", labels=["refund"])
              .at("10:09:00", "conversation.labels_changed", labels=["refund", "invoice", "invoice"])).events
    assert fold_conversation(events, SETTINGS).labels == ("invoice", "refund")


def test_producer_clocks_that_disagree_never_give_a_negative_duration():
    events = (Conversation("c9", "webchat").at("10:00:05", "conversation.opened")
              .at("10:00:05", "conversation.queued", queue="billing")
              .at("10:00:04", "conversation.assigned", agent="ann")).events  # the router's clock is a second behind
    assert fold_conversation(events, SETTINGS).wait.ms == 0


def test_business_durations_use_the_hours_of_the_conversations_queue():
    hours = BusinessHours(timezone="Europe/Kyiv", weekly={"mon": ["12:15-19:00"]})  # 10:15-17:00 UTC in March
    config = RoutingConfig(queues=[QueueConfig(name="billing", hours=hours), QueueConfig(name="phone")],
                           default_queue="billing")
    settings = FoldSettings.from_routing_config(config, service_level_seconds={"billing": 60})
    assert set(settings.hours) == {"billing"} and settings.target_seconds("billing") == 60
    facts = fold_conversation(chat().events, settings)
    assert facts.first_response.business_ms == 0  # 10:00 -> 10:01 UTC, before 10:15
    assert facts.resolution.business_ms == 15 * 60_000  # 10:15 -> 10:30
    assert facts.resolution.ms == 30 * 60_000


def test_a_queue_without_hours_is_always_open():
    facts = fold_conversation(chat().events, SETTINGS)
    assert facts.resolution.business_ms == facts.resolution.ms


def test_no_events_is_an_error():
    with pytest.raises(ValueError):
        fold_conversation([], SETTINGS)


def test_holidays_in_a_queue_hours_leave_no_business_time():
    hours = BusinessHours(timezone="UTC", weekly={"mon": ["09:00-17:00"]}, holidays=[date(2026, 3, 2)])
    facts = fold_conversation(chat().events, FoldSettings(hours={"billing": hours}))
    assert facts.resolution.business_ms == 0 and facts.wait.business_ms == 0
