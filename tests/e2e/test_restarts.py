"""Kill -9 and restart one service while messages flow: nothing lost, nothing twice, nothing moved."""

import asyncio

import aiohttp
import pytest

from tests.e2e.broker_node import BrokerNode, rabbitmq_installed
from tests.e2e.client import DeskRecorder, StackClient

THREADS = 12
MESSAGES = 240


@pytest.mark.e2e
@pytest.mark.parametrize("victim", ["intake", "router", "agents"])
async def test_killing_a_service_mid_flow_loses_and_duplicates_nothing(stack, victim):
    async with aiohttp.ClientSession() as session:
        client = StackClient(session, stack.intake_url, stack.agents_url, stack.api_key)
        await client.put_agent("ann")
        desk = DeskRecorder(session, stack.agents_url, "ann", stack.api_key)
        desk.start()
        try:
            # A first message on every thread opens its conversation before the kill.
            expected = {await client.post_until_accepted(f"c{t}", "open", f"open-{t}") for t in range(THREADS)}
            before = await _wait_for_messages(client, expected)
            owners = {c["thread_id"]: (c["conversation_id"], c["assignee_id"]) for c in before}

            async def post_all(start: int, stop: int) -> set[str]:
                ids = set()
                for i in range(start, stop):
                    ids.add(await client.post_until_accepted(f"c{i % THREADS}", f"m{i}", f"m-{i}"))
                return ids

            flow = asyncio.create_task(post_all(0, MESSAGES))
            await _until(lambda: len(desk.live_message_ids) >= THREADS + MESSAGES // 4)
            stack.stack.kill(victim)  # SIGKILL: no graceful shutdown
            stack.stack.start(victim)
            expected |= await flow
            after = await _wait_for_messages(client, expected)
            await _until(lambda: desk.seen >= expected)  # a desk that reconnected resyncs from its snapshot
        finally:
            await desk.stop()

    stored = [m["message_id"] for c in after for m in c["messages"] if m["direction"] == "inbound"]
    assert len(stored) == len(set(stored)) == THREADS + MESSAGES, "a message was lost or stored twice"
    assert {c["thread_id"]: (c["conversation_id"], c["assignee_id"]) for c in after} == owners
    for conversation in after:  # per-conversation order is arrival order
        numbers = [int(m["text"][1:]) for m in conversation["messages"] if m["text"] != "open"]
        assert numbers == sorted(numbers)
    duplicates = len(desk.live_message_ids) - len(set(desk.live_message_ids))
    assert duplicates == 0, f"the desk got {duplicates} messages twice"


async def _wait_for_messages(client: StackClient, expected: set[str], timeout: float = 90) -> list[dict]:
    async with asyncio.timeout(timeout):
        while True:
            try:
                conversations = await client.conversations("ann")
                stored = {m["message_id"] for c in conversations for m in c["messages"]}
                if stored >= expected:
                    return conversations
            except (aiohttp.ClientError, KeyError):
                pass  # the agents service may be restarting
            await asyncio.sleep(0.2)  # poll; the condition ends the wait


async def _until(condition, timeout: float = 60) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.05)


@pytest.fixture
def broker_node():
    if not rabbitmq_installed():
        pytest.skip("rabbitmq-server is not installed: the broker restart test runs its own node")
    node = BrokerNode()
    node.start()
    yield node
    node.remove()


@pytest.mark.e2e
async def test_restarting_rabbitmq_mid_flow_loses_and_duplicates_nothing(stack_factory, broker_node):
    built = stack_factory(AMQP_URL=broker_node.url)
    built.start_all()
    async with aiohttp.ClientSession() as session:
        client = StackClient(session, built.url("intake"), built.url("agents"), "test-key")
        await client.put_agent("ann")
        desk = DeskRecorder(session, built.url("agents"), "ann", "test-key")
        desk.start()
        try:
            expected = {await client.post_until_accepted(f"c{t}", "open", f"open-{t}") for t in range(THREADS)}
            before = await _wait_for_messages(client, expected)
            owners = {c["thread_id"]: (c["conversation_id"], c["assignee_id"]) for c in before}

            async def post_all() -> set[str]:
                return {await client.post_until_accepted(f"c{i % THREADS}", f"m{i}", f"m-{i}", deadline=120) for i in range(MESSAGES)}

            flow = asyncio.create_task(post_all())
            await _until(lambda: len(desk.live_message_ids) >= THREADS + MESSAGES // 4)
            await asyncio.to_thread(broker_node.stop)
            await asyncio.to_thread(broker_node.start)
            expected |= await flow
            after = await _wait_for_messages(client, expected, timeout=120)
            await _until(lambda: desk.seen >= expected, timeout=60)
        finally:
            await desk.stop()
    stored = [m["message_id"] for c in after for m in c["messages"] if m["direction"] == "inbound"]
    assert len(stored) == len(set(stored)) == THREADS + MESSAGES
    assert {c["thread_id"]: (c["conversation_id"], c["assignee_id"]) for c in after} == owners
    duplicates = len(desk.live_message_ids) - len(set(desk.live_message_ids))
    assert duplicates == 0, f"the desk got {duplicates} messages twice"
