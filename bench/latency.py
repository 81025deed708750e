"""Open-loop latency of Switchyard: a rate sweep to saturation, a sustained run, and a shift change.

Run from the repo root: `python -m bench.latency [--mode sweep|sustain|shift|all] ...` (part of
`make bench`, with `LATENCY_BENCH_ARGS`). It prints figures and pass/fail lines against targets; it
asserts nothing about time.

Open loop, so a stall is not hidden (no coordinated omission): message i is due at
t0 + i / rate and is POSTed then, whatever the earlier POSTs are doing (one asyncio task per
message, many in flight). Its latency is the arrival of its frame on the agent's desk WebSocket
minus its *due* time, not its send time: a client that falls behind, a POST that waits for a
connection, intake, the broker, the router and the agents service are all inside it. One clock
(time.perf_counter, this process). Messages are spread over many conversations with the same
mix at every rate: every `--per-conversation`-th message opens a new conversation (a new
contact), the others are follow-ups to conversations opened earlier, each conversation getting
a message about every `--gap` seconds until it has `--per-conversation` of them; `--resolve-after`
seconds after its last message was due the bench resolves it (POST .../resolve, as an agent
closing finished work), so capacity stays free (an agent holds at most 100 conversations; about
rate x (gap + resolve-after / per-conversation) are open at a time).

- sweep: one stack, `--agents` agents online with a desk each; each rate for `--step-seconds`,
  doubling from `--start-rate` (or `--rates`). Per rate: offered, achieved (frames that arrived
  within the step's window / its length), p50/p95/p99/max, POST errors and frames missing after
  the drain. The sweep stops at the first saturated rate: achieved < 90% of offered, p99 over
  max(1 s, 10 x the lowest p99 of the rates so far), or over 1% of messages failed or missing.
  The saturation rate is the highest achieved rate seen.
- sustain: a fresh stack at `--sustain-rate` (default: half the saturation rate of a sweep run
  first, in the same run) for `--sustain-seconds`; p50/p95/p99/max overall and per
  `--window-seconds` window (by due time). Target: p99 <= 250 ms.
- shift: a fresh stack with AGENTS_PRESENCE_GRACE_SECONDS=`--shift-grace`. `--shift-agents`
  agents open their desks and are given `--shift-conversations` conversations of
  `--shift-messages` messages each (closed loop, before anything is measured), which they never
  answer. Then `--agents` other agents come online and new, unrelated traffic flows open-loop at
  `--shift-rate`. After `--shift-baseline-seconds`, the shift agents' desks close (the WebSocket
  is closed, as when the tab is), their grace runs out, presence sets them offline and the router
  routes their unanswered conversations again. Printed: the new traffic's latency in the baseline
  window, during the grace, during the reroute (from the grace's end until every held
  conversation was assigned again, seen as a conversation.assigned frame on an online desk) and
  after; the time the reroute took. Target: new traffic's p99 during the reroute <= 1 s.

Each mode runs on a stack of its own, in its own namespace and database, removed at the end
(queues and exchanges included); the broker is waited for, never restarted. Everything (services,
broker, database, this client) shares the machine's cores: compare figures measured in one run.
"""

import argparse
import asyncio
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp

from bench import stack
from bench.stack import (
    MAX_TEXT_CHARS,
    POST_TIMEOUT,
    DeskRecorder,
    Desks,
    Infra,
    auth,
    percentile,
    post_all,
    register_agents,
    text_of,
)
from deploy import local

AGENT_CAPACITY = 100  # the most an agent may hold (agents API limit)
ACHIEVED_FRACTION = 0.9  # below this share of the offered rate, a rate is saturated
P99_EXPLODE_FACTOR = 10.0  # ... or when p99 grows past this many times the lowest p99 of the rates before
P99_EXPLODE_FLOOR_MS = 1000.0  # ... and past this
LOSS_FRACTION = 0.01  # ... or when more than this share of messages failed or never arrived
SUSTAIN_P99_TARGET_MS = 250.0
SHIFT_P99_TARGET_MS = 1000.0
WARMUP_MESSAGES = 100
WARMUP_THREADS = 20
RESOLVE_CONCURRENCY = 8
SETTLE_SECONDS = 5.0  # the shift's new traffic, excluded from its baseline: its first conversations open


# -- pure pieces -------------------------------------------------------------------------------


