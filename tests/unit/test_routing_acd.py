"""The ACD rules of the routing core, one by one, with a controlled clock (pure, no I/O)."""

from collections import deque
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.router.config import RoutingConfig, classify
from services.router.core import RoutingCore
from shared import events
from shared.models import (
    AgentSnapshot,
    Contact,
    ConversationAnswered,
    ConversationAssigned,
    ConversationEnded,
    ConversationMessage,
    ConversationOffered,
    ConversationResolved,
    ConversationRevoked,
    InboundMessage,
    NotAnswered,
    OfferAnswer,
    ThreadClosed,
    TransferRequest,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday
_versions: dict[str, int] = {}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def config(**fields) -> RoutingConfig:
    return RoutingConfig.model_validate(fields)


def msg(thread: str, text: str = "hi", *, channel: str = "webchat", priority: int = 0, queue: str | None = None,
        skills=(), **metadata) -> InboundMessage:
    if queue:
        metadata["queue"] = queue
    return InboundMessage(message_id=f"{thread}:{text}", channel=channel, thread_id=thread, contact=Contact(id=thread),
                          text=text, priority=priority, skills=list(skills), metadata=metadata, received_at=T0)


def agent(agent_id: str, *, skills=None, capacity: int = 3, status: str = "online", media=None) -> AgentSnapshot:
    _versions[agent_id] = _versions.get(agent_id, 0) + 1
    return AgentSnapshot(workspace_id="default", agent_id=agent_id, version=_versions[agent_id], skills=skills or {},
                         max_conversations=capacity, channel_capacity=media or {}, status=status)


def assigned(outcome) -> list[tuple[str, str]]:
    return [(k[1], d.conversation.thread_id) for k, d in outcome.deliveries if isinstance(d, ConversationAssigned)]


def offered(outcome) -> list[tuple[str, str]]:
    return [(k[1], d.conversation.thread_id) for k, d in outcome.deliveries if isinstance(d, ConversationOffered)]


def revoked(outcome) -> list[tuple[str, str]]:
    return [(k[1], d.reason) for k, d in outcome.deliveries if isinstance(d, ConversationRevoked)]


def event_types(outcome) -> list[str]:
    return [e.type for e in outcome.events]


def conversation_of(core: RoutingCore, thread: str, channel: str = "webchat"):
    return core.conversations[core.by_thread[("default", channel, thread)]]


def resolve(core: RoutingCore, thread: str, now: datetime, channel: str = "webchat"):
    c = conversation_of(core, thread, channel)
    return core.on_resolved(ConversationResolved(workspace_id="default", conversation_id=c.conversation_id), now)


def with_agents(cfg: RoutingConfig | None = None, *snapshots: AgentSnapshot) -> RoutingCore:
    core = RoutingCore(cfg)
    for snapshot in snapshots:
        core.on_agent(snapshot, at(0))
    return core


# -- classification -----------------------------------------------------------------------

RULES = config(
    queues=[{"name": "default"}, {"name": "billing"}, {"name": "vip", "priority": 3}, {"name": "ru"},
            {"name": "email"}, {"name": "refunds"}],
    rules=[
        {"queue": "vip", "attributes": {"tier": "vip"}},
        {"queue": "email", "channels": ["email"]},
        {"queue": "ru", "languages": ["ru"]},
        {"queue": "billing", "keywords": ["invoice", "billing"]},
        {"queue": "refunds", "pattern": r"refund\s+#\d+", "priority": 2},
    ],
)


@pytest.mark.parametrize(("message", "queue", "reason", "priority"), [
    (msg("a", "hello"), "default", "default", 0),
    (msg("a", "my INVOICE is wrong"), "billing", "rule 3", 0),
    (msg("a", "invoiced?"), "default", "default", 0),  # whole words only
    (msg("a", "about refund #123"), "refunds", "rule 4", 2),
    (msg("a", "hello", channel="email"), "email", "rule 1", 0),
    (msg("a", "привет", language="ru"), "ru", "rule 2", 0),
    (msg("a", "invoice", attributes={"tier": "vip"}), "vip", "rule 0", 3),  # first matching rule wins
    (msg("a", "invoice", queue="ru"), "ru", "hint", 0),  # the API caller's hint beats the rules
    (msg("a", "hello", queue="nope"), "default", "default", 0),  # an unknown hint is ignored
    (msg("a", "hello", skills=["tech", "de"]), "skills:de+tech", "message skills", 0),
    (msg("a", "hello", priority=9, attributes={"tier": "vip"}), "vip", "rule 0", 10),  # capped at 10
])
def test_classification_order_hint_rules_skills_default(message, queue, reason, priority):
    assert classify(RULES, message, T0) == (queue, reason, priority)


def test_a_closed_queue_hands_new_conversations_to_its_closed_overflow():
    cfg = config(queues=[
        {"name": "default", "hours": {"timezone": "Europe/Berlin", "weekly": {"mon": ["09:00-17:00"]},
                                      "holidays": ["2026-12-25"]}, "closed_overflow": "night"},
        {"name": "night"},
    ])
    monday_noon_berlin = datetime(2026, 3, 2, 11, 0, tzinfo=UTC)
    monday_evening_berlin = datetime(2026, 3, 2, 17, 30, tzinfo=UTC)
    christmas = datetime(2026, 12, 25, 11, 0, tzinfo=UTC)
    assert classify(cfg, msg("a"), monday_noon_berlin)[0] == "default"
    assert classify(cfg, msg("a"), monday_evening_berlin)[:2] == ("night", "default; default closed")
    assert classify(cfg, msg("a"), christmas)[0] == "night"


@pytest.mark.parametrize("bad", [
    {"default_queue": "missing"},
    {"queues": [{"name": "a"}, {"name": "a"}], "default_queue": "a"},
    {"rules": [{"queue": "ghost"}]},
    {"rules": [{"queue": "default", "pattern": "("}]},
    {"queues": [{"name": "default", "hours": {"timezone": "Mars/Base", "weekly": {}}}]},
    {"queues": [{"name": "default", "max_wait": {"seconds": 10, "action": "overflow"}}]},
    {"queues": [{"name": "default", "expand": [{"after_seconds": 20}, {"after_seconds": 10}]}]},
    {"queues": [{"name": "skills:x"}], "default_queue": "skills:x"},
])
def test_an_invalid_configuration_is_refused_with_the_reason(bad):
    with pytest.raises(ValidationError):
        RoutingConfig.model_validate(bad)


# -- skills with proficiency, capacity per channel -------------------------------------------

def test_a_queue_needs_every_skill_at_its_minimum_proficiency():
    cfg = config(queues=[{"name": "default", "skills": {"billing": 3, "de": 1}}])
    core = with_agents(cfg, agent("low", skills={"billing": 2, "de": 5}), agent("nolang", skills={"billing": 5}),
                       agent("fit", skills={"billing": 3, "de": 1}))
    assert assigned(core.on_message(msg("a"), at(1))) == [("fit", "a")]


def test_capacity_per_medium_three_chats_and_five_emails():
    core = with_agents(None, agent("ann", capacity=8, media={"chat": 3, "email": 5}))
    chats = [assigned(core.on_message(msg(f"c{i}"), at(i))) for i in range(4)]
    emails = [assigned(core.on_message(msg(f"e{i}", channel="email"), at(i))) for i in range(6)]
    assert sum(map(len, chats)) == 3 and sum(map(len, emails)) == 5
    ann = core.agents[("default", "ann")]
    assert (ann.load["chat"], ann.load["email"]) == (3, 5)


def test_a_call_needs_voice_capacity_and_blocks_new_chats_until_it_ends():
    core = with_agents(None, agent("chatonly", capacity=5), agent("ann", capacity=5, media={"voice": 1}))
    assert assigned(core.on_message(msg("call1", channel="voice"), at(1))) == [("ann", "call1")]
    # ann is on a call: chats go to the other agent; a second call waits
    assert assigned(core.on_message(msg("c1"), at(2))) == [("chatonly", "c1")]
    assert assigned(core.on_message(msg("c2"), at(3))) == [("chatonly", "c2")]
    assert assigned(core.on_message(msg("call2", channel="voice"), at(4))) == []
    # the call ends: the waiting call is hers (a call is exclusive, one at a time)
    assert assigned(resolve(core, "call1", at(5), "voice")) == [("ann", "call2")]


# -- strategies and priority aging ----------------------------------------------------------

def _two_agents(strategy: str, **extra) -> RoutingCore:
    cfg = config(queues=[{"name": "default", "strategy": strategy, "skills": {"tech": 1}}])
    return with_agents(cfg, agent("ann", skills={"tech": extra.get("ann", 1)}, capacity=5),
                       agent("bob", skills={"tech": extra.get("bob", 1)}, capacity=5))


def test_least_occupied_spreads_the_load():
    core = _two_agents("least_occupied")
    owners = [assigned(core.on_message(msg(f"c{i}"), at(i)))[0][0] for i in range(4)]
    assert sorted(owners) == ["ann", "ann", "bob", "bob"]


def test_round_robin_takes_turns_even_when_loads_differ():
    core = _two_agents("round_robin")
    owners = [assigned(core.on_message(msg(f"c{i}"), at(i)))[0][0] for i in range(4)]
    assert owners == ["ann", "bob", "ann", "bob"]
    resolve(core, "c1", at(5))
    resolve(core, "c3", at(6))  # bob holds nothing, ann two: still ann's turn
    assert assigned(core.on_message(msg("c4"), at(7))) == [("ann", "c4")]


def test_longest_idle_goes_to_whoever_has_been_quiet_longest():
    core = _two_agents("longest_idle")
    assert assigned(core.on_message(msg("c1"), at(10))) == [("ann", "c1")]  # both came online at 0: by id
    resolve(core, "c1", at(20))  # ann was active at 20, bob has been idle since 0
    assert assigned(core.on_message(msg("c2"), at(30))) == [("bob", "c2")]


def test_most_skilled_first_even_if_busier():
    core = _two_agents("most_skilled", ann=2, bob=5)
    owners = [assigned(core.on_message(msg(f"c{i}"), at(i)))[0][0] for i in range(3)]
    assert owners == ["bob", "bob", "bob"]


def test_priority_first_but_aging_keeps_low_priority_from_starving():
    cfg = config(aging_seconds_per_priority=60)
    core = with_agents(cfg, agent("ann", capacity=1))
    core.on_message(msg("busy"), at(0))
    core.on_message(msg("old-low"), at(10))  # waits since 10, priority 0
    core.on_message(msg("new-high", priority=2), at(40))  # counts as waiting since 40 - 120 = -80
    assert assigned(resolve(core, "busy", at(50))) == [("ann", "new-high")]
    core.on_message(msg("late-high", priority=2), at(200))  # counts as since 80: old-low (10) is ahead
    assert assigned(resolve(core, "new-high", at(210))) == [("ann", "old-low")]


# -- sticky and last agent ------------------------------------------------------------------

def test_a_conversation_reopened_in_the_window_goes_back_to_its_last_agent():
    core = with_agents(config(last_agent_window_seconds=3600), agent("ann"), agent("bob"))
    first = assigned(core.on_message(msg("t", "one"), at(1)))[0][0]
    resolve(core, "t", at(2))
    core.on_message(msg("other"), at(3))  # someone else's, to make the least-occupied choice differ
    reopened = core.on_message(msg("t", "two"), at(100))
    assert assigned(reopened) == [(first, "t")]
    assert reopened.deliveries[0][1].conversation.routing["rule"] == "last agent"


def test_a_busy_last_agent_gets_a_few_seconds_then_anyone_who_fits():
    core = with_agents(config(last_agent_wait_seconds=10), agent("ann", capacity=1))
    core.on_message(msg("t", "one"), at(1))
    resolve(core, "t", at(2))
    core.on_message(msg("x"), at(3))  # ann is full now
    core.on_agent(agent("bob"), at(4))
    assert assigned(core.on_message(msg("t", "two"), at(5))) == []  # reserved for ann
    assert assigned(core.tick(at(14))) == []
    assert assigned(core.tick(at(15))) == [("bob", "t")]


def test_a_busy_last_agent_who_frees_up_in_time_takes_it():
    core = with_agents(config(last_agent_wait_seconds=10), agent("ann", capacity=1))
    core.on_message(msg("t", "one"), at(1))
    resolve(core, "t", at(2))
    core.on_message(msg("x"), at(3))  # ann is full
    core.on_agent(agent("bob", capacity=1), at(3))
    core.on_message(msg("y"), at(3))  # and so is bob
    assert assigned(core.on_message(msg("t", "two"), at(4))) == []  # reserved for ann
    assert assigned(resolve(core, "y", at(5))) == []  # bob is free, but it is kept for ann
    assert assigned(resolve(core, "x", at(6))) == [("ann", "t")]


def test_outside_the_window_the_last_agent_does_not_matter():
    core = with_agents(config(last_agent_window_seconds=60), agent("ann", capacity=1))
    core.on_message(msg("t", "one"), at(1))
    resolve(core, "t", at(2))
    core.on_message(msg("x"), at(3))  # ann full
    core.on_agent(agent("bob"), at(4))
    assert assigned(core.on_message(msg("t", "two"), at(100))) == [("bob", "t")]


# -- bullseye -------------------------------------------------------------------------------

def test_bullseye_lowers_the_proficiency_and_then_adds_a_second_group():
    cfg = config(queues=[{"name": "default", "skills": {"tech": 4}, "expand": [
        {"after_seconds": 30, "skills": {"tech": 2}},
        {"after_seconds": 60, "skills": {"support": 1}},
    ]}])
    core = with_agents(cfg, agent("generalist", skills={"support": 3}))
    core.on_message(msg("c"), at(0))
    core.on_agent(agent("junior", skills={"tech": 2}, capacity=1), at(1))
    core.on_message(msg("junior-busy"), at(1))  # nobody fits at level 0 yet
    assert assigned(core.tick(at(29))) == []
    step1 = core.tick(at(30))
    assert assigned(step1) == [("junior", "c")]
    assert step1.deliveries[0][1].conversation.routing["bullseye_step"] == 1
    assert assigned(core.tick(at(61))) == [("generalist", "junior-busy")]


# -- offers ---------------------------------------------------------------------------------

OFFERS = config(missed_offers_before_away=2, queues=[{"name": "default", "mode": "offer", "offer_timeout_seconds": 20}])


def test_an_offer_becomes_an_assignment_when_accepted():
    core = with_agents(OFFERS, agent("ann"))
    outcome = core.on_message(msg("c"), at(1))
    assert offered(outcome) == [("ann", "c")] and assigned(outcome) == []
    c = conversation_of(core, "c")
    core.on_message(msg("c", "second"), at(2))  # held with the offer
    accepted = core.on_offer_answer(OfferAnswer(workspace_id="default", conversation_id=c.conversation_id,
                                                agent_id="ann", accepted=True), at(3))
    assert assigned(accepted) == [("ann", "c")]
    assert [m.text for m in accepted.deliveries[0][1].messages] == ["hi", "second"]
    assert core.agents[("default", "ann")].total == 1


def test_a_rejected_offer_goes_to_the_next_agent_and_never_back():
    core = with_agents(OFFERS, agent("ann"), agent("bob"))
    first = offered(core.on_message(msg("c"), at(1)))[0][0]
    c = conversation_of(core, "c")
    outcome = core.on_offer_answer(OfferAnswer(workspace_id="default", conversation_id=c.conversation_id,
                                               agent_id=first, accepted=False), at(2))
    second = offered(outcome)[0][0]
    assert second != first and revoked(outcome) == [(first, "offer rejected")]
    late = core.on_offer_answer(OfferAnswer(workspace_id="default", conversation_id=c.conversation_id,
                                            agent_id=first, accepted=True), at(3))
    assert late.deliveries == []  # a late answer to an offer that moved on changes nothing


def test_offers_that_time_out_move_on_and_set_the_agent_away():
    core = with_agents(OFFERS, agent("ann"))
    core.on_message(msg("c1"), at(0))
    first = core.tick(at(20))
    assert revoked(first) == [("ann", "offer timed out")] and events.OFFER_EXPIRED in event_types(first)
    assert offered(first) == []  # declined by ann: waits for someone else
    core.on_message(msg("c2"), at(21))
    second = core.tick(at(41))
    assert events.AGENT_SET_AWAY in event_types(second)
    assert core.agents[("default", "ann")].status == "away" and core.agents[("default", "ann")].total == 0
    assert assigned(core.on_agent(agent("bob"), at(42))) == [] and offered(core.tick(at(42))) == []


# -- presence -------------------------------------------------------------------------------

def test_going_offline_reroutes_unanswered_conversations_and_keeps_answered_ones():
    core = with_agents(None, agent("ann"))
    core.on_message(msg("answered"), at(1))
    core.on_message(msg("silent"), at(2))
    answered = conversation_of(core, "answered")
    core.on_answered(ConversationAnswered(workspace_id="default", conversation_id=answered.conversation_id,
                                          agent_id="ann"), at(3))
    core.on_agent(agent("bob"), at(4))
    core.on_agent(agent("ann", status="offline"), at(5))
    outcome = core.reroute_pending(at(5))
    assert revoked(outcome) == [("ann", "agent offline")]
    assert assigned(outcome) == [("bob", "silent")]
    assert outcome.deliveries[-1][1].conversation.assignment_seq == 3  # assigned, taken back, assigned again
    assert answered.assignee_id == "ann"


def test_a_queue_can_reroute_answered_conversations_too():
    core = with_agents(config(queues=[{"name": "default", "reroute_answered_on_offline": True}]), agent("ann"))
    core.on_message(msg("answered"), at(1))
    c = conversation_of(core, "answered")
    core.on_answered(ConversationAnswered(workspace_id="default", conversation_id=c.conversation_id, agent_id="ann"), at(2))
    core.on_agent(agent("ann", status="offline"), at(3))
    assert revoked(core.reroute_pending(at(3))) == [("ann", "agent offline")]
    assert c.assignee_id is None and core.waiting_in_order("default") == [c]


def test_away_keeps_what_the_agent_holds_but_takes_nothing_new():
    core = with_agents(None, agent("ann"))
    core.on_message(msg("mine"), at(1))
    assert core.on_agent(agent("ann", status="away"), at(2)).deliveries == []
    assert conversation_of(core, "mine").assignee_id == "ann"
    assert assigned(core.on_message(msg("new"), at(3))) == []


# -- transfer and escalation ----------------------------------------------------------------

TIERS = config(queues=[{"name": "default"},
                       {"name": "tier2", "skills": {"expert": 1}, "sla": {"first_response_seconds": 100}}])


def transfer(core, thread, **fields):
    c = conversation_of(core, thread)
    return core.on_transfer(TransferRequest(workspace_id="default", conversation_id=c.conversation_id, **fields), at(10))


def test_transfer_to_an_agent_keeps_the_history_and_the_note():
    core = with_agents(None, agent("ann"))
    core.on_message(msg("c"), at(1))
    core.on_agent(agent("bob"), at(2))
    outcome = transfer(core, "c", by_agent="ann", to_agent="bob", note="needs a refund")
    assert revoked(outcome) == [("ann", "transferred")] and assigned(outcome) == [("bob", "c")]
    info = outcome.deliveries[-1][1].conversation
    assert info.transfers[0]["note"] == "needs a refund" and info.transfers[0]["from_agent"] == "ann"
    assert events.CONVERSATION_TRANSFERRED in event_types(outcome)
    assert core.agents[("default", "ann")].total == 0


def test_escalation_to_a_tier_two_queue_restarts_the_sla_there():
    core = with_agents(TIERS, agent("ann"))
    core.on_message(msg("c"), at(1))
    outcome = transfer(core, "c", by_agent="ann", to_queue="tier2", note="bug", escalation=True)
    c = conversation_of(core, "c")
    assert (c.queue, c.assignee_id, c.reason) == ("tier2", None, "transfer")
    assert c.sla["first_response"]["due_at"] == at(110)
    assert assigned(outcome) == []
    assert assigned(core.on_agent(agent("eve", skills={"expert": 3}), at(20))) == [("eve", "c")]
    assert event_types(core.tick(at(111))) == [events.SLA_WARNING, events.SLA_BREACHED]  # warning at 90, due 110


def test_a_transfer_to_an_unknown_queue_or_an_offline_agent_is_refused():
    core = with_agents(TIERS, agent("ann"), agent("off", status="offline"))
    core.on_message(msg("c"), at(1))
    for target in ({"to_queue": "nowhere"}, {"to_agent": "off"}, {"to_agent": "ghost"}):
        outcome = transfer(core, "c", by_agent="ann", **target)
        assert outcome.deliveries == [] and outcome.events[0].details["rejected"]
    assert conversation_of(core, "c").assignee_id == "ann"


# -- SLA and max wait -----------------------------------------------------------------------

SLA = config(queues=[{"name": "default", "sla": {"first_response_seconds": 100, "resolution_seconds": 1000}}])


def test_sla_warning_then_breach_and_a_first_response_stops_the_clock():
    core = with_agents(SLA, agent("ann"))
    core.on_message(msg("slow"), at(0))
    core.on_message(msg("fast"), at(0))
    fast = conversation_of(core, "fast")
    core.on_answered(ConversationAnswered(workspace_id="default", conversation_id=fast.conversation_id, agent_id="ann"), at(50))
    warning = core.tick(at(80))
    assert [(e.type, e.conversation_id, e.details["target"]) for e in warning.events] == [
        (events.SLA_WARNING, conversation_of(core, "slow").conversation_id, "first_response")]
    assert event_types(core.tick(at(100))) == [events.SLA_BREACHED]
    assert conversation_of(core, "slow").sla["first_response"]["state"] == "breached"
    assert fast.sla["first_response"]["state"] == "met"
    assert event_types(core.tick(at(1000))) == [events.SLA_WARNING] * 2 + [events.SLA_BREACHED] * 2


def test_max_wait_overflows_to_another_queue():
    cfg = config(queues=[{"name": "default", "skills": {"x": 1}, "max_wait": {"seconds": 60, "action": "overflow",
                                                                           "overflow_queue": "backup"}},
                         {"name": "backup"}])
    core = with_agents(cfg, agent("ann", capacity=1), agent("backup-agent"))
    core.on_agent(agent("ann", skills={"x": 1}, capacity=1), at(0))
    core.on_message(msg("first"), at(0))
    core.on_message(msg("c"), at(1))
    outcome = core.tick(at(61))
    assert assigned(outcome) == [("backup-agent", "c")]
    assert outcome.events[0].details["action"] == "overflow"


def test_max_wait_auto_reply_quotes_the_expected_wait_and_callback_asks_for_one():
    cfg = config(queues=[{"name": "default", "max_wait": {"seconds": 30, "action": "auto_reply"}},
                         {"name": "phone", "max_wait": {"seconds": 30, "action": "callback"}}])
    core = RoutingCore(cfg)
    core.on_message(msg("c"), at(0))
    core.on_message(msg("p", queue="phone"), at(0))
    outcome = core.tick(at(30))
    reply = next(e for e in outcome.events if e.type == events.CONVERSATION_AUTO_REPLY)
    assert "1 min" in reply.details["text"] and reply.details["channel"] == "webchat"
    actions = sorted(e.details["action"] for e in outcome.events if e.type == events.CONVERSATION_MAX_WAIT)
    assert actions == ["auto_reply", "callback"]
    assert core.tick(at(90)).events == []  # once per queue entry


# -- explainability and live configuration ---------------------------------------------------

def test_every_assignment_records_why():
    cfg = config(queues=[{"name": "default"}, {"name": "billing", "strategy": "most_skilled", "skills": {"billing": 1}}],
                 rules=[{"queue": "billing", "keywords": ["invoice"]}])
    core = with_agents(cfg, agent("ann", skills={"billing": 2}), agent("bob", skills={"billing": 4}), agent("cat"))
    outcome = core.on_message(msg("c", "invoice please"), at(1))
    routing = outcome.deliveries[0][1].conversation.routing
    assert routing["queue"] == "billing" and routing["classified_by"] == "rule 0"
    assert routing["strategy"] == "most_skilled" and routing["chosen"] == "bob"
    assert routing["candidates"] == 2 and routing["considered"] == ["bob", "ann"]


def test_a_new_configuration_applies_live_and_serves_who_can_now_be_served():
    core = with_agents(config(queues=[{"name": "default", "skills": {"x": 1}}]), agent("ann"))
    core.on_message(msg("c"), at(1))
    assert core.waiting_in_order("default")
    outcome = core.set_config(RoutingConfig(), at(2))
    assert assigned(outcome) == [("ann", "c")]


# -- the channel ends a thread (a caller hangs up) ------------------------------------------

def hang_up(core: RoutingCore, thread: str, now: datetime):
    closed = ThreadClosed(workspace_id="default", channel="voice", thread_id=thread, reason="caller hung up")
    return core.on_thread_closed(closed, now)


def test_a_call_that_ends_frees_its_agent_at_once_for_the_next_call():
    core = with_agents(None, agent("ann", media={"voice": 1}))
    core.on_message(msg("call1", channel="voice"), at(1))
    core.on_message(msg("call2", channel="voice"), at(2))
    outcome = hang_up(core, "call1", at(30))
    ended = [(k[1], d.reason) for k, d in outcome.deliveries if isinstance(d, ConversationEnded)]
    assert ended == [("ann", "caller hung up")] and assigned(outcome) == [("ann", "call2")]
    assert ("default", "voice", "call1") not in core.by_thread
    assert hang_up(core, "call1", at(31)).deliveries == []  # a repeat changes nothing


def test_a_caller_who_hangs_up_while_waiting_or_offered_is_an_abandoned_call():
    core = with_agents(config(queues=[{"name": "default", "mode": "offer"}]), agent("ann", media={"voice": 1}))
    core.on_message(msg("offered", channel="voice"), at(1))
    core.on_message(msg("waiting", channel="voice"), at(2))
    waiting = hang_up(core, "waiting", at(40))
    assert event_types(waiting) == [events.CONVERSATION_ABANDONED] and waiting.events[0].details["waited_seconds"] == 38
    offered_call = hang_up(core, "offered", at(50))
    assert revoked(offered_call) == [("ann", "offer withdrawn: customer left")]
    assert event_types(offered_call) == [events.CONVERSATION_ABANDONED]
    assert core.agents[("default", "ann")].total == 0 and core.conversations == {}


def ring_out(core: RoutingCore, thread: str, now: datetime, agent_id: str | None = None):
    missed = NotAnswered(workspace_id="default", channel="voice", thread_id=thread, agent_id=agent_id, reason="no-answer")
    return core.on_not_answered(missed, now)


def test_a_call_the_agent_lets_ring_out_goes_to_the_next_agent():
    core = with_agents(None, agent("ann", media={"voice": 1}))
    core.on_message(msg("call", channel="voice"), at(1))
    core.on_agent(agent("bob", media={"voice": 1}), at(2))
    assert conversation_of(core, "call", "voice").assignee_id == "ann"
    outcome = ring_out(core, "call", at(25), "ann")
    assert revoked(outcome) == [("ann", "not answered: no-answer")]
    assert assigned(outcome) == [("bob", "call")]
    assert event_types(outcome)[0] == events.CONVERSATION_NOT_ANSWERED
    assert outcome.events[0].details["missed_in_a_row"] == 1
    assert core.agents[("default", "ann")].total == 0


def test_a_call_nobody_else_can_take_waits_and_the_agent_who_missed_it_is_skipped():
    core = with_agents(None, agent("ann", media={"voice": 1}))
    core.on_message(msg("call", channel="voice"), at(1))
    outcome = ring_out(core, "call", at(25))  # no agent named: the current assignee
    assert revoked(outcome) == [("ann", "not answered: no-answer")] and assigned(outcome) == []
    call = conversation_of(core, "call", "voice")
    assert call.assignee_id is None and core.waiting_in_order("default") == [call]
    assert assigned(core.on_agent(agent("bob", media={"voice": 1}), at(30))) == [("bob", "call")]


def test_a_stale_or_repeated_ring_out_changes_nothing():
    core = with_agents(None, agent("ann", media={"voice": 1}), agent("bob", media={"voice": 1}))
    core.on_message(msg("call", channel="voice"), at(1))
    first = conversation_of(core, "call", "voice").assignee_id
    ring_out(core, "call", at(25), first)
    second = conversation_of(core, "call", "voice").assignee_id
    assert second not in (None, first)
    # The same report again names an agent no longer assigned; a call nobody has is unknown.
    assert ring_out(core, "call", at(26), first).deliveries == []
    assert conversation_of(core, "call", "voice").assignee_id == second
    assert ring_out(core, "no-such-call", at(27)).deliveries == []


def test_agents_who_keep_letting_calls_ring_out_are_set_away():
    core = with_agents(config(missed_offers_before_away=2), agent("ann", media={"voice": 1}))
    core.on_message(msg("call1", channel="voice"), at(1))
    ring_out(core, "call1", at(20), "ann")
    core.on_message(msg("call2", channel="voice"), at(21))
    assert conversation_of(core, "call2", "voice").assignee_id == "ann"
    outcome = ring_out(core, "call2", at(40), "ann")
    assert events.AGENT_SET_AWAY in event_types(outcome)
    assert core.agents[("default", "ann")].status == "away"


# -- found in review: state that goes back to waiting, reloads, live config --------------------

PHONE = config(queues=[{"name": "default", "max_wait": {"seconds": 120, "action": "callback"}}])


def test_a_max_wait_that_falls_due_while_a_call_rings_fires_once_it_waits_again():
    core = with_agents(PHONE)
    core.on_message(msg("call", channel="voice"), at(0))
    core.on_agent(agent("bob", media={"voice": 1}), at(100))
    assert conversation_of(core, "call", "voice").assignee_id == "bob"
    assert core.tick(at(121)).events == []  # ringing at bob: not waiting, so no max wait yet
    ring_out(core, "call", at(125), "bob")
    fired = core.tick(at(126))
    assert [e.details["action"] for e in fired.events if e.type == events.CONVERSATION_MAX_WAIT] == ["callback"]
    assert core.tick(at(10_000)).events == []  # once


def test_a_bullseye_step_due_while_assigned_applies_when_the_conversation_waits_again():
    cfg = config(queues=[{"name": "default", "skills": {"billing": 3}, "expand": [{"after_seconds": 60, "skills": {"billing": 1}}]}])
    core = with_agents(cfg, agent("ann", skills={"billing": 3}))
    core.on_message(msg("c"), at(0))
    core.on_agent(agent("bob", skills={"billing": 1}), at(1))
    core.tick(at(61))  # step 1 fell due while ann had it
    core.on_agent(agent("ann", skills={"billing": 3}, status="offline"), at(300))
    assert assigned(core.reroute_pending(at(300))) == []  # back in the queue at step 0: billing 3 again
    assert assigned(core.tick(at(301))) == [("bob", "c")]


def test_a_mass_reroute_goes_a_slice_at_a_time_and_skips_agents_who_came_back():
    core = with_agents(None, agent("ann", capacity=30), agent("bob", capacity=30))
    for n in range(60):
        core.on_message(msg(f"c{n}"), at(1))
    held = {name: [c for c in core.conversations.values() if c.assignee_id == name] for name in ("ann", "bob")}
    core.on_agent(agent("cat", capacity=100), at(2))
    assert core.on_agent(agent("ann", capacity=30, status="offline"), at(2)).deliveries == []
    core.on_agent(agent("bob", capacity=30, status="offline"), at(2))
    first = core.reroute_pending(at(2), limit=25)
    assert len(revoked(first)) == 25 and {a for a, _ in assigned(first)} == {"cat"} and len(assigned(first)) == 25
    core.on_agent(agent("bob", capacity=30), at(3))  # bob is back before his turn came
    rest = core.reroute_pending(at(3), limit=25)
    assert revoked(rest) == [("ann", "agent offline")] * 5
    assert all(c.assignee_id == "cat" for c in held["ann"]) and all(c.assignee_id == "bob" for c in held["bob"])
    assert core.to_reroute == deque() and core.reroute_pending(at(4)).deliveries == []


def test_a_rebuilt_core_finishes_a_reroute_the_last_one_left_halfway():
    core = with_agents(None, agent("ann", capacity=30), agent("bob", capacity=30))
    for n in range(10):
        core.on_message(msg(f"c{n}"), at(1))
    core.on_agent(agent("ann", capacity=30, status="offline"), at(2))
    rebuilt = RoutingCore(core.config)
    rebuilt.load_state(list(core.agents.values()), list(core.conversations.values()), {})
    assert len(rebuilt.to_reroute) == 5 and len(assigned(rebuilt.reroute_pending(at(3)))) == 5


def test_a_live_call_stays_with_its_agent_when_the_desk_goes_offline():
    core = with_agents(None, agent("ann", media={"voice": 1}))
    core.on_message(msg("call", channel="voice"), at(1))
    core.on_agent(agent("bob", media={"voice": 1}), at(2))
    outcome = core.on_agent(agent("ann", media={"voice": 1}, status="offline"), at(60))
    outcome.merge(core.reroute_pending(at(60)))
    assert revoked(outcome) == [] and assigned(outcome) == []
    assert conversation_of(core, "call", "voice").assignee_id == "ann"


def test_misses_count_in_a_row_only_until_the_agent_takes_work():
    core = with_agents(config(missed_offers_before_away=2), agent("ann", media={"voice": 1}))
    core.on_message(msg("call1", channel="voice"), at(1))
    ring_out(core, "call1", at(20), "ann")
    core.on_message(msg("call2", channel="voice"), at(21))
    assert conversation_of(core, "call2", "voice").assignee_id == "ann"
    hang_up(core, "call2", at(200))  # talked to the end
    core.on_message(msg("call3", channel="voice"), at(201))
    outcome = ring_out(core, "call3", at(220), "ann")
    assert outcome.events[0].details["missed_in_a_row"] == 1
    assert core.agents[("default", "ann")].status == "online"


def test_offer_serials_after_a_rebuild_never_repeat_the_stored_ones():
    from services.router import store as st

    cfg = config(queues=[{"name": "default", "mode": "offer", "offer_timeout_seconds": 30}])
    core = with_agents(cfg, agent("ann"))
    for earlier in range(5):  # offers come and go before the restart: serials move on
        core.on_message(msg(f"e{earlier}"), at(0))
        resolve(core, f"e{earlier}", at(0))
    core.on_message(msg("c"), at(0))
    stored = conversation_of(core, "c").offer.serial
    agents = [st._agent_from_doc(st._agent_to_doc(a)) for a in core.agents.values()]
    docs = [{**st._conversation_to_doc(c), "_id": c.conversation_id} for c in core.conversations.values()]
    rebuilt = RoutingCore(cfg)
    rebuilt.load_state(agents, [st._conversation_from_doc(d) for d in docs], {})
    rebuilt.on_message(msg("d"), at(1))
    rebuilt.on_agent(agent("bob"), at(1))
    assert conversation_of(rebuilt, "d").offer.serial > stored


def test_only_an_assigned_conversation_can_be_transferred():
    core = with_agents(config(queues=[{"name": "default", "mode": "offer"}]), agent("ann"), agent("bob"))
    core.on_message(msg("c"), at(0))
    c = conversation_of(core, "c")
    offered_to = c.offer.agent_id
    outcome = core.on_transfer(TransferRequest(workspace_id="default", conversation_id=c.conversation_id,
                                               to_queue="default", by_agent=offered_to), at(1))
    assert outcome.events[0].details["rejected"] == "the conversation is not assigned"
    assert c.offer is not None and c.offer.agent_id == offered_to


def test_a_supervisor_moves_a_waiting_conversation_to_another_queue():
    core = with_agents(config(queues=[{"name": "default"}, {"name": "tier2", "skills": {"tier2": 1}}]))
    core.on_message(msg("c"), at(0))  # nobody online: it waits
    outcome = transfer(core, "c", to_queue="tier2", by_supervisor=True, note="VIP")
    c = conversation_of(core, "c")
    assert (c.queue, c.reason, c.assignee_id) == ("tier2", "transfer", None)
    assert "conversation.transferred" in event_types(outcome)
    assert [e.details.get("rejected") for e in outcome.events if e.type == "conversation.transferred"] == [None]
    outcome = core.on_agent(agent("tia", skills={"tier2": 1}), at(11))
    assert assigned(outcome) == [("tia", "c")]


def test_a_supervisor_gives_an_offered_conversation_to_another_agent():
    core = with_agents(config(queues=[{"name": "default", "mode": "offer"}]), agent("ann"))
    core.on_message(msg("c"), at(0))
    core.on_agent(agent("bob"), at(1))
    outcome = transfer(core, "c", to_agent="bob", by_supervisor=True)
    assert revoked(outcome) == [("ann", "offer withdrawn: transferred")]
    assert offered(outcome) == [("bob", "c")]  # reserved for bob, who has room: offered to him at once (offer mode)
    assert core.agents[("default", "ann")].total == 0


def test_resolving_an_offered_conversation_takes_the_offer_off_the_desk():
    core = with_agents(config(queues=[{"name": "default", "mode": "offer"}]), agent("ann"))
    core.on_message(msg("c"), at(0))
    outcome = resolve(core, "c", at(1))
    assert revoked(outcome) == [("ann", "offer withdrawn: conversation resolved")]
    assert core.agents[("default", "ann")].total == 0


def test_a_live_config_change_moves_conversations_of_a_removed_queue_and_drops_its_timers():
    first = config(queues=[{"name": "default"}, {"name": "vip", "skills": {"vip": 1}, "max_wait": {"seconds": 30, "action": "auto_reply"}}])
    core = with_agents(first, agent("ann", capacity=1))
    core.on_message(msg("busy"), at(0))  # ann is full
    core.on_message(msg("c", queue="vip"), at(0))
    core.set_config(config(queues=[{"name": "default"}]), at(1))
    assert conversation_of(core, "c").queue == "default"
    assert core.tick(at(31)).events == []  # the removed queue's max wait: no crash, no event
    assert assigned(resolve(core, "busy", at(32))) == [("ann", "c")]


def test_a_call_sent_to_voicemail_by_its_max_wait_is_never_routed_afterwards():
    core = RoutingCore(PHONE)
    core.on_message(msg("call", channel="voice"), at(0))
    core.on_message(msg("chat"), at(0))
    assert [e.details["action"] for e in core.tick(at(120)).events if e.type == events.CONVERSATION_MAX_WAIT] == [
        "callback", "callback"]
    # An agent for both comes online: the chat (no voicemail for it) is served, the call is not.
    outcome = core.on_agent(agent("ann", media={"voice": 1}), at(121))
    assert assigned(outcome) == [("ann", "chat")]
    assert conversation_of(core, "call", "voice").assignee_id is None
    assert [e.type for e in hang_up(core, "call", at(130)).events] == [events.CONVERSATION_ABANDONED]


def test_an_agent_who_declined_may_get_the_conversation_again_after_the_retry_time():
    cfg = config(declined_retry_seconds=60, queues=[{"name": "default", "mode": "offer", "offer_timeout_seconds": 20}])
    core = with_agents(cfg, agent("ann"))
    core.on_message(msg("c"), at(0))
    c = conversation_of(core, "c")
    core.on_offer_answer(OfferAnswer(workspace_id="default", conversation_id=c.conversation_id, agent_id="ann",
                                     accepted=False), at(5))
    assert offered(core.tick(at(64))) == []  # still skipped: nobody else, but not yet time
    assert offered(core.tick(at(65))) == [("ann", "c")]
    assert c.declined == set()


def test_a_later_decline_moves_the_retry_time_on():
    cfg = config(declined_retry_seconds=60)
    core = with_agents(cfg, agent("ann", media={"voice": 1}), agent("bob", media={"voice": 1}))
    core.on_message(msg("call", channel="voice"), at(0))
    first = conversation_of(core, "call", "voice").assignee_id
    ring_out(core, "call", at(20), first)
    second = conversation_of(core, "call", "voice").assignee_id
    ring_out(core, "call", at(50), second)
    assert assigned(core.tick(at(80))) == []  # 60 s after the first miss: the second one still counts
    assert len(assigned(core.tick(at(110)))) == 1


def test_a_big_backlog_goes_out_as_an_assignment_then_messages_and_an_offer_shows_a_bounded_preview():
    """One AMQP message, one stored offer, must not carry 45 messages of 400 kB (MongoDB documents hold 16 MiB)."""
    core = RoutingCore(config(queues=[{"name": "default", "mode": "offer"}]))
    texts = [f"{n:02d}" + "\N{GRINNING FACE}" * 99_998 for n in range(45)]
    for n, text in enumerate(texts):
        core.on_message(msg("long", text).model_copy(update={"message_id": f"m{n}"}), at(1))
    (_, offer), = core.on_agent(agent("ann"), at(2)).deliveries
    assert 1 <= len(offer.messages) < 3 and offer.messages[0].text == texts[0]
    outcome = core.on_offer_answer(OfferAnswer(workspace_id="default", conversation_id=offer.conversation.conversation_id,
                                               agent_id="ann", accepted=True), at(3))
    assigned_first, *then = [d for _, d in outcome.deliveries]
    assert isinstance(assigned_first, ConversationAssigned) and all(isinstance(d, ConversationMessage) for d in then)
    assert [m.text for m in assigned_first.messages] + [d.message.text for d in then] == texts
    assert 2 <= len(assigned_first.messages) <= 3  # 1 MiB of 400 kB messages
    assert conversation_of(core, "long").backlog == []


def test_label_rules_label_a_conversation_once_from_any_of_its_messages():
    cfg = config(label_rules=[{"keywords": ["refund"], "labels": ["refund"]},
                              {"pattern": "(?i)parcel|delivery", "labels": ["delivery", "logistics"]}])
    core = with_agents(cfg)
    outcome = core.on_message(msg("c", "I want a refund"), at(0))
    labeled = [e for e in outcome.events if e.type == "conversation.labeled"]
    assert [e.details["labels"] for e in labeled] == [["refund"]]
    outcome = core.on_message(msg("c", "refund for the parcel, please"), at(1))  # waiting: refund is known already
    assert [e.details["labels"] for e in outcome.events if e.type == "conversation.labeled"] == [["delivery", "logistics"]]
    assert core.on_message(msg("c", "the delivery, again"), at(2)).events == []
    outcome = core.on_agent(agent("ann"), at(3))
    (delivery,) = [d for _, d in outcome.deliveries if isinstance(d, ConversationAssigned)]
    assert delivery.conversation.labels == ["delivery", "logistics", "refund"]


def test_a_later_message_of_an_assigned_conversation_carries_the_labels_it_added():
    core = with_agents(config(label_rules=[{"channels": ["webchat"], "keywords": ["outage"], "labels": ["outage"]}]),
                       agent("ann"))
    core.on_message(msg("c", "hello"), at(0))
    outcome = core.on_message(msg("c", "is there an outage?"), at(1))
    (delivery,) = [d for _, d in outcome.deliveries]
    assert delivery.labels == ["outage"]
    assert [e.type for e in outcome.events] == ["conversation.labeled"]


def test_without_label_rules_a_message_makes_no_label_event():
    core = with_agents(None, agent("ann"))
    outcome = core.on_message(msg("c", "refund"), at(0))
    assert "conversation.labeled" not in event_types(outcome)


def test_the_priority_keeps_its_parts_for_the_desk():
    """A message sent with 8 in a queue worth 3 gets 10 (capped); the decision says where the 10 came from."""
    core = RoutingCore(RULES)
    core.on_agent(agent("ann"), at(0))
    outcome = core.on_message(msg("a", "about refund #123", priority=8, attributes={"tier": "vip"}), at(1))
    delivery = next(d for _, d in outcome.deliveries if isinstance(d, ConversationAssigned))
    assert delivery.conversation.priority == 10
    assert delivery.conversation.routing["priority_parts"] == {"message": 8, "queue": 3, "rule": 0}

    # A rebuilt router (from the stored documents) still knows them.
    from services.router import store as st
    conversation = conversation_of(core, "a")
    rebuilt = st._conversation_from_doc({**st._conversation_to_doc(conversation), "_id": conversation.conversation_id})
    assert rebuilt.priority_parts == {"message": 8, "queue": 3, "rule": 0}
