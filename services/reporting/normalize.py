"""Each producer's wire body, by its routing key, as the ReportEvents it carries (pure: no I/O).

    routing key                      wire model            ReportEvents
    conversation.opened              RoutingEvent          conversation.opened (data.bot: true when the bot has it)
    conversation.queued              RoutingEvent          conversation.queued
    conversation.offered             RoutingEvent          conversation.offered
    conversation.routed.<channel>    RoutingEvent          conversation.assigned
    conversation.answered            ConversationAnswered  conversation.answered
    conversation.transferred         RoutingEvent          conversation.transferred (none for a refused transfer)
    conversation.resolved            ConversationResolved  conversation.resolved
    conversation.reopened            RoutingEvent          conversation.reopened
    conversation.abandoned           RoutingEvent          conversation.abandoned
    conversation.labels_changed      RoutingEvent          conversation.labels_changed (the whole set)
    conversation.labeled             RoutingEvent          conversation.labeled (labels a rule added)
    message.created                  RoutingEvent          message.created (a customer message)
    message.outbound.<channel>       OutboundMessage       message.created (an agent's reply; none for an automatic one)
    sla.warning, sla.breached        RoutingEvent          sla.warning, sla.breached
    agent.updated, .status_changed   AgentSnapshot         agent.status_changed
    csat.received                    CsatReceived          csat.received (data: score, comment)
    bot.handed_over                  RoutingEvent          bot.handed_over (data.reason)
    bot.resolved                     RoutingEvent          bot.resolved (data.duration_seconds)
    incident.detected, .updated,     RoutingEvent          the same type (data: the incident as it stands,
      .resolved                                              incidents.IncidentState; no conversation or agent)

Each ReportEvent keeps its producer's id (every producer gives the same fact the same id again)
and its producer's time. A key not listed, or a body that does not say what its key promises, is a
NormalizeError naming the problem: the consumer dead-letters the message with it as the reason.
"""

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ValidationError

from services.reporting.incidents import IncidentState
from services.reporting.model import ReportEvent
from shared import events
from shared.models import (
    SYSTEM_AGENT,
    AgentSnapshot,
    ConversationAnswered,
    ConversationResolved,
    CsatReceived,
    OutboundMessage,
    RoutingEvent,
)


class NormalizeError(ValueError):
    """A message reporting cannot record; the text says why."""


class UnknownRoutingKey(NormalizeError):
    """No event reporting records travels under this routing key."""


class MalformedBody(NormalizeError):
    """The body is not the wire model its routing key promises, or lacks a fact reporting needs."""


class _BodyProblem(Exception):
    """What is wrong with a body, raised inside a reader (normalize adds the routing key)."""


def normalize(routing_key: str, body: bytes) -> list[ReportEvent]:
    """The facts one wire event carries (none, one or several), or a NormalizeError saying why not."""
    reader = _reader_of(routing_key)
    if reader is None:
        raise UnknownRoutingKey(f"routing key {routing_key!r} carries no event reporting records")
    try:
        return reader(routing_key, body)
    except ValidationError as error:
        raise MalformedBody(f"{routing_key}: {_summary(error)}") from None
    except _BodyProblem as error:
        raise MalformedBody(f"{routing_key}: {error}") from None


Reader = Callable[[str, bytes], list[ReportEvent]]


def _reader_of(routing_key: str) -> Reader | None:
    if routing_key in ROUTING_FACTS:
        return _routing_fact
    prefix, _, channel = routing_key.rpartition(".")
    if prefix == events.CONVERSATION_ROUTED and channel:
        return _assignment
    if prefix == events.MESSAGE_OUTBOUND and channel:
        return _reply
    return MODEL_READERS.get(routing_key)


def _summary(error: ValidationError) -> str:
    """pydantic's errors on one line: where, and what is wrong there (the first three)."""
    problems = [f"{'.'.join(str(part) for part in e['loc']) or 'body'}: {e['msg']}" for e in error.errors()[:3]]
    more = error.error_count() - len(problems)
    return f"{error.title} is invalid: {'; '.join(problems)}" + (f" (and {more} more)" if more > 0 else "")


# -- the uniform RoutingEvent ------------------------------------------------------------------