def schedule(rate: float, count: int) -> list[float]:
    """When each of `count` messages is due, in seconds from the start: i / rate."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    return [i / rate for i in range(count)]


def message_count(rate: float, seconds: float) -> int:
    """How many messages a run of `seconds` at `rate` offers (at least one)."""
    return max(1, round(rate * seconds))


def lag_for(rate: float, gap: float, per_conversation: int) -> int:
    """How many conversations are opened between two messages of one conversation, so they are `gap` s apart."""
    return max(1, round(rate * gap / per_conversation))


def conversation_of(index: int, per_conversation: int, lag: int) -> int:
    """The conversation message `index` goes to.

    Message m x P (P = per_conversation) opens conversation m; message m x P + r (0 < r < P) is
    the r-th follow-up of conversation m - r x lag, so conversation c gets its messages at
    c x P + r x (lag x P + 1): evenly spaced, P in all. Early in a run, where that conversation
    does not exist, the follow-up goes to one that does (m - r x lag wrapped into 0..m)."""
    opened, r = divmod(index, per_conversation)
    if r == 0:
        return opened
    return (opened - r * lag) % (opened + 1)


def last_index_of(conversation: int, per_conversation: int, lag: int) -> int:
    """The index of the last message conversation `conversation` gets (past the start-up wrap)."""
    r = per_conversation - 1
    return (conversation + r * lag) * per_conversation + r


def expected_open(rate: float, gap: float, per_conversation: int, resolve_after: float) -> float:
    """About how many conversations are open at once in a steady run (each lives (P-1) x gap + resolve_after)."""
    lag = lag_for(rate, gap, per_conversation)
    return (per_conversation - 1) * lag + rate * resolve_after / per_conversation


def thread_name(prefix: str, conversation: int) -> str:
    return f"{prefix}-c{conversation}"


def doubling_rates(start: float, maximum: float) -> list[float]:
    """start, 2 x start, ... up to maximum (inclusive)."""
    if start <= 0 or maximum < start:
        raise ValueError("need 0 < start <= maximum")
    rates = []
    rate = start
    while rate <= maximum * (1 + 1e-9):
        rates.append(rate)
        rate *= 2
    return rates


@dataclass(frozen=True)
class Stats:
    """Latency figures of some messages, in ms (nan when there are none)."""

    count: int
    p50: float
    p95: float
    p99: float
    max: float

    @classmethod
    def of(cls, latencies_ms: Iterable[float]) -> "Stats":
        values = sorted(latencies_ms)
        return cls(len(values), percentile(values, 50), percentile(values, 95), percentile(values, 99),
                   values[-1] if values else float("nan"))


def achieved_rate(arrivals: Iterable[float], start: float, seconds: float) -> float:
    """Frames that arrived within [start, start + seconds], per second of it."""
    end = start + seconds
    return sum(1 for at in arrivals if start <= at <= end) / seconds


@dataclass
class Step:
    """One rate held for a while: what was offered and what came of it."""

    offered: float
    seconds: float
    scheduled: int
    errors: int
    missing: int
    achieved: float
    stats: Stats
    verdict: str = ""  # why the rate counts as saturated; empty when it does not


def saturation_reason(step: Step, reference_p99_ms: float) -> str:
    """Why this step is past saturation, or '' when it is not."""
    reasons = []
    if step.achieved < ACHIEVED_FRACTION * step.offered:
        reasons.append(f"achieved {step.achieved / step.offered:.0%} of offered")
    limit = max(P99_EXPLODE_FLOOR_MS, P99_EXPLODE_FACTOR * reference_p99_ms) if not math.isnan(reference_p99_ms) \
        else P99_EXPLODE_FLOOR_MS
    if math.isnan(step.stats.p99) or step.stats.p99 > limit:
        reasons.append(f"p99 over {limit:.0f} ms")
    lost = step.errors + step.missing
    if lost > LOSS_FRACTION * step.scheduled:
        reasons.append(f"{lost} of {step.scheduled} failed or missing")
    return "; ".join(reasons)


@dataclass(frozen=True)
class Saturation:
    rate: float  # the highest achieved rate seen
    reached: bool  # False: no rate tried was saturated, so the true figure is higher
    first_saturated_offered: float | None


def find_saturation(steps: list[Step]) -> Saturation:
    """The saturation rate of a sweep whose steps carry their verdicts (ascending rates)."""
    if not steps:
        raise ValueError("no steps")
    first = next((s for s in steps if s.verdict), None)
    considered = steps if first is None else steps[: steps.index(first) + 1]
    return Saturation(max(s.achieved for s in considered), first is not None,
                      first.offered if first is not None else None)


def sustain_rate_of(saturation: Saturation) -> float:
    """The default sustained rate: half the saturation rate."""
    return round(saturation.rate / 2, 1)


@dataclass(frozen=True)
class Sample:
    due: float  # seconds from the run's start
    latency_ms: float  # inf: never arrived


def windows(samples: list[Sample], width: float, total: float) -> list[tuple[float, float, list[Sample]]]:
    """Samples by due time into consecutive windows [k*width, (k+1)*width) up to `total` seconds."""
    count = max(1, math.ceil(total / width - 1e-9))
    buckets: list[list[Sample]] = [[] for _ in range(count)]
    for sample in samples:
        buckets[min(count - 1, max(0, int(sample.due // width)))].append(sample)
    return [(k * width, min(total, (k + 1) * width), bucket) for k, bucket in enumerate(buckets)]


def between(samples: list[Sample], start: float, end: float) -> list[Sample]:
    """Samples due in [start, end)."""
    return [s for s in samples if start <= s.due < end]


def stats_of(samples: list[Sample]) -> tuple[Stats, int]:
    """Stats of the samples that arrived, and how many never did."""
    arrived = [s.latency_ms for s in samples if math.isfinite(s.latency_ms)]
    return Stats.of(arrived), len(samples) - len(arrived)


def target_line(what: str, p99_ms: float, limit_ms: float) -> str:
    verdict = "PASS" if p99_ms <= limit_ms else "FAIL"  # nan compares False: FAIL
    return f"target {what}: p99 <= {limit_ms:.0f} ms: {verdict} (p99 {p99_ms:.1f} ms)"


# -- open-loop traffic -------------------------------------------------------------------------


@dataclass
class Sent:
    start: float  # perf_counter of message 0's due time
    due: dict[str, float] = field(default_factory=dict)  # message id -> its due time (perf_counter)
    count: int = 0
    errors: int = 0
    first_error: str = ""


class Traffic:
    """Posts message i at start + i / rate, whatever the answers to the earlier ones."""

    def __init__(self, session: aiohttp.ClientSession, intake_url: str, text: str, prefix: str, rate: float,
                 gap: float, per_conversation: int) -> None:
        self.session = session
        self.url = f"{intake_url}/v1/messages"
        self.text = text
        self.prefix = prefix
        self.rate = rate
        self.per_conversation = per_conversation
        self.lag = lag_for(rate, gap, per_conversation)
        self.next_index = 0  # the last message started
        self.timeout = aiohttp.ClientTimeout(total=POST_TIMEOUT)

    def thread_of(self, index: int) -> str:
        return thread_name(self.prefix, conversation_of(index, self.per_conversation, self.lag))

    def finished(self, delay: float) -> int:
        """How many conversations (0..n-1) got their last message at least `delay` seconds ago (due times)."""
        horizon = self.next_index - delay * self.rate
        count = 0
        step = 1 << 20
        while step:  # the largest n with last_index_of(n - 1) <= horizon (monotonic in n)
            if last_index_of(count + step - 1, self.per_conversation, self.lag) <= horizon:
                count += step
            else:
                step >>= 1
        return count

    async def run(self, count: int | None = None, stop: asyncio.Event | None = None) -> Sent:
        """Offer `count` messages (or until `stop` is set) at the rate; wait for every POST's answer."""
        rate = self.rate
        start = time.perf_counter() + 0.01
        sent = Sent(start)
        tasks: set[asyncio.Task] = set()
        indexes = range(count) if count is not None else itertools.count()
        for i in indexes:
            due = start + i / rate
            # Always yield, even when late: the POSTs already started must get the loop too.
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if stop is not None and stop.is_set():
                break
            self.next_index = i
            task = asyncio.create_task(self._post(i, due, sent))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            sent.count += 1
        await asyncio.gather(*tasks)
        return sent

    async def _post(self, index: int, due: float, sent: Sent) -> None:
        body = {"contact": {"id": self.thread_of(index)}, "text": self.text}
        try:
            async with self.session.post(self.url, json=body, headers=auth(), timeout=self.timeout) as response:
                if response.status == 202:
                    sent.due[(await response.json())["message_id"]] = due
                    return
                problem = f"HTTP {response.status} {(await response.text())[:200]}"
        except (aiohttp.ClientError, TimeoutError) as error:
            problem = repr(error)
        sent.errors += 1
        sent.first_error = sent.first_error or problem


