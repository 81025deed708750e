"""Agents and intake as two replicas each, over the real broker and database: a desk or a chat socket
on one replica gets what the other one handled (the socket relay, shared/relay.py), and presence
outlives the replica that held the desk (services/agents/presence.py)."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import quote

import aiohttp
import pytest
from aiohttp import WSMsgType
from aiohttp.test_utils import TestClient

from deploy import cleanup
from services.agents.app import SERVICE
from services.agents.app import create_app as create_agents
from services.agents.presence import presence_interval
from services.agents.settings import AgentsSettings
from services.intake.app import OUTBOUND_WORKERS
from services.intake.app import create_app as create_intake
from services.intake.context import INTAKE
from services.intake.settings import IntakeSettings
from services.router.app import create_app as create_router
from services.router.settings import RouterSettings
from shared.models import utcnow
from tests.conftest import API_KEY, WORKSPACE, Names, auth, serve
from tests.e2e.client import StackClient
from tests.service.helpers import Desk, texts
from tests.service.test_routing_flow import until
from tests.service.test_typing import Chat, assigned_to

POLL = 0.05  # polling an HTTP view; the condition or the deadline, not the sleep, ends each wait


@dataclass
class Replica:
    """One running app, stoppable on its own (its cleanup runs: its process would be gone)."""

    client: TestClient
    stack: AsyncExitStack

    async def stop(self) -> None:
        await self.stack.aclose()


@dataclass
class Replicas:
    router: TestClient
    agents: list[Replica] = field(default_factory=list)
    intakes: list[Replica] = field(default_factory=list)

    def api(self, agents: int = 0, intake: int = 0) -> StackClient:
        a, i = self.agents[agents].client, self.intakes[intake].client
        return StackClient(a.session, str(i.make_url("")), str(a.make_url("")), API_KEY)


async def start_replica(app) -> Replica:
    stack = AsyncExitStack()
    client = await stack.enter_async_context(serve(app))
    return Replica(client, stack)


@asynccontextmanager
async def replicas(names: Names, *, agents: int = 2, intakes: int = 1, grace: float = 30,
                   abandon: float = 60) -> AsyncIterator[Replicas]:
    """The router, `agents` agents replicas and `intakes` intake replicas of one namespace and database."""
    async with AsyncExitStack() as stack:
        running: list[Replica] = []
        stack.push_async_callback(lambda: asyncio.gather(*(r.stop() for r in running)))
        for _ in range(agents):
            running.append(await start_replica(create_agents(names.settings(AgentsSettings,
                                                                            presence_grace_seconds=grace))))
        router = await stack.enter_async_context(serve(create_router(names.settings(RouterSettings))))
        built = Replicas(router, agents=list(running))
        for _ in range(intakes):
            settings = names.settings(IntakeSettings, agents_url=str(running[-1].client.make_url("/")),
                                      webchat_abandon_seconds=abandon)
            replica = await start_replica(create_intake(settings))
            running.append(replica)
            built.intakes.append(replica)
        yield built


async def open_desk(agents: TestClient, agent_id: str) -> Desk:
    desk = Desk(await agents.ws_connect(f"/v1/agents/{agent_id}/ws?token=test-key"))
    desk.snapshot = await desk.next_frame()
    assert desk.snapshot["type"] == "snapshot"
    return desk


async def post(intake: TestClient, contact: str, text: str) -> None:
    response = await intake.post("/v1/messages", json={"contact": {"id": contact}, "text": text}, headers=auth())
    assert response.status == 202, await response.text()


async def status_of(agents: TestClient, agent_id: str) -> str:
    response = await agents.get(f"/v1/agents/{agent_id}", headers=auth())
    assert response.status == 200, await response.text()
    return (await response.json())["status"]


async def wait_for_status(agents: TestClient, agent_id: str, status: str, timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while await status_of(agents, agent_id) != status:
            await asyncio.sleep(POLL)


async def stays(agents: TestClient, agent_id: str, status: str, until: float) -> None:
    """Poll until the monotonic time `until`, asserting the status at every look."""
    while time.monotonic() < until:
        assert await status_of(agents, agent_id) == status
        await asyncio.sleep(POLL)
    assert await status_of(agents, agent_id) == status


async def test_a_desk_on_one_replica_gets_in_order_what_the_other_replica_handled(names):
    async with replicas(names) as stack:
        a, b = (replica.client for replica in stack.agents)
        await b.app[SERVICE].deliveries.stop()  # only replica A consumes the delivery partitions
        await stack.api().put_agent("ann")
        desk = await open_desk(b, "ann")
        assert b.app[SERVICE].hub.connected((WORKSPACE, "ann"))
        assert not a.app[SERVICE].hub.connected((WORKSPACE, "ann"))
        intake = stack.intakes[0].client
        for text in ("one", "two", "three", "four"):
            await post(intake, "cust", text)
        frames = await desk.frames_until(lambda f: len(texts(f)) >= 4)
        assert frames[0]["type"] == "conversation.assigned"
        assert texts(frames) == ["one", "two", "three", "four"]
        assert a.app[SERVICE].metrics.assignments._value.get() == 1  # replica A handled the delivery
        assert b.app[SERVICE].metrics.assignments._value.get() == 0

        # A frame B makes itself (a reply through B's API) reaches its own desk directly.
        conversation_id = frames[0]["conversation"]["conversation_id"]
        response = await b.post(f"/v1/conversations/{conversation_id}/messages", json={"text": "hi"}, headers=auth())
        assert response.status == 201, await response.text()
        reply = await desk.frames_until(lambda f: any(x["type"] == "message" for x in f))
        assert [x["message"]["text"] for x in reply if x["type"] == "message"] == ["hi"]


async def test_the_agent_goes_offline_via_the_other_replica_when_the_one_holding_the_desk_is_gone(names):
    grace = 1.0
    async with replicas(names, grace=grace) as stack:
        a, b = stack.agents
        await stack.api(agents=1).put_agent("ann")
        await open_desk(a.client, "ann")
        await stays(b.client, "ann", "online", until=time.monotonic() + grace + presence_interval(grace))
        await a.stop()  # no hand-off: B knows only what A stamped in the database
        stopped = time.monotonic()
        await wait_for_status(b.client, "ann", "offline", timeout=grace + 2 * presence_interval(grace) + 5)
        assert time.monotonic() - stopped >= grace - presence_interval(grace)  # the grace was given


async def test_a_desk_that_reconnects_to_the_other_replica_within_the_grace_keeps_the_agent_online(names):
    grace = 1.0
    async with replicas(names, grace=grace) as stack:
        a, b = stack.agents
        await stack.api(agents=1).put_agent("ann")
        first = await open_desk(a.client, "ann")
        stopping = asyncio.create_task(a.stop())
        await asyncio.wait_for(first.ws.receive(), 15)  # A closes the desk as it stops
        closed = time.monotonic()
        desk = await open_desk(b.client, "ann")  # the page reconnects at once, to the replica left
        assert desk.snapshot["status"] == "online"
        await stopping
        await stays(b.client, "ann", "online", until=closed + grace + 2 * presence_interval(grace) + 0.5)
        await desk.ws.close()
        await wait_for_status(b.client, "ann", "offline", timeout=grace + 2 * presence_interval(grace) + 5)


async def test_one_replica_wins_when_both_find_the_same_desk_gone(names):
    async with replicas(names) as stack:  # a 30 s grace: the rounds leave a desk seen 10 s ago alone
        a, b = (replica.client.app[SERVICE] for replica in stack.agents)
        await stack.api().put_agent("ann")
        await a.store.desks_seen([(WORKSPACE, "ann")], utcnow() - timedelta(seconds=10), opened=True)
        before = await a.store.get_agent(WORKSPACE, "ann")
        seen_before = utcnow()
        outcomes = await asyncio.gather(a.desk_gone(WORKSPACE, "ann", seen_before),
                                        b.desk_gone(WORKSPACE, "ann", seen_before))
        assert sorted(outcomes) == [False, True]
        after = await b.store.get_agent(WORKSPACE, "ann")
        assert (after["status"], after["desk"], after["version"]) == ("offline", False, before["version"] + 1)


async def chat_on(intake: TestClient) -> Chat:
    chat = Chat(await intake.ws_connect("/v1/chat/ws?workspace=default"))
    assert [(await chat.next_frame())["type"] for _ in range(2)] == ["session", "history"]
    return chat


async def test_a_chat_on_one_intake_gets_the_replies_the_other_intake_sent(names):
    async with replicas(names, agents=1, intakes=2) as stack:
        first, second = (replica.client for replica in stack.intakes)
        for worker in second.app[OUTBOUND_WORKERS]:  # only the first intake sends web chat replies
            if worker.sender.channel == "webchat":
                await worker.stop()
        agents = stack.agents[0].client
        await stack.api().put_agent("ann")
        desk = await open_desk(agents, "ann")
        chat = await chat_on(second)
        await chat.say("hello from the second intake", "c1")
        conversation_id = await assigned_to(desk)
        joined = await chat.next_frame()  # a notice the first intake sent
        assert (joined["type"], joined["notice"]) == ("notice", "joined"), joined

        replies = []
        for text in ("first reply", "second reply", "third reply"):
            response = await agents.post(f"/v1/conversations/{conversation_id}/messages", json={"text": text},
                                         headers=auth())
            assert response.status == 201, await response.text()
            replies.append((await response.json())["message_id"])
            frame = await chat.next_frame()
            assert (frame["type"], frame["message_id"], frame["text"]) == ("message", replies[-1], text), frame
        # The first intake found the socket on the second: the replies are delivered, not only sent.
        def delivered(frames: list[dict]) -> set[str]:
            return {f["message_id"] for f in frames if f["type"] == "message.status" and f["status"] == "delivered"}
        await desk.frames_until(lambda f: delivered(f) == set(replies))
        sent_by = {intake: intake.app[INTAKE].metrics.messages_out.labels(channel="webchat", status="delivered")._value.get()
                   for intake in (first, second)}
        assert (sent_by[first], sent_by[second]) == (3, 0)

        # The agent typing reaches the customer from the intake that holds the socket, once: the
        # frame after it is the ack of the customer's next message.
        await desk.ws.send_json({"type": "typing", "conversation_id": conversation_id})
        assert await chat.next_frame() == {"type": "typing", "who": "agent"}
        await chat.say("thanks", "c2")


async def drop_connections(names: Names) -> int:
    """Close, from the broker's side, every connection of the namespace (the services reconnect)."""
    broker = cleanup.Broker.from_urls(names.infra.amqp_url)
    if not broker.management_url:
        pytest.skip("needs the RabbitMQ management API (SWITCHYARD_MANAGEMENT_URL)")
    base = f"{broker.management_url}/api/connections"
    async with aiohttp.ClientSession(headers=broker.authorization) as session:
        async with asyncio.timeout(15):
            while True:  # the management API lists a connection a moment after it opens
                async with session.get(f"{base}?columns=name,client_properties") as response:
                    ours = [c["name"] for c in await response.json()
                            if (c.get("client_properties") or {}).get("connection_name") == names.namespace]
                if ours:
                    break
                await asyncio.sleep(0.2)
        for name in ours:
            async with session.delete(f"{base}/{quote(name, safe='')}") as response:
                assert response.status in (204, 404), await response.text()
    return len(ours)


