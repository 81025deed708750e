"""The router's shell: consumes its work queue, runs the core, persists, publishes, acks.

One replica at a time is active (the work queue has a single active consumer). A replica builds
its core from MongoDB when it first receives work, so a standby that takes over starts from
what the last active one wrote. Per batch: run the core over every input, write the state
changes, publish the deliveries (confirmed), then the consumer acks. If anything fails the core
is dropped and rebuilt from MongoDB, and the batch is redelivered: the core is idempotent.
"""

import asyncio
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime

import structlog
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import CollectorRegistry, Counter, Histogram

from services.router.core import AgentKey, Delivery, Outcome, RoutingCore
from services.router.store import RoutingStore
from shared import events
from shared.broker import BatchConsumer, Broker, PoisonMessage
from shared.models import AgentSnapshot, ConversationAssigned, ConversationResolved, InboundMessage, utcnow

log = structlog.get_logger(__name__)
RouterInput = InboundMessage | AgentSnapshot | ConversationResolved
INPUT_MODELS: dict[str, type[RouterInput]] = {
    events.MESSAGE_RECEIVED: InboundMessage,
    events.AGENT_UPDATED: AgentSnapshot,
    events.AGENT_STATUS_CHANGED: AgentSnapshot,
    events.CONVERSATION_RESOLVED: ConversationResolved,
}


def parse_input(delivery: AbstractIncomingMessage) -> RouterInput:
    model = INPUT_MODELS.get(delivery.type or "")
    if model is None:
        raise PoisonMessage(f"unknown message type {delivery.type!r}")
    return model.model_validate_json(delivery.body)


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.inputs = Counter("router_inputs_total", "Inputs processed", ["type"], registry=registry)
        self.assignments = Counter("router_assignments_total", "Conversations assigned", registry=registry)
        self.queue_wait = Histogram(
            "router_queue_wait_seconds", "Time a conversation waited before assignment", registry=registry,
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
        )
        self.errors = Counter("router_batch_errors_total", "Batches that failed and were retried", registry=registry)


class RouterService:
    def __init__(
        self,
        broker: Broker,
        store: RoutingStore,
        metrics: RouterMetrics,
        *,
        batch_size: int = 100,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.broker = broker
        self.store = store
        self.metrics = metrics
        self.clock = clock
        self.core: RoutingCore | None = None
        self.consumer = BatchConsumer(broker, "router", parse_input, self.handle_batch, batch_size=batch_size)

    async def start(self) -> None:
        await self.store.ensure_indexes()
        await self.consumer.start()
        await self.consumer.attach(self.broker.topology.router_queue)
        # After a reconnect this replica may no longer be the active one: rebuild on next work.
        assert self.broker.connection is not None
        self.broker.connection.reconnect_callbacks.add(self._forget_state)

    async def stop(self) -> None:
        await self.consumer.stop()

    def _forget_state(self, *_: object) -> None:
        self.core = None

    async def handle_batch(self, inputs: list[RouterInput]) -> None:
        try:
            core = await self._active_core()
            outcome = Outcome()
            now = self.clock()
            for item in inputs:
                outcome.merge(self._apply(core, item, now))
            await self.store.save(core, outcome)
            await self._publish(outcome.deliveries)
            announced = {d.conversation.conversation_id for _, d in outcome.deliveries if isinstance(d, ConversationAssigned)}
            await self.store.mark_announced(announced)
            core.mark_announced(announced)
        except Exception:
            self.metrics.errors.inc()
            self.core = None  # memory may now differ from MongoDB: rebuild from it
            raise
        self._count(inputs, outcome)

    async def _active_core(self) -> RoutingCore:
        if self.core is None:
            core = await self.store.load()
            await self._announce_pending(core)
            self.core = core
            log.info("router.state_loaded", agents=len(core.agents), conversations=len(core.conversations))
        return self.core

    async def _announce_pending(self, core: RoutingCore) -> None:
        """Republish assignments whose publish the previous active replica may not have finished."""
        pending = [c for c in core.conversations.values() if c.assignee_id and not c.announced]
        deliveries: list[tuple[AgentKey, Delivery]] = [((c.workspace_id, c.assignee_id), c.assignment()) for c in pending]  # type: ignore[misc]
        await self._publish(deliveries)
        ids = {c.conversation_id for c in pending}
        await self.store.mark_announced(ids)
        core.mark_announced(ids)

    @staticmethod
    def _apply(core: RoutingCore, item: RouterInput, now: datetime) -> Outcome:
        if isinstance(item, InboundMessage):
            return core.on_message(item, now)
        if isinstance(item, AgentSnapshot):
            return core.on_agent(item, now)
        return core.on_resolved(item, now)

    async def _publish(self, deliveries: list[tuple[AgentKey, Delivery]]) -> None:
        """Publish in order per agent queue; different agents' queues in parallel."""
        per_agent: dict[AgentKey, list[Delivery]] = defaultdict(list)
        for agent_key, delivery in deliveries:
            per_agent[agent_key].append(delivery)
        await asyncio.gather(*(self._publish_in_order(key, items) for key, items in per_agent.items()))

    async def _publish_in_order(self, agent_key: AgentKey, deliveries: list[Delivery]) -> None:
        workspace_id, agent_id = agent_key
        for delivery in deliveries:
            message_id = (
                f"assigned:{delivery.conversation.conversation_id}:{agent_id}"
                if isinstance(delivery, ConversationAssigned)
                else delivery.message.message_id
            )
            await self.broker.publish(
                delivery,
                self.broker.topology.agent_routing_key(workspace_id, agent_id),
                message_type=delivery.type,
                message_id=message_id,
                workspace_id=workspace_id,
                exchange=self.broker.topology.deliveries_exchange,
            )

    def _count(self, inputs: list[RouterInput], outcome: Outcome) -> None:
        for item in inputs:
            self.metrics.inputs.labels(type=type(item).__name__).inc()
        for _, delivery in outcome.deliveries:
            if isinstance(delivery, ConversationAssigned):
                self.metrics.assignments.inc()
                info = delivery.conversation
                self.metrics.queue_wait.observe((info.assigned_at - info.waiting_since).total_seconds())