def samples_of(sent: Sent, recorder: DeskRecorder) -> list[Sample]:
    """Every accepted message: when it was due (from the run's start) and its latency (inf: missing)."""
    samples = []
    for message_id, due in sent.due.items():
        arrived = recorder.arrived.get(message_id)
        latency = max(0.0, arrived - due) * 1000 if arrived is not None else math.inf
        samples.append(Sample(due - sent.start, latency))
    return samples


class Resolver:
    """Resolves each conversation a while after its last message was due, as an agent closes finished work."""

    def __init__(self, session: aiohttp.ClientSession, agents_url: str, recorder: DeskRecorder) -> None:
        self.session = session
        self.agents_url = agents_url
        self.recorder = recorder
        self.resolved: set[str] = set()
        self.errors = 0
        self._limit = asyncio.Semaphore(RESOLVE_CONCURRENCY)

    async def follow(self, traffic: Traffic, delay: float, stop: asyncio.Event) -> None:
        """Until stopped: resolve the conversations whose last message was due `delay` seconds ago."""
        pending: list[str] = []
        done = 0
        while not stop.is_set():
            finished = traffic.finished(delay)
            pending += [thread_name(traffic.prefix, c) for c in range(done, finished)]
            done = max(done, finished)
            known = [t for t in pending if t in self.recorder.by_thread]
            pending = [t for t in pending if t not in self.recorder.by_thread]  # not assigned yet: later
            await self.resolve([self.recorder.by_thread[t] for t in known])
            try:
                await asyncio.wait_for(stop.wait(), 0.25)
            except TimeoutError:
                pass

    async def resolve_prefix(self, prefix: str) -> None:
        """Resolve every conversation seen on a thread of this prefix and not yet resolved."""
        await self.resolve([c for c, a in list(self.recorder.assigned.items()) if a.thread_id.startswith(prefix)])

    async def resolve(self, conversation_ids: list[str]) -> None:
        await asyncio.gather(*(self._resolve_one(c) for c in conversation_ids if c not in self.resolved))

    async def _resolve_one(self, conversation_id: str) -> None:
        self.resolved.add(conversation_id)
        async with self._limit:
            try:
                async with self.session.post(f"{self.agents_url}/v1/conversations/{conversation_id}/resolve",
                                             headers=auth()) as response:
                    await response.read()
                    if response.status >= 300:
                        self.errors += 1
            except (aiohttp.ClientError, TimeoutError):
                self.errors += 1


