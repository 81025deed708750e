"""The router's shell: per partition, consumes its work queue, runs the cores, persists, publishes, acks.

A workspace's inputs go to one of a fixed number of partition queues (shared/topology.py), each
with a single active consumer. Every replica runs a RouterService per partition and stands by for
all of them; the one the broker makes active builds the partition's state from MongoDB when it
first receives work (a core per workspace, each with its workspace's configuration), so a standby
that takes over starts from what the last active one wrote. Per batch: run the cores over every
input, write the state changes, publish the deliveries and events (confirmed), then the consumer
acks. If anything fails the state is dropped and rebuilt from MongoDB, and the batch is
redelivered: the cores are idempotent. A state count per partition (`RoutingStore.fence`) keeps
a replica that lost its partition unnoticed from acting on, or writing over, its successor's state.

Timers are driven through the partition queues themselves: every replica sends each partition a
transient, expiring `router.tick` every `tick_seconds`, and whichever replica is active for the
partition fires its due timers in order with the other inputs. So timers move with the partition.
"""

import asyncio
import contextlib
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any

import structlog
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import CollectorRegistry, Counter, Histogram
from pydantic import ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from services.router.config import RoutingConfig, WorkspaceConfigs
from services.router.core import RoutingCore
from services.router.model import Delivery, Outcome
from services.router.positions import QueuePosition
from services.router.store import RoutingStore, StateView, assign_partitions, collector_paused
from shared import events, tracing
from shared.broker import BatchConsumer, Broker, ItemFailed, PoisonMessage
from shared.legacy import LegacyQueue, drain_legacy_queues
from shared.models import (
    DEFAULT_WORKSPACE,
    SYSTEM_AGENT,
    AgentSnapshot,
    BotDecision,
    ChatNotice,
    ConversationAnswered,
    ConversationAssigned,
    ConversationEnded,
    ConversationMessage,
    ConversationResolved,
    InboundMessage,
    IncidentClosing,
    IncidentLinked,
    NotAnswered,
    OfferAnswer,
    OutboundMessage,
    RouterTick,
    RoutingConfigChanged,
    RoutingEvent,
    StateRequest,
    ThreadClosed,
    ThreadEvent,
    ThreadLeft,
    TransferRequest,
    new_id,
    utcnow,
)
from shared.partitions import consumer_priority
from shared.routing_config import COLLECTION as CONFIG_COLLECTION
from shared.routing_config import workspace_of
from shared.ticks import Ticker
from shared.topology import PARTITION_HEADER, ROUTER_BINDINGS, Topology, core_queue_takes

log = structlog.get_logger(__name__)
RouterInput = (
    InboundMessage | AgentSnapshot | ConversationResolved | ConversationAnswered | OfferAnswer | TransferRequest
    | RoutingConfigChanged | ThreadClosed | NotAnswered | ThreadLeft | StateRequest | RouterTick | BotDecision
    | IncidentLinked | IncidentClosing
)
INPUT_MODELS: dict[str, type[RouterInput]] = {
    events.MESSAGE_RECEIVED: InboundMessage,
    events.AGENT_UPDATED: AgentSnapshot,
    events.AGENT_STATUS_CHANGED: AgentSnapshot,
    events.CONVERSATION_RESOLVED: ConversationResolved,
    events.CONVERSATION_ANSWERED: ConversationAnswered,
    events.OFFER_ANSWERED: OfferAnswer,
    events.TRANSFER_REQUESTED: TransferRequest,
    events.ROUTING_CONFIG_CHANGED: RoutingConfigChanged,
    events.THREAD_CLOSED: ThreadClosed,
    events.THREAD_NOT_ANSWERED: NotAnswered,
    events.THREAD_LEFT: ThreadLeft,
    events.CONVERSATION_STATE_REQUESTED: StateRequest,
    events.ROUTER_TICK: RouterTick,
    events.BOT_DECISION: BotDecision,
    events.INCIDENT_LINKED: IncidentLinked,
    events.INCIDENT_CLOSING: IncidentClosing,
}


