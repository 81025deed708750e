"""The agents service's domain operations, between the HTTP handlers, MongoDB and the broker."""

import structlog
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import CollectorRegistry, Counter

from services.agents.desk import DeskConnection, DeskHub, jsonable
from services.agents.models import AgentProfile
from services.agents.store import AgentsStore, ForDesk, agent_snapshot
from shared import events
from shared.broker import BatchConsumer, Broker, parse_as
from shared.models import (
    ConversationAssigned,
    ConversationMessage,
    ConversationResolved,
    DeliveryStatus,
    agent_delivery_adapter,
)
from shared.topology import declare_agent_queue, declare_outbound_queue

log = structlog.get_logger(__name__)


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


def parse_delivery(delivery: AbstractIncomingMessage) -> ConversationAssigned | ConversationMessage:
    return agent_delivery_adapter.validate_json(delivery.body)


class AgentsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages_in = Counter("agents_messages_in_total", "Customer messages stored", registry=registry)
        self.messages_out = Counter("agents_messages_out_total", "Agent replies queued for sending", registry=registry)
        self.assignments = Counter("agents_assignments_total", "Conversations received by agents", registry=registry)
        self.failed_sends = Counter("agents_failed_sends_total", "Replies reported failed by intake", registry=registry)


class AgentsService:
    def __init__(self, broker: Broker, store: AgentsStore, hub: DeskHub, metrics: AgentsMetrics, *, batch_size: int = 100) -> None:
        self.broker = broker
        self.store = store
        self.hub = hub
        self.metrics = metrics
        self.deliveries = BatchConsumer(broker, "agents.deliveries", parse_delivery, self.handle_deliveries, batch_size=batch_size)
        self.statuses = BatchConsumer(broker, "agents.status", parse_as(DeliveryStatus), self.handle_statuses, batch_size=batch_size)
        self._consumed_agents: set[tuple[str, str]] = set()
        self._outbound_channels: set[str] = set()

    async def start(self) -> None:
        await self.store.ensure_indexes()
        await self.deliveries.start()
        await self.statuses.start()
        await self.statuses.attach(self.broker.topology.agents_status_queue)
        for agent in await self.store.all_agents():
            await self._consume_agent_queue(agent["workspace_id"], agent["agent_id"])

    async def stop(self) -> None:
        await self.deliveries.stop()
        await self.statuses.stop()
        await self.hub.close_all()

    async def _consume_agent_queue(self, workspace_id: str, agent_id: str) -> None:
        if (workspace_id, agent_id) in self._consumed_agents:
            return
        queue = await declare_agent_queue(self.broker.channel, self.broker.topology, workspace_id, agent_id)
        await self.deliveries.attach(queue.name)
        self._consumed_agents.add((workspace_id, agent_id))

    # -- agents --------------------------------------------------------------------------------

    async def put_agent(self, workspace_id: str, agent_id: str, profile: AgentProfile) -> dict:
        """Create or update an agent; its queue exists before the router can route to it."""
        await self._consume_agent_queue(workspace_id, agent_id)
        doc = await self.store.put_agent(workspace_id, agent_id, profile)
        await self._announce_agent(doc, events.AGENT_UPDATED)
        return doc

    async def set_status(self, workspace_id: str, agent_id: str, status: str) -> dict:
        doc = await self.store.set_agent_status(workspace_id, agent_id, status)
        if doc is None:
            raise NotFound(f"agent {agent_id!r} does not exist")
        await self._announce_agent(doc, events.AGENT_STATUS_CHANGED)
        return doc

    async def _announce_agent(self, doc: dict, event: str) -> None:
        snapshot = agent_snapshot(doc)
        await self.broker.publish(
            snapshot, event, message_type=event, message_id=snapshot.event_id, workspace_id=snapshot.workspace_id
        )

    # -- conversations -------------------------------------------------------------------------

    async def conversation(self, workspace_id: str, conversation_id: str) -> dict:
        doc = await self.store.get_conversation(workspace_id, conversation_id)
        if doc is None:
            raise NotFound(f"conversation {conversation_id!r} does not exist")
        return doc

    async def reply(self, workspace_id: str, conversation_id: str, text: str) -> dict:
        """Store the assignee's reply and hand it to intake for its channel (confirmed)."""
        conversation = await self.conversation(workspace_id, conversation_id)
        if conversation["status"] != "assigned":
            raise Conflict(f"conversation is {conversation['status']}, not open for replies")
        reply = await self.store.add_reply(conversation, conversation["assignee_id"], text)
        await self._ensure_outbound_queue(reply.channel)
        await self.broker.publish(
            reply,
            self.broker.topology.outbound_routing_key(reply.channel),
            message_type=events.MESSAGE_OUTBOUND,
            message_id=reply.message_id,
            workspace_id=workspace_id,
        )
        self.metrics.messages_out.inc()
        message = {
            "message_id": reply.message_id, "conversation_id": conversation_id, "direction": "outbound",
            "channel": reply.channel, "text": text, "agent_id": reply.agent_id, "status": "queued",
            "created_at": reply.created_at.isoformat(),
        }
        await self.hub.send((workspace_id, reply.agent_id), {"type": "message", "conversation_id": conversation_id, "message": message})
        return message

    async def _ensure_outbound_queue(self, channel: str) -> None:
        """Declare the channel's outbound queue, so a reply waits there even if intake is down."""
        if channel not in self._outbound_channels:
            await declare_outbound_queue(self.broker.channel, self.broker.topology, channel)
            self._outbound_channels.add(channel)

    async def resolve(self, workspace_id: str, conversation_id: str) -> dict:
        conversation = await self.conversation(workspace_id, conversation_id)
        await self.store.resolve(conversation)
        event = ConversationResolved(
            workspace_id=workspace_id, conversation_id=conversation_id, agent_id=conversation.get("assignee_id")
        )
        # Published even on a repeated resolve: the router ignores repeats, and this heals a
        # resolve whose first publish failed after the write.
        await self.broker.publish(
            event, events.CONVERSATION_RESOLVED, message_type=events.CONVERSATION_RESOLVED,
            message_id=f"resolved:{conversation_id}", workspace_id=workspace_id,
        )
        return await self.conversation(workspace_id, conversation_id)

    # -- consumers -----------------------------------------------------------------------------

    async def handle_deliveries(self, deliveries: list[ConversationAssigned | ConversationMessage]) -> None:
        for item in await self.store.apply_deliveries(deliveries):
            await self._push(item)

    async def _push(self, item: ForDesk) -> None:
        messages = [jsonable(m, "message_id") for m in item.messages]
        workspace_id = (item.conversation or item.messages[0])["workspace_id"]
        key = (workspace_id, item.agent_id)
        if item.conversation is not None:
            self.metrics.assignments.inc()
            self.metrics.messages_in.inc(len(messages))
            await self.hub.send(key, {
                "type": events.CONVERSATION_ASSIGNED,
                "conversation": jsonable(item.conversation, "conversation_id"),
                "messages": messages,
            })
            return
        for message in messages:
            self.metrics.messages_in.inc()
            await self.hub.send(key, {"type": "message", "conversation_id": message["conversation_id"], "message": message})

    async def handle_statuses(self, statuses: list[DeliveryStatus]) -> None:
        for doc in await self.store.apply_statuses(statuses):
            if doc["status"] == "failed":
                self.metrics.failed_sends.inc()
            await self.hub.send((doc["workspace_id"], doc.get("agent_id", "")), {
                "type": "message.status",
                "conversation_id": doc["conversation_id"],
                "message_id": doc["_id"],
                "status": doc["status"],
                "reason": doc.get("status_reason"),
            })

    # -- desks ---------------------------------------------------------------------------------

    async def open_desk(self, workspace_id: str, agent_id: str, connection: DeskConnection) -> None:
        """Register a desk, then send its snapshot; frames that arrive meanwhile follow it."""
        self.hub.add((workspace_id, agent_id), connection)
        conversations = await self.store.open_conversations_of(workspace_id, agent_id)
        messages = await self.store.messages_of([c["_id"] for c in conversations])
        by_conversation: dict[str, list[dict]] = {}
        for message in messages:
            by_conversation.setdefault(message["conversation_id"], []).append(jsonable(message, "message_id"))
        await connection.open_with({
            "type": "snapshot",
            "agent_id": agent_id,
            "conversations": [
                {"conversation": jsonable(c, "conversation_id"), "messages": by_conversation.get(c["_id"], [])}
                for c in conversations
            ],
        })
