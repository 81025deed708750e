"""`python -m deploy.cleanup` through the management API, on a RabbitMQ node of the test's own
(the machine's broker is shared: `--tests` there would take other people's running tests)."""

import asyncio
import shutil
import sys
from collections.abc import Iterator

import aio_pika
import aiormq.exceptions
import pytest

from deploy.local import ROOT, free_port, port_answers, wait_until
from tests.e2e.broker_node import BrokerNode, rabbitmq_installed


class ManagedBrokerNode(BrokerNode):
    """A node of its own with the management plugin, on a port of its own."""

    def __init__(self) -> None:
        super().__init__()
        self.management_port = free_port()
        (self.base / "enabled_plugins").write_text("[rabbitmq_management].\n")
        with open(self.base / "rabbitmq.conf", "a") as conf:
            conf.write(f"management.tcp.ip = 127.0.0.1\nmanagement.tcp.port = {self.management_port}\n")
        for path in (self.base / "enabled_plugins", self.base / "rabbitmq.conf"):
            shutil.chown(path, "rabbitmq", "rabbitmq")

    @property
    def management_url(self) -> str:
        return f"http://127.0.0.1:{self.management_port}"

    def start(self) -> None:
        super().start()
        wait_until(lambda: port_answers("127.0.0.1", self.management_port), 90, "the node's management API")


@pytest.fixture
def node() -> Iterator[ManagedBrokerNode]:
    if not rabbitmq_installed():
        pytest.skip("rabbitmq-server is not installed: this test runs a node of its own")
    node = ManagedBrokerNode()
    node.start()
    try:
        yield node
    finally:
        node.remove()


async def cleanup(node: ManagedBrokerNode, *args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "deploy.cleanup", "--amqp-url", node.url, "--management-url", node.management_url, *args,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0, out.decode()
    return out.decode()


async def existing(connection: aio_pika.abc.AbstractConnection, names: list[str]) -> list[str]:
    found = []
    for name in names:
        channel = await connection.channel()
        try:
            await channel.declare_queue(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            continue
        found.append(name)
        await channel.close()
    return found


@pytest.mark.e2e
async def test_tests_removes_idle_test_namespaces_only(node):
    idle, busy = "t0123456789ab", "tfedcba987654"
    others = ["switchyard.router.work", "t0123.router.work", "t0123456789abc.router.work", "bench0123456789ab.router.work"]
    idle_queues = [f"{idle}.router.work", f"{idle}.agent.default.ann", f"{idle}.agent.default.ann.dlq", f"{idle}.retry"]
    async with await aio_pika.connect(node.url) as connection:
        channel = await connection.channel()
        for name in [*idle_queues, f"{busy}.router.work", *others]:
            await channel.declare_queue(name, durable=True, arguments={"x-queue-type": "quorum"})
        await channel.declare_exchange(f"{idle}.events", aio_pika.ExchangeType.TOPIC, durable=True)
        busy_queue = await channel.get_queue(f"{busy}.router.work")
        await busy_queue.consume(ignore)

        listed = await cleanup(node)
        assert "listed through the management API" in listed
        assert any(line.split()[:2] == [idle, "4"] and line.rstrip().endswith("yes") for line in listed.splitlines()), listed

        removed = await cleanup(node, "--tests")
        assert f"{idle}: deleted 4 queues and 1 exchanges" in removed, removed
        assert f"{busy}: kept 1 queues, in use" in removed, removed
        assert await existing(connection, idle_queues) == []
        assert await existing(connection, [f"{busy}.router.work", *others]) == [f"{busy}.router.work", *others]


async def ignore(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    """A consumer that takes nothing: it only marks its namespace as in use."""
