"""What the agents' delivery topology costs the broker, one queue per agent (before) beside a fixed
number of partition queues (after), at N agents (issue 13).

Run from the repo root: `python -m bench.topology [--sizes 1000,2000,5000,10000] [--before-cap 420]`
(part of `make bench`). It prints figures; it asserts nothing about time.

It starts a RabbitMQ node of its own (own node name, AMQP, distribution and management ports, a
temporary directory for mnesia and logs, file descriptor limit `--nofile`) and never touches the
machine's brokers. Each (layout, N) gets a fresh namespace on it:

- before: the old agents service's topology, copied below (`declare_old_agent_queue`): the core
  of today without partitions (`Topology(partitions=0)`), plus per agent a quorum queue
  `<ns>.agent.<ws>.<agent>` and its quorum `.dlq`, bound to `<ns>.deliveries` by `<ws>.<agent>`.
- after: `shared.topology.declare_core` with the default partitions, nothing per agent.

Measured, per layout and N:
- declare_s: a first process declares the namespace (Broker.start, then the old layout's agent
  queues one after the other, as the old agents service did for the agents it knew at start).
- ready_s: a fresh process-like connection (a new Broker and BatchConsumer, as the agents service
  has) from connect to its last consumer: before, it re-declares every agent's queue and attaches
  a consumer to each (the old start-up); after, it attaches to each partition with its priority.
- with that consumer attached: queues on the node, the node's memory (mem_used from the
  management API's /api/nodes, and the beam process's RSS), file descriptors (the management
  API's fd_used and the count of /proc/<beam pid>/fd), sockets and Erlang processes.
- delete_s: deleting the namespace (deploy.cleanup, one queue after the other).

`idle` is the empty node's figures, taken at the start; `end`, the node's after everything was
deleted. The 'before' sizes stop at the first one that failed (the broker refused a declare) or
whose declaring and attaching did not finish within --before-cap seconds: it is abandoned, its
namespace deleted if the node still answers (else it goes with the node's directory), and the
sizes left are extrapolated linearly from the two largest measured ones, printed as such.
A node that does not stop within STOP_TIMEOUT is killed (its VM, which this benchmark started).
"""

import argparse
import asyncio
import base64
import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiormq.exceptions
from aio_pika.abc import AbstractChannel, AbstractQueue

from deploy.cleanup import Broker as CleanupTarget
from deploy.cleanup import list_from_management, remove_namespaces
from deploy.local import free_port, port_answers, wait_until
from shared.broker import BatchConsumer, Broker
from shared.partitions import consumer_priority
from shared.topology import Topology, declare_consumed_queue
from tests.e2e.broker_node import BrokerNode, rabbitmq_installed

WORKSPACE = "default"
SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
RABBITMQ_HOME = "/var/lib/rabbitmq"
STATS_POLL_S = 1.0  # how often a reading asks the management API whether its figures were refreshed
STOP_TIMEOUT = 300  # seconds
DELETE_TIMEOUT = 600  # seconds, one namespace
PROGRESS_EVERY = 1000  # agents: a progress line on the way
STATS_WAIT_S = 60  # at most, for the management API's figures to be sampled again


# -- the old layout (before delivery partitions, commit 1f7448c^), kept here to measure it --------


def old_agent_queue(topology: Topology, workspace_id: str, agent_id: str) -> str:
    return f"{topology.namespace}.agent.{workspace_id}.{agent_id}"


def old_agent_routing_key(workspace_id: str, agent_id: str) -> str:
    return f"{workspace_id}.{agent_id}"


async def declare_old_agent_queue(
    channel: AbstractChannel, topology: Topology, workspace_id: str, agent_id: str
) -> AbstractQueue:
    """OLD LAYOUT: the durable queue the router filled with one agent's conversations and messages
    (and, through declare_consumed_queue, its quorum `.dlq`)."""
    queue = await declare_consumed_queue(channel, topology, old_agent_queue(topology, workspace_id, agent_id))
    await queue.bind(topology.deliveries_exchange, old_agent_routing_key(workspace_id, agent_id))
    return queue


def old_topology(namespace: str) -> Topology:
    """The core as it was: today's declare_core with no partition queues."""
    return Topology(namespace, partitions=0)


def agent_ids(n: int) -> list[str]:
    return [f"a{i:05d}" for i in range(n)]


# -- the node ------------------------------------------------------------------------------------