# -- a floor: a started stack, its agents and their desks ----------------------------------------


@dataclass
class Config:
    mode: str
    rates: list[float] | None
    start_rate: float
    max_rate: float
    step_seconds: float
    sustain_seconds: float
    sustain_rate: float | None
    window_seconds: float
    agents: int
    per_conversation: int
    gap: float
    resolve_after: float
    size: int
    connections: int
    shift_agents: int
    shift_conversations: int
    shift_messages: int
    shift_rate: float
    shift_baseline_seconds: float
    shift_grace: float
    shift_timeout: float
    shift_tail_seconds: float
    json_path: Path | None

    def drain_timeout(self, seconds: float) -> float:
        """How long to wait, after a run's last POST, for the frames still under way."""
        return max(30.0, min(120.0, seconds))


@dataclass
class Floor:
    infra: Infra
    config: Config
    control: aiohttp.ClientSession  # desks, agents, resolves
    traffic: aiohttp.ClientSession  # the measured POSTs
    recorder: DeskRecorder
    desks: Desks

    @property
    def agents_url(self) -> str:
        return self.infra.stack.url("agents")

    @property
    def intake_url(self) -> str:
        return self.infra.stack.url("intake")


def online_agent_ids(count: int) -> list[str]:
    return [f"agent{i:02d}" for i in range(count)]


def on_stack(base: local.Infrastructure, log_dir: Path, env: dict[str, str], config: Config,
             body: Callable[[Floor], object]) -> object:
    """Start a fresh stack, run `body(floor)` in an event loop, tear the stack down (namespace removed)."""
    infra = stack.new_stack(base, log_dir, env)
    try:
        infra.stack.start_all()
        print(f"  stack up in namespace {infra.namespace}", flush=True)
        wall, cpu, load = time.perf_counter(), time.process_time(), os.getloadavg()[0]
        result = asyncio.run(with_floor(infra, config, body))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        # The client shares the cores with what it measures, and others may too: say how busy they were.
        print(f"  client CPU {cpu:.0f} s over {wall:.0f} s ({cpu / wall:.0%} of one core); machine load average "
              f"{load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end ({os.cpu_count()} cores)", flush=True)
        return result
    finally:
        stack.tear_down(infra)


async def with_floor(infra: Infra, config: Config, body: Callable[[Floor], object]) -> object:
    control = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    traffic = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=config.connections))
    floor = Floor(infra, config, control, traffic, DeskRecorder(), Desks())
    try:
        return await body(floor)
    finally:
        await floor.desks.close()
        await traffic.close()
        await control.close()


async def bring_agents_online(floor: Floor, agent_ids: list[str], capacity: int) -> None:
    await register_agents(floor.control, floor.agents_url, agent_ids, capacity)
    opened = await Desks.open(floor.control, floor.agents_url, agent_ids, floor.recorder)
    floor.desks.sockets.update(opened.sockets)
    floor.desks.readers.update(opened.readers)


async def warm_up(floor: Floor) -> None:
    await stack.warm_up(floor.traffic, floor.infra, floor.recorder, text_of(floor.config.size), 16,
                        WARMUP_MESSAGES, WARMUP_THREADS, 60.0)
    await Resolver(floor.control, floor.agents_url, floor.recorder).resolve_prefix("warm-")


def traffic_for(floor: Floor, rate: float, prefix: str) -> Traffic:
    config = floor.config
    return Traffic(floor.traffic, floor.intake_url, text_of(config.size), prefix, rate, config.gap,
                   config.per_conversation)