def _routing_event(body: bytes, expected_type: str) -> RoutingEvent:
    event = RoutingEvent.model_validate_json(body)
    if event.type != expected_type:
        raise _BodyProblem(f"the body is a {event.type!r} event, not {expected_type!r}")
    return event


def _details(event: RoutingEvent, *names: str) -> dict[str, Any]:
    """These details of the event, every one required."""
    missing = [name for name in names if name not in event.details]
    if missing:
        raise _BodyProblem(f"event {event.event_id}: details lack {', '.join(missing)}")
    return {name: event.details[name] for name in names}


def _optional(event: RoutingEvent, *names: str) -> dict[str, Any]:
    """These details of the event where it has them (an event from before they existed has not)."""
    return {name: event.details[name] for name in names if name in event.details}


def _agent(event: RoutingEvent) -> str:
    if not event.agent_id:
        raise _BodyProblem(f"event {event.event_id}: no agent_id")
    return event.agent_id


def _from(event: RoutingEvent, type_: str, **fields: Any) -> ReportEvent:
    """A ReportEvent with the event's id, time, conversation, agent, queue and channel, unless `fields` say otherwise."""
    base: dict[str, Any] = {
        "event_id": event.event_id, "type": type_, "workspace_id": event.workspace_id, "at": event.at,
        "conversation_id": event.conversation_id, "agent_id": event.agent_id, "queue": event.queue,
        "channel": event.details.get("channel"),
    }
    return ReportEvent(**(base | fields))


def _transfer(event: RoutingEvent) -> list[ReportEvent]:
    if event.details.get("rejected"):
        return []  # refused (not assigned, unknown queue, agent not online): nothing moved
    data = _details(event, "from_agent", "to_agent", "to_queue", "escalation")
    # Counted where it came from: the agent and queue it left.
    return [_from(event, event.type, agent_id=data["from_agent"], queue=event.details.get("from_queue", event.queue),
                  data=data)]


def _opening(event: RoutingEvent) -> list[ReportEvent]:
    data = _details(event, "priority", "skills")
    if event.details.get("bot") is True:
        data["bot"] = True  # given to the pre-routing bot first (docs/bot.md); absent otherwise, as before
    return [_from(event, event.type, data=data)]


def _incident(event: RoutingEvent) -> list[ReportEvent]:
    """assist's announcement: the incident as it stands, about no one conversation (docs/incidents.md)."""
    state = IncidentState.model_validate(event.details)
    return [ReportEvent(event_id=event.event_id, type=event.type, workspace_id=event.workspace_id, at=event.at,
                        data=state.model_dump(mode="json"))]


# What each RoutingEvent key says, as ReportEvents.
ROUTING_FACTS: dict[str, Callable[[RoutingEvent], list[ReportEvent]]] = {
    events.CONVERSATION_OPENED: _opening,
    events.CONVERSATION_QUEUED: lambda e: [_from(e, e.type, data=_details(e, "reason"))],
    events.CONVERSATION_OFFERED: lambda e: [_from(e, e.type, agent_id=_agent(e))],
    events.CONVERSATION_TRANSFERRED: _transfer,
    events.CONVERSATION_REOPENED: lambda e: [_from(e, e.type, data=_details(e, "new_conversation_id", "resolved_at"))],
    events.CONVERSATION_ABANDONED: lambda e: [_from(e, e.type, data=_details(e, "reason"))],
    events.CONVERSATION_CLOSED: lambda e: [_from(e, e.type, data=_details(e, "reason", "incident_id"))],
    events.CONVERSATION_LABELS_CHANGED: lambda e: [_from(e, e.type, data=_details(e, "labels"))],
    events.CONVERSATION_LABELED: lambda e: [_from(e, e.type, data=_details(e, "labels"))],
    events.MESSAGE_CREATED: lambda e: [_from(e, e.type, data=_details(e, "direction"))],
    events.SLA_WARNING: lambda e: [_from(e, e.type, data=_details(e, "target"))],
    events.SLA_BREACHED: lambda e: [_from(e, e.type, data=_details(e, "target"))],
    events.BOT_HANDED_OVER: lambda e: [_from(e, e.type, data=_details(e, "reason") | _optional(e, "code"))],
    events.BOT_RESOLVED: lambda e: [_from(e, e.type, data=_details(e, "duration_seconds"))],
    events.INCIDENT_DETECTED: _incident,
    events.INCIDENT_UPDATED: _incident,
    events.INCIDENT_RESOLVED: _incident,
}


