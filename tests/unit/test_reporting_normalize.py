"""The normalizer: every routing key reporting binds, with the body its producer really makes,
turned into ReportEvents; and a clear error for what it cannot read (pure, no I/O)."""

from datetime import UTC, datetime, timedelta

import pytest

from services.agents import facts
from services.agents.store import agent_snapshot
from services.reporting.model import ReportEvent
from services.reporting.normalize import MalformedBody, NormalizeError, UnknownRoutingKey, normalize
from services.router.service import _routed_events
from shared import events
from shared.models import (
    SYSTEM_AGENT,
    Contact,
    ConversationAnswered,
    ConversationAssigned,
    ConversationEnded,
    ConversationMessage,
    ConversationResolved,
    InboundMessage,
    OutboundMessage,
    RoutingEvent,
    ThreadClosed,
    TransferRequest,
)
from shared.topology import REPORTING_BINDINGS, core_queue_takes, topic_matches
from tests.unit.test_routing_acd import T0, agent, at, config, conversation_of, msg, with_agents
from tests.unit.test_routing_bot_incidents import bot_core, decision, opened_with_bot
from tests.unit.test_routing_core import at as bot_at


def one(routing_key: str, model) -> ReportEvent:
    reported = normalize(routing_key, model.model_dump_json().encode())
    assert len(reported) == 1, reported
    return reported[0]


def routed(core_outcome) -> RoutingEvent:
    return _routed_events(core_outcome)[0]


def event_of(outcome, event_type: str) -> RoutingEvent:
    return next(e for e in outcome.events if e.type == event_type)


# -- router events -------------------------------------------------------------------------------


def test_a_conversation_opened_queued_and_assigned():
    core = with_agents(None, agent("ann"))
    outcome = core.on_message(msg("t", channel="telegram", skills=[], priority=1), at(4))
    cid = conversation_of(core, "t", "telegram").conversation_id
    opened = one(events.CONVERSATION_OPENED, event_of(outcome, events.CONVERSATION_OPENED))
    assert (opened.type, opened.conversation_id, opened.channel, opened.queue, opened.at) == (
        "conversation.opened", cid, "telegram", "default", T0)
    assert opened.data == {"priority": 1, "skills": []}
    queued = one(events.CONVERSATION_QUEUED, event_of(outcome, events.CONVERSATION_QUEUED))
    assert (queued.type, queued.queue, queued.at, queued.data) == ("conversation.queued", "default", at(4),
                                                                   {"reason": "opened"})
    assignment = routed(outcome)
    assigned = one(f"{events.CONVERSATION_ROUTED}.telegram", assignment)
    assert (assigned.type, assigned.agent_id, assigned.queue, assigned.channel, assigned.at) == (
        "conversation.assigned", "ann", "default", "telegram", at(4))
    assert assigned.event_id == f"routed:{cid}:1"
    assert len({opened.event_id, queued.event_id, assigned.event_id}) == 3


def test_an_offer():
    core = with_agents(config(queues=[{"name": "default", "mode": "offer"}]), agent("ann"))
    outcome = core.on_message(msg("t"), at(1))
    offered = one(events.CONVERSATION_OFFERED, event_of(outcome, events.CONVERSATION_OFFERED))
    assert (offered.type, offered.agent_id, offered.channel, offered.at) == ("conversation.offered", "ann", "webchat",
                                                                            at(1))


def test_a_transfer_counts_where_it_came_from_and_a_refused_one_is_no_fact():
    core = with_agents(config(queues=[{"name": "default"}, {"name": "tier2"}]), agent("ann"))
    core.on_message(msg("t"), at(1))
    cid = conversation_of(core, "t").conversation_id
    request = TransferRequest(workspace_id="default", conversation_id=cid, by_agent="ann", to_queue="tier2",
                              escalation=True)
    transferred = one(events.CONVERSATION_TRANSFERRED, event_of(core.on_transfer(request, at(9)),
                                                                events.CONVERSATION_TRANSFERRED))
    assert (transferred.agent_id, transferred.queue, transferred.at) == ("ann", "default", at(9))
    assert transferred.data == {"from_agent": "ann", "to_agent": None, "to_queue": "tier2", "escalation": True}
    refused = core.on_transfer(request.model_copy(update={"to_queue": "ghost"}), at(10))  # no such queue
    body = event_of(refused, events.CONVERSATION_TRANSFERRED).model_dump_json().encode()
    assert normalize(events.CONVERSATION_TRANSFERRED, body) == []


