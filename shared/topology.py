"""Every exchange and queue Switchyard uses, declared in one place.

    intake ──message.received──► events (topic) ──► <ns>.router.work   (single active consumer)
    router ──<ws>.<agent>──────► deliveries (direct) ──► <ns>.agent.<ws>.<agent>  (one per agent)
    agents ──message.outbound.<channel>──► events ──► <ns>.intake.outbound.<channel>
    intake ──message.status────► events ──► <ns>.agents.status
    agents ──agent.*, conversation.resolved──► events ──► <ns>.router.work

Each consumed queue has a `<queue>.dlq` beside it for poison messages (reason in the headers).
The router's events and messages share one queue so that one replica, and only one, owns the
routing state at a time and sees every input in one order.
"""

from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue

from shared import events

ROUTER_BINDINGS = (
    events.MESSAGE_RECEIVED,
    events.AGENT_UPDATED,
    events.AGENT_STATUS_CHANGED,
    events.CONVERSATION_RESOLVED,
)


@dataclass(frozen=True)
class Topology:
    namespace: str = "switchyard"
    queue_type: str = "quorum"

    @property
    def events_exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def deliveries_exchange(self) -> str:
        return f"{self.namespace}.deliveries"

    @property
    def router_queue(self) -> str:
        return f"{self.namespace}.router.work"

    @property
    def agents_status_queue(self) -> str:
        return f"{self.namespace}.agents.status"

    def agent_queue(self, workspace_id: str, agent_id: str) -> str:
        return f"{self.namespace}.agent.{workspace_id}.{agent_id}"

    @staticmethod
    def agent_routing_key(workspace_id: str, agent_id: str) -> str:
        return f"{workspace_id}.{agent_id}"

    def outbound_queue(self, channel: str) -> str:
        return f"{self.namespace}.intake.outbound.{channel}"

    @staticmethod
    def outbound_routing_key(channel: str) -> str:
        return f"{events.MESSAGE_OUTBOUND}.{channel}"

    @staticmethod
    def dead_letter_queue(queue: str) -> str:
        return f"{queue}.dlq"

    def queue_arguments(self, *, single_active_consumer: bool = False) -> dict:
        arguments: dict = {"x-queue-type": self.queue_type}
        if single_active_consumer:
            arguments["x-single-active-consumer"] = True
        return arguments


async def declare_exchanges(channel: AbstractChannel, topology: Topology) -> None:
    await channel.declare_exchange(
        topology.events_exchange, aio_pika.ExchangeType.TOPIC, durable=True
    )
    await channel.declare_exchange(
        topology.deliveries_exchange, aio_pika.ExchangeType.DIRECT, durable=True
    )


async def declare_consumed_queue(
    channel: AbstractChannel,
    topology: Topology,
    name: str,
    *,
    single_active_consumer: bool = False,
) -> AbstractQueue:
    await channel.declare_queue(
        topology.dead_letter_queue(name), durable=True, arguments=topology.queue_arguments()
    )
    return await channel.declare_queue(
        name,
        durable=True,
        arguments=topology.queue_arguments(single_active_consumer=single_active_consumer),
    )


async def declare_core(channel: AbstractChannel, topology: Topology) -> None:
    """Exchanges plus the queues that exist whatever agents and channels there are."""
    await declare_exchanges(channel, topology)
    router = await declare_consumed_queue(
        channel, topology, topology.router_queue, single_active_consumer=True
    )
    for routing_key in ROUTER_BINDINGS:
        await router.bind(topology.events_exchange, routing_key)
    status = await declare_consumed_queue(channel, topology, topology.agents_status_queue)
    await status.bind(topology.events_exchange, events.MESSAGE_STATUS)


async def declare_agent_queue(
    channel: AbstractChannel, topology: Topology, workspace_id: str, agent_id: str
) -> AbstractQueue:
    """The durable queue the router fills with one agent's conversations and messages."""
    queue = await declare_consumed_queue(
        channel, topology, topology.agent_queue(workspace_id, agent_id)
    )
    await queue.bind(topology.deliveries_exchange, topology.agent_routing_key(workspace_id, agent_id))
    return queue


async def declare_outbound_queue(
    channel: AbstractChannel, topology: Topology, channel_name: str
) -> AbstractQueue:
    """The queue of agent replies that one channel's sender sends out."""
    queue = await declare_consumed_queue(channel, topology, topology.outbound_queue(channel_name))
    await queue.bind(topology.events_exchange, topology.outbound_routing_key(channel_name))
    return queue
