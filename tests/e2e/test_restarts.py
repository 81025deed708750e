"""Kill -9 and restart one service, or stop and start RabbitMQ, while messages flow:
nothing lost, nothing twice, nothing moved, order kept."""

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest

from tests.e2e.broker_node import BrokerNode, rabbitmq_installed
from tests.e2e.client import DeskRecorder, StackClient

THREADS = 12
MESSAGES = 240


@pytest.fixture
def broker_node():
    if not rabbitmq_installed():
        pytest.skip("rabbitmq-server is not installed: the broker restart test runs its own node")
    node = BrokerNode()
    node.start()
    yield node
    node.remove()


@pytest.mark.e2e
@pytest.mark.parametrize("victim", ["intake", "router", "agents"])
async def test_killing_a_service_mid_flow_loses_and_duplicates_nothing(stack, victim):
    async def kill_and_restart() -> None:
        stack.stack.kill(victim)  # SIGKILL: no graceful shutdown
        stack.stack.start(victim)

    flow = await flow_through_disruption(stack.intake_url, stack.agents_url, stack.api_key, kill_and_restart)
    flow.assert_nothing_lost_twice_or_moved()


@pytest.mark.e2e
async def test_restarting_rabbitmq_mid_flow_loses_and_duplicates_nothing(stack_factory, broker_node):
    built = stack_factory(AMQP_URL=broker_node.url)
    built.start_all()

    async def restart_broker() -> None:
        await asyncio.to_thread(broker_node.stop)
        await asyncio.to_thread(broker_node.start)

    flow = await flow_through_disruption(built.url("intake"), built.url("agents"), "test-key", restart_broker, patience=120)
    flow.assert_nothing_lost_twice_or_moved()


@dataclass
class Flow:
    owners_before: dict[str, tuple[str, str]]  # thread -> (conversation, assignee)
    conversations_after: list[dict]
    live_message_ids: list[str]

    def assert_nothing_lost_twice_or_moved(self) -> None:
        after = self.conversations_after
        stored = [m["message_id"] for c in after for m in c["messages"] if m["direction"] == "inbound"]
        assert len(stored) == len(set(stored)) == THREADS + MESSAGES, "a message was lost or stored twice"
        assert _owners(after) == self.owners_before, "a conversation changed hands or was reopened"
        for conversation in after:  # per-conversation order is arrival order
            numbers = [int(m["text"][1:]) for m in conversation["messages"] if m["text"] != "open"]
            assert numbers == sorted(numbers)
        duplicates = len(self.live_message_ids) - len(set(self.live_message_ids))
        assert duplicates == 0, f"the desk got {duplicates} messages twice"


async def flow_through_disruption(
    intake_url: str, agents_url: str, api_key: str, disrupt: Callable[[], Awaitable[None]], patience: float = 90
) -> Flow:
    """Open THREADS conversations, then post MESSAGES follow-ups (retrying like a careful client)
    and run `disrupt` once a quarter of them reached the desk; wait until everything is stored."""
    async with aiohttp.ClientSession() as session:
        client = StackClient(session, intake_url, agents_url, api_key)
        await client.put_agent("ann")
        desk = DeskRecorder(session, agents_url, "ann", api_key)
        desk.start()
        try:
            expected = {await client.post_until_accepted(f"c{t}", "open", f"open-{t}") for t in range(THREADS)}
            owners = _owners(await _wait_for_messages(client, expected, patience))

            async def post_all() -> set[str]:
                return {await client.post_until_accepted(f"c{i % THREADS}", f"m{i}", f"m-{i}", deadline=patience)
                        for i in range(MESSAGES)}

            posting = asyncio.create_task(post_all())
            await _until(lambda: len(desk.live_message_ids) >= THREADS + MESSAGES // 4)
            await disrupt()
            expected |= await posting
            after = await _wait_for_messages(client, expected, patience)
            await _until(lambda: desk.seen >= expected)  # a desk that reconnected resyncs from its snapshot
        finally:
            await desk.stop()
    return Flow(owners, after, desk.live_message_ids)


def _owners(conversations: list[dict]) -> dict[str, tuple[str, str]]:
    return {c["thread_id"]: (c["conversation_id"], c["assignee_id"]) for c in conversations}


async def _wait_for_messages(client: StackClient, expected: set[str], timeout: float) -> list[dict]:
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
