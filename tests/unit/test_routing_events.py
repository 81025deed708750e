"""The events the routing core makes for reporting: every fact with its own time and an id that
the same input, handled again over the same saved state, gives again (pure, no I/O)."""

from services.router.core import RoutingCore
from services.router.store import _agent_from_doc, _agent_to_doc, _conversation_from_doc, _conversation_to_doc
from shared import events
from shared.models import OfferAnswer, ThreadLeft, TransferRequest
from tests.unit.test_routing_acd import (
    T0,
    agent,
    assigned,
    at,
    config,
    conversation_of,
    event_types,
    msg,
    ring_out,
    with_agents,
)


def queued_reasons(outcome) -> list[str]:
    return [e.details["reason"] for e in outcome.events if e.type == events.CONVERSATION_QUEUED]


def rebuilt(core: RoutingCore) -> RoutingCore:
    """A core loaded from the documents the store would have saved of this one."""
    copy = RoutingCore(core.config)
    conversations = [_conversation_from_doc({**_conversation_to_doc(c), "_id": c.conversation_id})
                     for c in core.conversations.values()]
    copy.load_state([_agent_from_doc(_agent_to_doc(a)) for a in core.agents.values()], conversations,
                    dict(core.last_agents))
    return copy


def test_a_new_conversation_is_opened_when_the_customer_wrote_and_queued_when_routed():
    core = with_agents(None, agent("ann", skills={"billing": 2}))
    outcome = core.on_message(msg("t", skills=["billing"], priority=2), at(5))
    opened, queued = outcome.events
    conversation = conversation_of(core, "t")
    assert (opened.type, opened.at, opened.details["priority"], opened.details["skills"]) == (
        events.CONVERSATION_OPENED, T0, 2, ["billing"])
    assert (queued.type, queued.at, queued.queue, queued.details["reason"]) == (
        events.CONVERSATION_QUEUED, at(5), conversation.queue, "opened")
    assert opened.details["channel"] == "webchat" and opened.conversation_id == conversation.conversation_id
    assert [opened.event_id, queued.event_id] == [f"{conversation.conversation_id}:000001:conversation.opened",
                                                  f"{conversation.conversation_id}:000002:conversation.queued"]
    assert assigned(outcome) == [("ann", "t")]


def test_offers_are_events_and_an_offer_not_taken_queues_the_conversation_again():
    core = with_agents(config(queues=[{"name": "default", "mode": "offer", "offer_timeout_seconds": 30}]),
                       agent("ann"), agent("bob"))
    first = core.on_message(msg("t"), at(1))
    offer = next(e for e in first.events if e.type == events.CONVERSATION_OFFERED)
    conversation = conversation_of(core, "t")
    rejected = core.on_offer_answer(OfferAnswer(workspace_id="default", conversation_id=conversation.conversation_id,
                                                agent_id=offer.agent_id, accepted=False), at(3))
    assert event_types(rejected) == [events.CONVERSATION_QUEUED, events.CONVERSATION_OFFERED]
    assert queued_reasons(rejected) == ["requeued"] and rejected.events[1].agent_id != offer.agent_id
    timed_out = core.tick(at(40))  # both agents passed on it: it waits
    assert event_types(timed_out) == [events.OFFER_EXPIRED, events.CONVERSATION_QUEUED]


def test_a_call_not_answered_and_an_agent_gone_offline_queue_it_again_with_the_reason():
    core = with_agents(None, agent("ann", media={"voice": 1}))
    core.on_message(msg("call", channel="voice"), at(1))
    assert queued_reasons(ring_out(core, "call", at(20), "ann")) == ["requeued"]
    core.on_message(msg("chat"), at(30))
    core.on_agent(agent("bea"), at(31))
    assert conversation_of(core, "chat").assignee_id == "ann"
    offline = core.on_agent(agent("ann", media={"voice": 1}, status="offline"), at(40))
    offline.merge(core.reroute_pending(at(40)))
    assert "rerouted" in queued_reasons(offline) and ("bea", "chat") in assigned(offline)


