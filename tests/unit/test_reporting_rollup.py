"""Rollups on random conversations: order-free, mergeable, plain data, buckets known in advance."""

import json
import random
from datetime import timedelta

from services.reporting.facts import FoldSettings, fold_conversation
from services.reporting.metrics import COUNTS, metrics
from services.reporting.rollup import bucket_rollup, buckets_touched, contributions, merge, rollup_between
from services.router.config import BusinessHours
from tests.fixtures.reporting import DAY, Conversation

QUEUES = ("billing", "phone", "tier2")
AGENTS = ("ann", "bob", "cid")
HOURS = BusinessHours(timezone="Europe/Kyiv", weekly={"mon": ["09:00-18:00"], "tue": ["09:00-18:00"]})


def random_conversation(rng: random.Random, n: int) -> Conversation:
    """A plausible life: open, queue, maybe answer, talk, transfer, resolve, reopen, rate, or abandon."""
    channel = rng.choice(("webchat", "voice", "email", "whatsapp"))
    c = Conversation(f"R{n}", channel)
    t = DAY + timedelta(seconds=rng.randint(0, 30 * 3600))

    def later(most: int) -> None:
        nonlocal t
        t += timedelta(seconds=rng.randint(0, most), milliseconds=rng.randint(0, 999))

    c.at(t, "conversation.opened").inbound(t)
    queue = rng.choice(QUEUES)
    c.at(t, "conversation.queued", queue=queue)
    later(400)
    if rng.random() < 0.2:
        c.at(t, "conversation.abandoned", queue=queue, reason="left")
        return c
    agent = rng.choice(AGENTS)
    c.at(t, "conversation.assigned", agent=agent, queue=queue)
    for _ in range(rng.randint(0, 4)):
        later(900)
        if rng.random() < 0.5:
            c.reply(t, agent, call_answered=channel == "voice")
        else:
            c.inbound(t)
        if rng.random() < 0.15:
            c.at(t, rng.choice(("sla.warning", "sla.breached")), agent=agent, target="first_response")
        if rng.random() < 0.15:
            labels = rng.sample(("invoice", "refund", "outage"), k=rng.randint(0, 2))
            c.at(t, "conversation.labels_changed", labels=labels)
        if rng.random() < 0.1:
            new_agent = rng.choice(AGENTS)
            c.at(t, "conversation.transferred", from_agent=agent, to_agent=new_agent)
            c.at(t, "conversation.assigned", agent=new_agent, queue=queue)
            agent = new_agent
    if rng.random() < 0.8:
        later(3 * 3600)
        c.at(t, "conversation.resolved", agent=agent, surveyed=rng.random() < 0.7, reason="done")
        if rng.random() < 0.5:
            later(3600)
            c.at(t, "csat.received", score=rng.randint(1, 5))
        if rng.random() < 0.2:
            later(9 * 86400)
            c.at(t, "conversation.reopened").inbound(t)
    return c


def random_day(seed: int, size: int = 40) -> list[Conversation]:
    rng = random.Random(seed)
    return [random_conversation(rng, n) for n in range(size)]


def rollups_by_bucket(all_facts) -> dict:
    """As the service computes them: each bucket from the facts touching it."""
    touching: dict = {}
    for facts in all_facts:
        for bucket in buckets_touched(facts):
            touching.setdefault(bucket, []).append(facts)
    return {b: bucket_rollup(facts, [], b) for b, facts in touching.items()}


SETTINGS = FoldSettings(service_level_seconds={"billing": 30}, hours={"billing": HOURS})


def test_random_conversations_in_any_order_give_the_same_bucket_rollups():
    for seed in range(5):
        day = random_day(seed)
        expected = rollups_by_bucket([fold_conversation(c.events, SETTINGS) for c in day])
        rng = random.Random(seed)
        mixed = []
        for c in day:
            events = c.events + rng.sample(c.events, k=rng.randint(0, len(c.events)))
            rng.shuffle(events)
            mixed.append(fold_conversation(events, SETTINGS))
        rng.shuffle(mixed)
        assert rollups_by_bucket(mixed) == expected


def test_bucket_rollups_merge_to_the_rollup_of_the_whole_range():
    for seed in range(5):
        facts = [fold_conversation(c.events, SETTINGS) for c in random_day(seed)]
        stored = rollups_by_bucket(facts)
        keys = list(stored)
        random.Random(seed).shuffle(keys)
        assert merge(stored[k] for k in keys) == rollup_between(facts, [], DAY, DAY + timedelta(days=30))


def test_the_buckets_a_conversation_touches_do_not_depend_on_the_configuration():
    other = FoldSettings(default_service_level_seconds=1, short_abandon_seconds=300, hours={q: HOURS for q in QUEUES})
    for c in random_day(9):
        touched = buckets_touched(fold_conversation(c.events, SETTINGS))
        assert touched == buckets_touched(fold_conversation(c.events, other))


def test_every_contribution_counts_in_the_bucket_of_its_instant_only():
    facts = [fold_conversation(c.events, SETTINGS) for c in random_day(4)]
    stored = rollups_by_bucket(facts)
    total = sum(len(contributions(f)) for f in facts)
    counted = sum(sum(v for k, v in g.get("counts", {}).items() if k != "csat_score_sum")
                  + sum(d["count"] for d in g.get("durations", {}).values())
                  for r in stored.values() for g in r["none"].values())
    scores = sum(1 for f in facts if f.csat_score is not None)  # csat_score_sum adds the score, not one
    assert counted == total - scores


def test_a_rollup_is_plain_data_with_string_keys_and_whole_numbers():
    facts = [fold_conversation(c.events, SETTINGS) for c in random_day(2)]
    day = merge(rollups_by_bucket(facts).values())

    def leaves(node):
        for key, value in node.items():
            assert isinstance(key, str)
            if isinstance(value, dict):
                yield from leaves(value)
            else:
                yield value

    assert all(type(v) is int for v in leaves(day))
    assert json.loads(json.dumps(day)) == day


def test_metrics_with_nothing_to_divide_by_are_none_and_counts_zero():
    empty = metrics({})
    assert all(empty[name] == 0 for name in COUNTS)
    assert empty["service_level"] is None and empty["abandonment_rate"] is None and empty["occupancy"] is None
    assert empty["csat_mean"] is None and empty["first_response_time_p90"] is None
    assert metrics({}, "queue")["occupancy"] is None and metrics({}, "agent")["opened"] is None
