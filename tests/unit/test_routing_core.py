"""The routing core on its own: pure code, a controlled clock, no broker, no database."""

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from services.router.core import RoutingCore
from shared.models import (
    AgentSnapshot,
    Contact,
    ConversationAssigned,
    ConversationMessage,
    ConversationResolved,
    InboundMessage,
)

T0 = datetime(2026, 1, 1, 9, 0, tzinfo=UTC)
_versions: dict[str, int] = {}


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def message(thread: str, text: str = "hi", *, skills=(), priority: int = 0, mid: str | None = None,
            workspace: str = "default", channel: str = "api") -> InboundMessage:
    return InboundMessage(
        message_id=mid or f"{thread}-{text}", workspace_id=workspace, channel=channel, thread_id=thread,
        contact=Contact(id=thread), text=text, skills=list(skills), priority=priority, received_at=T0,
    )


def agent(agent_id: str, *, skills=None, capacity: int = 2, status: str = "online", workspace: str = "default") -> AgentSnapshot:
    _versions[agent_id] = _versions.get(agent_id, 0) + 1
    return AgentSnapshot(workspace_id=workspace, agent_id=agent_id, version=_versions[agent_id],
                         skills=skills or {}, max_conversations=capacity, status=status)


def assigned_to(outcome) -> list[tuple[str, str]]:
    """(agent, thread) for every assignment in the outcome, in order."""
    return [(key[1], d.conversation.thread_id) for key, d in outcome.deliveries if isinstance(d, ConversationAssigned)]


def test_a_message_goes_to_an_online_agent_with_the_skills():
    core = RoutingCore()
    core.on_agent(agent("ann", skills={"billing": 3}), at(0))
    core.on_agent(agent("bob", skills={"tech": 5}), at(0))
    outcome = core.on_message(message("c1", skills=["billing"]), at(1))
    assert assigned_to(outcome) == [("ann", "c1")]
    (_, delivery), = outcome.deliveries
    assert [m.text for m in delivery.messages] == ["hi"]


def test_every_needed_skill_is_required():
    core = RoutingCore()
    core.on_agent(agent("ann", skills={"billing": 3}), at(0))
    outcome = core.on_message(message("c1", skills=["billing", "ru"]), at(1))
    assert outcome.deliveries == []
    assert core.waiting_in_order("default")


def test_no_skills_means_anyone():
    core = RoutingCore()
    core.on_agent(agent("ann", skills={"tech": 1}), at(0))
    assert assigned_to(core.on_message(message("c1"), at(1))) == [("ann", "c1")]


def test_least_loaded_first_then_longest_idle():
    core = RoutingCore()
    core.on_agent(agent("ann", capacity=3), at(0))
    core.on_agent(agent("bob", capacity=3), at(0))
    first = assigned_to(core.on_message(message("c1"), at(1)))
    second = assigned_to(core.on_message(message("c2"), at(2)))
    assert {first[0][0], second[0][0]} == {"ann", "bob"}  # the second goes to the one with no load
    # both hold one: the tie goes to whoever was assigned longest ago
    third = assigned_to(core.on_message(message("c3"), at(3)))
    assert third[0][0] == first[0][0]


def test_offline_and_away_agents_get_nothing():
    core = RoutingCore()
    core.on_agent(agent("ann", status="away"), at(0))
    core.on_agent(agent("bob", status="offline"), at(0))
    assert core.on_message(message("c1"), at(1)).deliveries == []


def test_capacity_is_never_exceeded():
    core = RoutingCore()
    core.on_agent(agent("ann", capacity=2), at(0))
    for i in range(5):
        core.on_message(message(f"c{i}"), at(i))
    assert core.agents[("default", "ann")].total == 2
    assert len(core.waiting_in_order("default")) == 3


def test_follow_ups_go_to_the_same_agent_in_order():
    core = RoutingCore()
    core.on_agent(agent("ann"), at(0))
    core.on_agent(agent("bob"), at(0))
    core.on_message(message("c1", "one"), at(1))
    owner = next(c.assignee_id for c in core.conversations.values())
    outcomes = [core.on_message(message("c1", text), at(2)) for text in ("two", "three")]
    deliveries = [d for o in outcomes for _, d in o.deliveries]
    assert all(isinstance(d, ConversationMessage) and d.assignee_id == owner for d in deliveries)
    assert [d.message.text for d in deliveries] == ["two", "three"]


def test_waiting_messages_are_held_and_handed_over_in_order():
    core = RoutingCore()
    for text in ("one", "two", "three"):
        core.on_message(message("c1", text), at(1))
    outcome = core.on_agent(agent("ann"), at(5))
    (_, delivery), = outcome.deliveries
    assert [m.text for m in delivery.messages] == ["one", "two", "three"]
    assert delivery.conversation.waiting_since == at(1) and delivery.conversation.assigned_at == at(5)


