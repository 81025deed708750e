"""Decisions per second of the pure routing core (RoutingCore) as the floor grows.

Run from the repo root: `python -m bench.core [--sizes 100,1000,10000,100000] [--decisions K] [--seed S]`
(part of `make bench`). It prints figures; it asserts nothing about time.

The floor, the same at every size apart from the number of agents:

- 100 queues, each requiring 1-2 of 40 skills at a minimum proficiency of 1-3, strategies in
  turn (least_occupied, longest_idle, round_robin, most_skilled), every 5th queue with two
  bullseye steps (10 s: the same skills at 1; 30 s: one skill only). All push. Messages name
  their queue with the API hint metadata={"queue": name}, as an API caller does.
- N agents, all online, 3 chats each, 2-4 skills at proficiency 1-5. Each agent is built around
  a home queue whose criteria it meets (agent i's home is queue i mod 100, so every queue has
  qualified agents once N >= 100), plus random extra skills.
- Prefill: conversations are opened in each agent's home queue until every agent is full
  (3N assigned, by the real rules), then 1,000 more in random queues, which wait.

Measured: the steady state of a busy floor. Inputs alternate: resolve a random assigned
conversation (its agent takes the head of a waiting list it qualifies for), then open one in a
random queue (it waits, or goes to an agent with room). One input = one decision. The simulated
clock moves 10 ms per input and `tick` runs every simulated second, as the shell's ticker does
(bullseye steps fire); its time is counted, its work is not counted as decisions. K inputs are
timed with time.perf_counter, in 5 rounds, after a warm-up of 1,000; messages are built before
the timer starts. The same K and seed are used at every size.

Columns: waiting = conversations waiting after the fill, wait_end = after the runs (the floor
stays in its steady state); decisions/s = K / the K inputs' time, with the cyclic collector's
view of the setup frozen (gc.freeze); rounds = the slowest and fastest round (other processes on
the machine show here); unfrozen/s = K more inputs without the freeze; online_s = every agent's
snapshot through on_agent, fill_s = the fill (setup, not measured).

ratio_largest_to_smallest = decisions/s at the largest size / at the smallest: near 1 when a
decision costs the same however many agents there are (sorted indexes, no scans).
"""

import argparse
import gc
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from services.router.config import ExpansionStep, QueueConfig, RoutingConfig
from services.router.core import RoutingCore
from services.router.model import Outcome
from shared.models import AgentSnapshot, Contact, ConversationAssigned, ConversationResolved, InboundMessage

WORKSPACE = "default"
SKILLS = 40
CAPACITY = 3  # chats per agent
STRATEGIES = ("least_occupied", "longest_idle", "round_robin", "most_skilled")
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
STEP = timedelta(milliseconds=10)  # simulated time between two inputs
TICK = timedelta(seconds=1)  # the shell's ticker period
SETTLE = timedelta(seconds=60)  # after the fill: past every bullseye step, so its timers are spent
WARMUP = 1000  # inputs before the timer starts
ROUNDS = 5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.core", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="100,1000,10000,100000", help="agent counts, comma separated")
    parser.add_argument("--decisions", type=int, default=20_000, help="timed inputs per size (default 20000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed, the same at every size (default 1)")
    parser.add_argument("--queues", type=int, default=100, help="queues (default 100)")
    parser.add_argument("--waiting", type=int, default=1000, help="conversations waiting after the fill (default 1000)")
    args = parser.parse_args(argv)
    args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    if not args.sizes or min(args.sizes) < 1 or args.decisions < 2 or args.queues < 1 or args.waiting < 0:
        parser.error("sizes and queues must be at least 1, decisions at least 2, waiting at least 0")
    return args


def skill(index: int) -> str:
    return f"s{index:02d}"


def build_config(queues: int, rng: random.Random) -> RoutingConfig:
    """Queues needing 1-2 skills each, strategies in turn, bullseye steps on every 5th."""
    configs = []
    for i in range(queues):
        needed = rng.sample(range(SKILLS), rng.randint(1, 2))
        skills = {skill(s): rng.randint(1, 3) for s in needed}
        expand = []
        if i % 5 == 0:
            first = skill(needed[0])
            wider = {first: 1} if len(needed) > 1 else {skill((needed[0] + 1) % SKILLS): 3}
            expand = [ExpansionStep(after_seconds=10, skills={s: 1 for s in skills}),
                      ExpansionStep(after_seconds=30, skills=wider)]
        configs.append(QueueConfig(name=f"q{i:03d}", skills=skills, strategy=STRATEGIES[i % len(STRATEGIES)],
                                   expand=expand))
    return RoutingConfig(default_queue=configs[0].name, queues=configs)


