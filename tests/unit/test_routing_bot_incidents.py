"""The pre-routing bot and incident links in the routing core (docs/bot.md, docs/incidents.md): a new conversation of a queue or channel the
bot takes is answered by the bot first; it reaches a human when the bot hands it over, is late, or the
customer goes silent, with its original wait kept; a bot that is off changes nothing."""

from services.router.config import BotSettings, IncidentSettings, QueueConfig, RoutingConfig, SlaTargets
from services.router.core import RoutingCore
from services.router.store import _conversation_from_doc, _conversation_to_doc
from shared import events
from shared.models import (
    BotDecision,
    ConversationAssigned,
    ConversationEnded,
    ConversationResolved,
    IncidentClosing,
    IncidentLinked,
)
from tests.unit.test_routing_core import agent, assigned_to, at, message


def bot_core(**bot) -> RoutingCore:
    config = RoutingConfig(queues=[QueueConfig(name="default", sla=SlaTargets(first_response_seconds=120))],
                           bot=BotSettings(answer_seconds=10, reply_seconds=60, **bot))
    core = RoutingCore(config)
    core.on_agent(agent("ann", capacity=2), at(0))
    return core


def types(outcome) -> list[str]:
    return [e.type for e in outcome.events]


def decision(conversation, kind: str, reason: str = "", session: int | None = None,
             code: str | None = None) -> BotDecision:
    return BotDecision(workspace_id="default", conversation_id=conversation.conversation_id,
                       session=conversation.bot_session if session is None else session, decision=kind, reason=reason,
                       code=code)


def opened_with_bot(core: RoutingCore, thread: str = "c1", when: float = 1):
    outcome = core.on_message(message(thread, "how do I reset my password?"), at(when))
    conversation = next(c for c in core.conversations.values() if c.first.thread_id == thread)
    return outcome, conversation


def test_a_new_conversation_goes_to_the_bot_first_and_no_agent_is_given_it():
    core = bot_core()
    outcome, conversation = opened_with_bot(core)
    assert assigned_to(outcome) == []  # ann is free, but the bot answers first
    assert types(outcome) == [events.CONVERSATION_OPENED, events.BOT_REQUESTED]  # not queued for humans yet
    assert outcome.events[0].details["bot"] is True
    request = outcome.events[-1]
    assert request.details["text"] == "how do I reset my password?"
    assert request.details["session"] == conversation.bot_session > 0
    assert conversation.bot == "asked" and not conversation.waiting


def test_the_customer_saying_yes_resolves_it_without_a_human():
    core = bot_core()
    _, conversation = opened_with_bot(core)
    core.on_bot_decision(decision(conversation, "answered"), at(2))
    follow = core.on_message(message("c1", "Yes, thanks", mid="press-1"), at(5))
    assert types(follow) == [events.BOT_MESSAGE] and follow.events[0].details["text"] == "Yes, thanks"
    outcome = core.on_bot_decision(decision(conversation, "resolved"), at(6))
    assert types(outcome) == [events.BOT_RESOLVED]
    assert conversation.conversation_id in outcome.closed_conversations
    assert core.conversations == {} and assigned_to(outcome) == []
    # the thread's next message opens a new conversation, with the bot again
    again, _ = opened_with_bot(core, "c1", 30)
    assert events.BOT_REQUESTED in types(again)


def test_a_handover_routes_it_at_once_with_its_original_wait_and_the_transcript():
    core = bot_core()
    _, conversation = opened_with_bot(core)
    opened_at = conversation.waiting_since
    core.on_bot_decision(decision(conversation, "answered"), at(2))
    core.on_message(message("c1", "No, I need a person", mid="press-2"), at(8))
    outcome = core.on_bot_decision(decision(conversation, "handover", "asked for a person", code="declined"), at(9))
    assert types(outcome)[:2] == [events.BOT_HANDED_OVER, events.CONVERSATION_QUEUED]
    assert (outcome.events[0].details["reason"], outcome.events[0].details["code"]) == ("asked for a person", "declined")
    assert assigned_to(outcome) == [("ann", "c1")]
    delivery = next(d for _, d in outcome.deliveries if isinstance(d, ConversationAssigned))
    assert [m.text for m in delivery.messages] == ["how do I reset my password?", "No, I need a person"]
    assert delivery.conversation.waiting_since == opened_at  # the wait counts from when the customer wrote
    assert conversation.sla["first_response"]["due_at"] == at(1 + 120)  # the SLA too


def test_a_bot_that_does_not_answer_in_time_hands_over():
    core = bot_core()
    _, conversation = opened_with_bot(core)
    assert core.tick(at(10)).events == []  # due at 1 + 10
    outcome = core.tick(at(11))
    assert types(outcome)[0] == events.BOT_HANDED_OVER and "did not answer" in outcome.events[0].details["reason"]
    assert outcome.events[0].details["code"] == "bot_late"
    assert assigned_to(outcome) == [("ann", "c1")]
    late = core.on_bot_decision(decision(conversation, "answered"), at(12))  # too late: changes nothing
    assert late.events == [] and conversation.bot is None


