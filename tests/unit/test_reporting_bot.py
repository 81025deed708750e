"""Reports of the pre-routing bot (docs/metrics.md, "The pre-routing bot"): what the bot was given, resolved,
handed over and lost, the deflection rate, and the human metrics left to what humans did (pure, no I/O).

The hour, by hand (billing's target 20 s, the default's too):
    B1 billing  webchat   with the bot 10:00:00, resolved by it 10:01:30 (90 s)
    B2 billing  webchat   with the bot 10:00:00, handed over 10:02:00, ann 10:02:10 (waited 10 s), replied 10:03,
                          resolved 10:20
    B3 billing  telegram  with the bot 10:05:00, the customer left 10:06:00 (60 s)
    B4 sales    webchat   no bot: queued 10:10:00, bob 10:10:20 (20 s), replied 10:11, resolved 10:30
    B5 sales    telegram  with the bot 10:40:00, handed over 10:41:00, left the queue 10:41:30 (a 30 s abandon)
"""

import random
from datetime import timedelta

import pytest

from services.reporting.export import COLUMNS, csv_row
from services.reporting.facts import FoldSettings, fold_conversation
from services.reporting.metrics import COUNTS, metrics
from services.reporting.rollup import rollup_between
from services.reporting.store import OPEN_STATES, live_part
from shared.models import HANDOVER_CODES
from tests.fixtures.reporting import Conversation, clock

SETTINGS = FoldSettings(service_level_seconds={"billing": 20})
HANDED_OVER = "handed over by the bot"


def b1() -> Conversation:
    return (Conversation("B1", "webchat")
            .at("10:00:00", "conversation.opened", queue="billing", priority=0, skills=[], bot=True)
            .inbound("10:00:00").inbound("10:01:20")  # "how do I ...", then the "yes" press
            .at("10:01:30", "bot.resolved", queue="billing", duration_seconds=90.0))


def b2() -> Conversation:
    return (Conversation("B2", "webchat")
            .at("10:00:00", "conversation.opened", queue="billing", priority=0, skills=[], bot=True)
            .inbound("10:00:00")
            .at("10:02:00", "bot.handed_over", queue="billing", reason="the customer asked for a person",
                code="declined")
            .at("10:02:00", "conversation.queued", queue="billing", reason=HANDED_OVER)
            .at("10:02:10", "conversation.assigned", agent="ann", queue="billing")
            .reply("10:03:00", "ann")
            .at("10:20:00", "conversation.resolved", agent="ann"))


def b3() -> Conversation:
    return (Conversation("B3", "telegram")
            .at("10:05:00", "conversation.opened", queue="billing", priority=0, skills=[], bot=True)
            .at("10:06:00", "conversation.abandoned", queue="billing", reason="the customer left"))


def b4() -> Conversation:
    return (Conversation("B4", "webchat")
            .at("10:10:00", "conversation.opened", queue="sales", priority=0, skills=[])
            .at("10:10:00", "conversation.queued", queue="sales", reason="opened")
            .at("10:10:20", "conversation.assigned", agent="bob", queue="sales")
            .reply("10:11:00", "bob")
            .at("10:30:00", "conversation.resolved", agent="bob"))


def b5() -> Conversation:
    return (Conversation("B5", "telegram")
            .at("10:40:00", "conversation.opened", queue="sales", priority=0, skills=[], bot=True)
            .at("10:41:00", "bot.handed_over", queue="sales", reason="the customer did not reply to the bot",
                code="no_reply")
            .at("10:41:00", "conversation.queued", queue="sales", reason=HANDED_OVER)
            .at("10:41:30", "conversation.abandoned", queue="sales", reason="the customer left"))


HOUR = [b1, b2, b3, b4, b5]


def fold(conversation: Conversation):
    return fold_conversation(conversation.events, SETTINGS)


def hour_rollup(*scripts):
    facts = [fold(script()) for script in scripts]
    return rollup_between(facts, [], clock("10:00:00"), clock("11:00:00"))


# -- facts ---------------------------------------------------------------------------------------


def test_a_bot_resolved_conversation_was_never_queued_answered_abandoned_or_resolved_by_a_human():
    facts = fold(b1())
    assert (facts.bot, facts.bot_outcome, facts.bot_ended_at) == (True, "resolved", clock("10:01:30"))
    assert facts.bot_time.ms == 90_000 and facts.bot_handover_reason is None
    assert facts.queued_at is facts.answered_at is facts.abandoned_at is facts.resolved_at is None
    assert facts.wait is facts.first_response is facts.resolution is None
    assert facts.responses == ()  # the customer's messages were the bot's to answer
    assert facts.state == "bot_resolved" and facts.queue == "billing"