def _routing_fact(routing_key: str, body: bytes) -> list[ReportEvent]:
    return ROUTING_FACTS[routing_key](_routing_event(body, routing_key))


def _assignment(routing_key: str, body: bytes) -> list[ReportEvent]:
    """conversation.routed.<channel>: every assignment (direct, or an offer accepted)."""
    event = _routing_event(body, events.CONVERSATION_ROUTED)
    return [_from(event, "conversation.assigned", agent_id=_agent(event))]


# -- the other wire models ---------------------------------------------------------------------


def _agent_reply(reply: OutboundMessage) -> list[ReportEvent]:
    """message.outbound.<channel>: an agent's reply; an automatic one (a max-wait auto-reply) is no agent's."""
    if reply.agent_id == SYSTEM_AGENT:
        return []
    return [ReportEvent(
        event_id=f"{events.MESSAGE_CREATED}:{reply.message_id}", type="message.created",
        workspace_id=reply.workspace_id, at=reply.created_at, conversation_id=reply.conversation_id,
        agent_id=reply.agent_id, channel=reply.channel, data={"direction": "outbound"},
    )]


def _resolution(resolved: ConversationResolved) -> list[ReportEvent]:
    data: dict[str, Any] = {"reason": resolved.reason} if resolved.reason else {}
    if resolved.surveyed:
        data["surveyed"] = True  # the response rate's denominator
    return [ReportEvent(
        event_id=resolved.event_id, type="conversation.resolved", workspace_id=resolved.workspace_id,
        at=resolved.resolved_at, conversation_id=resolved.conversation_id, agent_id=resolved.agent_id,
        data=data,
    )]


def _csat(answer: CsatReceived) -> list[ReportEvent]:
    """An accepted survey answer (one per survey: the producer keeps the first valid one)."""
    return [ReportEvent(
        event_id=answer.event_id, type="csat.received", workspace_id=answer.workspace_id, at=answer.at,
        conversation_id=answer.conversation_id, agent_id=answer.agent_id, queue=answer.queue, channel=answer.channel,
        data={"score": answer.score, "comment": answer.comment, "survey_id": answer.survey_id},
    )]


def _answer(answered: ConversationAnswered) -> list[ReportEvent]:
    return [ReportEvent(
        event_id=answered.event_id, type="conversation.answered", workspace_id=answered.workspace_id,
        at=answered.at, conversation_id=answered.conversation_id, agent_id=answered.agent_id,
    )]


def _agent_status(snapshot: AgentSnapshot) -> list[ReportEvent]:
    """Every snapshot is the agent's whole state from then on (presence and capacity)."""
    return [ReportEvent(
        event_id=snapshot.event_id, type="agent.status_changed", workspace_id=snapshot.workspace_id, at=snapshot.at,
        agent_id=snapshot.agent_id, data={"status": snapshot.status, "max_conversations": snapshot.max_conversations,
                                           "channel_capacity": snapshot.channel_capacity, "version": snapshot.version},
    )]


def _model_reader(model: type[BaseModel], facts: Callable[[Any], list[ReportEvent]], *given: str) -> Reader:
    """Reads `model`, whose fields `given` the body must name: their defaults (a new random id, the
    time of reading) would make a fact that is not the producer's, different on each delivery."""

    def read(_: str, body: bytes) -> list[ReportEvent]:
        parsed = model.model_validate_json(body)
        missing = [name for name in given if name not in parsed.model_fields_set]
        if missing:
            raise _BodyProblem(f"the body does not name its {' and '.join(missing)}")
        return facts(parsed)

    return read


_reply = _model_reader(OutboundMessage, _agent_reply, "created_at")
MODEL_READERS: dict[str, Reader] = {
    events.CONVERSATION_RESOLVED: _model_reader(ConversationResolved, _resolution, "event_id", "resolved_at"),
    events.CONVERSATION_ANSWERED: _model_reader(ConversationAnswered, _answer, "event_id", "at"),
    events.AGENT_UPDATED: _model_reader(AgentSnapshot, _agent_status, "event_id", "at"),
    events.AGENT_STATUS_CHANGED: _model_reader(AgentSnapshot, _agent_status, "event_id", "at"),
    events.CSAT_RECEIVED: _model_reader(CsatReceived, _csat),
}
