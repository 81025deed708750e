"""Two router processes on one work queue; kill -9 the active one under load. The standby takes
over from MongoDB: nothing lost or stored twice, one agent per conversation, no agent ever over
capacity, order per conversation kept."""

import asyncio
import time
from collections import defaultdict
from datetime import datetime

import aiohttp
import pytest

from tests.conftest import API_KEY
from tests.e2e.client import StackClient, TimedDeskRecorder

AGENTS = 4
CAPACITY = 3
THREADS = 40  # more than AGENTS * CAPACITY: most conversations wait for a resolve
POSTERS = 8
ROUTERS = ("router", "router-2")
HANDOVER_PATIENCE = 30  # a bound on the wait, not a speed claim
PATIENCE = 60


def thread_length(thread: int) -> int:
    """2 to 6 messages: short threads finish, and are resolved, while long ones still post."""
    return 2 + thread % 5


TOTAL = sum(thread_length(t) for t in range(THREADS))


class Load:
    """Customers posting from several tasks, and agents resolving every finished thread."""

    def __init__(self, client: StackClient, desks: dict[str, TimedDeskRecorder]) -> None:
        self.client = client
        self.desks = desks
        self.posted: dict[int, list[str]] = {t: [] for t in range(THREADS)}  # message ids in posting order
        self.thread_of: dict[str, int] = {}
        self.sent_at: dict[str, float] = {}  # when the first attempt of each post started
        self.finished: set[int] = set()  # threads whose every message was accepted
        self.resolved: dict[str, float] = {}  # conversation id -> when its resolve was answered
        self.killed = asyncio.Event()
        self.killed_at = 0.0

    def accepted(self) -> int:
        return len(self.sent_at)

    def assignments(self) -> int:
        return _assigned_after(self.desks, 0.0)

    async def post(self, poster: int) -> None:
        """Round-robin over this poster's threads; three quarters in, hold until the router was
        killed, so that part of the load surely comes after the kill."""
        threads = range(poster, THREADS, POSTERS)
        schedule = [(t, i) for i in range(max(map(thread_length, threads))) for t in threads if i < thread_length(t)]
        for n, (thread, i) in enumerate(schedule):
            if n == len(schedule) * 3 // 4:
                await self.killed.wait()
            sent = time.monotonic()
            text = f"t{thread}-m{i}"
            message_id = await self.client.post_until_accepted(f"ff-{thread}", text, text, PATIENCE)
            self.posted[thread].append(message_id)
            self.thread_of[message_id] = thread
            self.sent_at[message_id] = sent
            if i == thread_length(thread) - 1:
                self.finished.add(thread)

    async def resolve_finished(self) -> None:
        """Like an agent: resolve a conversation once every message of its (finished) thread is on the desk."""
        while len(self.resolved) < THREADS:
            on_desk: dict[str, set[str]] = defaultdict(set)
            for desk in self.desks.values():
                for _, _, conversation_id, message_ids in list(desk.frames):
                    on_desk[conversation_id] |= set(message_ids)
            for conversation_id, ids in on_desk.items():
                if not ids:  # an assignment frame that carried no message (redelivered to a desk that had them)
                    continue
                thread = self.thread_of.get(next(iter(ids)))
                done = thread in self.finished and ids >= set(self.posted[thread])
                if conversation_id in self.resolved or not done:
                    continue
                url = f"{self.client.agents_url}/v1/conversations/{conversation_id}/resolve"
                async with self.client.session.post(url, headers=self.client.headers) as response:
                    assert response.status == 200, await response.text()
                self.resolved[conversation_id] = time.monotonic()
            await asyncio.sleep(0.05)  # poll the desks' frames; the condition ends the loop


