"""End to end with one replica of each service, then two, in one run: CPU per message per process.

The end-to-end benchmark against one replica of each service and against two, with the CPU each
service process spends per message.

Run from the repo root: `python -m bench.replicas [--messages N] [--concurrency C] [--size BYTES]`.
It prints figures; it asserts nothing about time.

Two layouts, one after the other, each on a fresh stack (a namespace and database of its own) on
the same broker and database, with the same N, concurrency and size:

- one: one replica each of intake, router and agents (and reporting), as `bench.e2e` runs them;
- two: two of each of intake, router and agents (the second started with `Stack.start_replica`
  after the first, so on RabbitMQ 3.x the first is the active consumer of every partition queue);
  messages are POSTed to the two intakes in turn; the desks are on the first agents replica.
  Reporting stays one replica (it must: docs/architecture.md).

The measurement is `bench.e2e`'s: 10 agents with a desk WebSocket each, a warm-up, then N messages
over 200 threads, latency from the 202 to the desk frame. Around the timed part (first POST to
last frame, then SETTLE_SECONDS for work the messages left behind, such as reporting's events),
every service process's CPU time is read from /proc/<pid>/stat (user + system, its live
descendants' and its reaped children's included). Divided by the messages delivered, that is the
CPU each replica and each service spends per message. Before the timed part the same is read over
IDLE_SECONDS with no traffic, to show what the processes spend doing nothing (timers, ticks).

On a machine with few cores the total cannot grow with replicas: every process shares them. What
the run shows is what a message costs each service, from which the cores (and so the replicas) a
given load needs can be estimated. The embedded MongoDB processes and this client are shown for
the whole picture, and a local broker's (found by the port it listens on) though it is shared: its
figure includes whatever else used it in the window, so it is an upper bound.
"""

import asyncio
import os
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench import stack
from bench.e2e import (
    AGENT_CAPACITY,
    AGENTS,
    THREADS,
    WARMUP_MESSAGES,
    WARMUP_THREADS,
    WARMUP_TIMEOUT,
    Config,
    E2EResult,
    summarize_e2e,
)
from bench.e2e import parse_args as parse_e2e_args
from bench.stack import DeskRecorder, Desks, percentile, post_all, text_of
from deploy import local
from shared.amqp_hosts import broker_urls

REPLICATED = ("intake", "router", "agents")  # what layout "two" doubles
IDLE_SECONDS = 10.0
SETTLE_SECONDS = 3.0
# Longer than bench.e2e's: on a loaded shared machine a backlog of a few thousand can take minutes.
DRAIN_TIMEOUT = 300.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


# -- CPU time from /proc -----------------------------------------------------------------------


def stat_fields(pid: int) -> list[str] | None:
    """/proc/<pid>/stat from field 3 (state) on; None when the process is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2:].split()  # the name in parentheses may hold spaces


def children_of() -> dict[int, list[int]]:
    """Every live process's children, from the parent pid in each /proc/<pid>/stat."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := stat_fields(int(entry.name))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    return children


def cpu_seconds(pid: int, children: dict[int, list[int]]) -> float:
    """User + system time of a process, its reaped children and its live descendants."""
    fields = stat_fields(pid)
    if fields is None:
        return 0.0
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    own = (utime + stime + cutime + cstime) / CLOCK_TICKS
    return own + sum(cpu_seconds(child, children) for child in children.get(pid, []))


def sample_cpu(pids: dict[str, int]) -> dict[str, float]:
    children = children_of()
    return {name: cpu_seconds(pid, children) for name, pid in pids.items()}


@dataclass
class CpuWindow:
    """CPU seconds each process spent between two samples, and the wall time between them."""

    seconds: dict[str, float]
    wall: float

    @classmethod
    def between(cls, before: tuple[float, dict[str, float]], after: tuple[float, dict[str, float]]) -> "CpuWindow":
        return cls({name: after[1][name] - before[1][name] for name in before[1]}, after[0] - before[0])


def snapshot(pids: dict[str, int]) -> tuple[float, dict[str, float]]:
    return time.perf_counter(), sample_cpu(pids)


# -- one layout --------------------------------------------------------------------------------


@dataclass
class LayoutResult:
    layout: str
    e2e: E2EResult
    timed: CpuWindow
    idle: CpuWindow
    service_of: dict[str, str] = field(default_factory=dict)  # process name -> service ("intake2" -> "intake")


def agent_ids() -> list[str]:
    return [f"agent{i:02d}" for i in range(AGENTS)]


def listening_pid(port: int) -> int | None:
    """The process listening on this TCP port on this machine (readable /proc needed), else None."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{fields[9]}]")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if any(os.readlink(fd) in inodes for fd in (entry / "fd").iterdir()):
                return int(entry.name)
        except OSError:
            continue
    return None


def broker_pid(amqp_url: str) -> int | None:
    """The local broker's process (the first node of AMQP_URL), to read its CPU; None if not local."""
    host, port = local.amqp_host_port(broker_urls(amqp_url)[0])
    return listening_pid(port) if host in local.LOCAL_HOSTS else None