async def test_after_a_broker_reconnect_desks_resync_and_frames_flow_again(names):
    async with replicas(names) as stack:
        a, b = (replica.client for replica in stack.agents)
        await b.app[SERVICE].deliveries.stop()  # replica A handles the deliveries, the desk is on B
        await stack.api().put_agent("ann")
        desk = await open_desk(b, "ann")
        await drop_connections(names)
        # Frames of the outage may be lost: the desk is closed with 1012 so that it reconnects.
        message = await asyncio.wait_for(desk.ws.receive(), 30)
        assert message.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING), message
        assert desk.ws.close_code == 1012
        async with asyncio.timeout(30):
            while not (a.app[SERVICE].broker.is_connected() and b.app[SERVICE].broker.is_connected()):
                await asyncio.sleep(POLL)
        desk = await open_desk(b, "ann")
        await stack.api().post_until_accepted("cust", "after the outage", "outage-1")  # intake reconnects too
        frames = await desk.frames_until(lambda f: len(texts(f)) >= 1, timeout=30)
        assert texts(frames) == ["after the outage"]


async def test_a_chat_closed_on_one_intake_and_back_on_the_other_is_not_left(names):
    """The first intake waits for the page to come back; it comes back on the second: the wait ends there."""
    async with replicas(names, agents=1, intakes=2, abandon=3) as stack:
        first, second = (replica.client for replica in stack.intakes)
        chat = Chat(await first.ws_connect("/v1/chat/ws?workspace=default"))
        session = await chat.next_frame()
        assert session["type"] == "session" and (await chat.next_frame())["type"] == "history"
        await chat.say("hello", "c1")
        thread = session["thread_id"]
        hub = first.app[INTAKE].chat
        await chat.ws.close()

        async def leaving() -> bool:
            return hub.leaving(WORKSPACE, thread)
        await until(leaving, timeout=5)
        back = Chat(await second.ws_connect(f"/v1/chat/ws?session={quote(session['token'])}"))
        assert (await back.next_frame())["type"] == "session"

        async def not_leaving() -> bool:
            return not hub.leaving(WORKSPACE, thread)
        await until(not_leaving, timeout=2)  # well within the 3 s wait: told by the second intake
