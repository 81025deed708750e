"""Every event and message type name, in one place. AMQP routing keys are built from these."""

MESSAGE_RECEIVED = "message.received"  # intake -> router: a normalized inbound message
MESSAGE_OUTBOUND = "message.outbound"  # agents -> intake: an agent's reply, routed as message.outbound.<channel>
MESSAGE_STATUS = "message.status"  # intake -> agents: sent / delivered / failed for an outbound message

AGENT_UPDATED = "agent.updated"  # agents -> router: profile (skills, capacity) changed
AGENT_STATUS_CHANGED = "agent.status_changed"  # agents -> router: online / away / offline

CONVERSATION_ASSIGNED = "conversation.assigned"  # router -> agent queue: a conversation and its backlog
CONVERSATION_MESSAGE = "message"  # router -> agent queue: a later message of an assigned conversation
CONVERSATION_RESOLVED = "conversation.resolved"  # agents -> router: frees the agent's capacity