def process_pids(infra: stack.Infra) -> dict[str, int]:
    """The stack's service processes, the embedded MongoDB ones started here, this client, and a
    local broker (shared: its CPU includes whatever else uses it)."""
    pids = {name: process.popen.pid for name, process in infra.stack.processes.items()}
    for name, process in (("mongo", infra.base.embedded_mongo), ("mongo-reporting", infra.base.embedded_reporting_mongo)):
        if process is not None:
            pids[name] = process.popen.pid
    pids["bench client"] = os.getpid()
    if (pid := broker_pid(infra.base.amqp_url)) is not None:
        pids["broker"] = pid
    return pids


def intake_urls(infra: stack.Infra, replicas: int) -> list[str]:
    return [infra.stack.url("intake" if i == 0 else f"intake{i + 1}") for i in range(replicas)]


async def measure(infra: stack.Infra, config: Config, replicas: int) -> tuple[E2EResult, CpuWindow, CpuWindow]:
    """bench.e2e's measurement, posting over every intake, with CPU samples around it."""
    recorder = DeskRecorder()
    urls = intake_urls(infra, replicas)
    pids = process_pids(infra)
    connector = aiohttp.TCPConnector(limit=config.concurrency + AGENTS + 4)
    async with aiohttp.ClientSession(connector=connector) as session:
        agents_url = infra.stack.url("agents")  # the first replica: the active consumer on RabbitMQ 3.x
        await stack.register_agents(session, agents_url, agent_ids(), AGENT_CAPACITY)
        desks = await Desks.open(session, agents_url, agent_ids(), recorder)
        try:
            await stack.warm_up(session, infra, recorder, text_of(config.size), config.concurrency,
                                WARMUP_MESSAGES, WARMUP_THREADS, WARMUP_TIMEOUT, intake_urls=urls)
            idle_start = snapshot(pids)
            await asyncio.sleep(IDLE_SECONDS)
            idle = CpuWindow.between(idle_start, snapshot(pids))
            contacts = [f"contact-{i % THREADS}" for i in range(config.messages)]
            timed_start = snapshot(pids)
            run = await post_all(session, urls, contacts, text_of(config.size), config.concurrency)
            missing = await recorder.wait_for(list(run.accepted), max(config.drain_timeout, DRAIN_TIMEOUT))
            await asyncio.sleep(SETTLE_SECONDS)
            timed = CpuWindow.between(timed_start, snapshot(pids))
        finally:
            await desks.close()
    return summarize_e2e(config, run, recorder, missing), timed, idle


def start_layout(infra: stack.Infra, replicas: int) -> dict[str, str]:
    """Start the stack, then the extra replicas; each process name -> its service."""
    infra.stack.start_all()
    service_of = {name: name for name in infra.stack.processes}
    for i in range(2, replicas + 1):
        for service in REPLICATED:
            infra.stack.start_replica(service, f"{service}{i}")
            service_of[f"{service}{i}"] = service
    service_of.update({"mongo": "mongo", "mongo-reporting": "mongo", "bench client": "bench client",
                       "broker": "broker (shared)"})
    return service_of


def run_layout(base: local.Infrastructure, log_dir: Path, config: Config, replicas: int) -> LayoutResult:
    layout = "one" if replicas == 1 else "two"
    infra = stack.new_stack(base, log_dir / layout)
    try:
        service_of = start_layout(infra, replicas)
        print(f"layout {layout}: stack up in namespace {infra.namespace}; {config.messages} messages ...", flush=True)
        e2e, timed, idle = asyncio.run(measure(infra, config, replicas))
    finally:
        stack.tear_down(infra)
    return LayoutResult(layout, e2e, timed, idle, service_of)


# -- report ------------------------------------------------------------------------------------


SERVICE_ORDER = ("intake", "router", "agents", "reporting", "mongo", "bench client", "broker (shared)")
SERVICES = REPLICATED + ("reporting",)


@dataclass(frozen=True)
class ProcessCpu:
    service: str
    process: str
    cpu_s: float  # in the timed window
    idle_s: float  # what it spends with no traffic, over as long as the timed window

    @property
    def net_s(self) -> float:
        """What the messages cost it: the timed window's CPU less its idle rate over as long."""
        return max(0.0, self.cpu_s - self.idle_s)


def delivered(result: LayoutResult) -> int:
    return result.e2e.accepted - result.e2e.missing


def per_message(cpu_s: float, result: LayoutResult) -> float:
    """CPU milliseconds per message delivered."""
    return cpu_s * 1000 / delivered(result) if delivered(result) else float("nan")


def process_cpu(result: LayoutResult) -> list[ProcessCpu]:
    """Each process's CPU in the timed window and at its idle rate, services in order."""
    timed, idle = result.timed, result.idle
    rows = []
    for service in SERVICE_ORDER:
        for name, svc in result.service_of.items():
            if svc == service and name in timed.seconds:
                idle_s = idle.seconds[name] / idle.wall * timed.wall
                rows.append(ProcessCpu(service, name, timed.seconds[name], idle_s))
    return rows