def test_an_abandoned_wait():
    core = with_agents(None)
    core.on_message(msg("call", channel="voice"), at(0))
    closed = ThreadClosed(workspace_id="default", channel="voice", thread_id="call", reason="caller hung up")
    abandoned = one(events.CONVERSATION_ABANDONED, event_of(core.on_thread_closed(closed, at(30)),
                                                            events.CONVERSATION_ABANDONED))
    assert (abandoned.type, abandoned.channel, abandoned.queue, abandoned.at, abandoned.data) == (
        "conversation.abandoned", "voice", "default", at(30), {"reason": "caller hung up"})


@pytest.mark.parametrize("level", ["warning", "breached"])
def test_sla_events(level: str):
    core = with_agents(config(queues=[{"name": "default", "sla": {"first_response_seconds": 100}}]), agent("ann"))
    core.on_message(msg("t"), at(0))
    key = f"sla.{level}"
    reported = one(key, event_of(core.tick(at(200)), key))
    assert (reported.type, reported.agent_id, reported.data) == (key, "ann", {"target": "first_response"})


# -- the pre-routing bot (docs/bot.md) -----------------------------------------------------------


def test_a_conversation_given_to_the_bot_says_so_when_opened_and_one_without_does_not():
    core = bot_core()
    outcome, _ = opened_with_bot(core)
    opened = one(events.CONVERSATION_OPENED, event_of(outcome, events.CONVERSATION_OPENED))
    assert opened.data == {"priority": 0, "skills": [], "bot": True}
    plain = with_agents(None, agent("ann")).on_message(msg("t"), at(1))
    assert "bot" not in one(events.CONVERSATION_OPENED, event_of(plain, events.CONVERSATION_OPENED)).data


def test_the_bot_handing_over_and_resolving():
    core = bot_core()
    _, handed = opened_with_bot(core, "h")
    outcome = core.on_bot_decision(decision(handed, "handover", "the customer asked for a person", code="declined"),
                                   bot_at(9))
    over = one(events.BOT_HANDED_OVER, event_of(outcome, events.BOT_HANDED_OVER))
    assert (over.type, over.conversation_id, over.queue, over.channel, over.at, over.data) == (
        "bot.handed_over", handed.conversation_id, "default", "api", bot_at(9),
        {"reason": "the customer asked for a person", "code": "declined"})
    queued = one(events.CONVERSATION_QUEUED, event_of(outcome, events.CONVERSATION_QUEUED))
    assert queued.data == {"reason": "handed over by the bot"} and over.sort_key() < queued.sort_key()

    _, solved = opened_with_bot(core, "r", 10)
    core.on_bot_decision(decision(solved, "answered"), bot_at(11))
    resolved = one(events.BOT_RESOLVED, event_of(core.on_bot_decision(decision(solved, "resolved"), bot_at(14)),
                                                 events.BOT_RESOLVED))
    assert (resolved.type, resolved.conversation_id, resolved.queue, resolved.channel, resolved.at, resolved.data) == (
        "bot.resolved", solved.conversation_id, "default", "api", bot_at(14), {"duration_seconds": 4.0})


def test_a_bot_event_without_its_detail_is_refused():
    body = queued_event(type=events.BOT_HANDED_OVER, details={"channel": "webchat"}).model_dump_json().encode()
    with pytest.raises(MalformedBody, match="details lack reason"):
        normalize(events.BOT_HANDED_OVER, body)


# -- agents service facts ------------------------------------------------------------------------


def assignment(seq: int = 1, conversation_id: str = "c2", created_at: datetime = T0) -> ConversationAssigned:
    core = with_agents(None, agent("ann"))
    info = routed(core.on_message(msg("t"), at(1)))
    conversation = core.conversations[info.conversation_id].info("ann", at(1))
    conversation = conversation.model_copy(update={"conversation_id": conversation_id, "assignment_seq": seq,
                                                   "created_at": created_at})
    return ConversationAssigned(conversation=conversation, messages=[msg("t", "first"), msg("t", "second")])


def test_customer_messages_of_an_assignment_and_a_later_message():
    assigned = assignment()
    later = ConversationMessage(conversation_id="c2", workspace_id="default", assignee_id="ann",
                                message=msg("t", "third"))
    created = [one(events.MESSAGE_CREATED, fact) for fact in facts.messages_created([assigned, later])]
    assert [(c.type, c.conversation_id, c.channel, c.data["direction"], c.agent_id) for c in created] == [
        ("message.created", "c2", "webchat", "inbound", None)] * 3
    assert [c.queue for c in created] == ["default", "default", None]
    assert [c.event_id for c in created] == ["message.created:t:first", "message.created:t:second",
                                             "message.created:t:third"]


def reply(agent_id: str = "ann") -> OutboundMessage:
    return OutboundMessage(message_id="r1", workspace_id="default", conversation_id="c2", channel="webchat",
                           thread_id="t", contact=Contact(id="t"), agent_id=agent_id, text="hello", created_at=at(7))


