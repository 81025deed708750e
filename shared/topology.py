"""Every exchange and queue Switchyard uses, declared in one place.

    intake ──message.received, thread.closed / left / not_answered──► events (topic) ──► <ns>.router.in (headers)
        ──(header workspace-partition = hash of workspace mod SWITCHYARD_PARTITIONS)──► <ns>.router.work.<k>
                                                              (single active consumer each)
    router ──<partition>───────► deliveries (direct) ──► <ns>.deliveries.<k>  (k = hash of workspace/agent
                                                        mod SWITCHYARD_PARTITIONS; single active consumer)
    agents ──message.outbound.<channel>──► events ──► <ns>.intake.outbound.<channel>
    intake ──message.status────► events ──► <ns>.agents.status
    agents ──agent.*, conversation.resolved / answered / offer_answered / transfer_requested──► <ns>.router.work.<k>
    router ──sla.*, agent.set_away, conversation.auto_reply / transferred──► events ──► <ns>.agents.events
    intake ──typing.contact──► events ──► <ns>.agents.signals.<id>   (ephemeral: one queue per process)
    agents ──typing.agent────► events ──► <ns>.intake.signals.<id>
    intake ──input.rejected──► events ──► <ns>.intake.rejected   (an operator reads it; no consumer)
    agents ──desk frames──► relay.agents (direct) ──► <ns>.agents.relay.<id>  (ephemeral: one queue per process,
    intake ──chat frames──► relay.intake (direct) ──► <ns>.intake.relay.<id>   bound per key it holds a socket of)
    router, agents, intake ──every fact reporting records──► events ──► <ns>.reporting.ingest
                                                        (single active consumer: one reporting replica)
        router: conversation.opened / queued / offered / routed.<channel> / transferred / abandoned, sla.*
        agents: conversation.resolved / answered / reopened, message.created, message.outbound.<channel>,
                agent.updated / status_changed, csat.received
        intake: conversation.answered (a call picked up)

Every event reporting needs has a durable queue of its own there, so its producers publish it
mandatory: an event no queue takes is an error, not a silent drop (`core_queue_takes`).

Each consumed queue has a `<queue>.dlq` beside it for poison messages (reason in the headers).
A message that failed, and the later messages of its conversation, are parked off the queue so the
rest flow on (shared/broker.py):

    consumer ──(routing key: source queue)──► <ns>.park (fanout) ──► <ns>.retry (per-message TTL)
    <ns>.retry ──expired, dead-lettered──► <ns>.requeue (direct) ──(key = queue name)──► source queue

A workspace's router inputs (its messages and events) share one partition queue, so that one
router replica, and only one, owns that workspace's routing state at a time and sees every input
of it in one order; replicas share the partitions.

The number of queues does not grow with agents or workspaces: an agent's deliveries go to one of
a fixed number of partition queues (shared/partitions.py), each with a single active consumer, so
one agent's deliveries keep their order while every agents replica stands by for every partition.
"""

import uuid
from dataclasses import dataclass

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractQueue

from shared import events
from shared.partitions import DEFAULT_PARTITIONS, partition_of

ROUTER_BINDINGS = (
    events.MESSAGE_RECEIVED,
    events.AGENT_UPDATED,
    events.AGENT_STATUS_CHANGED,
    events.CONVERSATION_RESOLVED,
    events.CONVERSATION_ANSWERED,
    events.OFFER_ANSWERED,
    events.TRANSFER_REQUESTED,
    events.CONVERSATION_STATE_REQUESTED,
    events.ROUTING_CONFIG_CHANGED,
    events.THREAD_CLOSED,
    events.THREAD_NOT_ANSWERED,
    events.THREAD_LEFT,
    events.BOT_DECISION,
    events.INCIDENT_LINKED,
    events.INCIDENT_CLOSING,
)
# What the pre-routing bot (services/assist) is asked: a new conversation, the customer's next messages.
ASSIST_BOT_BINDINGS = (events.BOT_REQUESTED, events.BOT_MESSAGE)
# What surge detection (services/assist/incidents) reads: the customer messages the router hands it.
ASSIST_SURGE_BINDINGS = (events.SURGE_MESSAGE,)
# Every message names its workspace's router partition here (Broker.publish_raw); the router's
# headers exchange routes on it. Not an `x-` name: RabbitMQ ignores those when matching.
PARTITION_HEADER = "workspace-partition"
# Router notifications the agents service acts on (SLA state, set away, auto-replies, transfers).
AGENTS_EVENT_BINDINGS = ("sla.*", events.AGENT_SET_AWAY, events.CONVERSATION_AUTO_REPLY, events.CONVERSATION_TRANSFERRED,
                         events.BOT_REPLY)
