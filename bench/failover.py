"""How long the router's standby takes to route again after the active replica is killed.

Run from the repo root: `python -m bench.failover [--agents 10000] [--conversations 5000] [--waiting 1000]`.
It prints figures; it asserts nothing about time.

The floor is written to a database of its own as the router stores it (RoutingStore's documents,
made by the real core): N agents online with 3 chats each (bench.core's 100 queues and skills,
with SLA targets), a churn of conversations opened and resolved (so every one of them leaves a
last-agent record), then M open conversations: W waiting in one busy queue whose every qualified
agent is full (each with a follow-up message, so two backlog documents), the rest assigned in
random queues.

Then two router processes (`python -m services.router`, as the end-to-end failover test starts
them) share the work queue; no other service runs (the router declares the queues it publishes to,
and a queue of the benchmark's own takes `conversation.routed.*`). A first conversation makes one
of them active (it loads the floor); the benchmark kills it with SIGKILL, publishes a new
conversation straight onto the events exchange, and times, from the kill:
- detection: until the standby started loading (its `router.state_loading` log line);
- load: the standby's own figure for reading and building the core (`router.state_loaded`);
- routed: until the benchmark read the `conversation.routed` event of the new conversation.
Log lines carry the router's wall clock, the kill is taken on the same machine's.

`--source DIR` runs the router processes from another checkout (e.g. the commit before a change,
`git worktree add /tmp/before <commit>`) on the same floor, for a before/after in one run.
"""

import argparse
import asyncio
import gc
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import aio_pika
from pymongo import AsyncMongoClient

from bench.core import CAPACITY, build_agents, build_config
from bench.stack import API_KEY, bring_up_base, stop_base
from deploy import local
from deploy.local import Process
from services.router.config import RoutingConfig, SlaTargets
from services.router.core import RoutingCore
from services.router.model import Outcome
from services.router.store import (
    RoutingStore,
    _agent_from_doc,
    _conversation_from_doc,
    _state_writes,
    collector_paused,
)
from shared import events
from shared.broker import Broker
from shared.models import Contact, ConversationResolved, InboundMessage, utcnow
from shared.topology import Topology

WORKSPACE = "default"
# The router partition the floor's workspace hashes to, with the services' default partition count.
PARTITION = Topology().workspace_partition(WORKSPACE)
BUSY_QUEUE = "q001"  # no bullseye steps: once its qualified agents are full, what comes waits
PATIENCE = 300.0  # seconds: a bound on every wait, not a speed claim


# -- the floor -----------------------------------------------------------------------------------


def floor_config(queues: int, rng: random.Random) -> RoutingConfig:
    """bench.core's queues, each with first-response and resolution targets (timers to rebuild)."""
    config = build_config(queues, rng)
    # Not due when the routers start (the floor spans the last hour): no mass of SLA events muddles the takeover.
    sla = SlaTargets(first_response_seconds=2 * 3600, resolution_seconds=24 * 3600)
    # Built anew, not model_copy'd: the copy would keep the lookup by name of the queues without targets.
    return RoutingConfig(default_queue=config.default_queue,
                         queues=[q.model_copy(update={"sla": sla}) for q in config.queues])


def inbound(serial: int, queue: str, at: datetime, thread: str | None = None) -> InboundMessage:
    thread = thread or f"t{serial}"
    return InboundMessage(message_id=f"m{serial}", workspace_id=WORKSPACE, channel="webchat", thread_id=thread,
                          contact=Contact(id=thread, name=f"Customer {serial}"),
                          text="My parcel has not arrived and the tracking page says nothing since Monday.",
                          metadata={"queue": queue}, received_at=at)


@dataclass
class Floor:
    core: RoutingCore
    outcome: Outcome  # everything the fill changed, written as one commit would write it
    assigned: int
    waiting: int
    last_agents: int