def test_a_transfer_is_reported_before_the_queueing_and_assignment_it_causes():
    core = with_agents(config(queues=[{"name": "default"}, {"name": "tier2"}]), agent("ann"), agent("bob"))
    core.on_message(msg("t"), at(1))
    conversation = conversation_of(core, "t")
    first = conversation.assignee_id
    to_queue = core.on_transfer(TransferRequest(workspace_id="default", conversation_id=conversation.conversation_id,
                                                by_agent=first, to_queue="tier2"), at(10))
    transferred, queued = to_queue.events
    assert (transferred.type, transferred.details["from_agent"], transferred.details["from_queue"], transferred.queue) == (
        events.CONVERSATION_TRANSFERRED, first, "default", "tier2")
    assert (queued.details["reason"], queued.queue) == ("transferred", "tier2")
    assert transferred.event_id < queued.event_id  # equal times: the ids sort in the order of the facts
    other = "bob" if conversation.assignee_id == "ann" else "ann"
    to_agent = core.on_transfer(TransferRequest(workspace_id="default", conversation_id=conversation.conversation_id,
                                                by_agent=conversation.assignee_id, to_agent=other), at(20))
    assert event_types(to_agent) == [events.CONVERSATION_TRANSFERRED, events.CONVERSATION_QUEUED]
    assert assigned(to_agent) == [(other, "t")]


def test_an_overflow_queues_it_in_the_overflow_queue():
    core = with_agents(config(queues=[{"name": "default", "max_wait": {"seconds": 30, "action": "overflow",
                                                                      "overflow_queue": "spill"}},
                                      {"name": "spill"}]))
    core.on_message(msg("t"), at(0))
    fired = core.tick(at(31))
    assert event_types(fired) == [events.CONVERSATION_MAX_WAIT, events.CONVERSATION_QUEUED]
    assert (fired.events[1].queue, fired.events[1].details["reason"]) == ("spill", "overflowed")


def test_a_removed_queue_reroutes_its_waiting_conversations():
    core = with_agents(config(queues=[{"name": "default"}, {"name": "old"}]))
    core.on_message(msg("t", queue="old"), at(0))
    outcome = core.set_config(config(queues=[{"name": "default"}]), at(10))
    assert queued_reasons(outcome) == ["rerouted"] and outcome.events[0].queue == "default"


def test_a_chat_left_while_waiting_is_abandoned_when_it_was_left_and_an_assigned_one_stays():
    core = with_agents(None, agent("ann", capacity=1))
    core.on_message(msg("held"), at(0))
    core.on_message(msg("waits"), at(10))
    left = ThreadLeft(workspace_id="default", channel="webchat", thread_id="waits", reason="chat closed", at=at(25))
    outcome = core.on_thread_left(left, at(85))
    assert event_types(outcome) == [events.CONVERSATION_ABANDONED]
    abandoned = outcome.events[0]
    assert (abandoned.at, abandoned.details["reason"], abandoned.details["waited_seconds"]) == (at(25), "chat closed", 15)
    assert ("default", "webchat", "waits") not in core.by_thread
    gone = ThreadLeft(workspace_id="default", channel="webchat", thread_id="held", reason="chat closed", at=at(30))
    assert core.on_thread_left(gone, at(90)).events == [] and conversation_of(core, "held").assignee_id == "ann"


def test_the_same_input_over_the_same_saved_state_gives_the_same_event_ids():
    core = with_agents(config(queues=[{"name": "default", "mode": "offer"}]), agent("ann"), agent("bob"))
    core.on_message(msg("t"), at(1))
    conversation = conversation_of(core, "t")
    offer = OfferAnswer(workspace_id="default", conversation_id=conversation.conversation_id,
                        agent_id=conversation.offer.agent_id, accepted=False)
    again = rebuilt(core)
    first, second = core.on_offer_answer(offer, at(5)), again.on_offer_answer(offer, at(6))
    assert [e.event_id for e in first.events] == [e.event_id for e in second.events] != []


def test_every_event_of_a_conversation_has_an_id_of_its_own():
    core = with_agents(config(queues=[{"name": "default", "mode": "offer", "offer_timeout_seconds": 5}]),
                       agent("ann"), agent("bob"))
    made = core.on_message(msg("t"), at(0)).events
    for second in range(10, 200, 10):
        made += core.tick(at(second)).events
    ids = [e.event_id for e in made]
    assert len(ids) > 10 and len(set(ids)) == len(ids)