# Every fact reporting records (services/reporting/normalize.py turns each into ReportEvents).
REPORTING_BINDINGS = (
    events.CONVERSATION_OPENED,
    events.CONVERSATION_QUEUED,
    events.CONVERSATION_OFFERED,
    f"{events.CONVERSATION_ROUTED}.*",
    events.CONVERSATION_ANSWERED,
    events.CONVERSATION_TRANSFERRED,
    events.CONVERSATION_RESOLVED,
    events.CONVERSATION_REOPENED,
    events.CONVERSATION_ABANDONED,
    events.CONVERSATION_CLOSED,
    events.CONVERSATION_LABELS_CHANGED,
    events.CONVERSATION_LABELED,
    events.CSAT_RECEIVED,
    events.MESSAGE_CREATED,
    f"{events.MESSAGE_OUTBOUND}.*",
    "sla.*",
    events.AGENT_UPDATED,
    events.AGENT_STATUS_CHANGED,
    events.BOT_HANDED_OVER,
    events.BOT_RESOLVED,
    events.INCIDENT_DETECTED,
    events.INCIDENT_UPDATED,
    events.INCIDENT_RESOLVED,
)


def topic_matches(pattern: str, routing_key: str) -> bool:
    """AMQP topic matching for the patterns bound here: `*` stands for one word (`#` is not used)."""
    words, keys = pattern.split("."), routing_key.split(".")
    return len(words) == len(keys) and all(word in ("*", key) for word, key in zip(words, keys, strict=True))


def core_queue_takes(routing_key: str) -> bool:
    """Whether a durable queue of declare_core takes this key from the events exchange, so that its
    publish can be mandatory; keys only optional listeners bind (channels, external systems) are not."""
    patterns = (*ROUTER_BINDINGS, events.MESSAGE_STATUS, *AGENTS_EVENT_BINDINGS, *REPORTING_BINDINGS,
                *ASSIST_BOT_BINDINGS, *ASSIST_SURGE_BINDINGS)
    return any(topic_matches(pattern, routing_key) for pattern in patterns)


# Services whose WebSockets any replica may hold: each has a relay exchange (shared/relay.py).
RELAY_SERVICES = ("agents", "intake")