def build_floor(agents: int, conversations: int, waiting: int, churn: int, seed: int, now: datetime) -> Floor:
    """The state as the real core makes it, by its inputs (timestamps in the last hour before `now`)."""
    rng = random.Random(seed)
    config = floor_config(100, rng)
    core = RoutingCore(config)
    outcome = Outcome()
    t = now - timedelta(hours=1)
    roster = build_agents(agents, config, rng)
    for snapshot, _ in roster:
        outcome.merge(core.on_agent(snapshot, t))
    others = [q.name for q in config.queues if q.name != BUSY_QUEUE]
    serial = 0
    for _ in range(churn):  # opened and resolved: a last-agent record each
        serial += 1
        t += timedelta(milliseconds=100)
        opened = core.on_message(inbound(serial, rng.choice(others), t), t)
        outcome.merge(opened)
        conversation_id = next(iter(opened.changed_conversations))
        outcome.merge(core.on_resolved(ConversationResolved(event_id=f"r{serial}", workspace_id=WORKSPACE,
                                                            conversation_id=conversation_id, resolved_at=t), t))
    while sum(c.waiting for c in core.conversations.values()) < waiting:  # the busy queue: full, then waiting
        serial += 1
        t += timedelta(milliseconds=100)
        outcome.merge(core.on_message(inbound(serial, BUSY_QUEUE, t), t))
    for conversation in [c for c in core.conversations.values() if c.waiting]:  # a follow-up each
        serial += 1
        outcome.merge(core.on_message(inbound(serial, BUSY_QUEUE, t, conversation.first.thread_id), t))
    while len(core.conversations) < conversations:
        serial += 1
        t += timedelta(milliseconds=100)
        outcome.merge(core.on_message(inbound(serial, rng.choice(others), t), t))
    open_waiting = sum(c.waiting for c in core.conversations.values())
    return Floor(core, outcome, len(core.conversations) - open_waiting, open_waiting, len(core.last_agents))


async def write_floor(db, floor: Floor) -> None:
    """The floor's documents, as the router's commits write them, and the configuration in force."""
    store = RoutingStore(db, PARTITION)
    await store.ensure_indexes()
    await store._apply(_state_writes(floor.core, floor.outcome))
    await db["routing_config"].update_one({"_id": "routing"}, {"$set": {"config": floor.core.config.model_dump(mode="json")}},
                                          upsert=True)


@dataclass
class LoadSteps:
    """RoutingStore.load's steps, timed one by one in this process, and the whole of it."""

    read: float  # every document, as the store queries them (wall: the database's time included)
    read_cpu: float  # this process's CPU in it (decoding BSON)
    parse: float  # documents to agents, conversations (with their backlogs) and last agents
    build: float  # RoutingCore.rebuilt: indexes, memberships, timers
    route: float  # route_waiting, as the shell runs it after the load
    whole: float  # RoutingStore.load itself


async def time_load_steps(db, config: RoutingConfig, since: datetime) -> LoadSteps:
    """With the garbage collector paused, as the router loads."""
    with collector_paused():
        return await _time_load_steps(db, config, since)


async def _time_load_steps(db, config: RoutingConfig, since: datetime) -> LoadSteps:
    store = RoutingStore(db, PARTITION)
    mine = {"partition": PARTITION}
    started, cpu_started = time.perf_counter(), time.process_time()
    agent_docs = await store.agents.find(mine).to_list()
    conversation_docs = await store.conversations.find(mine).to_list()
    backlog_docs = await store.backlog.find(mine).sort([("conversation_id", 1), ("position", 1)]).to_list()
    last_docs = await store.last_agents.find({**mine, "resolved_at": {"$gte": since}}).to_list()
    read, read_cpu = time.perf_counter(), time.process_time() - cpu_started
    agents = [_agent_from_doc(doc) for doc in agent_docs]
    conversations = [_conversation_from_doc(doc) for doc in conversation_docs]
    by_id = {c.conversation_id: c for c in conversations}
    for doc in backlog_docs:
        by_id[doc["conversation_id"]].backlog.append(InboundMessage.model_validate(doc["message"]))
    last_agents = {(d["workspace_id"], d["channel"], d["thread_id"]): (d["agent_id"], d["resolved_at"]) for d in last_docs}
    parsed = time.perf_counter()
    core = RoutingCore.rebuilt(config, agents, conversations, last_agents)
    built = time.perf_counter()
    core.route_waiting(utcnow())
    routed = time.perf_counter()
    del core
    gc.collect()  # the first core's garbage, not the second's to carry
    await store.load(lambda workspace_id: config, since)
    return LoadSteps(read - started, read_cpu, parsed - read, built - parsed, routed - built,
                     time.perf_counter() - routed)


