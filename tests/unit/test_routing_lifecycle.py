"""Pending and snoozed conversations in the routing core: the capacity they free, how they wake,
and that no agent is ever over capacity when they do (docs/routing.md, "Lifecycle")."""

from collections import Counter
from dataclasses import replace

from services.router.config import RoutingConfig
from services.router.core import RoutingCore
from shared.models import (
    ConversationAssigned,
    ConversationMessage,
    ConversationParked,
    ConversationResolved,
    ConversationRevoked,
    ConversationWoken,
    StateRequest,
)
from tests.unit.test_routing_core import agent, assigned_to, at, message


def request(conversation, state: str, when: float, until: float | None = None, *, agent_id: str = "ann",
            seq: int | None = None) -> StateRequest:
    return StateRequest(workspace_id="default", conversation_id=conversation.conversation_id, agent_id=agent_id,
                        assignment_seq=conversation.assignment_seq if seq is None else seq, state=state,
                        until=at(until) if until is not None else None, at=at(when))


def of_type(outcome, kind) -> list:
    return [d for _, d in outcome.deliveries if isinstance(d, kind)]


def ann_full_with(core: RoutingCore, *threads: str):
    """Ann (capacity 1) holding the first thread, the others waiting; the held conversation."""
    core.on_agent(agent("ann", capacity=1), at(0))
    for n, thread in enumerate(threads, start=1):
        core.on_message(message(thread), at(n))
    return next(c for c in core.conversations.values() if c.assignee_id == "ann")


def test_a_pending_conversation_frees_the_slot_for_the_next_waiting_one():
    core = RoutingCore()
    held = ann_full_with(core, "c1", "c2")
    outcome = core.on_state_request(request(held, "pending", 5), at(5))
    parked, = of_type(outcome, ConversationParked)
    assert (parked.state, parked.until) == ("pending", None)
    assert assigned_to(outcome) == [("ann", "c2")]  # the slot it freed is used at once
    assert held.assignee_id == "ann" and held.parked == "pending"  # still hers
    assert core.agents[("default", "ann")].total == 1


def test_the_customer_writing_wakes_it_with_room_and_the_message_follows_the_wake():
    core = RoutingCore()
    held = ann_full_with(core, "c1")
    core.on_state_request(request(held, "pending", 5), at(5))
    outcome = core.on_message(message("c1", "back again"), at(9))
    kinds = [type(d) for _, d in outcome.deliveries]
    assert kinds == [ConversationWoken, ConversationMessage]  # order: woken first, then the message
    assert held.parked is None and core.agents[("default", "ann")].total == 1


def test_waking_while_the_agent_is_full_reserves_it_for_her_and_never_overfills():
    core = RoutingCore(RoutingConfig(wake_reserve_seconds=60))
    held = ann_full_with(core, "c1", "c2")
    core.on_state_request(request(held, "pending", 5), at(5))  # c2 takes the slot
    outcome = core.on_message(message("c1", "are you there?"), at(9))
    revoked, = of_type(outcome, ConversationRevoked)
    assert "no room" in revoked.reason
    assert held.assignee_id is None and held.pinned_to == "ann"
    assert [m.text for m in held.backlog] == ["are you there?"]  # handed over with the next assignment
    assert core.agents[("default", "ann")].total == 1
    c2 = next(c for c in core.conversations.values() if c.assignee_id == "ann")
    back = core.on_resolved(ConversationResolved(workspace_id="default", conversation_id=c2.conversation_id), at(20))
    assert assigned_to(back) == [("ann", "c1")]  # the reservation gives it back to her
    delivery, = of_type(back, ConversationAssigned)
    assert [m.text for m in delivery.messages][-1] == "are you there?"


def test_a_reservation_for_a_full_agent_ends_and_anyone_may_take_it():
    core = RoutingCore(RoutingConfig(wake_reserve_seconds=60))
    held = ann_full_with(core, "c1", "c2")
    core.on_state_request(request(held, "pending", 5), at(5))
    core.on_message(message("c1", "hello?"), at(9))
    core.on_agent(agent("bob", capacity=1), at(10))
    assert held.assignee_id is None  # reserved for ann: bob does not take it yet
    outcome = core.tick(at(70))
    assert assigned_to(outcome) == [("bob", "c1")]