def test_waiting_is_served_highest_priority_then_oldest():
    core = RoutingCore()
    core.on_message(message("low-old", priority=1), at(1))
    core.on_message(message("high", priority=9), at(2))
    core.on_message(message("low-new", priority=1), at(3))
    core.on_message(message("mid", priority=5), at(4))
    outcome = core.on_agent(agent("ann", capacity=3), at(10))
    assert [t for _, t in assigned_to(outcome)] == ["high", "mid", "low-old"]


def test_resolving_frees_capacity_for_the_next_waiting():
    core = RoutingCore()
    core.on_agent(agent("ann", capacity=1), at(0))
    core.on_message(message("c1"), at(1))
    core.on_message(message("c2"), at(2))
    first = next(c for c in core.conversations.values() if c.assignee_id)
    outcome = core.on_resolved(ConversationResolved(workspace_id="default", conversation_id=first.conversation_id), at(3))
    assert assigned_to(outcome) == [("ann", "c2")]
    assert first.conversation_id in outcome.closed_conversations


def test_a_resolved_thread_that_writes_again_opens_a_new_conversation():
    core = RoutingCore()
    core.on_agent(agent("ann"), at(0))
    core.on_message(message("c1", "one"), at(1))
    old = next(iter(core.conversations))
    core.on_resolved(ConversationResolved(workspace_id="default", conversation_id=old), at(2))
    outcome = core.on_message(message("c1", "again"), at(3))
    (_, delivery), = outcome.deliveries
    assert isinstance(delivery, ConversationAssigned) and delivery.conversation.conversation_id != old


def test_repeated_inputs_change_nothing():
    core = RoutingCore()
    core.on_message(message("c1", "one"), at(1))
    assert core.on_message(message("c1", "one"), at(2)).changed_conversations == set()  # same message id
    snapshot = agent("ann")
    core.on_agent(snapshot, at(3))
    assert core.on_agent(snapshot, at(4)).deliveries == []
    conversation_id = next(iter(core.conversations))
    event = ConversationResolved(workspace_id="default", conversation_id=conversation_id)
    core.on_resolved(event, at(5))
    assert core.on_resolved(event, at(6)).closed_conversations == set()
    assert core.agents[("default", "ann")].total == 0


def test_a_stale_agent_snapshot_is_ignored():
    core = RoutingCore()
    online = agent("ann")
    offline = agent("ann", status="offline")
    core.on_agent(offline, at(1))
    core.on_agent(online, at(2))  # older version, delivered late
    assert core.agents[("default", "ann")].status == "offline"


def test_more_capacity_or_new_skills_serve_the_waiting():
    core = RoutingCore()
    core.on_agent(agent("ann", capacity=0), at(0))
    core.on_message(message("c1", skills=["ru"]), at(1))
    assert core.on_agent(agent("ann", capacity=1), at(2)).deliveries == []  # room, but no skill
    assert assigned_to(core.on_agent(agent("ann", capacity=1, skills={"ru": 2}), at(3))) == [("ann", "c1")]


def test_workspaces_and_channels_do_not_mix():
    core = RoutingCore()
    core.on_agent(agent("ann", workspace="acme"), at(0))
    assert core.on_message(message("c1"), at(1)).deliveries == []
    core.on_agent(agent("bob"), at(2))
    core.on_message(message("c2", channel="webchat"), at(3))
    threads = {key for key in core.by_thread}
    assert ("default", "api", "c1") in threads and ("default", "webchat", "c2") in threads


def test_a_core_rebuilt_from_its_state_recomputes_loads():
    core = RoutingCore()
    core.on_agent(agent("ann", capacity=2), at(0))
    core.on_message(message("c1"), at(1))
    core.on_message(message("c2"), at(2))
    rebuilt = RoutingCore()
    fresh_agents = [replace(a, load=Counter(), memberships={}) for a in core.agents.values()]
    rebuilt.load_state(fresh_agents, list(core.conversations.values()), {})
    assert rebuilt.agents[("default", "ann")].total == 2
    assert rebuilt.on_message(message("c3"), at(3)).deliveries == []


def test_conversations_opened_in_one_batch_wait_in_arrival_order():
    core = RoutingCore()
    same_now = at(5)  # the shell gives a whole batch one clock reading
    for n in range(20):
        core.on_message(message(f"c{n}"), same_now)
    assert [c.first.thread_id for c in core.waiting_in_order("default")] == [f"c{n}" for n in range(20)]