def test_a_handed_over_conversation_waits_from_the_handover_and_its_first_response_from_the_opening():
    facts = fold(b2())
    assert (facts.bot_outcome, facts.bot_ended_at, facts.bot_handover_reason) == (
        "handed_over", clock("10:02:00"), "the customer asked for a person")
    assert facts.bot_time.ms == 120_000
    assert facts.queued_at == clock("10:02:00")
    assert facts.wait.ms == 10_000 and facts.answered_within_target  # queue entry (the handover) -> ann
    assert facts.first_response.ms == 180_000  # the customer's message -> ann's reply, the bot's time in it
    assert facts.resolved_at == clock("10:20:00") and facts.final_agent == "ann"


def test_leaving_the_bot_is_an_abandon_with_the_bot_and_leaving_the_queue_after_a_handover_is_a_queue_abandon():
    with_bot = fold(b3())
    assert (with_bot.bot_outcome, with_bot.bot_ended_at, with_bot.bot_time.ms) == ("abandoned", clock("10:06"), 60_000)
    assert with_bot.abandoned_at is None and not with_bot.short_abandon and with_bot.state == "abandoned"
    in_queue = fold(b5())
    assert in_queue.bot_outcome == "handed_over" and in_queue.abandoned_at == clock("10:41:30")
    assert not in_queue.short_abandon  # 30 s from the handover, not from the opening


def test_without_the_bot_nothing_of_the_bot_is_recorded():
    facts = fold(b4())
    assert (facts.bot, facts.bot_outcome, facts.bot_ended_at, facts.bot_time) == (False, None, None, None)


def test_while_the_bot_has_it_it_waits_in_no_queue_on_the_live_view():
    facts = fold_conversation(b1().events[:2], SETTINGS)  # opened, first message: the bot is on it
    assert (facts.state, facts.entered_queue_at, facts.bot_outcome) == ("with_bot", None, None)
    assert live_part(facts)["state"] not in OPEN_STATES
    handed = fold_conversation(b2().events[:4], SETTINGS)  # up to the handover's queue entry
    assert (handed.state, handed.entered_queue_at) == ("waiting", clock("10:02:00"))


@pytest.mark.parametrize("script", HOUR)
def test_any_order_and_repeats_give_the_same_facts(script):
    events = script().events
    expected = fold_conversation(events, SETTINGS)
    rng = random.Random(11)
    for _ in range(30):
        mixed = events + rng.sample(events, k=rng.randint(0, len(events)))
        rng.shuffle(mixed)
        assert fold_conversation(mixed, SETTINGS) == expected


def test_an_abandon_is_the_bots_even_when_the_producers_clocks_put_it_before_the_opening():
    skewed = (Conversation("B6", "webchat")
              .at("10:00:02", "conversation.opened", queue="billing", priority=0, skills=[], bot=True)
              .at("10:00:01", "conversation.abandoned", queue="billing", reason="the customer left"))
    facts = fold(skewed)
    assert facts.bot_outcome == "abandoned" and facts.abandoned_at is None


# -- metrics -------------------------------------------------------------------------------------


def test_the_hours_bot_metrics_by_hand():
    m = metrics(hour_rollup(*HOUR)["none"]["all"])
    assert (m["bot_conversations"], m["bot_resolved"], m["bot_handed_over"], m["abandoned_with_bot"]) == (4, 1, 2, 1)
    assert m["deflection_rate"] == 1 / 4
    # By why: b2's customer asked for a person, b5's never replied to the bot.
    assert {code: m[f"bot_handed_over_{code}"] for code in HANDOVER_CODES} == {
        "no_match": 0, "declined": 1, "other_question": 0, "bot_late": 0, "no_reply": 1}
    assert (m["bot_time_mean"], m["bot_time_p50"], m["bot_time_p90"]) == ((90 + 120 + 60 + 60) / 4, 60, 120)


def test_the_hours_human_metrics_by_hand():
    m = metrics(hour_rollup(*HOUR)["none"]["all"])
    # queued B2 B4 B5; answered B2 B4, both within 20 s; abandoned B5 (not short); resolved B2 B4
    assert (m["opened"], m["queued"], m["answered"], m["answered_within_target"]) == (5, 3, 2, 2)
    assert (m["abandoned"], m["short_abandoned"], m["resolved"]) == (1, 0, 2)
    assert m["abandonment_rate"] == 1 / 3 and m["service_level"] == 2 / 3
    assert m["wait_time_mean"] == (10 + 20) / 2
    assert m["first_response_time_mean"] == (180 + 60) / 2