def service_cpu(result: LayoutResult) -> dict[str, tuple[float, float]]:
    """Per service, summed over its replicas: (CPU s in the timed window, net CPU s)."""
    totals: dict[str, tuple[float, float]] = {}
    for row in process_cpu(result):
        cpu, net = totals.get(row.service, (0.0, 0.0))
        totals[row.service] = (cpu + row.cpu_s, net + row.net_s)
    return totals


def print_layout(result: LayoutResult) -> None:
    e2e, lat = result.e2e, result.e2e.latencies_ms
    wall = result.timed.wall
    print(f"\nlayout {result.layout}: {e2e.per_s:.1f} msg/s, p50 {percentile(lat, 50):.0f} ms, "
          f"p95 {percentile(lat, 95):.0f} ms, mean {statistics.fmean(lat) if lat else float('nan'):.0f} ms, "
          f"POST errors {e2e.post_errors}, missing {e2e.missing}, timed window {wall:.1f} s")
    print(f"  {'process':<16}{'CPU s':>9}{'ms/msg':>9}{'net ms/msg':>12}{'cores':>8}{'idle cores':>12}")
    for row in process_cpu(result):
        print(f"  {row.process:<16}{row.cpu_s:>9.2f}{per_message(row.cpu_s, result):>9.2f}"
              f"{per_message(row.net_s, result):>12.2f}{row.cpu_s / wall:>8.2f}{row.idle_s / wall:>12.3f}")


def comparison_cells(result: LayoutResult, services: tuple[str, ...]) -> tuple[float, float]:
    """(ms/msg, net ms/msg) of these services together."""
    totals = service_cpu(result)
    cpu = sum(totals.get(s, (0.0, 0.0))[0] for s in services)
    net = sum(totals.get(s, (0.0, 0.0))[1] for s in services)
    return per_message(cpu, result), per_message(net, result)


def print_comparison(results: list[LayoutResult]) -> None:
    """Per service (summed over its replicas), CPU ms per message in each layout, gross and net."""
    header = "".join(f"{r.layout + ' ms/msg':>14}{r.layout + ' net':>10}" for r in results)
    print(f"\nCPU ms per message, per service (sum over its replicas)\n  {'service':<16}{header}")
    groups = [(s, (s,)) for s in SERVICE_ORDER] + [("services", SERVICES), ("all but broker", SERVICE_ORDER[:-1])]
    for label, services in groups:
        cells = "".join(f"{gross:>14.2f}{net:>10.2f}" for gross, net in
                        (comparison_cells(r, services) for r in results))
        print(f"  {label:<16}{cells}")
    print("\nmarkdown (net ms/msg per service, summed over its replicas; gross in parentheses):")
    named = SERVICE_ORDER[:5] + SERVICE_ORDER[-1:]
    print("| layout | msg/s | p50 ms | p95 ms | " + " | ".join(named) + " | services |")
    print("| --- " * (len(named) + 5) + "|")
    for r in results:
        lat = r.e2e.latencies_ms
        cells = [comparison_cells(r, (s,)) for s in named] + [comparison_cells(r, SERVICES)]
        print(f"| {r.layout} | {r.e2e.per_s:.1f} | {percentile(lat, 50):.0f} | {percentile(lat, 95):.0f} | "
              + " | ".join(f"{net:.2f} ({gross:.2f})" for gross, net in cells) + " |")


def print_report(config: Config, results: list[LayoutResult], problems: list[str]) -> None:
    print(f"\nSwitchyard replicas benchmark: {config.messages} messages, concurrency {config.concurrency}, "
          f"{config.size} bytes of text, {os.cpu_count()} cores")
    for result in results:
        print_layout(result)
    print_comparison(results)
    print(f"\nnotes: ms/msg = CPU s in the timed window (first POST .. last frame + {SETTLE_SECONDS:.0f} s) / "
          "messages delivered;")
    print(f"       net = the same less the process's idle rate (measured over {IDLE_SECONDS:.0f} s without "
          "traffic just before) over the window;")
    print("       cores = CPU s / window. The broker is shared: its CPU includes whatever else used it then.")
    if problems:
        print("  the stacks logged warnings or errors:")
        for line in problems:
            print(f"    {line}")


# -- main --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    config = parse_e2e_args(argv, prog="python -m bench.replicas", doc=__doc__)  # bench.e2e's options
    log_dir = Path(tempfile.mkdtemp(prefix="switchyard-bench-replicas-"))
    base = stack.bring_up_base(log_dir)
    results = []
    try:
        for replicas in (1, 2):
            results.append(run_layout(base, log_dir, config, replicas))
        problems = stack.log_problems(log_dir)
    finally:
        stack.stop_base(base, log_dir)
    print_report(config, results, problems)


if __name__ == "__main__":
    main()