def test_an_agent_reply_and_an_automatic_one():
    created = one(f"{events.MESSAGE_OUTBOUND}.webchat", reply())
    assert (created.type, created.event_id, created.agent_id, created.at, created.channel, created.data) == (
        "message.created", "message.created:r1", "ann", at(7), "webchat", {"direction": "outbound"})
    automatic = reply(SYSTEM_AGENT).model_dump_json().encode()
    assert normalize(f"{events.MESSAGE_OUTBOUND}.webchat", automatic) == []


def test_labels_changed_carry_the_whole_set_with_an_id_per_change():
    conversation = {"_id": "c3", "workspace_id": "default", "channel": "email", "queue": "billing",
                    "labels": ["billing", "refund"], "labels_version": 2, "labels_at": at(9)}
    changed = one(events.CONVERSATION_LABELS_CHANGED, facts.labels_changed(conversation, "ann"))
    assert (changed.type, changed.event_id, changed.conversation_id, changed.agent_id, changed.queue, changed.channel,
            changed.at, changed.data) == ("conversation.labels_changed", "conversation.labels_changed:c3:2", "c3", "ann",
                                          "billing", "email", at(9), {"labels": ["billing", "refund"]})


def test_the_first_answer():
    answered = one(events.CONVERSATION_ANSWERED, ConversationAnswered(
        workspace_id="default", conversation_id="c2", agent_id="ann", at=at(8), event_id="answered:c2:ann"))
    assert (answered.type, answered.event_id, answered.agent_id, answered.at) == (
        "conversation.answered", "answered:c2:ann", "ann", at(8))


def test_a_resolution_by_the_agent_and_one_by_the_channel_have_the_same_id():
    stored = {"_id": "c2", "workspace_id": "default", "assignee_id": "ann", "resolved_at": at(20),
              "resolved_reason": None}
    by_agent = one(events.CONVERSATION_RESOLVED, facts.resolution(stored))
    assert (by_agent.type, by_agent.agent_id, by_agent.at, by_agent.data) == ("conversation.resolved", "ann", at(20), {})
    ended = ConversationEnded(workspace_id="default", conversation_id="c2", agent_id="ann", reason="caller hung up",
                              ended_at=at(19))
    by_channel = one(events.CONVERSATION_RESOLVED, facts.ending(ended))
    assert by_channel.data == {"reason": "caller hung up"} and by_channel.event_id == by_agent.event_id


def test_a_reopen_is_of_the_resolved_conversation_at_the_new_message():
    new = assignment(created_at=at(100)).conversation
    previous = {"_id": "c1", "assignee_id": "bob", "queue": "billing", "resolved_at": at(50)}
    reopened = one(events.CONVERSATION_REOPENED, facts.reopened(new, previous))
    assert (reopened.type, reopened.conversation_id, reopened.agent_id, reopened.queue, reopened.at) == (
        "conversation.reopened", "c1", "bob", "billing", at(100))
    assert reopened.data == {"new_conversation_id": "c2", "resolved_at": at(50).isoformat()}


@pytest.mark.parametrize("key", [events.AGENT_STATUS_CHANGED, events.AGENT_UPDATED])
def test_an_agent_snapshot_is_its_status_from_then_on(key: str):
    doc = {"workspace_id": "default", "agent_id": "ann", "version": 4, "status": "away", "max_conversations": 3,
           "changed_at": at(30)}
    status = one(key, agent_snapshot(doc))
    assert (status.type, status.event_id, status.agent_id, status.at, status.data) == (
        "agent.status_changed", "agent:default:ann:4", "ann", at(30),
        {"status": "away", "max_conversations": 3, "channel_capacity": {}, "version": 4})


REPORTED_KEYS = {
    events.CONVERSATION_OPENED, events.CONVERSATION_QUEUED, events.CONVERSATION_OFFERED, "conversation.routed.sms",
    events.CONVERSATION_ANSWERED, events.CONVERSATION_TRANSFERRED, events.CONVERSATION_RESOLVED,
    events.CONVERSATION_REOPENED, events.CONVERSATION_ABANDONED, events.MESSAGE_CREATED, "message.outbound.email",
    events.SLA_WARNING, events.SLA_BREACHED, events.AGENT_UPDATED, events.AGENT_STATUS_CHANGED,
    events.CONVERSATION_LABELS_CHANGED, events.CONVERSATION_LABELED, events.CSAT_RECEIVED,
    events.BOT_HANDED_OVER, events.BOT_RESOLVED, events.INCIDENT_DETECTED, events.INCIDENT_UPDATED,
    events.INCIDENT_RESOLVED, events.CONVERSATION_CLOSED,
}