@pytest.mark.e2e
async def test_killing_the_active_router_under_load_hands_over_to_the_standby(stack_factory):
    built = stack_factory()
    built.start("agents")  # first: it declares the agent queues the routers deliver to
    built.start("router")
    built.start_replica("router", ROUTERS[1])
    built.start("intake")
    agents = [f"agent-{i}" for i in range(AGENTS)]
    async with aiohttp.ClientSession() as session:
        client = StackClient(session, built.url("intake"), built.url("agents"), API_KEY)
        desks = {a: TimedDeskRecorder(session, client.agents_url, a, API_KEY) for a in agents}
        try:
            await start_desks(client, desks)
            load = Load(client, desks)
            async with asyncio.timeout(2 * PATIENCE), asyncio.TaskGroup() as tasks:  # a failing task fails the test
                for poster in range(POSTERS):
                    tasks.create_task(load.post(poster))
                tasks.create_task(load.resolve_finished())
                await until_mid_load(load)
                active = await _active_router(session, built)
                standby = ROUTERS[1 - ROUTERS.index(active)]
                resolved_before_kill, accepted_before_kill = len(load.resolved), load.accepted()
                load.killed_at = time.monotonic()
                built.kill(active)  # SIGKILL: no graceful shutdown, unacked work goes back to the queue
                load.killed.set()
                took_over = await _handover(session, built, standby, load)
                delivered = await _first_delivery_after_kill(load)
            stored = await _stored_conversations(client, set(load.sent_at))
        finally:
            for desk in desks.values():
                await desk.stop()

    print(f"\nkilled {active}; {standby} reported active after {took_over:.3f}s; first message posted after the kill "
          f"reached a desk after {delivered:.3f}s; before the kill: {accepted_before_kill}/{TOTAL} posts, "
          f"{resolved_before_kill} resolves; assignments after it: {_assigned_after(desks, load.killed_at)}")
    assert_nothing_lost_twice_or_reordered(stored, load)
    assert_one_agent_per_conversation(stored, desks)
    assert_no_agent_over_capacity(stored)
    assert _assigned_after(desks, load.killed_at) > 0, "the standby assigned no waiting conversation"


def assert_nothing_lost_twice_or_reordered(stored: list[dict], load: Load) -> None:
    inbound = [m["message_id"] for c in stored for m in c["messages"] if m["direction"] == "inbound"]
    assert len(inbound) == len(set(inbound)) == TOTAL, "a message was lost or stored twice"
    assert set(inbound) == set(load.sent_at)
    by_thread: dict[str, list[dict]] = defaultdict(list)
    for conversation in stored:
        by_thread[conversation["thread_id"]].append(conversation)
    assert len(by_thread) == THREADS
    for thread in range(THREADS):
        (conversation,) = by_thread[f"ff-{thread}"]  # one conversation per thread: never opened twice
        texts = [m["text"] for m in conversation["messages"] if m["direction"] == "inbound"]
        assert texts == [f"t{thread}-m{i}" for i in range(thread_length(thread))], "order per conversation broken"


def assert_one_agent_per_conversation(stored: list[dict], desks: dict[str, TimedDeskRecorder]) -> None:
    assignee = {c["conversation_id"]: c["assignee_id"] for c in stored}
    announced: dict[str, list[str]] = defaultdict(list)  # conversation -> desks told of its assignment
    for agent_id, desk in desks.items():
        for _, kind, conversation_id, _ in desk.frames:
            assert assignee[conversation_id] == agent_id, f"{conversation_id} reached {agent_id}, not its assignee"
            if kind == "assigned":
                announced[conversation_id].append(agent_id)
    # Exactly once, even when the standby republishes an assignment the killed router had sent.
    assert announced == {c: [a] for c, a in assignee.items()}, "a conversation not announced once to its assignee"
    live = [m for desk in desks.values() for m in desk.live_message_ids]
    assert len(live) == len(set(live)) == TOTAL, "a desk got a message twice, or missed one"