async def offer(floor: Floor, rate: float, seconds: float, prefix: str) -> tuple[Sent, list[Sample]]:
    """Offer `rate` for `seconds` with the background resolver; drain; resolve what is left."""
    config = floor.config
    traffic = traffic_for(floor, rate, prefix)
    resolver = Resolver(floor.control, floor.agents_url, floor.recorder)
    stop = asyncio.Event()
    following = asyncio.create_task(resolver.follow(traffic, config.resolve_after, stop))
    try:
        sent = await traffic.run(message_count(rate, seconds))
        await floor.recorder.wait_for(list(sent.due), config.drain_timeout(seconds))
    finally:
        stop.set()
        await following
    await resolver.resolve_prefix(prefix + "-")
    if resolver.errors:
        print(f"    {resolver.errors} resolves failed", file=sys.stderr, flush=True)
    if sent.first_error:
        print(f"    first POST error: {sent.first_error}", file=sys.stderr, flush=True)
    return sent, samples_of(sent, floor.recorder)


def step_of(rate: float, seconds: float, sent: Sent, samples: list[Sample], recorder: DeskRecorder) -> Step:
    stats, missing = stats_of(samples)
    arrivals = [recorder.arrived[m] for m in sent.due if m in recorder.arrived]
    return Step(rate, seconds, sent.count, sent.errors, missing, achieved_rate(arrivals, sent.start, seconds), stats)


# -- report lines ------------------------------------------------------------------------------

STEP_HEADER = (f"{'offered/s':>10} {'achieved/s':>10} {'sent':>7} {'errors':>6} {'missing':>7} "
               f"{'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'max ms':>9}  verdict")
WINDOW_HEADER = (f"{'window s':>11} {'messages':>8} {'missing':>7} "
                 f"{'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'max ms':>9}")


def step_line(step: Step) -> str:
    s = step.stats
    return (f"{step.offered:>10.1f} {step.achieved:>10.1f} {step.scheduled:>7} {step.errors:>6} {step.missing:>7} "
            f"{s.p50:>9.1f} {s.p95:>9.1f} {s.p99:>9.1f} {s.max:>9.1f}  {step.verdict or 'ok'}")


def window_line(label: str, stats: Stats, missing: int) -> str:
    return (f"{label:>11} {stats.count + missing:>8} {missing:>7} "
            f"{stats.p50:>9.1f} {stats.p95:>9.1f} {stats.p99:>9.1f} {stats.max:>9.1f}")


# -- sweep -------------------------------------------------------------------------------------


async def sweep(floor: Floor) -> list[Step]:
    config = floor.config
    await bring_agents_online(floor, online_agent_ids(config.agents), AGENT_CAPACITY)
    await warm_up(floor)
    rates = config.rates or doubling_rates(config.start_rate, config.max_rate)
    steps: list[Step] = []
    print(STEP_HEADER, flush=True)
    capacity = config.agents * AGENT_CAPACITY
    for rate in rates:
        expected = expected_open(rate, config.gap, config.per_conversation, config.resolve_after)
        if expected > 0.8 * capacity:
            print(f"  note: about {expected:.0f} conversations open at {rate:g}/s against a capacity of {capacity}: "
                  f"waiting for an agent adds to the latency (raise --agents)", flush=True)
        sent, samples = await offer(floor, rate, config.step_seconds, f"r{rate:g}")
        step = step_of(rate, config.step_seconds, sent, samples, floor.recorder)
        # p99 "explodes" against the best p99 seen so far (the first rate's can carry a cold start).
        reference = min((s.stats.p99 for s in steps + [step] if not math.isnan(s.stats.p99)), default=math.nan)
        step.verdict = saturation_reason(step, reference)
        steps.append(step)
        print(step_line(step), flush=True)
        if step.verdict:
            break
    return steps


# -- sustain -----------------------------------------------------------------------------------


@dataclass
class SustainResult:
    rate: float
    seconds: float
    sent: int
    errors: int
    overall: Stats
    missing: int
    windows: list[tuple[float, float, Stats, int]]


async def sustain(floor: Floor, rate: float) -> SustainResult:
    config = floor.config
    await bring_agents_online(floor, online_agent_ids(config.agents), AGENT_CAPACITY)
    await warm_up(floor)
    sent, samples = await offer(floor, rate, config.sustain_seconds, "sustain")
    overall, missing = stats_of(samples)
    rows = []
    for start, end, bucket in windows(samples, config.window_seconds, config.sustain_seconds):
        stats, bucket_missing = stats_of(bucket)
        rows.append((start, end, stats, bucket_missing))
    return SustainResult(rate, config.sustain_seconds, sent.count, sent.errors, overall, missing, rows)


# -- shift change ------------------------------------------------------------------------------


@dataclass
class ShiftResult:
    held: int  # conversations the closing desks held
    held_messages: int
    loaded_seconds: float
    rerouted: int  # of them, assigned again to an online agent
    offline: int  # shift agents offline at the end
    first_reassigned_s: float | None  # from the desks closing
    reroute_done_s: float | None  # from the desks closing; None: not within the timeout
    rows: dict[str, tuple[Stats, int]]  # window name -> (stats, missing)
    windows_s: dict[str, tuple[float, float]]  # window name -> (start, end) from the traffic's start
    sent: int
    errors: int


