"""Every event and message type name, in one place. AMQP routing keys are built from these."""

MESSAGE_RECEIVED = "message.received"  # intake -> router: a normalized inbound message
MESSAGE_OUTBOUND = "message.outbound"  # agents -> intake: an agent's reply, routed as message.outbound.<channel>
CONVERSATION_LABELS_CHANGED = "conversation.labels_changed"  # agents -> reporting: the whole label set after a change
MESSAGE_STATUS = "message.status"  # intake -> agents: sent / delivered / failed for an outbound message
# intake -> <ns>.intake.rejected: one item of an authenticated provider batch that cannot be taken
# (the rest of the batch is published and the provider gets its 2xx, so it does not retry them all)
INPUT_REJECTED = "input.rejected"

AGENT_UPDATED = "agent.updated"  # agents -> router and reporting: profile (skills, capacity) changed
AGENT_STATUS_CHANGED = "agent.status_changed"  # agents -> router and reporting: online / away / offline

CONVERSATION_ASSIGNED = "conversation.assigned"  # router -> agent queue: a conversation and its backlog
CONVERSATION_MESSAGE = "message"  # router -> agent queue: a later message of an assigned conversation
CONVERSATION_RESOLVED = "conversation.resolved"  # agents -> router and reporting: frees the agent's capacity
# router -> agent queue: accept or reject within the timeout; also on the events exchange (an offer was made)
CONVERSATION_OFFERED = "conversation.offered"
CONVERSATION_ENDED = "conversation.ended"  # router -> agent queue: the channel ended it (a call hung up)
CONVERSATION_REVOKED = "conversation.revoked"  # router -> agent queue: no longer yours (rerouted, transferred, offer gone)
# agents (first reply sent) or intake (the agent picked the call up) -> router and reporting
CONVERSATION_ANSWERED = "conversation.answered"
OFFER_ANSWERED = "conversation.offer_answered"  # agents -> router: accepted or rejected
TRANSFER_REQUESTED = "conversation.transfer_requested"  # agents -> router: to an agent or a queue
# agents -> router: the assignee set a conversation pending (waiting on the customer), snoozed it, or
# opened it again; pending and snoozed ones do not count against capacity (docs/routing.md, "Lifecycle")
CONVERSATION_STATE_REQUESTED = "conversation.state_requested"
# router -> agent queue: a pending or snoozed conversation is open again and counts against capacity
CONVERSATION_WOKEN = "conversation.woken"
# router -> agent queue: the router took the conversation's capacity slot back (pending or snoozed)
CONVERSATION_PARKED = "conversation.parked"
THREAD_CLOSED = "thread.closed"  # intake -> router: the channel ended the thread (a call hung up)
THREAD_NOT_ANSWERED = "thread.not_answered"  # intake -> router: the assignee never picked up (a call rang out)
THREAD_LEFT = "thread.left"  # intake -> router: the customer left (a web chat closed, not back in time)
ROUTING_CONFIG_CHANGED = "routing.config_changed"  # router API -> router work queue: queues and rules replaced
ROUTER_TICK = "router.tick"  # router replicas -> every router partition: fire due timers (services/router/service.py)
REPORTING_TICK = "reporting.tick"  # reporting replicas -> its queue: run due timers (services/reporting/service.py)

# router -> events exchange (reporting, the agents service and external systems listen)
CONVERSATION_OPENED = "conversation.opened"  # a customer's first message opened a conversation
CONVERSATION_QUEUED = "conversation.queued"  # waiting in a queue (details.reason: opened, requeued, transferred, overflowed, rerouted)
CONVERSATION_TRANSFERRED = "conversation.transferred"
# A label rule matched a customer message: details.labels, the labels it adds (reporting listens;
# the agents service learns them with the assignment or the message)
CONVERSATION_LABELED = "conversation.labeled"
# Every assignment, published as conversation.routed.<channel>: a channel that must act on it
# (voice connects the caller to the agent) binds its own channel's key; others bind the wildcard.
CONVERSATION_ROUTED = "conversation.routed"
CONVERSATION_ABANDONED = "conversation.abandoned"  # the customer left before an agent took it
CONVERSATION_MAX_WAIT = "conversation.max_wait_reached"  # details.action: overflow / auto_reply / callback
CONVERSATION_AUTO_REPLY = "conversation.auto_reply"  # agents service sends the text to the customer
OFFER_EXPIRED = "conversation.offer_expired"
CONVERSATION_NOT_ANSWERED = "conversation.not_answered"  # the assignee let it ring out; routed again
SLA_WARNING = "sla.warning"
SLA_BREACHED = "sla.breached"
AGENT_SET_AWAY = "agent.set_away"  # the agents service sets the agent away (missed offers)

# The pre-routing bot (docs/bot.md). router -> assist: a new conversation the bot answers first
# (details: its text, channel, contact, the session number), and each later customer message while
# the bot has it; assist -> router: what the bot did (a BotDecision); assist -> agents: the bot's
# message to store and send (details as an auto-reply's, with quick replies).
BOT_REQUESTED = "bot.requested"
BOT_MESSAGE = "bot.message"
BOT_DECISION = "bot.decision"
BOT_REPLY = "bot.reply"
# router -> events exchange (reporting, subscriptions): the bot resolved the conversation (the
# customer said it answered them), or handed it to human routing (details.reason)
BOT_RESOLVED = "bot.resolved"
BOT_HANDED_OVER = "bot.handed_over"

# Surges and incidents (docs/incidents.md). router -> assist: every customer message of a workspace
# whose routing configuration turns incident detection on, with its conversation; assist -> events
# exchange: an incident detected, updated (more conversations), resolved (supervisors' and external
# systems' concern); assist -> router: a conversation linked to an open incident (the router may
# send the status reply and move it to the incident's queue).
SURGE_MESSAGE = "surge.message"
INCIDENT_DETECTED = "incident.detected"
INCIDENT_UPDATED = "incident.updated"
INCIDENT_RESOLVED = "incident.resolved"
INCIDENT_LINKED = "incident.linked"
# assist -> router: a supervisor resolved an incident with a reply to every linked conversation (and,
# if asked, resolving those an agent holds)
INCIDENT_CLOSING = "incident.closing"
# router -> events exchange (reporting): a conversation no agent held was closed by the router (an
# incident resolved with its conversations: the customer got the incident's reply); details.reason
CONVERSATION_CLOSED = "conversation.closed"

# agents -> events exchange (reporting listens), after the write
MESSAGE_CREATED = "message.created"  # a customer message stored (agent replies travel as message.outbound.<channel>)
CONVERSATION_REOPENED = "conversation.reopened"  # the customer came back after the thread's conversation was resolved
CSAT_RECEIVED = "csat.received"  # a customer's accepted answer to a CSAT survey (docs/csat.md)

# Ephemeral signals: published transient and non-mandatory; losing one is harmless (shared/ephemeral.py)
TYPING_CONTACT = "typing.contact"  # intake -> agents: the customer is typing (web chat)
TYPING_AGENT = "typing.agent"  # agents -> intake: the assignee is typing (web chat only)