# Which rule of the core each input goes to (a configuration change also updates the shell's copy).
CORE_INPUTS: dict[type, Callable[[RoutingCore, Any, datetime], Outcome]] = {
    InboundMessage: RoutingCore.on_message,
    AgentSnapshot: RoutingCore.on_agent,
    ConversationResolved: RoutingCore.on_resolved,
    ConversationAnswered: RoutingCore.on_answered,
    OfferAnswer: RoutingCore.on_offer_answer,
    TransferRequest: RoutingCore.on_transfer,
    ThreadClosed: RoutingCore.on_thread_closed,
    NotAnswered: RoutingCore.on_not_answered,
    ThreadLeft: RoutingCore.on_thread_left,
    StateRequest: RoutingCore.on_state_request,
    BotDecision: RoutingCore.on_bot_decision,
    IncidentLinked: RoutingCore.on_incident_linked,
    IncidentClosing: RoutingCore.on_incident_closing,
}


def ordering_key(item: RouterInput) -> str | None:
    """What an input is about: while one of them is parked after a failure, the later ones wait.
    A tick is about nothing: a failed one is not worth keeping the next from firing."""
    if isinstance(item, RouterTick):
        return None
    if isinstance(item, InboundMessage | ThreadEvent):
        return f"thread:{item.workspace_id}:{item.channel}:{item.thread_id}"
    if isinstance(item, AgentSnapshot):
        return f"agent:{item.workspace_id}:{item.agent_id}"
    if isinstance(item, RoutingConfigChanged):
        return f"config:{item.workspace_id}"
    if isinstance(item, IncidentClosing):
        return f"incident:{item.workspace_id}:{item.incident_id}"
    return f"conversation:{item.workspace_id}:{item.conversation_id}"


def parse_input(delivery: AbstractIncomingMessage) -> RouterInput:
    model = INPUT_MODELS.get(delivery.type or "")
    if model is None:
        raise PoisonMessage(f"unknown message type {delivery.type!r}")
    item = model.model_validate_json(delivery.body)
    if isinstance(item, RoutingConfigChanged):
        RoutingConfig.model_validate(item.config)  # an invalid config is a poison message
    return item


class RouterMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.inputs = Counter("router_inputs_total", "Inputs processed", ["type"], registry=registry)
        self.assignments = Counter("router_assignments_total", "Conversations assigned", registry=registry)
        self.events = Counter("router_events_total", "Routing events published", ["type"], registry=registry)
        self.queue_wait = Histogram(
            "router_queue_wait_seconds", "Time a conversation waited before assignment", registry=registry,
            buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600),
        )
        self.errors = Counter("router_batch_errors_total", "Batches that failed and were retried", registry=registry)