def build_agents(count: int, config: RoutingConfig, rng: random.Random) -> list[tuple[AgentSnapshot, str]]:
    """Each agent with its home queue: it meets the home queue's criteria, plus random extra skills."""
    agents = []
    for i in range(count):
        home = config.queues[i % len(config.queues)]
        skills = {name: rng.randint(level, 5) for name, level in home.skills.items()}
        total = max(len(skills), rng.randint(2, 4))
        while len(skills) < total:
            skills.setdefault(skill(rng.randrange(SKILLS)), rng.randint(1, 5))
        snapshot = AgentSnapshot(workspace_id=WORKSPACE, agent_id=f"a{i:06d}", version=1, skills=skills,
                                 max_conversations=CAPACITY, status="online")
        agents.append((snapshot, home.name))
    return agents


def message(serial: int, queue: str) -> InboundMessage:
    """A new thread's first message, routed by the API hint; fresh threads, so no last-agent pin."""
    thread = f"t{serial}"
    return InboundMessage(message_id=f"m{serial}", workspace_id=WORKSPACE, channel="api", thread_id=thread,
                          contact=Contact(id=thread), text="hello", metadata={"queue": queue}, received_at=T0)


@dataclass
class Floor:
    """The core under test, its clock, and the assigned conversations (to pick one to resolve)."""

    core: RoutingCore
    queues: list[str]
    now: datetime = T0
    next_tick: datetime = T0 + TICK
    serial: int = 0
    assigned: list[str] = field(default_factory=list)
    position: dict[str, int] = field(default_factory=dict)

    def track(self, outcome: Outcome) -> None:
        for _, delivery in outcome.deliveries:
            if isinstance(delivery, ConversationAssigned):
                conversation_id = delivery.conversation.conversation_id
                if conversation_id not in self.position:
                    self.position[conversation_id] = len(self.assigned)
                    self.assigned.append(conversation_id)

    def untrack(self, index: int) -> str:
        """Remove the index-th assigned conversation in O(1) (swap with the last)."""
        conversation_id, last = self.assigned[index], self.assigned.pop()
        del self.position[conversation_id]
        if last != conversation_id:
            self.assigned[index] = last
            self.position[last] = index
        return conversation_id

    def next_message(self, queue: str) -> InboundMessage:
        self.serial += 1
        return message(self.serial, queue)

    @property
    def waiting(self) -> int:
        return len(self.core.conversations) - len(self.assigned)


def build_floor(agents: int, queues: int, waiting: int, seed: int) -> tuple[Floor, random.Random]:
    """Agents online, every agent full by the real rules, then `waiting` conversations waiting."""
    floor, rng, roster = online_floor(agents, queues, seed)
    fill(floor, rng, roster, waiting)
    return floor, rng


def online_floor(agents: int, queues: int, seed: int) -> tuple[Floor, random.Random, list[tuple[AgentSnapshot, str]]]:
    """A core with every agent online (their snapshots, version 1, through on_agent)."""
    rng = random.Random(seed)
    config = build_config(queues, rng)
    floor = Floor(RoutingCore(config), [q.name for q in config.queues])
    roster = build_agents(agents, config, rng)
    for snapshot, _ in roster:
        floor.track(floor.core.on_agent(snapshot, T0))
    return floor, rng, roster


def fill(floor: Floor, rng: random.Random, roster: list[tuple[AgentSnapshot, str]], waiting: int) -> None:
    """Open conversations until every agent is full, then `waiting` more, which wait."""
    core = floor.core
    for snapshot, home in roster:
        agent = core.agents[(WORKSPACE, snapshot.agent_id)]
        while agent.total < agent.max_conversations:  # the home queue's best agent takes it: someone with room
            floor.track(core.on_message(floor.next_message(home), T0))
    floor.now = floor.next_tick = T0 + SETTLE
    floor.track(core.tick(floor.now))  # the fill's bullseye timers, all spent: not in the measured loop
    for _ in range(waiting):
        floor.track(core.on_message(floor.next_message(rng.choice(floor.queues)), floor.now))
        floor.now += STEP
    floor.next_tick = floor.now + TICK