async def measure_load_steps(base: local.Infrastructure, floor: Floor, runs: int) -> list[LoadSteps]:
    namespace = f"benchfo{uuid.uuid4().hex[:10]}"
    mongo = AsyncMongoClient(base.mongo_url, tz_aware=True)
    try:
        await write_floor(mongo[namespace], floor)
        since = utcnow() - timedelta(seconds=floor.core.config.last_agent_window_seconds)
        return [await time_load_steps(mongo[namespace], floor.core.config, since) for _ in range(runs)]
    finally:
        await mongo.close()
        await local.remove_namespace(base.amqp_url, base.mongo_url, namespace)


# -- the failover ----------------------------------------------------------------------------------


@dataclass
class Routers:
    """Router processes started from `root`, each logging to a file of its own."""

    root: Path
    env: dict[str, str]
    log_dir: Path
    processes: dict[str, Process]
    ports: dict[str, int]

    def start(self, name: str) -> None:
        port = local.free_port()
        log_path = self.log_dir / f"{name}.log"
        env = {**os.environ, **self.env, "ROUTER_PORT": str(port), "ROUTER_HOST": "127.0.0.1"}
        with open(log_path, "ab") as out:
            popen = subprocess.Popen([sys.executable, "-m", "services.router"], cwd=self.root, env=env,
                                     stdout=out, stderr=subprocess.STDOUT)
        self.processes[name], self.ports[name] = Process(name, popen, log_path), port
        local.wait_until(lambda: self._ready(name), 60, f"{name} (log: {log_path})")

    def _ready(self, name: str) -> bool:
        if self.processes[name].popen.poll() is not None:
            raise RuntimeError(f"{name} exited; log: {self.processes[name].log_path}")
        return self._get(name, "/readyz") is not None

    def active(self) -> list[str]:
        """The routers whose core is loaded (GET /v1/queue says active)."""
        return [name for name in self.processes if (self._get(name, "/v1/queue") or {}).get("active")]

    def _get(self, name: str, path: str) -> dict | None:
        request = urllib.request.Request(f"http://127.0.0.1:{self.ports[name]}{path}",
                                         headers={"Authorization": f"Bearer {API_KEY}"})
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return json.loads(response.read() or b"{}")
        except (urllib.error.URLError, OSError, ValueError):
            return None

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.stop()


@dataclass
class Takeover:
    detection: float  # kill -> the standby started loading (the broker handed it the work queue)
    load: float  # the standby's own figure: unfinished commits, read, build, route what waits
    load_cpu: float  # the standby's CPU in it (the rest is waiting: for the database, for a CPU)
    routed: float  # kill -> the new conversation's conversation.routed event read here
    load_lines: int  # router.state_loaded lines of the standby (1: it loaded once)