def test_a_customer_silent_after_the_answer_goes_to_a_human():
    core = bot_core()
    _, conversation = opened_with_bot(core)
    core.on_bot_decision(decision(conversation, "answered"), at(2))
    assert core.tick(at(11)).events == []  # the answer came: the answer timer is stale
    outcome = core.tick(at(62))  # 2 + 60
    assert types(outcome)[0] == events.BOT_HANDED_OVER and "did not reply" in outcome.events[0].details["reason"]
    assert outcome.events[0].details["code"] == "no_reply"
    assert assigned_to(outcome) == [("ann", "c1")]


def test_decisions_about_another_session_or_repeated_change_nothing():
    core = bot_core()
    _, conversation = opened_with_bot(core)
    assert core.on_bot_decision(decision(conversation, "resolved", session=conversation.bot_session + 7), at(2)).events == []
    core.on_bot_decision(decision(conversation, "handover", "no match"), at(3))
    assert core.on_bot_decision(decision(conversation, "handover", "no match"), at(4)).events == []
    assert core.on_bot_decision(decision(conversation, "resolved"), at(5)).events == []  # it is ann's now
    assert conversation.assignee_id == "ann"


def test_the_bot_takes_only_its_queues_and_channels_and_never_a_call():
    config = RoutingConfig(queues=[QueueConfig(name="default"), QueueConfig(name="sales")],
                           rules=[{"queue": "sales", "keywords": ["buy"]}],
                           bot=BotSettings(queues=["default"], channels=["webchat", "api"]))
    core = RoutingCore(config)
    core.on_agent(agent("ann", capacity=5), at(0))
    assert events.BOT_REQUESTED in types(core.on_message(message("a", "reset password"), at(1)))
    assert assigned_to(core.on_message(message("b", "I want to buy"), at(2))) == [("ann", "b")]  # sales: no bot
    assert assigned_to(core.on_message(message("c", "reset", channel="telegram"), at(3))) == [("ann", "c")]
    assert not BotSettings().takes("default", "voice")


def test_a_bot_that_is_off_or_absent_changes_nothing():
    for bot in (None, BotSettings(enabled=False)):
        core = RoutingCore(RoutingConfig(bot=bot))
        core.on_agent(agent("ann"), at(0))
        outcome = core.on_message(message("c1"), at(1))
        assert assigned_to(outcome) == [("ann", "c1")]
        assert types(outcome)[:2] == [events.CONVERSATION_OPENED, events.CONVERSATION_QUEUED]
        assert "bot" not in outcome.events[0].details


def test_a_returning_customer_of_a_recent_conversation_goes_to_their_agent_not_the_bot():
    core = bot_core()
    _, first = opened_with_bot(core)
    core.on_bot_decision(decision(first, "handover", "no match"), at(2))
    core.on_resolved(ConversationResolved(workspace_id="default", conversation_id=first.conversation_id), at(3))
    outcome = core.on_message(message("c1", "one more thing"), at(4))
    assert events.BOT_REQUESTED not in types(outcome) and assigned_to(outcome) == [("ann", "c1")]


def test_a_conversation_with_the_bot_survives_a_rebuild_with_its_timer():
    core = bot_core()
    _, conversation = opened_with_bot(core)
    core.on_bot_decision(decision(conversation, "answered"), at(2))
    doc = {"_id": conversation.conversation_id, **_conversation_to_doc(conversation)}
    saved = _conversation_from_doc(doc)
    saved.backlog = list(conversation.backlog)
    rebuilt = RoutingCore.rebuilt(core.config, list(core.agents.values()), [saved], {})
    assert rebuilt.route_waiting(at(3)).deliveries == []  # not offered to ann while with the bot
    outcome = rebuilt.tick(at(62))
    assert types(outcome)[0] == events.BOT_HANDED_OVER and assigned_to(outcome) == [("ann", "c1")]
    session = saved.bot_session
    fresh = rebuilt.on_message(message("z9", "another question"), at(63))
    assert next(e for e in fresh.events if e.type == events.BOT_REQUESTED).details["session"] > session


# -- surges and incidents (docs/incidents.md) -------------------------------------------------

def incident_core(**settings) -> RoutingCore:
    config = RoutingConfig(queues=[QueueConfig(name="default"), QueueConfig(name="outage", skills={"network": 1})],
                           incidents=IncidentSettings(**settings))
    core = RoutingCore(config)
    core.on_agent(agent("ann", capacity=1), at(0))
    return core


def linked(conversation, incident: str = "default:m1") -> IncidentLinked:
    return IncidentLinked(workspace_id="default", conversation_id=conversation.conversation_id, incident_id=incident)