def shift_agent_ids(count: int) -> list[str]:
    return [f"shift{i:02d}" for i in range(count)]


async def load_shift(floor: Floor, agent_ids: list[str]) -> tuple[set[str], int, float]:
    """The shift agents' desks open and they get their conversations (unanswered); closed loop, unmeasured."""
    config = floor.config
    capacity = math.ceil(config.shift_conversations / config.shift_agents)
    await bring_agents_online(floor, agent_ids, capacity)
    contacts = [f"held-{k}" for k in range(config.shift_conversations)] * config.shift_messages
    started = time.perf_counter()
    run = await post_all(floor.traffic, floor.intake_url, contacts, text_of(config.size), 32)
    missing = await floor.recorder.wait_for(list(run.accepted), max(120.0, len(contacts) / 20))
    loaded = time.perf_counter() - started
    held = {c for c, a in floor.recorder.assigned.items() if a.thread_id.startswith("held-")}
    if run.errors or missing or len(held) != config.shift_conversations:
        print(f"  warning: loading the shift: {run.errors} POST errors, {len(missing)} frames missing, "
              f"{len(held)} of {config.shift_conversations} conversations assigned", file=sys.stderr, flush=True)
    # No room left on a shift desk: the new traffic goes to the other agents only.
    per_agent = {a: sum(1 for c in held if floor.recorder.assigned[c].agent_id == a) for a in agent_ids}
    for agent_id, count in per_agent.items():
        if count != capacity:
            body = {"name": agent_id.title(), "skills": {}, "max_conversations": count}
            async with floor.control.put(f"{floor.agents_url}/v1/agents/{agent_id}", json=body,
                                         headers=auth()) as response:
                response.raise_for_status()
    return held, len(run.accepted), loaded


async def shift(floor: Floor) -> ShiftResult:
    config = floor.config
    shift_ids = shift_agent_ids(config.shift_agents)
    online_ids = online_agent_ids(config.agents)
    print(f"  loading {config.shift_conversations} conversations x {config.shift_messages} messages "
          f"onto {config.shift_agents} shift desks ...", flush=True)
    held, held_messages, loaded = await load_shift(floor, shift_ids)
    print(f"  loaded in {loaded:.0f} s; {config.agents} other agents online; new traffic at "
          f"{config.shift_rate:g}/s ...", flush=True)
    await bring_agents_online(floor, online_ids, AGENT_CAPACITY)

    recorder = floor.recorder
    traffic = traffic_for(floor, config.shift_rate, "new")
    resolver = Resolver(floor.control, floor.agents_url, recorder)
    stop_traffic, stop_resolver = asyncio.Event(), asyncio.Event()
    sending = asyncio.create_task(traffic.run(stop=stop_traffic))
    following = asyncio.create_task(resolver.follow(traffic, config.resolve_after, stop_resolver))
    online = set(online_ids)

    def rerouted_at(after: float) -> list[float]:
        times = []
        for conversation_id in held:
            assignment = recorder.assigned.get(conversation_id)
            if assignment is not None and assignment.agent_id in online and assignment.at > after:
                times.append(assignment.at)
        return times

    try:
        await asyncio.sleep(SETTLE_SECONDS + config.shift_baseline_seconds)
        closed_at = time.perf_counter()
        print(f"  closing {len(shift_ids)} shift desks (grace {config.shift_grace:g} s) ...", flush=True)
        await floor.desks.close(shift_ids)
        deadline = closed_at + config.shift_timeout
        while len(rerouted_at(closed_at)) < len(held) and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
        times = rerouted_at(closed_at)
        done_at = max(times) if len(times) == len(held) else None
        await asyncio.sleep(config.shift_tail_seconds)
    finally:
        stop_traffic.set()
        sent = await sending
    await recorder.wait_for(list(sent.due), config.drain_timeout(config.shift_tail_seconds))
    stop_resolver.set()
    await following

    offline = 0
    for agent_id in shift_ids:
        async with floor.control.get(f"{floor.agents_url}/v1/agents/{agent_id}", headers=auth()) as response:
            offline += response.status == 200 and (await response.json()).get("status") == "offline"

    samples = samples_of(sent, recorder)

    def t(at: float) -> float:
        """A perf_counter time in seconds from the traffic's start."""
        return at - sent.start

    close_s, grace_end_s = t(closed_at), t(closed_at) + config.shift_grace
    end_s = t(done_at) if done_at is not None else t(deadline)
    last_s = max((s.due for s in samples), default=end_s)
    windows_s = {
        "baseline": (SETTLE_SECONDS, close_s),
        "grace": (close_s, grace_end_s),
        "reroute": (grace_end_s, max(grace_end_s, end_s)),
        "after": (max(grace_end_s, end_s), last_s + 1e-6),
    }
    rows = {name: stats_of(between(samples, a, b)) for name, (a, b) in windows_s.items()}
    return ShiftResult(
        held=len(held), held_messages=held_messages, loaded_seconds=loaded, rerouted=len(times), offline=offline,
        first_reassigned_s=(min(times) - closed_at) if times else None,
        reroute_done_s=(done_at - closed_at) if done_at is not None else None,
        rows=rows, windows_s=windows_s, sent=sent.count, errors=sent.errors,
    )