class RoutedEvents:
    """A queue of the benchmark's own on the events exchange: when each thread's routed event came."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.at: dict[str, float] = {}  # thread id -> time.perf_counter()

    async def start(self) -> None:
        queue = await self.broker.channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(self.broker.topology.events_exchange, f"{events.CONVERSATION_ROUTED}.*")
        await queue.consume(self._on_event, no_ack=True)

    async def _on_event(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.at.setdefault(json.loads(message.body)["details"]["thread_id"], time.perf_counter())

    async def wait_for(self, thread: str) -> float:
        async with asyncio.timeout(PATIENCE):
            while thread not in self.at:
                await asyncio.sleep(0.005)
        return self.at[thread]


async def publish_new_conversation(broker: Broker, thread: str, queue: str) -> None:
    message = inbound(0, queue, utcnow(), thread).model_copy(update={"message_id": f"m-{thread}"})
    await broker.publish(message, events.MESSAGE_RECEIVED, message_type=events.MESSAGE_RECEIVED,
                         message_id=message.message_id, workspace_id=WORKSPACE)


def log_times(path: Path, event: str) -> list[tuple[float, dict]]:
    """(epoch seconds, the line) of each JSON log line of `event`."""
    found = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("event") == event:
            found.append((datetime.fromisoformat(entry["timestamp"]).timestamp(), entry))
    return found


async def measure_takeover(base: local.Infrastructure, floor: Floor, root: Path, log_dir: Path) -> Takeover:
    """Write the floor to a fresh namespace, start two routers from `root`, kill the active one."""
    namespace = f"benchfo{uuid.uuid4().hex[:10]}"
    log_dir.mkdir(parents=True, exist_ok=True)
    mongo = AsyncMongoClient(base.mongo_url, tz_aware=True)
    broker = Broker(base.amqp_url, Topology(namespace, "quorum"))
    routers = Routers(root, local.stack_env(base, namespace, f"{WORKSPACE}:{API_KEY}"), log_dir, {}, {})
    try:
        await write_floor(mongo[namespace], floor)
        for name in ("router", "router-2"):
            routers.start(name)
        await broker.start()
        routed = RoutedEvents(broker)
        await routed.start()
        await publish_new_conversation(broker, "warm-up", "q002")  # makes one router active (it loads)
        await routed.wait_for("warm-up")
        (active,) = routers.active()
        standby = next(name for name in routers.processes if name != active)
        killed_wall, killed = time.time(), time.perf_counter()
        routers.processes.pop(active).kill()  # SIGKILL
        await publish_new_conversation(broker, "after-kill", "q003")
        routed_after = await routed.wait_for("after-kill") - killed
        loading = [t for t, _ in log_times(routers.processes[standby].log_path, "router.state_loading")]
        loaded = log_times(routers.processes[standby].log_path, "router.state_loaded")
        return Takeover(detection=loading[-1] - killed_wall if loading else float("nan"),
                        load=loaded[-1][1].get("seconds", float("nan")) if loaded else float("nan"),
                        load_cpu=loaded[-1][1].get("cpu_seconds", float("nan")) if loaded else float("nan"),
                        routed=routed_after, load_lines=len(loaded))
    finally:
        routers.stop_all()
        await broker.close()
        await mongo.close()
        await local.remove_namespace(base.amqp_url, base.mongo_url, namespace)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.failover", description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=10_000)
    parser.add_argument("--conversations", type=int, default=5_000, help="open conversations (default 5000)")
    parser.add_argument("--waiting", type=int, default=1_000, help="of them waiting (default 1000)")
    parser.add_argument("--churn", type=int, default=5_000, help="conversations opened and resolved before "
                        "(last-agent records, default 5000)")
    parser.add_argument("--runs", type=int, default=3, help="kills per router source (default 3)")
    parser.add_argument("--source", type=Path, action="append", default=[],
                        help="also run the routers from this checkout (repeatable), e.g. the commit before a change")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if min(args.agents, args.conversations, args.runs) < 1 or not 0 <= args.waiting < args.conversations:
        parser.error("agents, conversations and runs must be at least 1; waiting fewer than the conversations")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    # A benchmark stopped with SIGTERM still stops its routers and removes its queues (the finally blocks).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    log_dir = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    started = time.perf_counter()
    floor = build_floor(args.agents, args.conversations, args.waiting, args.churn, args.seed, utcnow())
    print(f"router failover: {len(floor.core.agents)} agents online ({CAPACITY} chats each, 100 queues), "
          f"{floor.assigned} conversations assigned, {floor.waiting} waiting (2 backlog documents each), "
          f"{floor.last_agents} last-agent records; floor built in {time.perf_counter() - started:.1f} s", flush=True)
    base = bring_up_base(log_dir)
    sources = [*args.source, local.ROOT]
    rows = []
    try:
        steps = asyncio.run(measure_load_steps(base, floor, args.runs))
        print("this tree's RoutingStore.load in this process, step by step (s):")
        for n, step in enumerate(steps, start=1):
            print(f"  run {n}: read {step.read:.2f} (cpu {step.read_cpu:.2f})  parse {step.parse:.2f}  build {step.build:.2f}  "
                  f"route_waiting {step.route:.2f}  (RoutingStore.load whole: {step.whole:.2f})", flush=True)
        for source in sources:
            for run in range(args.runs):
                takeover = asyncio.run(measure_takeover(base, floor, source, log_dir / f"{source.name}-{run}"))
                rows.append((source, takeover))
                print(f"  {source}: run {run + 1}: routed {takeover.routed:.2f} s after the kill", flush=True)
    finally:
        stop_base(base, log_dir)
    print()
    print("seconds from the kill: detection = until the standby started loading; load = its own figure (unfinished "
          "commits, read, build, route what waits), load_cpu = its CPU in that; first_route = the rest until the "
          "routed event; routed = all")
    print(f"{'router source':<40} {'detection':>9} {'load':>6} {'load_cpu':>8} {'first_route':>11} {'routed':>7}")
    for source, t in rows:
        print(f"{source!s:<40} {t.detection:>9.3f} {t.load:>6.2f} {t.load_cpu:>8.2f} "
              f"{t.routed - t.detection - t.load:>11.3f} {t.routed:>7.2f}"
              + ("" if t.load_lines == 1 else f"   (loaded {t.load_lines} times)"))


if __name__ == "__main__":
    main()