def run(floor: Floor, rng: random.Random, inputs: int) -> float:
    """Alternate resolve and open for `inputs` inputs; the seconds they took (messages built before)."""
    core = floor.core
    messages = [floor.next_message(rng.choice(floor.queues)) for _ in range(inputs // 2 + 1)]
    picks = [rng.random() for _ in range(inputs // 2 + 1)]
    opened = resolved = 0
    started = time.perf_counter()
    for i in range(inputs):
        if i % 2 == 0 and floor.assigned:
            conversation_id = floor.untrack(int(picks[resolved] * len(floor.assigned)))
            resolved += 1
            # Built unvalidated, outside the core's cost as far as possible; the core reads the id.
            event = ConversationResolved.model_construct(
                event_id=conversation_id, workspace_id=WORKSPACE, conversation_id=conversation_id,
                agent_id=None, resolved_at=floor.now)
            floor.track(core.on_resolved(event, floor.now))
        else:
            floor.track(core.on_message(messages[opened], floor.now))
            opened += 1
        floor.now += STEP
        if floor.now >= floor.next_tick:
            floor.track(core.tick(floor.now))
            floor.next_tick += TICK
    return time.perf_counter() - started


@dataclass
class Row:
    agents: int
    waiting: int
    waiting_end: int
    queues: int
    per_s: float  # all timed inputs / their total time
    round_rates: list[float]  # the same inputs in ROUNDS rounds: their spread shows noise from other processes
    unfrozen_per_s: float
    online_s: float
    fill_s: float


def timed(floor: Floor, rng: random.Random, inputs: int) -> tuple[float, list[float]]:
    """Decisions per second over all `inputs`, and per round."""
    per_round = max(1, inputs // ROUNDS)
    seconds = [run(floor, rng, per_round) for _ in range(ROUNDS)]
    return per_round * ROUNDS / sum(seconds), [per_round / s for s in seconds]


def measure(agents: int, args: argparse.Namespace) -> Row:
    started = time.perf_counter()
    floor, rng, roster = online_floor(agents, args.queues, args.seed)
    online_s = time.perf_counter() - started
    fill(floor, rng, roster, args.waiting)
    fill_s = time.perf_counter() - started - online_s
    del roster
    waiting = floor.waiting
    run(floor, rng, WARMUP)
    # The floor is millions of long-lived objects at 100k agents; freezing them keeps the cyclic
    # collector from walking them, a cost of the interpreter's heap size, not of a routing decision.
    gc.collect()
    gc.freeze()
    try:
        per_s, rounds = timed(floor, rng, args.decisions)
    finally:
        gc.unfreeze()
    unfrozen_per_s, _ = timed(floor, rng, args.decisions)  # the same floor, the collector seeing all of it
    return Row(agents, waiting, floor.waiting, len(floor.queues), per_s, rounds, unfrozen_per_s, online_s, fill_s)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    print(f"routing core: {args.queues} queues, {SKILLS} skills, {CAPACITY} chats per agent, "
          f"{args.decisions} timed decisions per size, seed {args.seed}", flush=True)
    rows = []
    for agents in args.sizes:
        rows.append(measure(agents, args))
        gc.collect()  # the previous floor's memory, before the next is built
        print(f"  {agents} agents measured", flush=True)
    print()
    print(f"{'agents':>8} {'waiting':>8} {'wait_end':>8} {'queues':>7} {'decisions/s':>12} {'µs/decision':>12} "
          f"{'rounds min-max/s':>17} {'unfrozen/s':>11} {'online_s':>9} {'fill_s':>7}")
    for r in rows:
        spread = f"{min(r.round_rates):.0f}-{max(r.round_rates):.0f}"
        print(f"{r.agents:>8} {r.waiting:>8} {r.waiting_end:>8} {r.queues:>7} {r.per_s:>12.0f} "
              f"{1e6 / r.per_s:>12.1f} {spread:>17} {r.unfrozen_per_s:>11.0f} {r.online_s:>9.1f} {r.fill_s:>7.1f}")
    smallest, largest = min(rows, key=lambda r: r.agents), max(rows, key=lambda r: r.agents)
    print(f"ratio_largest_to_smallest={largest.per_s / smallest.per_s:.2f} "
          f"unfrozen_ratio={largest.unfrozen_per_s / smallest.unfrozen_per_s:.2f} "
          f"(decisions/s at {largest.agents} agents / at {smallest.agents})")


if __name__ == "__main__":
    main()
