"""What the end-to-end benchmarks share: a stack of their own, desks that record what reaches them,
closed-loop posting, percentiles and tear-down.

`bench.e2e` (closed-loop throughput) and `bench.latency` (open-loop latency) both use it; nothing
here measures anything by itself.
"""

import asyncio
import json
import shutil
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from deploy import local
from deploy.local import LocalSettings, Stack, free_port

WORKSPACE = "default"
API_KEY = "bench-key"
POST_TIMEOUT = 30.0  # seconds, one POST
MAX_TEXT_CHARS = 4096  # what intake accepts
FILLER = "The parcel has not arrived yet and the tracking page says nothing new since Monday. "


def text_of(size: int) -> str:
    return (FILLER * (size // len(FILLER) + 1))[:size]


def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an ascending list (nan when empty)."""
    if not sorted_values:
        return float("nan")
    rank = max(1, round(p / 100 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


# -- the stack ---------------------------------------------------------------------------------


@dataclass
class Infra:
    """A stack in a namespace (and database) of its own, on the broker and database in `base`."""

    base: local.Infrastructure
    namespace: str
    log_dir: Path
    stack: Stack

    def extra_queues(self) -> tuple[str, ...]:
        """Queues the benchmark declared itself, deleted with the namespace."""
        return ()


def bring_up_base(log_dir: Path) -> local.Infrastructure:
    """The broker at AMQP_URL (waited for) and MONGO_URL, else an embedded in-memory SecantusDB."""
    settings = LocalSettings()
    # deploy.local waits for a broker slow to answer (SWITCHYARD_BROKER_WAIT_SECONDS), never restarts one.
    return local.bring_up_infrastructure(settings, ":memory:", free_port(), log_dir / "secantusd.log")


def new_stack(base: local.Infrastructure, log_dir: Path, env: dict[str, str] | None = None,
              cls: type[Infra] = Infra) -> Infra:
    """A stack (not started) in a fresh namespace and database; `env` adds to the services' environment."""
    log_dir.mkdir(parents=True, exist_ok=True)
    namespace = f"bench{uuid.uuid4().hex[:12]}"
    stack_env = {**local.stack_env(base, namespace, f"{WORKSPACE}:{API_KEY}"), **(env or {})}
    return cls(base, namespace, log_dir, Stack.on_free_ports(stack_env, log_dir))


def build_infra(log_dir: Path, cls: type[Infra] = Infra) -> Infra:
    """RabbitMQ and MongoDB as the tests get them, and a stack in a namespace of its own."""
    return new_stack(bring_up_base(log_dir), log_dir, cls=cls)


async def remove_namespace(infra: Infra) -> None:
    """Drop the database and delete the namespace's queues and exchanges (the benchmark's own too)."""
    await local.remove_namespace(infra.base.amqp_url, infra.base.mongo_url, infra.namespace, infra.extra_queues())


def tear_down(infra: Infra) -> None:
    """Stop the stack and remove its namespace (the broker and database stay)."""
    try:
        infra.stack.stop_all()
    finally:
        asyncio.run(remove_namespace(infra))


def log_problems(log_dir: Path, limit: int = 5) -> list[str]:
    """Error and warning lines in the stack's logs (JSON lines, plus any traceback)."""
    problems = []
    for path in sorted(log_dir.rglob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                level = json.loads(line).get("level", "")
            except (ValueError, AttributeError):
                level = "error" if "Traceback" in line or " ERROR " in line else ""
            if level in ("warning", "error", "critical", "exception"):
                problems.append(f"{path.relative_to(log_dir)}: {line[:300]}")
    if len(problems) > limit:
        problems = problems[:limit] + [f"... and {len(problems) - limit} more"]
    return problems


def clean_up(infra: Infra) -> None:
    """Stop everything started here and remove the namespace; keep the logs only if they hold problems."""
    try:
        tear_down(infra)
    finally:
        stop_base(infra.base, infra.log_dir)


def stop_base(base: local.Infrastructure, log_dir: Path) -> None:
    """Stop an embedded MongoDB started here; keep the logs only if they hold problems."""
    base.stop()
    if log_problems(log_dir):
        print(f"the stack's logs hold warnings or errors; kept in {log_dir}", file=sys.stderr)
    else:
        shutil.rmtree(log_dir, ignore_errors=True)


# -- desks -------------------------------------------------------------------------------------


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {API_KEY}"}


@dataclass
class Assignment:
    agent_id: str
    thread_id: str
    at: float  # time.perf_counter() when the frame was read


@dataclass
class DeskRecorder:
    """When each customer message first reached a desk (time.perf_counter), and who got each conversation."""

    arrived: dict[str, float] = field(default_factory=dict)
    assigned: dict[str, Assignment] = field(default_factory=dict)  # conversation id -> its latest assignment
    by_thread: dict[str, str] = field(default_factory=dict)  # thread id -> its latest conversation id

    def on_frame(self, frame: dict, at: float, agent_id: str = "") -> None:
        if frame.get("type") == "conversation.assigned":
            conversation = frame.get("conversation") or {}
            if "conversation_id" in conversation:
                thread_id = conversation.get("thread_id", "")
                self.assigned[conversation["conversation_id"]] = Assignment(agent_id, thread_id, at)
                self.by_thread[thread_id] = conversation["conversation_id"]
            for message in frame["messages"]:
                self.arrived.setdefault(message["message_id"], at)
        elif frame.get("type") == "message" and frame["message"].get("direction") == "inbound":
            self.arrived.setdefault(frame["message"]["message_id"], at)

    def missing(self, ids: list[str]) -> list[str]:
        return [i for i in ids if i not in self.arrived]

    async def wait_for(self, ids: list[str], timeout: float) -> list[str]:
        """Wait until every id has arrived or the timeout passed; the ids still missing."""
        deadline = time.perf_counter() + timeout
        missing = self.missing(ids)
        while missing and time.perf_counter() < deadline:
            await asyncio.sleep(0.05)
            missing = [i for i in missing if i not in self.arrived]
        return missing


async def register_agents(session: aiohttp.ClientSession, agents_url: str, agent_ids: list[str],
                          capacity: int, status: str = "online") -> None:
    """Create (or update) each agent with `capacity` conversations and set its status."""
    for agent_id in agent_ids:
        body = {"name": agent_id.title(), "skills": {}, "max_conversations": capacity}
        async with session.put(f"{agents_url}/v1/agents/{agent_id}", json=body, headers=auth()) as response:
            response.raise_for_status()
        status_url = f"{agents_url}/v1/agents/{agent_id}/status"
        async with session.put(status_url, json={"status": status}, headers=auth()) as response:
            response.raise_for_status()


async def open_desk(session: aiohttp.ClientSession, agents_url: str, agent_id: str) -> aiohttp.ClientWebSocketResponse:
    ws = await session.ws_connect(f"{agents_url}/v1/agents/{agent_id}/ws?token={API_KEY}")
    first = await ws.receive(timeout=15)
    if json.loads(first.data).get("type") != "snapshot":
        raise RuntimeError(f"desk of {agent_id} did not start with a snapshot: {first.data[:200]!r}")
    return ws


async def read_desk(ws: aiohttp.ClientWebSocketResponse, recorder: DeskRecorder, agent_id: str = "") -> None:
    async for message in ws:
        if message.type == aiohttp.WSMsgType.TEXT:
            recorder.on_frame(json.loads(message.data), time.perf_counter(), agent_id)


@dataclass
class Desks:
    """Open desks and their readers, closed together."""

    sockets: dict[str, aiohttp.ClientWebSocketResponse] = field(default_factory=dict)
    readers: dict[str, asyncio.Task] = field(default_factory=dict)

    @classmethod
    async def open(cls, session: aiohttp.ClientSession, agents_url: str, agent_ids: list[str],
                   recorder: DeskRecorder) -> "Desks":
        desks = cls()
        for agent_id in agent_ids:
            ws = await open_desk(session, agents_url, agent_id)
            desks.sockets[agent_id] = ws
            desks.readers[agent_id] = asyncio.create_task(read_desk(ws, recorder, agent_id))
        return desks

    async def close(self, agent_ids: list[str] | None = None) -> None:
        """Close these desks (all by default), as a browser tab closing does; their readers end."""
        ids = list(self.sockets) if agent_ids is None else agent_ids
        await asyncio.gather(*(self.sockets.pop(a).close() for a in ids))
        readers = [self.readers.pop(a) for a in ids]
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


# -- closed-loop posting -----------------------------------------------------------------------


@dataclass
class PostRun:
    first_sent: float
    accepted: dict[str, float]  # message_id -> when its 202 came back
    errors: int


async def post_all(
    session: aiohttp.ClientSession, intake_url: str | list[str], contacts: list[str], text: str, concurrency: int
) -> PostRun:
    """POST one message per contact, `concurrency` at a time; record when each 202 came back.

    Several intake URLs: the messages go to them in turn (round-robin by message)."""
    accepted: dict[str, float] = {}
    errors = 0
    urls = [intake_url] if isinstance(intake_url, str) else intake_url
    pending = iter(enumerate(contacts))
    timeout = aiohttp.ClientTimeout(total=POST_TIMEOUT)

    async def worker() -> None:
        nonlocal errors
        for i, contact in pending:
            url = urls[i % len(urls)]
            try:
                async with session.post(f"{url}/v1/messages", json={"contact": {"id": contact}, "text": text},
                                        headers=auth(), timeout=timeout) as response:
                    body = await response.json() if response.status == 202 else None
                    at = time.perf_counter()
            except (aiohttp.ClientError, TimeoutError):
                body = None
            if body is None:
                errors += 1
            else:
                accepted[body["message_id"]] = at

    first_sent = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return PostRun(first_sent, accepted, errors)


async def warm_up(session: aiohttp.ClientSession, infra: Infra, recorder: DeskRecorder, text: str,
                  concurrency: int, messages: int, threads: int, timeout: float, prefix: str = "warm",
                  intake_urls: list[str] | None = None) -> None:
    """Some traffic on threads of its own: connections, the router's state and the agents are ready.

    `intake_urls`: post over these in turn (default the stack's intake)."""
    contacts = [f"{prefix}-{i % threads}" for i in range(messages)]
    run = await post_all(session, intake_urls or infra.stack.url("intake"), contacts, text, concurrency)
    missing = await recorder.wait_for(list(run.accepted), timeout)
    if run.errors or missing:
        raise RuntimeError(f"warm-up failed: {run.errors} POST errors, {len(missing)} frames missing "
                           f"(logs: {infra.log_dir})")