# -- main --------------------------------------------------------------------------------------


def parse_rates(text: str) -> list[float]:
    rates = [float(part) for part in text.split(",") if part.strip()]
    if not rates or any(r <= 0 for r in rates):
        raise argparse.ArgumentTypeError("rates must be positive numbers, comma-separated")
    return sorted(rates)


def parse_args(argv: list[str] | None = None) -> Config:
    parser = argparse.ArgumentParser(prog="python -m bench.latency", description=__doc__.split("\n")[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--mode", choices=("sweep", "sustain", "shift", "all"), default="all")
    parser.add_argument("--rates", type=parse_rates, default=None,
                        help="sweep these rates (msg/s, comma-separated) instead of doubling")
    parser.add_argument("--start-rate", type=float, default=10.0, help="the sweep's first rate, doubled each step")
    parser.add_argument("--max-rate", type=float, default=1280.0, help="the sweep's last rate if none saturates")
    parser.add_argument("--step-seconds", type=float, default=20.0, help="how long each sweep rate is held")
    parser.add_argument("--sustain-seconds", type=float, default=300.0)
    parser.add_argument("--sustain-rate", type=float, default=None,
                        help="msg/s; default: half the saturation rate of a sweep run first")
    parser.add_argument("--window-seconds", type=float, default=60.0, help="the sustained run's report windows")
    parser.add_argument("--agents", type=int, default=10, help="online agents (100 conversations each at most)")
    parser.add_argument("--per-conversation", type=int, default=10,
                        help="messages per conversation (1 in this many opens a new one)")
    parser.add_argument("--gap", type=float, default=1.0, help="seconds between two messages of a conversation")
    parser.add_argument("--resolve-after", type=float, default=2.0,
                        help="a conversation is resolved this long after its last message was due")
    parser.add_argument("--size", type=int, default=200, help="bytes of text per message")
    parser.add_argument("--connections", type=int, default=256, help="the client's HTTP connections to intake")
    parser.add_argument("--shift-agents", type=int, default=20, help="agents whose desks close")
    parser.add_argument("--shift-conversations", type=int, default=200, help="unanswered conversations they hold")
    parser.add_argument("--shift-messages", type=int, default=70, help="messages in each of them")
    parser.add_argument("--shift-rate", type=float, default=30.0, help="new traffic during the shift change, msg/s")
    parser.add_argument("--shift-baseline-seconds", type=float, default=30.0)
    parser.add_argument("--shift-grace", type=float, default=2.0, help="AGENTS_PRESENCE_GRACE_SECONDS of its stack")
    parser.add_argument("--shift-timeout", type=float, default=300.0, help="longest wait for the reroute")
    parser.add_argument("--shift-tail-seconds", type=float, default=10.0, help="new traffic kept after the reroute")
    parser.add_argument("--json", type=Path, default=None, dest="json_path", help="also write the figures here")
    args = parser.parse_args(argv)
    if not 1 <= args.size <= MAX_TEXT_CHARS:
        parser.error(f"--size must be between 1 and {MAX_TEXT_CHARS} (intake's limit)")
    positive = ("start_rate", "max_rate", "step_seconds", "sustain_seconds", "window_seconds", "agents",
                "per_conversation", "gap", "resolve_after", "connections", "shift_agents", "shift_conversations", "shift_messages",
                "shift_rate", "shift_timeout")
    for name in positive:
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    if args.sustain_rate is not None and args.sustain_rate <= 0:
        parser.error("--sustain-rate must be positive")
    if args.max_rate < args.start_rate:
        parser.error("--max-rate must be at least --start-rate")
    if math.ceil(args.shift_conversations / args.shift_agents) > AGENT_CAPACITY:
        parser.error(f"--shift-conversations / --shift-agents must be at most {AGENT_CAPACITY}")
    return Config(**vars(args))


def code_version() -> str:
    """The commit under test, and whether the work tree differs from it."""
    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], check=False, capture_output=True, text=True, timeout=10, cwd=local.ROOT).stdout
        except (OSError, subprocess.TimeoutExpired):
            return ""
    commit = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    changed = len([line for line in git("status", "--short").splitlines() if line.strip()])
    return f"{commit}" + (f" + {changed} changed files" if changed else "")