def test_every_customer_message_goes_to_surge_detection_only_when_it_is_on():
    core = incident_core()
    opened = core.on_message(message("c1", "the app crashes"), at(1))
    surge, = [e for e in opened.events if e.type == events.SURGE_MESSAGE]
    assert surge.details["text"] == "the app crashes" and surge.conversation_id
    follow = core.on_message(message("c1", "still crashing", mid="m2"), at(2))
    assert [e.type for e in follow.events] == [events.SURGE_MESSAGE]
    press = message("c1", "Yes, thanks", mid="m3").model_copy(update={"action": "bot.yes"})
    assert core.on_message(press, at(3)).events == []  # a button press is an answer, not a report
    off = RoutingCore(RoutingConfig())
    assert all(e.type != events.SURGE_MESSAGE for e in off.on_message(message("c2", "crash"), at(1)).events)


def test_a_linked_conversation_gets_the_status_reply_once_and_moves_to_the_incident_queue_if_it_waits():
    core = incident_core(status_reply="We know about it and are fixing it.", queue="outage")
    core.on_message(message("held", "first"), at(1))  # ann (capacity 1) holds it
    core.on_message(message("waits", "the app crashes"), at(2))
    held, waits = (next(c for c in core.conversations.values() if c.first.thread_id == t) for t in ("held", "waits"))
    outcome = core.on_incident_linked(linked(waits), at(3))
    reply, = [e for e in outcome.events if e.type == events.CONVERSATION_AUTO_REPLY]
    assert reply.details["text"] == "We know about it and are fixing it."
    assert waits.queue == "outage" and waits.reason == "incident"
    assert [e.details.get("reason") for e in outcome.events if e.type == events.CONVERSATION_QUEUED] == ["incident"]
    assert core.on_incident_linked(linked(waits), at(4)).events == []  # once
    on_desk = core.on_incident_linked(linked(held), at(5))
    assert [e.type for e in on_desk.events] == [events.CONVERSATION_AUTO_REPLY] and held.assignee_id == "ann"
    assert core.on_incident_linked(IncidentLinked(workspace_id="default", conversation_id="gone", incident_id="x"),
                                   at(6)).events == []


def test_a_moved_conversation_takes_the_incident_queue_priority():
    config = RoutingConfig(queues=[QueueConfig(name="default"), QueueConfig(name="outage", priority=7)],
                           incidents=IncidentSettings(queue="outage"))
    core = RoutingCore(config)
    core.on_message(message("waits", "the app crashes"), at(1))
    waits, = core.conversations.values()
    core.on_incident_linked(linked(waits), at(2))
    assert (waits.queue, waits.priority, waits.priority_parts["queue"]) == ("outage", 7, 7)


def test_resolving_an_incident_replies_to_each_open_conversation_and_ends_those_agents_hold():
    core = incident_core()
    core.on_message(message("held", "the app crashes"), at(1))  # ann (capacity 1) holds it
    core.on_message(message("waits", "the app crashes too"), at(2))
    held, waits = (next(c for c in core.conversations.values() if c.first.thread_id == t) for t in ("held", "waits"))
    closing = IncidentClosing(workspace_id="default", incident_id="default:m1", reply="Fixed now.", resolve=True,
                              conversation_ids=[held.conversation_id, waits.conversation_id, "gone"])
    outcome = core.on_incident_closing(closing, at(3))
    replies = [e.conversation_id for e in outcome.events if e.type == events.CONVERSATION_AUTO_REPLY]
    assert sorted(replies) == sorted([held.conversation_id, waits.conversation_id])
    ended, = [d for _, d in outcome.deliveries if isinstance(d, ConversationEnded)]
    assert ended.conversation_id == held.conversation_id and ended.reason == "the incident was resolved"
    assert held.conversation_id not in core.conversations
    assert assigned_to(outcome) == [("ann", "waits")]  # her slot freed: the waiting one is hers now


def test_resolving_an_incident_with_its_conversations_closes_those_nobody_holds():
    core = RoutingCore(RoutingConfig(incidents=IncidentSettings()))  # nobody online: both wait
    core.on_message(message("a", "the app crashes"), at(1))
    core.on_message(message("b", "the app crashes too"), at(2))
    ids = [c.conversation_id for c in core.conversations.values()]
    outcome = core.on_incident_closing(IncidentClosing(workspace_id="default", incident_id="default:m1",
                                                       reply="Fixed now.", resolve=True, conversation_ids=ids), at(3))
    closed = [e for e in outcome.events if e.type == events.CONVERSATION_CLOSED]
    assert sorted(e.conversation_id for e in closed) == sorted(ids)
    assert closed[0].details["reason"] == "the incident was resolved" and closed[0].details["incident_id"] == "default:m1"
    assert core.conversations == {} and outcome.closed_conversations == set(ids)
    kept = RoutingCore(RoutingConfig(incidents=IncidentSettings()))  # without resolve: the reply only
    kept.on_message(message("c", "the app crashes"), at(1))
    only_reply = kept.on_incident_closing(IncidentClosing(
        workspace_id="default", incident_id="default:m1", reply="Fixed now.",
        conversation_ids=list(kept.conversations)), at(3))
    assert [e.type for e in only_reply.events] == [events.CONVERSATION_AUTO_REPLY] and len(kept.conversations) == 1
