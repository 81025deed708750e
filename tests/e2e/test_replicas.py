"""Two of each as processes: two routers, two agents replicas, two intakes, under load; then
kill -9 of one of each at once (the router active for the workspace, the agents replica active for
the delivery partitions, the intake half the posts go to). Nothing lost or stored twice, one agent
per conversation, no agent over capacity, order per conversation kept, every desk back (on the
other agents replica) with every message, and a web chat on the surviving intake still live. The
same again on a three-node RabbitMQ cluster, with the node every process is connected to killed too."""

import asyncio
import contextlib
import json
import time
from collections import defaultdict
from collections.abc import Callable

import aiohttp
import pytest

from tests.conftest import API_KEY
from tests.e2e.client import StackClient, TimedDeskRecorder
from tests.e2e.test_router_failover import (
    AGENTS,
    PATIENCE,
    POSTERS,
    Load,
    _assigned_after,
    _first_delivery_after_kill,
    _queue_view,
    _stored_conversations,
    _until,
    assert_no_agent_over_capacity,
    assert_nothing_lost_twice_or_reordered,
    start_desks,
    until_mid_load,
)

# Started in this order: with RabbitMQ 3.x the first consumer of each partition queue is its active one.
REPLICAS = {"agents": ("agents", "agents-2"), "router": ("router", "router-2"), "intake": ("intake", "intake-2")}


def start_two_of_each(built) -> None:
    for service, (first, second) in REPLICAS.items():
        built.start(service)
        built.start_replica(service, second)


@pytest.mark.e2e
async def test_two_of_each_with_one_of_each_killed_under_load(stack_factory):
    await two_of_each_with_one_of_each_killed(stack_factory())


@pytest.mark.e2e
async def test_two_of_each_on_a_cluster_with_a_node_killed_too(cluster, stack_factory):
    """The same on a three-node RabbitMQ cluster (`cluster` first: torn down after the stack), with
    the node every process is connected to killed with the services."""
    first = cluster.nodes[0]
    await two_of_each_with_one_of_each_killed(stack_factory(AMQP_URL=cluster.url), also=first.kill)


async def two_of_each_with_one_of_each_killed(built, also: Callable[[], None] | None = None) -> None:
    """`also`: one more thing to kill with the three (a broker node)."""
    start_two_of_each(built)
    survivor = {service: built.url(names[1]) for service, names in REPLICAS.items()}
    agents = [f"agent-{i}" for i in range(AGENTS)]
    async with aiohttp.ClientSession() as session:
        # Posts go to the first intake (killed later) and turn to the second when it stops answering.
        client = StackClient(session, built.url("intake"), survivor["agents"], API_KEY,
                             other_intakes=(survivor["intake"],))
        # Half the desks on each agents replica; a desk whose replica dies reconnects to the other.
        desks = {}
        for n, agent_id in enumerate(agents):
            home, other = (built.url("agents"), survivor["agents"])[::1 if n % 2 == 0 else -1]
            desks[agent_id] = TimedDeskRecorder(session, home, agent_id, API_KEY, other_agents=(other,))
        try:
            await start_desks(client, desks)
            load = Load(client, desks)
            async with _explained(load, client), asyncio.timeout(2 * PATIENCE), asyncio.TaskGroup() as tasks:
                for poster in range(POSTERS):
                    tasks.create_task(load.post(poster))
                tasks.create_task(load.resolve_finished())
                await until_mid_load(load)
                router = await _router_holding_the_workspace(session, built)
                load.killed_at = time.monotonic()
                for victim in (router, "agents", "intake"):  # SIGKILL: no goodbye, unacked work goes back
                    built.kill(victim)
                if also is not None:
                    await asyncio.to_thread(also)
                load.killed.set()
                delivered = await _first_delivery_after_kill(load)
            stored = await _stored_conversations(client, set(load.sent_at))
            everything = set(load.sent_at)
            await _until(lambda: all(_seen_by_assignee(stored, desks)[a] <= desk.seen for a, desk in desks.items()))
            chat_reply_after, chat_conversation = await _chat_is_live(session, survivor["intake"], client)
        finally:
            for desk in desks.values():
                await desk.stop()

    print(f"\nkilled {router}, agents and intake{' and a broker node' if also else ''}; a message posted after the kills reached a desk after "
          f"{delivered:.3f}s; assignments after them: {_assigned_after(desks, load.killed_at)}; "
          f"a web chat reply reached the customer {chat_reply_after:.3f}s after it was sent")
    assert_nothing_lost_twice_or_reordered(stored, load)
    assert_one_agent_per_conversation(stored, desks, also=chat_conversation)
    assert_no_agent_over_capacity(stored)
    assert {m["message_id"] for c in stored for m in c["messages"] if m["direction"] == "inbound"} == everything
    assert _assigned_after(desks, load.killed_at) > 0, "no waiting conversation was assigned after the kills"