class RouterService:
    """One router partition on this replica: standing by, or active and holding its workspaces' cores."""

    def __init__(
        self,
        broker: Broker,
        store: RoutingStore,
        metrics: RouterMetrics,
        configs: WorkspaceConfigs,
        *,
        replica_id: str = "",
        batch_size: int = 100,
        queue_notice_seconds: float = 5.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.broker = broker
        self.store = store
        self.partition = store.partition
        self.metrics = metrics
        self.configs = configs
        self.replica_id = replica_id
        self.clock = clock
        self.cores: dict[str, RoutingCore] | None = None  # per workspace; None: not loaded (standing by)
        self._lock = asyncio.Lock()
        self._rerouter: asyncio.Task | None = None
        self.queue_notice_seconds = queue_notice_seconds
        self._notices_at = 0.0  # loop time of the last queue-position sweep
        self._notifier: asyncio.Task | None = None
        self.consumer = BatchConsumer(broker, "router", parse_input, self.handle_batch,
                                      key=ordering_key, batch_size=batch_size)

    @property
    def queue(self) -> str:
        return self.broker.topology.router_queue(self.partition)

    async def start(self) -> None:
        await self.consumer.start()
        await self.consumer.attach(self.queue, priority=consumer_priority(self.replica_id, self.queue))
        # After a reconnect this replica may no longer be the active one: rebuild on next work.
        assert self.broker.connection is not None
        self.broker.connection.reconnect_callbacks.add(self._forget_state)

    async def stop(self) -> None:
        for task in (self._rerouter, self._notifier):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.consumer.stop()

    def _forget_state(self, *_: object) -> None:
        self.cores = None

    def core_of(self, workspace_id: str) -> RoutingCore | None:
        """The workspace's core, if this replica holds the partition's state now."""
        return None if self.cores is None else self.cores.get(workspace_id)

    async def handle_batch(self, inputs: list[RouterInput]) -> None:
        async with self._lock:
            cores = await self._active_cores()
            now = self.clock()
            outcome = Outcome()
            for index, item in enumerate(inputs):
                try:
                    outcome.merge(self._apply(cores, item, now))
                except Exception as error:
                    # A core holds half an input nobody saved: rebuild from MongoDB. The consumer
                    # parks this input and hands the others back at once, as one batch.
                    self.cores = None
                    raise ItemFailed(index, error) from error
            with self._rebuild_on_error():
                outcome.merge(_merged(core.reroute_pending(now) for core in cores.values()))  # a shift change's first slice
            await self._commit(cores, outcome, redelivered_on_failure=True)
        self._count(inputs, outcome)
        self._reroute_rest_soon()
        if any(isinstance(item, RouterTick) for item in inputs):
            await self.tell_queue_positions()

    def _reroute_rest_soon(self) -> None:
        """Reroute the rest of a shift change in the background, a slice per step."""
        pending = self.cores is not None and any(core.to_reroute for core in self.cores.values())
        if pending and (self._rerouter is None or self._rerouter.done()):
            self._rerouter = asyncio.create_task(self._reroute_rest())

    async def _reroute_rest(self) -> None:
        """One slice per hold of the lock: a batch of new traffic waiting for it goes between two slices."""
        try:
            while True:
                await asyncio.sleep(0)
                async with self._lock:
                    cores = self.cores
                    if cores is None or not any(core.to_reroute for core in cores.values()):
                        return
                    with self._rebuild_on_error():
                        outcome = _merged(core.reroute_pending(self.clock()) for core in cores.values())
                    await self._commit(cores, outcome)
        except Exception:  # logged; the next batch or tick starts again from state rebuilt from MongoDB
            log.exception("router.reroute_failed", partition=self.partition)

    @contextlib.contextmanager
    def _rebuild_on_error(self) -> Iterator[None]:
        """A core that raised midway holds changes nobody saved: drop them, the retry rebuilds from MongoDB."""
        try:
            yield
        except Exception:
            self.cores = None
            raise

    async def tell_queue_positions(self) -> None:
        """Every queue_notice_seconds, tell waiting web chat customers whose place changed (positions.py).

        The sweep is in memory under the lock; the notices go out in a task of their own, best effort
        (transient, no confirm wait held by routing): while one round is still publishing, the next waits."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._notices_at < self.queue_notice_seconds or (self._notifier and not self._notifier.done()):
            return
        self._notices_at = loop.time()
        async with self._lock:
            found = [place for core in (self.cores or {}).values() for place in core.queue_positions()]
        if found:
            self._notifier = asyncio.create_task(self._publish_positions(found))

    async def _publish_positions(self, found: list[QueuePosition]) -> None:
        limit = asyncio.Semaphore(NOTICE_CONCURRENCY)

        async def publish(place: QueuePosition) -> None:
            notice = queue_notice(place)
            async with limit:
                try:
                    await self.broker.publish(notice, self.broker.topology.outbound_routing_key(notice.channel),
                                              message_type=events.MESSAGE_OUTBOUND, message_id=notice.message_id,
                                              workspace_id=notice.workspace_id, mandatory=False, persistent=False)
                except Exception as error:  # noqa: BLE001 - a lost place is told again when it next changes
                    log.info("router.queue_notice_failed", conversation_id=notice.conversation_id, error=repr(error))

        await asyncio.gather(*(publish(place) for place in found))

    async def _commit(self, cores: dict[str, RoutingCore], outcome: Outcome, *,
                      redelivered_on_failure: bool = False) -> None:
        """Persist with an outbox, publish from it; on any failure the state is rebuilt from MongoDB.

        `redelivered_on_failure`: the outcome comes from inputs that are acked only after this
        returns, so an outcome that saves no state needs no outbox: should its publish fail, the
        inputs come again and give the same messages (a customer's follow-up to an assigned
        conversation, the usual case, costs no database write at all). An outcome of the background
        reroute has no input to come again: what it publishes always goes through the outbox."""
        try:
            outbox = self._outbox(outcome)
            commit_id = await self.store.commit(StateView(cores.values()), outcome, outbox,
                                                log_without_writes=not redelivered_on_failure)
            await self._publish_outbox(outbox)
            await self.store.finish(commit_id)
            for event in outcome.events:
                self.metrics.events.labels(type=event.type).inc()
        except Exception:
            self.metrics.errors.inc()
            self.cores = None  # memory may now differ from MongoDB: rebuild from it
            raise

    async def _active_cores(self) -> dict[str, RoutingCore]:
        """The partition's cores; (re)built from MongoDB when not held, or when another replica wrote since."""
        if self.cores is not None and not await self.store.is_current():
            log.info("router.state_stale", partition=self.partition)
            self.cores = None
        if self.cores is None:
            started, cpu_started = time.perf_counter(), time.process_time()
            log.info("router.state_loading", partition=self.partition)  # a standby taking over: how long shows here
            await self._finish_unfinished_commits()
            await self._reload_configs()
            since = self.clock() - timedelta(seconds=self.configs.default.last_agent_window_seconds)
            with collector_paused():
                cores = await self.store.load(self.configs.of, since)
            self.cores = cores
            now = self.clock()
            await self._commit(cores, _merged(core.route_waiting(now) for core in cores.values()))  # what a crash left waiting
            log.info("router.state_loaded", partition=self.partition, workspaces=len(cores),
                     agents=sum(len(c.agents) for c in cores.values()),
                     conversations=sum(len(c.conversations) for c in cores.values()),
                     seconds=round(time.perf_counter() - started, 3),
                     cpu_seconds=round(time.process_time() - cpu_started, 3))  # this process's share of it
        return self.cores

    async def _reload_configs(self) -> None:
        """The stored configurations: a partition taken over routes by what is stored, as the last active did."""
        configs = await load_configs(self.store.db)
        self.configs.default, self.configs.own = configs.default, configs.own

    async def _finish_unfinished_commits(self) -> None:
        """Publish what a replica that died mid-commit saved but may not have published (its outbox)."""
        for commit_id, outbox in await self.store.unfinished_commits():
            log.info("router.commit_replayed", commit=str(commit_id), messages=len(outbox))
            await self._publish_outbox(outbox)
            await self.store.finish(commit_id)

    def _outbox(self, outcome: Outcome) -> list[dict]:
        return outbox_entries(self.broker.topology, outcome)

    async def _publish_outbox(self, outbox: list[dict]) -> None:
        """Deliveries in order per agent queue (agents in parallel), then events in order."""
        per_agent: dict[tuple, list[dict]] = defaultdict(list)
        for item in outbox:
            if item["agent"] is not None:
                per_agent[tuple(item["agent"])].append(item)
        await asyncio.gather(*(self._publish_items(items) for items in per_agent.values()))
        await self._publish_items([item for item in outbox if item["agent"] is None])

    async def _publish_items(self, items: list[dict]) -> None:
        for item in items:
            await self.broker.publish_raw(
                item["body"].encode(), item["routing_key"], message_type=item["type"], message_id=item["message_id"],
                workspace_id=item["workspace_id"], exchange=item["exchange"], mandatory=item["mandatory"],
                headers=item.get("headers"),
            )

    def _apply(self, cores: dict[str, RoutingCore], item: RouterInput, now: datetime) -> Outcome:
        if isinstance(item, RouterTick):
            return _merged(core.tick(now) for core in cores.values())
        if isinstance(item, RoutingConfigChanged):
            return self._set_config(cores, item, now)
        core = cores.get(item.workspace_id)
        if core is None:  # the workspace's first input in this partition
            core = cores[item.workspace_id] = RoutingCore(self.configs.of(item.workspace_id))
        return CORE_INPUTS[type(item)](core, item, now)

    def _set_config(self, cores: dict[str, RoutingCore], change: RoutingConfigChanged, now: datetime) -> Outcome:
        """A workspace's own configuration, or the default (for every workspace without its own)."""
        config = RoutingConfig.model_validate(change.config)
        if workspace_of_change(change) is None:
            self.configs.default = config
            changed = [ws for ws in cores if not self.configs.has_own(ws)]
        else:
            self.configs.own[change.workspace_id] = config
            changed = [change.workspace_id] if change.workspace_id in cores else []
        return _merged(cores[ws].set_config(config, now) for ws in changed)

    def _count(self, inputs: list[RouterInput], outcome: Outcome) -> None:
        for item in inputs:
            self.metrics.inputs.labels(type=type(item).__name__).inc()
        for _, delivery in outcome.deliveries:
            if isinstance(delivery, ConversationAssigned):
                self.metrics.assignments.inc()
                info = delivery.conversation
                self.metrics.queue_wait.observe((info.assigned_at - info.waiting_since).total_seconds())


class Router:
    """This replica of the router: a RouterService per partition, standing by for each, and the
    ticker that sends every partition its ticks."""

    def __init__(self, broker: Broker, db: AsyncDatabase, metrics: RouterMetrics, configs: WorkspaceConfigs, *,
                 batch_size: int = 100, tick_seconds: float = 1.0, queue_notice_seconds: float = 5.0,
                 clock: Callable[[], datetime] = utcnow) -> None:
        self.broker = broker
        self.db = db
        self.tick_seconds = tick_seconds
        self.clock = clock
        self.replica_id = new_id()  # ranks this replica among each partition's consumers
        self.partitions = [
            RouterService(broker, RoutingStore(db, partition), metrics, configs.copy(), replica_id=self.replica_id,
                          batch_size=batch_size, queue_notice_seconds=queue_notice_seconds, clock=clock)
            for partition in range(broker.topology.partitions)
        ]
        self.ticker = Ticker("router", tick_seconds, self.send_ticks)

    def for_workspace(self, workspace_id: str) -> RouterService:
        return self.partitions[self.broker.topology.workspace_partition(workspace_id)]

    async def start(self) -> None:
        await self.partitions[0].store.ensure_indexes()
        await assign_partitions(self.db, self.broker.topology.workspace_partition)
        topology = self.broker.topology
        await drain_legacy_queues(self.broker, [LegacyQueue(
            topology.legacy_router_queue, tuple((topology.events_exchange, key) for key in ROUTER_BINDINGS),
            (topology.router_exchange, ""))])
        for service in self.partitions:
            await service.start()
        self.ticker.start()

    async def stop(self) -> None:
        await self.ticker.stop()
        for service in self.partitions:
            await service.stop()

    async def send_ticks(self) -> None:
        """A tick to every partition, expiring after one period: only the active replica's consumer reads it."""
        body = RouterTick(at=self.clock()).model_dump_json().encode()
        for partition in range(len(self.partitions)):
            await self.broker.publish_raw(
                body, "", message_type=events.ROUTER_TICK, message_id=new_id(), workspace_id="",
                exchange=self.broker.topology.router_exchange, headers={PARTITION_HEADER: str(partition)},
                mandatory=False, persistent=False, expiration=self.tick_seconds,
            )


async def load_configs(db: AsyncDatabase) -> WorkspaceConfigs:
    """Every stored configuration: the default and each workspace's own (invalid ones logged and skipped)."""
    default, own = RoutingConfig(), {}
    async for doc in db[CONFIG_COLLECTION].find({}):
        config = valid_config(doc)
        workspace_id = workspace_of(str(doc["_id"]))
        if config is None:
            continue
        if workspace_id is None:
            default = config
        else:
            own[workspace_id] = config
    return WorkspaceConfigs(default, own)


def valid_config(doc: dict) -> RoutingConfig | None:
    """A stored configuration, or None when it no longer validates.

    One saved by an older version, with limits since tightened, must not keep the router from
    starting or make every later batch fail: it is logged, and routing goes on without it (the
    default, or the built-in one) until a valid one is put."""
    try:
        return RoutingConfig.model_validate(doc["config"])
    except (ValidationError, KeyError) as error:
        log.error("router.stored_config_invalid", config=str(doc.get("_id")), error=str(error))
        return None


def workspace_of_change(change: RoutingConfigChanged) -> str | None:
    """The workspace whose own configuration changed; None for the default's."""
    return None if change.workspace_id == DEFAULT_WORKSPACE else change.workspace_id


def _merged(outcomes: Iterable[Outcome]) -> Outcome:
    merged = Outcome()
    for outcome in outcomes:
        merged.merge(outcome)
    return merged


def outbox_entries(topology: Topology, outcome: Outcome) -> list[dict]:
    """Every message the outcome publishes, serialized, in publish order: deliveries, then events.

    An event some durable queue of the core takes (reporting's, the agents service's) is published
    mandatory: one no queue takes is an error. Others (max wait, offer expired) are for optional
    listeners (a channel, an external system) and may find none."""
    items = [
        {"exchange": topology.deliveries_exchange, "routing_key": topology.agent_routing_key(*agent_key),
         "agent": list(agent_key), "type": delivery.type, "message_id": _delivery_id(delivery, agent_key[1]),
         "workspace_id": agent_key[0], "mandatory": True, "body": delivery.model_dump_json()}
        for agent_key, delivery in outcome.deliveries
    ]
    for event in outcome.events + _routed_events(outcome):
        routing_key = f"{event.type}.{event.details['channel']}" if event.type == events.CONVERSATION_ROUTED else event.type
        items.append({"exchange": topology.events_exchange, "routing_key": routing_key, "agent": None,
                      "type": event.type, "message_id": event.event_id, "workspace_id": event.workspace_id,
                      "mandatory": core_queue_takes(routing_key), "body": event.model_dump_json()})
    # The trace of the input being handled, kept with the entries: a replay after a crash continues it.
    trace_headers = tracing.current_headers()
    if trace_headers:
        for item in items:
            item["headers"] = trace_headers
    return items


def _routed_events(outcome: Outcome) -> list[RoutingEvent]:
    """A conversation.routed.<channel> event per assignment, for channels and external systems."""
    routed = []
    for _, delivery in outcome.deliveries:
        if isinstance(delivery, ConversationAssigned):
            info = delivery.conversation
            routed.append(RoutingEvent(
                event_id=f"routed:{info.conversation_id}:{info.assignment_seq}", type=events.CONVERSATION_ROUTED,
                workspace_id=info.workspace_id, conversation_id=info.conversation_id, agent_id=info.assignee_id,
                queue=info.queue, at=info.assigned_at,
                details={"channel": info.channel, "thread_id": info.thread_id, "contact": info.contact.model_dump()},
            ))
    return routed


NOTICE_CONCURRENCY = 32  # queue notices in flight at once: thousands waiting do not flood the channel


def queue_notice(place: QueuePosition) -> OutboundMessage:
    """The outbound message intake's web chat sender shows as `{"type": "queue", ...}` (docs/webchat.md)."""
    first = place.conversation.first
    return OutboundMessage(
        message_id=f"queue:{place.conversation.conversation_id}:{new_id()}", workspace_id=first.workspace_id,
        conversation_id=place.conversation.conversation_id, channel=first.channel, thread_id=first.thread_id,
        contact=first.contact, agent_id=SYSTEM_AGENT, text="",
        notice=ChatNotice(kind="queue", position=place.position, expected_wait_seconds=place.expected_wait_seconds),
    )


def _delivery_id(delivery: Delivery, agent_id: str) -> str:
    """Deterministic ids, so a republished delivery is recognisably the same one."""
    if isinstance(delivery, ConversationMessage):
        return delivery.message.message_id
    if isinstance(delivery, ConversationEnded):
        # A conversation ends once: no assignment sequence to tell repeats apart.
        return f"{delivery.type}:{delivery.conversation_id}:{agent_id}"
    conversation_id = delivery.conversation_id if hasattr(delivery, "conversation_id") else delivery.conversation.conversation_id
    seq = delivery.assignment_seq if hasattr(delivery, "assignment_seq") else delivery.conversation.assignment_seq
    return f"{delivery.type}:{conversation_id}:{agent_id}:{seq}"
