"""Presence follows the desk: offline once the agent's last desk has been gone the grace period."""

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import aio_pika

from services.agents.app import SERVICE
from shared import events
from shared.models import AgentSnapshot
from tests.conftest import WORKSPACE, Names, auth
from tests.service.helpers import Apps, running_apps, texts

POLL = 0.05  # polling an HTTP view; the condition or the deadline, not the sleep, ends each wait


def apps_with_grace(names: Names, grace: float):
    """The three apps, the agents one with the given presence grace."""
    return running_apps(names, agents_settings={"presence_grace_seconds": grace})


@asynccontextmanager
async def status_changes(names: Names) -> AsyncIterator[aio_pika.abc.AbstractQueue]:
    """A queue of our own bound to the events exchange: every agent.status_changed snapshot published."""
    connection = await aio_pika.connect(names.infra.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(exclusive=True)
        await queue.bind(names.topology.events_exchange, events.AGENT_STATUS_CHANGED)
        yield queue


async def next_snapshot(queue: aio_pika.abc.AbstractQueue, status: str, timeout: float = 15) -> AgentSnapshot:
    async with asyncio.timeout(timeout):
        async with queue.iterator() as messages:
            async for message in messages:
                await message.ack()
                snapshot = AgentSnapshot.model_validate_json(message.body)
                if snapshot.status == status:
                    return snapshot
    raise AssertionError("unreachable")


async def status_of(apps: Apps, agent_id: str) -> str:
    response = await apps.agents.get(f"/v1/agents/{agent_id}", headers=auth())
    assert response.status == 200, await response.text()
    return (await response.json())["status"]


async def wait_for_status(apps: Apps, agent_id: str, status: str, timeout: float = 15) -> None:
    async with asyncio.timeout(timeout):
        while await status_of(apps, agent_id) != status:
            await asyncio.sleep(POLL)


async def stays(apps: Apps, agent_id: str, status: str, until: float) -> None:
    """Poll until the monotonic time `until`, asserting the status at every look."""
    while time.monotonic() < until:
        assert await status_of(apps, agent_id) == status
        await asyncio.sleep(POLL)
    assert await status_of(apps, agent_id) == status


async def waiting(apps: Apps, count: int, timeout: float = 15) -> list[dict]:
    async with asyncio.timeout(timeout):
        while True:
            body = await (await apps.router.get("/v1/queue", headers=auth())).json()
            if len(body["waiting"]) >= count:
                return body["waiting"]
            await asyncio.sleep(POLL)


async def test_an_agent_whose_desk_stays_away_past_the_grace_goes_offline_and_gets_no_work(names):
    async with apps_with_grace(names, 0.3) as apps, status_changes(names) as snapshots:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        await apps.post("before", "hello")  # the router sees ann online: this one is hers
        assert texts(await desk.frames_until(lambda f: texts(f))) == ["hello"]
        await desk.ws.close()
        await wait_for_status(apps, "ann", "offline")
        snapshot = await next_snapshot(snapshots, "offline")
        assert (snapshot.workspace_id, snapshot.agent_id) == (WORKSPACE, "ann")
        # The snapshot went to the router's queue with ours, ahead of this message: it waits, behind
        # ann's unanswered conversation, which went back to waiting when she went offline.
        await apps.post("after", "anyone there?")
        assert [w["thread_id"] for w in await waiting(apps, 2)] == ["before", "after"]


async def test_a_desk_that_returns_within_the_grace_keeps_the_agent_online(names):
    grace = 2.0
    async with apps_with_grace(names, grace) as apps:
        await apps.put_agent("ann")
        first = await apps.desk("ann")
        await first.ws.close()
        hub = apps.agents.app[SERVICE].hub
        async with asyncio.timeout(15):  # the server sees the close when its handler ends
            while hub.connected((WORKSPACE, "ann")):
                await asyncio.sleep(POLL)
        closed_at = time.monotonic()
        second = await apps.desk("ann")
        # Past the first desk's grace, with the second desk open, ann is still online.
        await stays(apps, "ann", "online", until=closed_at + grace + 0.5)
        await second.ws.close()
        await wait_for_status(apps, "ann", "offline")


async def test_one_of_two_desks_closing_keeps_the_agent_online(names):
    grace = 0.3
    async with apps_with_grace(names, grace) as apps:
        await apps.put_agent("ann")
        laptop = await apps.desk("ann")
        phone = await apps.desk("ann")
        await laptop.ws.close()
        await stays(apps, "ann", "online", until=time.monotonic() + grace + 0.5)
        await phone.ws.close()
        await wait_for_status(apps, "ann", "offline")


async def test_after_a_restart_a_desk_that_never_reconnects_ends_offline_and_one_that_does_keeps_its_agent(names):
    async with apps_with_grace(names, 30) as apps:
        await apps.put_agent("ann")
        await apps.put_agent("bob")
        await apps.desk("ann")
        await apps.desk("bob")
        await apps.put_agent("api-only")  # driven through the API, never a desk
    # The agents service stopped with both desks open; a new one starts with a short grace (long
    # enough for the router and intake to start after it before bob's desk is back).
    grace = 1.5
    async with apps_with_grace(names, grace) as apps:
        await apps.desk("bob")
        await wait_for_status(apps, "ann", "offline")
        await stays(apps, "bob", "online", until=time.monotonic() + grace / 3 + 1.0)  # rounds past ann's offline
        assert await status_of(apps, "api-only") == "online"
