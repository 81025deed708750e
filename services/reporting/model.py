"""The one shape reporting works on: every producer's event, normalized (see normalize.py).

Producers publish their own wire models (RoutingEvent, ConversationResolved, AgentSnapshot, ...);
reporting turns each into a ReportEvent, stores it once by `event_id` and folds the stored events
into facts per conversation and per agent, and those into rollups per 15-minute bucket.
"""

from datetime import datetime
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

# What reporting records; metric definitions in docs/metrics.md say which ones each metric reads.
ReportEventType = Literal[
    "conversation.opened",  # first customer message of a conversation (data: priority, skills;
    #                         bot: true when the pre-routing bot was given it first, docs/bot.md)
    "conversation.queued",  # waiting in `queue` (data.reason: opened, requeued, transferred, overflowed, rerouted);
    #                         `agent_id`: the agent it was taken back from (a reroute, a call that rang out), if any
    "conversation.offered",  # offered to `agent_id` (offer mode)
    "conversation.assigned",  # `agent_id` holds it now (accepted offer or direct assignment)
    "conversation.answered",  # `agent_id` answered it: sent the first reply, or picked the call up
    "conversation.transferred",  # data: from_agent, to_agent or to_queue, escalation
    "conversation.resolved",  # closed by `agent_id` (or by the channel: data.reason);
    #                           data.surveyed: true when a CSAT survey went out with this resolution
    # a customer message after it was resolved, `at` that message's time; `agent_id` and `queue` are
    # the resolved conversation's (data: new_conversation_id, the conversation the message opened; resolved_at)
    "conversation.reopened",
    "conversation.abandoned",  # the customer left before an agent answered (data.reason)
    "conversation.labels_changed",  # data.labels: the whole set after the change (an agent's edit)
    "conversation.labeled",  # data.labels: labels a label rule added (the router's)
    "message.created",  # data.direction: inbound (customer) or outbound (agent reply, `agent_id` set);
    #                     a call's pickup (conversation.answered from intake) is its first outbound, data.call_answered
    "sla.warning",
    "sla.breached",  # data.target: first_response or resolution
    "agent.status_changed",  # data.status: online, away, offline; data.max_conversations
    "csat.received",  # data.score: 1..5, data.comment
    "bot.handed_over",  # the bot gave it to human routing (data.reason); a conversation.queued follows
    "bot.resolved",  # the customer said the bot answered them: closed, no agent ever had it (data.duration_seconds)
    "conversation.closed",  # the router closed it with no agent: an incident resolved with it (data.reason, incident_id)
    # Surges (docs/incidents.md): assist's announcement of an incident as it stands, no conversation or agent
    # (data: incident_id, title, status, conversations, channels, opened_at, last_link_at; see IncidentState)
    "incident.detected",
    "incident.updated",
    "incident.resolved",
]
INCIDENT_EVENTS = ("incident.detected", "incident.updated", "incident.resolved")


class ReportEvent(BaseModel):
    """One fact with its own time and a unique id; the same event redelivered has the same id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    event_id: str = Field(min_length=1, max_length=512)
    type: ReportEventType
    workspace_id: str
    at: AwareDatetime  # when it happened (the producer's clock), not when reporting received it
    conversation_id: str | None = None
    agent_id: str | None = None
    queue: str | None = None
    channel: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)

    def sort_key(self) -> tuple[datetime, str]:
        """Events are folded in time order; the id breaks ties so every fold gives one answer."""
        return (self.at, self.event_id)