@contextlib.asynccontextmanager
async def _explained(load: Load, client: StackClient):
    """On a timeout, say which conversations never finished and what their desks and the store hold."""
    try:
        yield
    except TimeoutError:
        on_desk: dict[str, list] = defaultdict(list)
        for agent_id, desk in load.desks.items():
            for at, kind, conversation_id, ids in list(desk.frames):
                on_desk[conversation_id].append((agent_id, round(at - load.killed_at, 2), kind, len(ids)))
        for conversation_id, frames in on_desk.items():
            if conversation_id not in load.resolved:
                url = f"{client.agents_url}/v1/conversations/{conversation_id}"
                async with client.session.get(url, headers=client.headers) as r:
                    doc = await r.json()
                print(f"unresolved {conversation_id} ({doc.get('status')}, {doc.get('assignee_id')}, "
                      f"{len(doc.get('messages', []))} stored): desk frames {frames}")
        print(f"resolved {len(load.resolved)}, accepted {load.accepted()}, finished threads {len(load.finished)}")
        raise


def assert_one_agent_per_conversation(stored: list[dict], desks: dict[str, TimedDeskRecorder], also: str) -> None:
    """Every frame a desk got is of a conversation its agent holds (`also`: the web chat's, opened
    after the load); no desk got a message twice live (a desk that reconnected is resynced by its
    snapshot, not by repeats)."""
    assignee = {c["conversation_id"]: c["assignee_id"] for c in stored}
    for agent_id, desk in desks.items():
        for _, _, conversation_id, _ in desk.frames:
            if conversation_id == also:
                continue
            assert assignee[conversation_id] == agent_id, f"{conversation_id} reached {agent_id}, not its assignee"
        assert len(desk.live_message_ids) == len(set(desk.live_message_ids)), f"{agent_id}'s desk got a message twice"


def _seen_by_assignee(stored: list[dict], desks: dict[str, TimedDeskRecorder]) -> dict[str, set[str]]:
    wanted: dict[str, set[str]] = defaultdict(set)
    for conversation in stored:
        wanted[conversation["assignee_id"]] |= {m["message_id"] for m in conversation["messages"]
                                                if m["direction"] == "inbound"}
    return {agent_id: wanted[agent_id] for agent_id in desks}


async def _router_holding_the_workspace(session: aiohttp.ClientSession, built) -> str:
    """The router replica active for the test workspace's partition (GET /v1/queue says so)."""
    async with asyncio.timeout(PATIENCE):
        while True:
            active = [name for name in REPLICAS["router"] if (await _queue_view(session, built, name))["active"]]
            assert len(active) <= 1, f"two routers hold the workspace's state: {active}"
            if active:
                return active[0]
            await asyncio.sleep(0.05)


async def _chat_is_live(session: aiohttp.ClientSession, intake_url: str, client: StackClient) -> tuple[float, str]:
    """A customer on the surviving intake writes; an agent replies; the reply reaches the chat socket:
    how long after it was sent, and the chat's conversation."""
    ws_url = f"{intake_url.replace('http', 'ws', 1)}/v1/chat/ws?workspace=default"
    async with session.ws_connect(ws_url) as chat, asyncio.timeout(PATIENCE):
        frames = [json.loads((await chat.receive()).data) for _ in range(2)]
        assert [f["type"] for f in frames] == ["session", "history"]
        await chat.send_json({"type": "message", "text": "still there?", "client_id": "c1"})
        conversation_id = await _conversation_of_chat(client, frames[0])
        sent_at = time.monotonic()
        async with session.post(f"{client.agents_url}/v1/conversations/{conversation_id}/messages",
                                json={"text": "yes, here"}, headers=client.headers) as response:
            assert response.status == 201, await response.text()
        while True:
            frame = json.loads((await chat.receive()).data)
            if frame["type"] == "message" and frame["text"] == "yes, here":
                return time.monotonic() - sent_at, conversation_id


async def _conversation_of_chat(client: StackClient, session_frame: dict) -> str:
    """The chat's conversation, once an agent holds it (the agents have room: the load is resolved)."""
    thread_id = session_frame.get("thread_id")
    while True:
        async with client.session.get(f"{client.agents_url}/v1/conversations", params={"limit": "1000"},
                                      headers=client.headers) as response:
            listed = (await response.json())["conversations"]
        found = [c for c in listed if c["channel"] == "webchat" and (thread_id is None or c["thread_id"] == thread_id)]
        if found:
            return found[0]["conversation_id"]
        await asyncio.sleep(0.1)  # until the router assigned it and the agents service stored it