def test_by_queue_and_by_channel():
    rollup = hour_rollup(*HOUR)
    billing, sales = metrics(rollup["queue"]["billing"], "queue"), metrics(rollup["queue"]["sales"], "queue")
    assert (billing["bot_conversations"], billing["bot_resolved"], billing["bot_handed_over"],
            billing["abandoned_with_bot"], billing["deflection_rate"]) == (3, 1, 1, 1, 1 / 3)
    assert (billing["queued"], billing["abandoned"], billing["abandonment_rate"]) == (1, 0, 0 / 1)
    assert (sales["bot_conversations"], sales["bot_handed_over"], sales["deflection_rate"]) == (1, 1, 0 / 1)
    assert (sales["queued"], sales["abandoned"], sales["abandonment_rate"]) == (2, 1, 1 / 2)
    webchat, telegram = (metrics(rollup["channel"][c], "channel") for c in ("webchat", "telegram"))
    assert (webchat["bot_conversations"], webchat["bot_resolved"], webchat["deflection_rate"]) == (2, 1, 1 / 2)
    assert (telegram["bot_conversations"], telegram["bot_handed_over"], telegram["abandoned_with_bot"]) == (2, 1, 1)
    assert telegram["deflection_rate"] == 0 / 2


def test_no_bot_no_deflection_rate_and_no_agent_row_counts_the_bot():
    only_b4 = metrics(hour_rollup(b4)["none"]["all"])
    assert (only_b4["bot_conversations"], only_b4["deflection_rate"], only_b4["bot_time_mean"]) == (0, None, None)
    rollup = hour_rollup(*HOUR)
    assert set(rollup["agent"]) == {"ann", "bob"}  # the bot is no agent
    ann = metrics(rollup["agent"]["ann"], "agent")
    assert ann["bot_conversations"] is ann["bot_resolved"] is ann["deflection_rate"] is ann["bot_time_mean"] is None


BOT_METRICS = {"bot_conversations", "bot_resolved", "bot_handed_over", "abandoned_with_bot", "deflection_rate",
               "bot_time_mean", "bot_time_p50", "bot_time_p90"}


@pytest.mark.parametrize("grouping,key", [("none", "all"), ("queue", "billing"), ("channel", "webchat")])
def test_a_bot_resolved_conversation_changes_no_human_metric_but_opened(grouping, key):
    without = metrics(hour_rollup(b2, b3, b4, b5)[grouping][key], grouping)
    with_b1 = metrics(hour_rollup(*HOUR)[grouping][key], grouping)
    changed = {name for name in with_b1 if with_b1[name] != without[name]}
    assert changed - BOT_METRICS == {"opened"}
    assert with_b1["opened"] == without["opened"] + 1


def test_the_counts_are_metrics_and_the_rollup_stays_whole_numbers():
    assert {"bot_conversations", "bot_resolved", "bot_handed_over", "abandoned_with_bot"} <= set(COUNTS)
    counts = hour_rollup(*HOUR)["none"]["all"]["counts"]
    assert all(isinstance(value, int) for value in counts.values())


def test_each_count_is_in_the_bucket_of_its_instant():
    quarter = rollup_between([fold(b2())], [], clock("10:00:00"), clock("10:00:00") + timedelta(minutes=2))
    assert quarter["none"]["all"]["counts"] == {"opened": 1, "bot_conversations": 1}  # given at the opening
    later = rollup_between([fold(b2())], [], clock("10:02:00"), clock("10:15:00"))
    assert later["none"]["all"]["counts"]["bot_handed_over"] == 1  # handed over at the handover


# -- the CSV export ------------------------------------------------------------------------------


def test_the_export_row_says_what_the_bot_did():
    assert COLUMNS[-6:] == ("bot", "bot_outcome", "bot_ended_at", "bot_seconds", "bot_handover_reason",
                            "bot_handover_code")
    row = csv_row(fold(b2()))
    assert (row["bot"], row["bot_outcome"], row["bot_seconds"], row["bot_handover_reason"], row["bot_handover_code"]) == (
        True, "handed_over", 120.0, "the customer asked for a person", "declined")
    assert row["bot_ended_at"] == clock("10:02:00").isoformat()
    plain = csv_row(fold(b4()))
    assert (plain["bot"], plain["bot_outcome"], plain["bot_seconds"]) == (False, None, None)