@dataclass(frozen=True)
class Topology:
    namespace: str = "switchyard"
    queue_type: str = "quorum"
    partitions: int = DEFAULT_PARTITIONS  # the same in every service of a deployment (shared/partitions.py)

    @property
    def events_exchange(self) -> str:
        return f"{self.namespace}.events"

    @property
    def deliveries_exchange(self) -> str:
        return f"{self.namespace}.deliveries"

    @property
    def park_exchange(self) -> str:
        return f"{self.namespace}.park"

    @property
    def requeue_exchange(self) -> str:
        return f"{self.namespace}.requeue"

    @property
    def retry_queue(self) -> str:
        return f"{self.namespace}.retry"

    @property
    def router_exchange(self) -> str:
        """Headers exchange: the router's inputs, sent on to the partition their header names."""
        return f"{self.namespace}.router.in"

    @property
    def legacy_router_queue(self) -> str:
        """The router's one work queue before partitions: drained into them at start, then deleted."""
        return f"{self.namespace}.router.work"

    def router_queue(self, partition: int) -> str:
        return f"{self.namespace}.router.work.{partition}"

    def router_queues(self) -> tuple[str, ...]:
        return tuple(self.router_queue(k) for k in range(self.partitions))

    def workspace_partition(self, workspace_id: str) -> int:
        """The router partition of a workspace: every input about it goes there."""
        return partition_of(workspace_id, self.partitions)

    @property
    def agents_status_queue(self) -> str:
        return f"{self.namespace}.agents.status"

    @property
    def agents_events_queue(self) -> str:
        return f"{self.namespace}.agents.events"

    @property
    def rejected_input_queue(self) -> str:
        return f"{self.namespace}.intake.rejected"

    @property
    def reporting_queue(self) -> str:
        """Reporting's events, with a single active consumer (services/reporting/service.py)."""
        return f"{self.namespace}.reporting.ingest"

    @property
    def legacy_reporting_queue(self) -> str:
        """Reporting's queue before it had a single active consumer (RabbitMQ refuses to change the
        arguments of an existing queue, so the new one has a new name): drained at start, then deleted."""
        return f"{self.namespace}.reporting.events"

    @property
    def assist_bot_queue(self) -> str:
        """The bot's work (services/assist/bot.py), with a single active consumer: one conversation's
        request and its customer's replies are handled in order."""
        return f"{self.namespace}.assist.bot"

    @property
    def assist_surge_queue(self) -> str:
        """Surge detection's input (services/assist/incidents), with a single active consumer: one
        process holds every workspace's detector."""
        return f"{self.namespace}.assist.surges"

    def core_queues(self) -> tuple[str, ...]:
        """The consumed queues declare_core makes (without their dead-letter queues)."""
        return (*self.router_queues(), self.agents_status_queue, self.agents_events_queue, self.reporting_queue,
                self.assist_bot_queue, self.assist_surge_queue, *self.delivery_queues())

    def delivery_queue(self, partition: int) -> str:
        return f"{self.namespace}.deliveries.{partition}"

    def delivery_queues(self) -> tuple[str, ...]:
        """The agents' delivery partitions: a fixed number, whatever the number of agents."""
        return tuple(self.delivery_queue(k) for k in range(self.partitions))

    def retry_queue_arguments(self) -> dict:
        """Parked messages go back to their queue (their routing key) when their TTL runs out."""
        arguments: dict = {"x-queue-type": self.queue_type, "x-dead-letter-exchange": self.requeue_exchange}
        if self.queue_type == "quorum":
            # Dead-letter with confirms inside the broker, so a parked message is never dropped on
            # its way back (RabbitMQ 3.10+; at-least-once needs reject-publish overflow).
            arguments |= {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
        return arguments

    def legacy_agent_queue(self, workspace_id: str, agent_id: str) -> str:
        """The queue of one agent before delivery partitions: drained at start, then deleted."""
        return f"{self.namespace}.agent.{workspace_id}.{agent_id}"

    def agent_partition(self, workspace_id: str, agent_id: str) -> int:
        return partition_of(f"{workspace_id}/{agent_id}", self.partitions)

    def agent_routing_key(self, workspace_id: str, agent_id: str) -> str:
        """The deliveries exchange's key of an agent's partition queue."""
        return str(self.agent_partition(workspace_id, agent_id))

    def outbound_queue(self, channel: str) -> str:
        return f"{self.namespace}.intake.outbound.{channel}"

    @staticmethod
    def outbound_routing_key(channel: str) -> str:
        return f"{events.MESSAGE_OUTBOUND}.{channel}"

    def plugin_queue(self, plugin: str) -> str:
        """The queue of a channel plugin's background consumer (call assignments for voice)."""
        return f"{self.namespace}.intake.{plugin}.routed"

    def signal_queue(self, service: str) -> str:
        """A name of this process's own for its ephemeral-signal queue (each replica gets every signal)."""
        return f"{self.namespace}.{service}.signals.{uuid.uuid4().hex[:12]}"

    def relay_exchange(self, service: str) -> str:
        """The direct exchange that carries a service's socket frames between its replicas (shared/relay.py)."""
        return f"{self.namespace}.relay.{service}"

    def relay_queue(self, service: str) -> str:
        """A name of this process's own for the queue its relay reads (bound per key it holds sockets of)."""
        return f"{self.namespace}.{service}.relay.{uuid.uuid4().hex[:12]}"

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
    router_in = await channel.declare_exchange(topology.router_exchange, aio_pika.ExchangeType.HEADERS, durable=True)
    for routing_key in ROUTER_BINDINGS:
        await router_in.bind(topology.events_exchange, routing_key)
    await channel.declare_exchange(topology.park_exchange, aio_pika.ExchangeType.FANOUT, durable=True)
    await channel.declare_exchange(topology.requeue_exchange, aio_pika.ExchangeType.DIRECT, durable=True)
    for service in RELAY_SERVICES:
        await channel.declare_exchange(topology.relay_exchange(service), aio_pika.ExchangeType.DIRECT, durable=True)


async def declare_retry_queue(channel: AbstractChannel, topology: Topology) -> None:
    """The one parking queue of the namespace: every consumer's failed messages wait here."""
    retry = await channel.declare_queue(topology.retry_queue, durable=True, arguments=topology.retry_queue_arguments())
    await retry.bind(topology.park_exchange, "")


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
    queue = await channel.declare_queue(
        name,
        durable=True,
        arguments=topology.queue_arguments(single_active_consumer=single_active_consumer),
    )
    await queue.bind(topology.requeue_exchange, name)  # parked messages come back by their queue's name
    return queue


async def declare_core(channel: AbstractChannel, topology: Topology) -> None:
    """Exchanges plus the queues that exist whatever agents and channels there are."""
    await declare_exchanges(channel, topology)
    await declare_retry_queue(channel, topology)
    for partition in range(topology.partitions):
        router = await declare_consumed_queue(
            channel, topology, topology.router_queue(partition), single_active_consumer=True
        )
        await router.bind(topology.router_exchange, arguments={"x-match": "all", PARTITION_HEADER: str(partition)})
    status = await declare_consumed_queue(channel, topology, topology.agents_status_queue)
    await status.bind(topology.events_exchange, events.MESSAGE_STATUS)
    notifications = await declare_consumed_queue(channel, topology, topology.agents_events_queue)
    for routing_key in AGENTS_EVENT_BINDINGS:
        await notifications.bind(topology.events_exchange, routing_key)
    # Like a dead-letter queue: provider items intake could not take, each with its reason.
    rejected = await channel.declare_queue(
        topology.rejected_input_queue, durable=True, arguments=topology.queue_arguments()
    )
    await rejected.bind(topology.events_exchange, events.INPUT_REJECTED)
    # Declared by every service, consumed or not: events wait here for reporting, never dropped.
    # One reporting replica consumes it at a time; the others stand by.
    reporting = await declare_consumed_queue(channel, topology, topology.reporting_queue, single_active_consumer=True)
    for routing_key in REPORTING_BINDINGS:
        await reporting.bind(topology.events_exchange, routing_key)
    # Declared by every service too: a conversation asked of the bot waits here while assist
    # restarts (the router hands it to a human if the bot is late: nothing waits on it for long).
    bot = await declare_consumed_queue(channel, topology, topology.assist_bot_queue, single_active_consumer=True)
    for routing_key in ASSIST_BOT_BINDINGS:
        await bot.bind(topology.events_exchange, routing_key)
    surges = await declare_consumed_queue(channel, topology, topology.assist_surge_queue, single_active_consumer=True)
    for routing_key in ASSIST_SURGE_BINDINGS:
        await surges.bind(topology.events_exchange, routing_key)
    for partition in range(topology.partitions):
        deliveries = await declare_consumed_queue(
            channel, topology, topology.delivery_queue(partition), single_active_consumer=True
        )
        await deliveries.bind(topology.deliveries_exchange, str(partition))


async def declare_outbound_queue(
    channel: AbstractChannel, topology: Topology, channel_name: str
) -> AbstractQueue:
    """The queue of agent replies that one channel's sender sends out."""
    queue = await declare_consumed_queue(channel, topology, topology.outbound_queue(channel_name))
    await queue.bind(topology.events_exchange, topology.outbound_routing_key(channel_name))
    return queue


# A signal older than this is stale (a typing indicator hides after 5 s); a queue holds at most this many.
SIGNAL_QUEUE_ARGUMENTS = {"x-queue-type": "classic", "x-message-ttl": 5000, "x-max-length": 1000}


# A relay queue is read as fast as frames come (no acks); the bound only guards a stalled process.
RELAY_QUEUE_ARGUMENTS = {"x-queue-type": "classic", "x-message-ttl": 30_000, "x-max-length": 10_000}


async def declare_ephemeral_queue(channel: AbstractChannel, name: str, arguments: dict, *,
                                  robust: bool = True) -> AbstractQueue:
    """An exclusive, auto-delete, non-durable queue: it goes with its process (or its connection).
    `robust=False`: a robust channel does not declare it again after a reconnect (its owner does)."""
    return await channel.declare_queue(name, durable=False, exclusive=True, auto_delete=True, arguments=arguments,
                                       robust=robust)


async def declare_signal_queue(
    channel: AbstractChannel, topology: Topology, name: str, routing_key: str
) -> AbstractQueue:
    """A process's queue for ephemeral signals (typing) of one routing key."""
    queue = await declare_ephemeral_queue(channel, name, SIGNAL_QUEUE_ARGUMENTS)
    await queue.bind(topology.events_exchange, routing_key)
    return queue
