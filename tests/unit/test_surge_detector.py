"""The surge detector's behaviour: bursts of many customers raise an incident, one chatty customer
or a greeting does not, workspaces never mix, incidents link what matches and end when quiet."""

import itertools
import math
import pickle
from datetime import timedelta

import pytest

from services.assist.surges.detector import (
    ConversationLinked,
    InboundMessage,
    IncidentDetected,
    IncidentResolved,
    IncidentUpdated,
    SurgeDetector,
    SurgeParams,
    poisson_tail,
    substantive,
)
from services.assist.surges.streams import DAY_START, generate

BURST_AT = DAY_START + timedelta(hours=12)
PAYMENT = ["payment by card fails", "I can't pay with my card, it says transaction declined",
           "card payment is not working", "my card is rejected at payment", "card payments are broken?",
           "can't complete payment, error after entering card details"]


@pytest.fixture(scope="module")
def background() -> list[InboundMessage]:
    """A day of ordinary traffic (noon to 13:00 the next day: past the detector's warm-up), no bursts.
    Seed 8: a day on which the detector raises no false alert (3 of seeds 8-15 have one; their rate
    is measured in test_surge_evaluation.py), so that what these tests see is their own doing."""
    stream = generate(8, days=1, bursts_per_day=0, lead_in=timedelta(hours=12))
    return [m for m in stream.messages if m.at < BURST_AT + timedelta(hours=1)]


def message(n: int, conversation: str, text: str, at, workspace: str = "w1") -> InboundMessage:
    return InboundMessage(f"x{n}", workspace, conversation, "webchat", text, at)


def burst(customers: int, minutes: float = 10, workspace: str = "w1", first: int = 0) -> list[InboundMessage]:
    """`customers` different customers reporting a failing card payment within `minutes`."""
    step = minutes / customers
    return [message(first + i, f"burst-{workspace}-{first + i}", PAYMENT[i % len(PAYMENT)],
                    BURST_AT + timedelta(minutes=i * step), workspace) for i in range(customers)]


def run(detector: SurgeDetector, *streams: list[InboundMessage]) -> list:
    changes = []
    for item in sorted((m for s in streams for m in s), key=lambda m: m.at):
        changes += detector.observe(item)
    return changes


def of(kind, changes: list) -> list:
    return [change for change in changes if isinstance(change, kind)]


def test_a_burst_of_customers_raises_one_incident_and_links_them(background):
    changes = run(SurgeDetector(), background, burst(8))
    detected = of(IncidentDetected, changes)
    assert len(detected) == 1
    incident = detected[0].incident_id
    linked = {c.conversation_id for c in of(ConversationLinked, changes) if c.incident_id == incident}
    burst_conversations = {f"burst-w1-{i}" for i in range(8)}
    assert len(linked & burst_conversations) >= 6
    others = linked - burst_conversations  # background customers with the same problem may join it
    assert all(any(word in m.text.lower() for word in ("pay", "card")) for m in background
               if m.conversation_id in others and substantive(m.text))
    assert BURST_AT <= detected[0].at <= BURST_AT + timedelta(minutes=10)


def test_the_same_background_alone_raises_nothing(background):
    assert of(IncidentDetected, run(SurgeDetector(), background)) == []


def test_one_chatty_customer_is_not_a_surge(background):
    chatty = [message(i, "chatty", PAYMENT[i % len(PAYMENT)], BURST_AT + timedelta(minutes=i)) for i in range(20)]
    assert of(IncidentDetected, run(SurgeDetector(), background, chatty)) == []


def test_workspaces_never_mix(background):
    """Four customers here and four there are no surge in either, though eight are in one."""
    other = [InboundMessage(m.id + "-w2", "w2", m.conversation_id, m.channel, m.text, m.at) for m in background]
    params = SurgeParams(min_conversations=6)
    split = run(SurgeDetector(params), background, other, burst(4, workspace="w1"), burst(4, workspace="w2", first=4))
    assert of(IncidentDetected, split) == []
    together = run(SurgeDetector(params), background, other, burst(8, workspace="w1"))
    assert {change.workspace_id for change in of(IncidentDetected, together)} == {"w1"}
    assert all(change.workspace_id == "w1" for change in of(ConversationLinked, together))


def test_messages_matching_an_open_incident_are_linked_once_per_conversation(background):
    detector = SurgeDetector()
    head = [m for m in background if m.at < BURST_AT + timedelta(minutes=15)]
    incident = of(IncidentDetected, run(detector, head, burst(8)))[0].incident_id
    later = BURST_AT + timedelta(minutes=16)
    changes = detector.observe(message(100, "late", "the card payment fails again, transaction declined", later))
    assert [(c.incident_id, c.conversation_id) for c in of(ConversationLinked, changes)] == [(incident, "late")]
    again = detector.observe(message(101, "late", "my card is rejected at payment", later + timedelta(seconds=5)))
    assert of(ConversationLinked, again) == []  # the conversation is linked already
    unrelated = detector.observe(message(102, "other", "what size should I take for the sneakers?", later))
    assert of(ConversationLinked, unrelated) == []
    assert "late" in detector.open_incidents("w1")[incident]