def test_a_snooze_wakes_by_itself_at_its_time():
    core = RoutingCore()
    held = ann_full_with(core, "c1")
    parked, = of_type(core.on_state_request(request(held, "snoozed", 5, until=300), at(5)), ConversationParked)
    assert parked.until == at(300)
    assert core.tick(at(299)).deliveries == []
    woken, = of_type(core.tick(at(300)), ConversationWoken)
    assert woken.reason == "the snooze ended"


def test_a_snooze_woken_early_by_the_customer_does_not_fire_again():
    core = RoutingCore()
    held = ann_full_with(core, "c1")
    core.on_state_request(request(held, "snoozed", 5, until=300), at(5))
    core.on_message(message("c1", "me again"), at(10))
    assert core.tick(at(301)).deliveries == []


def test_the_agent_opens_it_again_when_she_has_room():
    core = RoutingCore()
    held = ann_full_with(core, "c1")
    core.on_state_request(request(held, "pending", 5), at(5))
    woken, = of_type(core.on_state_request(request(held, "open", 6), at(6)), ConversationWoken)
    assert woken.reason == "opened by the agent"
    assert core.agents[("default", "ann")].total == 1


def test_a_park_asked_before_the_customers_latest_message_is_not_applied():
    core = RoutingCore()
    held = ann_full_with(core, "c1")
    core.on_message(message("c1", "one more thing"), at(10))  # reached the router after ann clicked
    outcome = core.on_state_request(request(held, "pending", 8), at(11))
    assert outcome.deliveries == [] and held.parked is None
    assert core.agents[("default", "ann")].total == 1


def test_stale_requests_change_nothing():
    core = RoutingCore()
    held = ann_full_with(core, "c1")
    assert core.on_state_request(request(held, "pending", 5, agent_id="bob"), at(5)).deliveries == []
    assert core.on_state_request(request(held, "pending", 5, seq=held.assignment_seq - 1), at(5)).deliveries == []
    assert core.on_state_request(request(held, "open", 5), at(5)).deliveries == []  # open already
    assert held.parked is None


def test_a_transferred_parked_conversation_is_open_for_its_next_agent():
    from shared.models import TransferRequest

    core = RoutingCore()
    held = ann_full_with(core, "c1")
    core.on_agent(agent("bob", capacity=1), at(2))
    core.on_state_request(request(held, "pending", 5), at(5))
    outcome = core.on_transfer(TransferRequest(workspace_id="default", conversation_id=held.conversation_id,
                                               by_agent="ann", to_agent="bob"), at(6))
    assert assigned_to(outcome) == [("bob", "c1")]
    assert held.parked is None and core.agents[("default", "bob")].total == 1
    assert core.agents[("default", "ann")].total == 0


def test_a_rebuilt_core_does_not_count_parked_conversations_and_keeps_the_snooze_timer():
    core = RoutingCore()
    held = ann_full_with(core, "c1")
    core.on_state_request(request(held, "snoozed", 5, until=300), at(5))
    rebuilt = RoutingCore()
    fresh_agents = [replace(a, load=Counter(), memberships={}) for a in core.agents.values()]
    rebuilt.load_state(fresh_agents, list(core.conversations.values()), {})
    assert rebuilt.agents[("default", "ann")].total == 0
    assert held.conversation_id not in {c.conversation_id for c in rebuilt.waiting_in_order("default")}
    woken, = of_type(rebuilt.tick(at(300)), ConversationWoken)
    assert woken.conversation_id == held.conversation_id


def test_resolving_a_parked_conversation_leaves_the_load_alone():
    core = RoutingCore()
    held = ann_full_with(core, "c1", "c2")
    core.on_state_request(request(held, "pending", 5), at(5))
    core.on_resolved(ConversationResolved(workspace_id="default", conversation_id=held.conversation_id), at(6))
    assert core.agents[("default", "ann")].total == 1  # c2, which took the freed slot