def run(config: Config, base: local.Infrastructure, log_dir: Path) -> dict:
    results: dict = {"code": code_version(), "config": {k: (str(v) if isinstance(v, Path) else v)
                                                         for k, v in asdict(config).items()}}
    print(f"Switchyard open-loop latency benchmark (code {results['code']})", flush=True)
    saturation = None
    if config.mode in ("sweep", "all") or (config.mode == "sustain" and config.sustain_rate is None):
        print(f"\nsweep: {config.step_seconds:g} s per rate, {config.agents} agents", flush=True)
        steps = on_stack(base, log_dir / "sweep", {}, config, sweep)
        saturation = find_saturation(steps)
        results["sweep"] = [asdict(s) for s in steps]
        results["saturation"] = asdict(saturation)
        print(saturation_line(saturation), flush=True)
    if config.mode in ("sustain", "all"):
        rate = config.sustain_rate or sustain_rate_of(saturation)
        print(f"\nsustain: {rate:g} msg/s for {config.sustain_seconds:g} s, {config.agents} agents", flush=True)
        result = on_stack(base, log_dir / "sustain", {}, config, lambda floor: sustain(floor, rate))
        results["sustain"] = asdict(result)
        print_sustain(result)
    if config.mode in ("shift", "all"):
        print(f"\nshift change: {config.shift_agents} desks closing with {config.shift_conversations} conversations; "
              f"new traffic {config.shift_rate:g} msg/s to {config.agents} agents", flush=True)
        env = {"AGENTS_PRESENCE_GRACE_SECONDS": str(config.shift_grace)}
        result = on_stack(base, log_dir / "shift", env, config, shift)
        results["shift"] = asdict(result)
        print_shift(result, config)
    return results


def saturation_line(saturation: Saturation) -> str:
    if saturation.reached:
        return (f"saturation_rate={saturation.rate:.1f}/s (highest achieved; first saturated at offered "
                f"{saturation.first_saturated_offered:g}/s)")
    return f"saturation_rate>={saturation.rate:.1f}/s (no rate tried saturated; raise --max-rate)"


def print_sustain(result: SustainResult) -> None:
    print(WINDOW_HEADER)
    for start, end, stats, missing in result.windows:
        print(window_line(f"{start:.0f}-{end:.0f}", stats, missing))
    print(window_line("overall", result.overall, result.missing))
    print(f"sustain_rate={result.rate:g}/s seconds={result.seconds:g} sent={result.sent} errors={result.errors} "
          f"missing={result.missing} p50_ms={result.overall.p50:.1f} p95_ms={result.overall.p95:.1f} "
          f"p99_ms={result.overall.p99:.1f} max_ms={result.overall.max:.1f}")
    print(target_line(f"sustained at {result.rate:g}/s", result.overall.p99, SUSTAIN_P99_TARGET_MS), flush=True)


def print_shift(result: ShiftResult, config: Config) -> None:
    print(f"  held: {result.held} conversations, {result.held_messages} messages (loaded in "
          f"{result.loaded_seconds:.0f} s); shift agents offline at the end: {result.offline} of {config.shift_agents}")
    print(WINDOW_HEADER.replace("window s", "window"))
    for name, (stats, missing) in result.rows.items():
        a, b = result.windows_s[name]
        print(window_line(name, stats, missing) + f"   ({a:.1f}-{b:.1f} s)")
    first = f"{result.first_reassigned_s:.2f}" if result.first_reassigned_s is not None else "none"
    if result.reroute_done_s is not None:
        done = f"{result.reroute_done_s:.2f}"
        after_grace = f"{result.reroute_done_s - config.shift_grace:.2f}"
    else:
        done = after_grace = f"not within {config.shift_timeout:g} s ({result.rerouted} of {result.held} rerouted)"
    reroute, _ = result.rows["reroute"]
    baseline, _ = result.rows["baseline"]
    print(f"reroute: first conversation assigned again {first} s after the desks closed; all {result.held} in "
          f"{done} s from the desks closing, {after_grace} s from the grace's end")
    print(f"shift_p99_ms baseline={baseline.p99:.1f} reroute={reroute.p99:.1f} "
          f"(reroute window: {reroute.count} messages) sent={result.sent} errors={result.errors}")
    print(target_line("new traffic during the shift change", reroute.p99, SHIFT_P99_TARGET_MS), flush=True)


def main(argv: list[str] | None = None) -> None:
    config = parse_args(argv)
    log_dir = Path(tempfile.mkdtemp(prefix="switchyard-bench-latency-"))
    base = stack.bring_up_base(log_dir)
    try:
        results = run(config, base, log_dir)
    finally:
        stack.stop_base(base, log_dir)
    if base.embedded_mongo is not None:
        print("note: MongoDB here is the embedded SecantusDB (a Python server), much slower than mongod.")
    print("note: all processes (services, broker, database, this client) share the machine's cores.")
    problems = stack.log_problems(log_dir) if log_dir.exists() else []
    for line in problems:
        print(f"  stack log: {line}")
    if config.json_path is not None:
        config.json_path.write_text(json.dumps(results, indent=2, default=str))
        print(f"figures written to {config.json_path}")


if __name__ == "__main__":
    main()