def assert_no_agent_over_capacity(stored: list[dict]) -> None:
    """Replay assign and resolve times per agent. The router assigns only after it processed the
    resolve, which the agents service stamps before announcing it, so a tie is a resolve first."""
    changes: dict[str, list[tuple[datetime, int]]] = defaultdict(list)
    for conversation in stored:
        changes[conversation["assignee_id"]].append((datetime.fromisoformat(conversation["assigned_at"]), 1))
        if conversation["resolved_at"]:
            changes[conversation["assignee_id"]].append((datetime.fromisoformat(conversation["resolved_at"]), -1))
    for agent_id, timeline in changes.items():
        load = peak = 0
        for _, delta in sorted(timeline):
            load += delta
            peak = max(peak, load)
        assert peak <= CAPACITY, f"{agent_id} held {peak} open conversations at once (capacity {CAPACITY})"


async def _active_router(session: aiohttp.ClientSession, built) -> str:
    """The one router whose core is loaded (GET /v1/queue says active); exactly one may be."""
    async with asyncio.timeout(PATIENCE):
        while True:
            active = [name for name in ROUTERS if (await _queue_view(session, built, name))["active"]]
            assert len(active) <= 1, f"two routers hold routing state: {active}"
            if active:
                return active[0]
            await asyncio.sleep(0.05)  # a replica whose batch failed rebuilds on its next work


async def _handover(session: aiohttp.ClientSession, built, standby: str, load: Load) -> float:
    """Seconds from the kill until the standby reports its state loaded from MongoDB."""
    async with asyncio.timeout(HANDOVER_PATIENCE):
        while not (await _queue_view(session, built, standby))["active"]:
            await asyncio.sleep(0.02)
    return time.monotonic() - load.killed_at


async def _first_delivery_after_kill(load: Load) -> float:
    """Seconds from the kill until a desk got a message posted after it (only the standby can route that)."""

    def after_kill() -> list[float]:
        return [at for desk in load.desks.values() for at, _, _, ids in list(desk.frames)
                if any(load.sent_at.get(i, 0) > load.killed_at for i in ids)]

    await _until(after_kill, HANDOVER_PATIENCE)
    return min(after_kill()) - load.killed_at


def _assigned_after(desks: dict[str, TimedDeskRecorder], moment: float) -> int:
    return len({c for desk in desks.values() for at, kind, c, _ in desk.frames if kind == "assigned" and at > moment})


async def _queue_view(session: aiohttp.ClientSession, built, router: str) -> dict:
    async with session.get(f"{built.url(router)}/v1/queue", headers={"Authorization": f"Bearer {API_KEY}"}) as r:
        assert r.status == 200, await r.text()
        return await r.json()


async def _stored_conversations(client: StackClient, expected: set[str]) -> list[dict]:
    """Every conversation with its messages, once every expected message is stored."""
    async with asyncio.timeout(PATIENCE):
        while True:
            url = f"{client.agents_url}/v1/conversations"
            async with client.session.get(url, params={"limit": "1000"}, headers=client.headers) as r:
                listed = (await r.json())["conversations"]
            stored = []
            for conversation in listed:
                url = f"{client.agents_url}/v1/conversations/{conversation['conversation_id']}"
                async with client.session.get(url, headers=client.headers) as r:
                    stored.append(await r.json())
            if {m["message_id"] for c in stored for m in c["messages"]} >= expected:
                return stored
            await asyncio.sleep(0.2)  # poll; the condition ends the wait


async def start_desks(client: StackClient, desks: dict[str, TimedDeskRecorder]) -> None:
    """Every agent created with CAPACITY, online, and its desk connected."""
    for agent_id, desk in desks.items():
        await client.put_agent(agent_id, capacity=CAPACITY)
        desk.start()
    async with asyncio.timeout(PATIENCE):
        await asyncio.gather(*(desk.connected.wait() for desk in desks.values()))


async def until_mid_load(load: Load) -> None:
    """Mid-load: every agent full, conversations waiting, resolves begun. Cannot stall: the first 12
    conversations opened (all assigned) include the first thread of some poster other than 3 and 4
    (which have 10 threads), and those are finished before their poster holds."""
    await _until(lambda: load.assignments() >= AGENTS * CAPACITY and load.accepted() >= TOTAL // 3
                 and len(load.resolved) >= 2)


async def _until(condition, timeout: float = PATIENCE) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.02)