def test_every_key_reporting_binds_is_read():
    for pattern in REPORTING_BINDINGS:
        matching = [key for key in REPORTED_KEYS if topic_matches(pattern, key)]
        assert matching, f"no sample for the binding {pattern!r}"
        for key in matching:
            with pytest.raises(MalformedBody):  # read (and refused as empty), never an unknown key
                normalize(key, b"{}")


def test_what_reporting_binds_is_published_mandatory_and_what_only_optional_listeners_bind_is_not():
    assert all(core_queue_takes(key) for key in REPORTED_KEYS)
    assert not any(core_queue_takes(key) for key in (events.CONVERSATION_MAX_WAIT, events.OFFER_EXPIRED,
                                                    events.CONVERSATION_NOT_ANSWERED, "conversation.routed"))


# -- what it cannot read -------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["message.received", "conversation.routed", "message.outbound", "nonsense", ""])
def test_an_unknown_routing_key_is_named(key: str):
    with pytest.raises(UnknownRoutingKey, match=f"routing key {key!r}"):
        normalize(key, b"{}")


def queued_event(**changes) -> RoutingEvent:
    fields = {"event_id": "c1:000002:conversation.queued", "type": events.CONVERSATION_QUEUED,
              "workspace_id": "default", "conversation_id": "c1", "queue": "default", "at": at(1),
              "details": {"channel": "webchat", "reason": "opened"}}
    return RoutingEvent(**(fields | changes))


@pytest.mark.parametrize(("key", "body", "problem"), [
    (events.CONVERSATION_QUEUED, b"not json", "Invalid JSON"),
    (events.CONVERSATION_QUEUED, b'{"type": "conversation.queued"}', "Field required"),
    (events.CONVERSATION_QUEUED, reply().model_dump_json().encode(), "RoutingEvent is invalid"),
    (events.CONVERSATION_OPENED, queued_event().model_dump_json().encode(), "not 'conversation.opened'"),
    (events.CONVERSATION_QUEUED, queued_event(details={"channel": "webchat"}).model_dump_json().encode(),
     "details lack reason"),
    (events.CONVERSATION_QUEUED, queued_event(at=datetime(2026, 3, 2, 9, 0)).model_dump_json().encode(),
     "timezone"),
    ("conversation.routed.webchat", queued_event(type=events.CONVERSATION_ROUTED).model_dump_json().encode(),
     "no agent_id"),
    (events.CONVERSATION_RESOLVED, b'{"workspace_id": "default", "conversation_id": "c1"}',
     "does not name its event_id and resolved_at"),
    (events.AGENT_STATUS_CHANGED, (b'{"workspace_id": "default", "agent_id": "ann", "version": 1, '
                                   b'"max_conversations": 3, "status": "online", "event_id": "agent:default:ann:1"}'),
     "does not name its at"),
])
def test_a_malformed_body_says_what_is_wrong(key: str, body: bytes, problem: str):
    with pytest.raises(MalformedBody, match=problem) as raised:
        normalize(key, body)
    assert isinstance(raised.value, NormalizeError) and isinstance(raised.value, ValueError)
    assert str(raised.value).startswith(f"{key}: ")


def test_a_producer_time_is_kept_as_given():
    late = queued_event(at=datetime(2026, 3, 2, 11, 0, tzinfo=UTC) + timedelta(microseconds=5))
    assert one(events.CONVERSATION_QUEUED, late).at == late.at


def test_a_customer_message_keeps_intakes_time():
    message = InboundMessage(message_id="m1", channel="sms", thread_id="t", contact=Contact(id="t"), text="x",
                             received_at=at(3))
    created = one(events.MESSAGE_CREATED, facts.message_created(message, "c1", None))
    assert created.at == at(3) and created.channel == "sms"


def test_a_resolution_of_a_conversation_no_agent_held():
    body = ConversationResolved(event_id="resolved:c1", workspace_id="default", conversation_id="c1",
                                resolved_at=at(5)).model_dump_json().encode()
    assert normalize(events.CONVERSATION_RESOLVED, body)[0].agent_id is None


def test_a_handover_from_a_router_before_codes_is_read_without_one():
    older = RoutingEvent(event_id="c9:000003:bot.handed_over", type=events.BOT_HANDED_OVER, workspace_id="default",
                         conversation_id="c9", queue="default", at=bot_at(5),
                         details={"channel": "api", "thread_id": "t9", "reason": "the customer asked for a person"})
    read = one(events.BOT_HANDED_OVER, older)
    assert read.data == {"reason": "the customer asked for a person"}