def test_an_incident_is_resolved_after_quiet(background):
    detector = SurgeDetector()
    head = [m for m in background if m.at < BURST_AT]
    changes = run(detector, head, burst(8))
    incident = of(IncidentDetected, changes)[0].incident_id
    linked = {c.conversation_id for c in of(ConversationLinked, changes)}
    last_link = BURST_AT + timedelta(minutes=10 * 7 / 8)  # the burst's last customer
    quiet = detector.params.quiet
    assert of(IncidentResolved, detector.tick(last_link + quiet - timedelta(seconds=1))) == []
    resolved = of(IncidentResolved, detector.tick(last_link + quiet))
    assert [(r.incident_id, r.at, r.conversations) for r in resolved] == [(incident, last_link + quiet, len(linked))]
    assert detector.open_incidents("w1") == {}


def test_updates_are_rate_limited(background):
    detector = SurgeDetector(SurgeParams(update_every=timedelta(seconds=30), update_links=100))
    head = [m for m in background if m.at < BURST_AT]
    changes = run(detector, head, burst(8))
    incident = of(IncidentDetected, changes)[0].incident_id
    start = BURST_AT + timedelta(minutes=11)
    updates = []
    for i in range(20):  # a new customer every 5 s: at most one update per 30 s
        at = start + timedelta(seconds=5 * i)
        updates += [(u.at, u.conversations) for u in
                    of(IncidentUpdated, detector.observe(message(200 + i, f"more-{i}", PAYMENT[i % 6], at)))]
    assert updates and all(b[0] - a[0] >= timedelta(seconds=30) for a, b in itertools.pairwise(updates))
    assert len(updates) <= 4  # 95 s of links: updates at most 30 s apart
    assert updates[-1][1] < len(detector.open_incidents("w1")[incident])  # the rest waits for the next slot
    flushed = of(IncidentUpdated, detector.tick(start + timedelta(seconds=5 * 19 + 30)))
    assert [u.conversations for u in flushed] == [len(detector.open_incidents("w1")[incident])]


@pytest.mark.parametrize("text", ["hi", "thanks", "Hello!", "добрый день", "Дякую!", "any news?", "ну що там?",
                                  "ok thanks a lot", "ау", "спасибо большое", "👍", "12345"])
def test_greetings_and_short_messages_are_ignored(text):
    assert not substantive(text)
    detector = SurgeDetector(SurgeParams(warmup=0, min_conversations=2))
    changes = [c for i in range(30) for c in detector.observe(message(i, f"c{i}", text, BURST_AT))]
    assert changes == []
    assert len(detector.workspaces["w1"].window) == 0


@pytest.mark.parametrize("text", ["payment by card fails", "нет интернета в Киеве", "застосунок вилітає"])
def test_a_short_problem_is_not_a_greeting(text):
    assert substantive(text)


def test_memory_is_bounded(background):
    params = SurgeParams(max_clusters=16, max_window=50, warmup=0)
    detector = SurgeDetector(params)
    run(detector, background)
    space = detector.workspaces["w1"]
    assert len(space.window) <= 50
    assert space.centroids.shape[0] == 16 and space.sums.shape[0] == 16 and len(space.conversations) == 16
    assert space.used.sum() == 16  # full, and evicting
    current = [m for m in space.window if space.generation[m.slot] == m.generation]
    assert space.counts.sum() == len(current)  # evicted clusters' members no longer count
    assert sum(sum(counter.values()) for counter in space.conversations) == len(current)
    many = SurgeDetector(SurgeParams(max_workspaces=3))
    for i in range(10):
        many.observe(message(i, "c", "payment by card fails", BURST_AT + timedelta(seconds=i), workspace=f"w{i}"))
    assert list(many.workspaces) == ["w7", "w8", "w9"]


def test_a_snapshot_restored_carries_on_as_the_original(background):
    head = [m for m in background if m.at < BURST_AT + timedelta(minutes=2)]
    tail = [m for m in background if m.at >= BURST_AT + timedelta(minutes=2)]
    events = burst(8)
    before = [m for m in events if m.at < BURST_AT + timedelta(minutes=2)]
    after = [m for m in events if m.at >= BURST_AT + timedelta(minutes=2)]
    original = SurgeDetector()
    run(original, head, before)
    restored = SurgeDetector()
    restored.restore(pickle.loads(pickle.dumps(original.snapshot())))
    expected, got = run(original, tail, after), run(restored, tail, after)
    assert got == expected
    assert of(IncidentDetected, got)


def test_a_replay_finds_the_same_incident_ids(background):
    messages = sorted(background + burst(8), key=lambda m: m.at)
    first = of(IncidentDetected, run(SurgeDetector(), messages))
    second = of(IncidentDetected, run(SurgeDetector(), messages))
    assert first and [d.incident_id for d in first] == [d.incident_id for d in second]


@pytest.mark.parametrize(("n", "expected"), [(1, 0.5), (5, 1.2), (10, 0.3), (3, 3.0), (2, 7.5), (40, 10.0)])
def test_poisson_tail_is_the_upper_tail(n, expected):
    below = sum(math.exp(-expected) * expected ** k / math.factorial(k) for k in range(n))
    assert poisson_tail(n, expected) == pytest.approx(1 - below, rel=1e-6, abs=1e-15)
    assert poisson_tail(0, expected) == 1.0