class BenchNode(BrokerNode):
    """A node of the benchmark's own, with the management plugin and a file descriptor limit."""

    def __init__(self, nofile: int) -> None:
        super().__init__()
        self.nofile = nofile
        self.pid = 0  # the node's VM, once started
        self.management_port = free_port()
        (self.base / "enabled_plugins").write_text("[rabbitmq_management].\n")
        with open(self.base / "rabbitmq.conf", "a") as conf:
            # The statistics interval stays the default (5 s), as deployed: collecting every queue's
            # statistics more often is work of its own for a node holding thousands of queues.
            conf.write(f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {self.management_port}\n")
        for path in (self.base / "enabled_plugins", self.base / "rabbitmq.conf"):
            shutil.chown(path, "rabbitmq", "rabbitmq")

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    def start(self) -> None:
        """As BrokerNode.start, but not through /usr/sbin/rabbitmq-server: that one drops to the
        rabbitmq user with `su`, whose PAM session sets the file descriptor limit back to 1,024.
        Started as that user directly, the node keeps the limit set here (at most this process's
        hard limit: raising that needs CAP_SYS_RESOURCE, which a container may lack)."""
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        limit = self.nofile if hard == resource.RLIM_INFINITY else min(self.nofile, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
        try:
            # HOME: the rabbitmq user's, whose Erlang cookie rabbitmqctl (through su) uses to stop it.
            subprocess.run([SERVER, "-detached"], env=self._env() | {"HOME": RABBITMQ_HOME}, cwd=RABBITMQ_HOME,
                           user="rabbitmq", group="rabbitmq", extra_groups=[], check=True)
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        wait_until(lambda: port_answers("127.0.0.1", self.port), 90, f"RabbitMQ node {self.name}")
        wait_until(lambda: port_answers("127.0.0.1", self.management_port), 90, "the node's management API")
        wait_until(lambda: "os_pid" in self.api(f"nodes/{self.name}"), 30, "the node's first statistics")
        self.pid = int(self.api(f"nodes/{self.name}")["os_pid"])

    def stop(self) -> None:
        """As BrokerNode.stop, bounded: a node overloaded by quorum queues took over 12 minutes to
        stop (and had not); past STOP_TIMEOUT its VM, which this benchmark started, is killed."""
        try:
            subprocess.run(["rabbitmqctl", "-n", self.name, "stop"], env=self._env(), check=False,
                           capture_output=True, timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            if self.pid <= 0:  # never started as far as we know: nothing of ours to kill (0 is our own group)
                raise
            print(f"# node {self.name} did not stop within {STOP_TIMEOUT}s: killing its VM (pid {self.pid})", flush=True)
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        wait_until(lambda: not port_answers("127.0.0.1", self.port), 60, f"RabbitMQ node {self.name} stopping")

    def api(self, path: str) -> dict | list:
        request = urllib.request.Request(f"{self.management_url}/api/{path}",
                                         headers={"Authorization": "Basic " + base64.b64encode(b"guest:guest").decode()})
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())


@dataclass
class Reading:
    queues: int
    mem_used_mb: float
    rss_mb: float
    fd_used: int
    proc_fds: int
    sockets: int
    processes: int
    fd_total: int


def fresh_node_stats(node: BenchNode) -> dict:
    """The management API's node figures once they were sampled after this call began: its
    `uptime` moves at each sample, and the first move may be a sample taken before."""
    seen = [node.api(f"nodes/{node.name}")]
    deadline = time.monotonic() + STATS_WAIT_S  # a wedged node may stop sampling: then its last figures
    while len({stats["uptime"] for stats in seen}) < 3 and time.monotonic() < deadline:
        time.sleep(STATS_POLL_S)
        seen.append(node.api(f"nodes/{node.name}"))
    return seen[-1]


def read_node(node: BenchNode) -> Reading:
    """The node's figures now."""
    stats = fresh_node_stats(node)
    pid = node.pid
    rss_kb = next(int(line.split()[1]) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if line.startswith("VmRSS:"))
    queues = node.api("overview")["object_totals"]["queues"]
    return Reading(queues=queues, mem_used_mb=stats["mem_used"] / 2**20, rss_mb=rss_kb / 1024,
                   fd_used=stats["fd_used"], proc_fds=len(os.listdir(f"/proc/{pid}/fd")),
                   sockets=stats["sockets_used"], processes=stats["proc_used"], fd_total=stats["fd_total"])


# -- one layout at one size ------------------------------------------------------------------------


@dataclass
class Row:
    layout: str
    agents: int
    declare_s: float
    ready_s: float
    delete_s: float
    reading: Reading
    extrapolated: bool = False


async def ignore(batch: list) -> None:
    """The bench's consumer: nothing is published, so nothing arrives."""


@dataclass
class Progress:
    """How far the declaring got, for a run that fails or runs out of time."""

    layout: str
    agents: int
    started: float = field(default_factory=time.perf_counter)
    declared: int = 0

    def one_more(self) -> None:
        self.declared += 1
        if self.declared % PROGRESS_EVERY == 0:
            print(f"# {self.layout} n={self.agents}: {self.declared} agents' queues declared "
                  f"after {self.elapsed():.0f}s", flush=True)

    def elapsed(self) -> float:
        return time.perf_counter() - self.started


async def declare(url: str, layout: str, topology: Topology, agents: list[str], progress: Progress) -> float:
    """The first process: the namespace's core, and for 'before' every agent's queues."""
    started = time.perf_counter()
    broker = Broker(url, topology)
    await broker.start()
    try:
        if layout == "before":
            for agent in agents:
                await declare_old_agent_queue(broker.channel, topology, WORKSPACE, agent)
                progress.one_more()
    finally:
        with contextlib.suppress(Exception):  # a broken connection: the error that broke it is the one to see
            await broker.close()
    return time.perf_counter() - started


@dataclass
class AgentsConsumer:
    """What a fresh agents service process holds on the broker for its deliveries."""

    broker: Broker
    consumer: BatchConsumer

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.consumer.stop()
            await self.broker.close()


async def attach_consumer(url: str, layout: str, topology: Topology, agents: list[str]) -> AgentsConsumer:
    """A fresh agents-service-like connection, from connect to consuming every queue it would."""
    broker = Broker(url, topology)
    await broker.start()
    consumer = BatchConsumer(broker, "agents.deliveries", lambda message: message, ignore)
    await consumer.start()
    if layout == "before":  # the old AgentsService.start: declare, then consume, each known agent's queue
        for agent in agents:
            queue = await declare_old_agent_queue(broker.channel, topology, WORKSPACE, agent)
            await consumer.attach(queue.name)
    else:
        replica = uuid.uuid4().hex
        for queue_name in topology.delivery_queues():
            await consumer.attach(queue_name, priority=consumer_priority(replica, queue_name))
    return AgentsConsumer(broker, consumer)


async def delete_namespace(node: BenchNode, namespace: str) -> float:
    started = time.perf_counter()
    target = CleanupTarget(node.url, node.management_url)
    listing = await list_from_management(target, timeout=300)
    await remove_namespaces(target, listing, [namespace], force=True)
    return time.perf_counter() - started


async def measure(node: BenchNode, layout: str, n: int, cap: float) -> Row | None:
    """One layout at n agents in a namespace of its own; None when it failed or did not finish within cap."""
    namespace = f"bench{uuid.uuid4().hex[:12]}"
    topology = old_topology(namespace) if layout == "before" else Topology(namespace)
    agents = agent_ids(n)
    progress = Progress(layout, n)
    consumer: AgentsConsumer | None = None
    try:
        async with asyncio.timeout(cap):
            declare_s = await declare(node.url, layout, topology, agents, progress)
            started = time.perf_counter()
            consumer = await attach_consumer(node.url, layout, topology, agents)
            ready_s = time.perf_counter() - started
        reading = await asyncio.to_thread(read_node, node)
    except (TimeoutError, aiormq.exceptions.AMQPError, ConnectionError) as error:
        reason = f"not done within {cap:.0f}s" if isinstance(error, TimeoutError) else f"failed: {error!r}"
        print(f"# {layout} n={n}: {reason}, with {progress.declared} agents' queues declared after "
              f"{progress.elapsed():.0f}s; abandoned", flush=True)
        return None
    finally:
        if consumer is not None:
            await consumer.close()
        delete_s = await delete_or_say(node, namespace, f"{layout} n={n}")
    return Row(layout, n, declare_s, ready_s, delete_s, reading)


async def delete_or_say(node: BenchNode, namespace: str, what: str) -> float:
    """Delete the namespace within DELETE_TIMEOUT; a node that stopped answering AMQP keeps it (and
    goes with its directory at the end): nan then."""
    try:
        async with asyncio.timeout(DELETE_TIMEOUT):
            delete_s = await delete_namespace(node, namespace)
    except (TimeoutError, aiormq.exceptions.AMQPError, ConnectionError) as error:
        print(f"# {what}: namespace not deleted ({error!r}); the node goes with its directory at the end", flush=True)
        return float("nan")
    print(f"# {what}: namespace deleted in {delete_s:.0f}s", flush=True)
    return delete_s


def extrapolate(rows: list[Row], n: int) -> Row:
    """A straight line through the two largest measured sizes."""
    a, b = rows[-2], rows[-1]

    def at(x: float, y: float) -> float:
        return x + (y - x) * (n - a.agents) / (b.agents - a.agents)

    fields = {name: at(getattr(a.reading, name), getattr(b.reading, name)) for name in vars(a.reading)}
    reading = Reading(**{k: (round(v) if isinstance(getattr(a.reading, k), int) else v) for k, v in fields.items()})
    return Row(b.layout, n, at(a.declare_s, b.declare_s), at(a.ready_s, b.ready_s), at(a.delete_s, b.delete_s),
               reading, extrapolated=True)


HEADER = (f"{'layout':<7} {'agents':>6} {'queues':>6} {'declare_s':>9} {'ready_s':>8} {'delete_s':>8} "
          f"{'mem_used_MB':>11} {'rss_MB':>7} {'fd_used':>7} {'proc_fds':>8} {'sockets':>7} {'erl_procs':>9}")


def format_row(row: Row) -> str:
    r = row.reading
    line = (f"{row.layout:<7} {row.agents:>6} {r.queues:>6} {row.declare_s:>9.1f} {row.ready_s:>8.2f} "
            f"{row.delete_s:>8.1f} {r.mem_used_mb:>11.0f} {r.rss_mb:>7.0f} {r.fd_used:>7} {r.proc_fds:>8} "
            f"{r.sockets:>7} {r.processes:>9}")
    return line + ("  (extrapolated)" if row.extrapolated else "")


def format_idle(r: Reading) -> str:
    return (f"{'idle':<7} {0:>6} {r.queues:>6} {'-':>9} {'-':>8} {'-':>8} {r.mem_used_mb:>11.0f} {r.rss_mb:>7.0f} "
            f"{r.fd_used:>7} {r.proc_fds:>8} {r.sockets:>7} {r.processes:>9}")


async def run(node: BenchNode, args: argparse.Namespace) -> None:
    idle = await asyncio.to_thread(read_node, node)
    print(f"node={node.name} fd_limit={idle.fd_total} partitions={Topology().partitions}", flush=True)
    print(HEADER)
    print(format_idle(idle), flush=True)
    for n in args.sizes:
        row = await measure(node, "after", n, args.after_cap)
        if row is not None:
            print(format_row(row), flush=True)
    measured: list[Row] = []
    for n in args.sizes:
        row = await measure(node, "before", n, args.before_cap)
        if row is None:
            break
        measured.append(row)
        print(format_row(row), flush=True)
    missing = [n for n in args.sizes if n > (measured[-1].agents if measured else 0)]
    if missing and len(measured) >= 2:
        for n in missing:
            print(format_row(extrapolate(measured, n)), flush=True)
    final = await asyncio.to_thread(read_node, node)
    print(format_idle(final).replace("idle   ", "end    ", 1) + "  (after the deletes)", flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.topology", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="1000,2000,5000,10000", help="agent counts, comma separated, ascending")
    parser.add_argument("--before-cap", type=float, default=420,
                        help="seconds one 'before' size may take to declare and attach (default 420)")
    parser.add_argument("--after-cap", type=float, default=600, help="the same for 'after' (default 600)")
    parser.add_argument("--nofile", type=int, default=65536,
                        help="the node's file descriptor limit, at most this process's hard limit "
                             "(default 65536, so 'before' does not fall over)")
    args = parser.parse_args(argv)
    args.sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    if not args.sizes or args.sizes[0] < 1:
        parser.error("sizes must be at least 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not rabbitmq_installed():
        raise SystemExit("rabbitmq-server is not installed: this benchmark runs a node of its own")
    node = BenchNode(args.nofile)
    node.start()
    try:
        asyncio.run(run(node, args))
    finally:
        node.remove()


if __name__ == "__main__":
    main()
