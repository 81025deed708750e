"""Removing a namespace's leftovers from the real broker (`python -m deploy.cleanup`,
`remove_namespace`): everything named `<ns>.*` goes, nothing else, and a namespace in use stays.

Only namespaces of these tests' own are removed here: the broker is shared, so `--tests`, which
removes every test namespace, runs against a node of its own (tests/e2e/test_cleanup_node.py)."""

import asyncio
import contextlib
import os
import select
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aio_pika
import aiormq.exceptions
import pytest
from pymongo import AsyncMongoClient

from deploy import cleanup
from deploy.cleanup import (
    TEST_NAMESPACE,
    Broker,
    CleanupSettings,
    Listing,
    Queue,
    check_namespace,
    list_broker,
    remove_namespaces,
)
from deploy.local import ROOT, free_port, remove_namespace

CLASSIC = {"x-queue-type": "classic"}
QUORUM = {"x-queue-type": "quorum"}


class BrokerView:
    """Declares names on the real broker, says which exist, and deletes what it declared."""

    def __init__(self, connection: aio_pika.abc.AbstractConnection) -> None:
        self.connection = connection
        self.queues: list[str] = []
        self.exchanges: list[str] = []

    async def queue(self, name: str, arguments: dict = CLASSIC) -> aio_pika.abc.AbstractQueue:
        self.queues.append(name)
        channel = await self.connection.channel()
        return await channel.declare_queue(name, durable=True, arguments=arguments)

    async def exchange(self, name: str) -> None:
        self.exchanges.append(name)
        channel = await self.connection.channel()
        await channel.declare_exchange(name, aio_pika.ExchangeType.TOPIC, durable=True)

    async def queue_exists(self, name: str) -> bool:
        channel = await self.connection.channel()  # a passive declare of a missing queue closes its channel
        try:
            await channel.declare_queue(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        await channel.close()
        return True

    async def exchange_exists(self, name: str) -> bool:
        channel = await self.connection.channel()
        try:
            await channel.declare_exchange(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return False
        await channel.close()
        return True

    async def delete_all(self) -> None:
        for name in self.queues:
            async with self.connection.channel() as channel:
                await channel.queue_delete(name)
        for name in self.exchanges:
            async with self.connection.channel() as channel:
                await channel.exchange_delete(name)


async def ack(message: aio_pika.abc.AbstractIncomingMessage) -> None:
    await message.ack()


@pytest.fixture
async def broker(infra) -> AsyncIterator[BrokerView]:
    async with await aio_pika.connect(infra.amqp_url) as connection:
        view = BrokerView(connection)
        try:
            yield view
        finally:
            await view.delete_all()


@pytest.fixture
async def listed(infra) -> Broker:
    """The broker, if it can be listed here (management API at SWITCHYARD_MANAGEMENT_URL, or rabbitmqctl)."""
    target = Broker.from_urls(infra.amqp_url, CleanupSettings().management_url)
    listing, failures = await list_broker(target)
    if listing is None:
        pytest.skip(f"the broker cannot be listed here: {failures}")
    return target


async def test_the_command_removes_every_name_of_the_namespace_and_nothing_else(infra, names, broker, listed):
    ns = names.namespace
    mine = [f"{ns}.router.work", f"{ns}.agent.default.ann", f"{ns}.agent.default.ann.dlq",
            f"{ns}.router.work.retry.1", f"{ns}.agents.signals.0123456789ab"]
    await broker.queue(mine[0], QUORUM)
    for name in mine[1:]:
        await broker.queue(name)
    for name in (f"{ns}.events", f"{ns}.park"):
        await broker.exchange(name)
    # Names that only look alike: another namespace that starts with ours, and our name without a dot.
    neighbours = [f"{ns}x.router.work", ns]
    for name in neighbours:
        await broker.queue(name)
    await broker.exchange(f"{ns}x.events")

    done = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "deploy.cleanup", "--namespace", ns, "--amqp-url", infra.amqp_url, cwd=ROOT,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(done.communicate(), 90)
    assert done.returncode == 0, err.decode()
    assert f"{ns}: deleted 5 queues and 2 exchanges" in out.decode(), out.decode() + err.decode()

    assert [name for name in mine if await broker.queue_exists(name)] == []
    assert not await broker.exchange_exists(f"{ns}.events") and not await broker.exchange_exists(f"{ns}.park")
    assert all([await broker.queue_exists(name) for name in neighbours])
    assert await broker.exchange_exists(f"{ns}x.events")


async def test_a_namespace_in_use_is_kept_until_its_consumer_is_gone(names, broker, listed):
    ns = names.namespace
    work = await broker.queue(f"{ns}.agents.status")
    await broker.queue(f"{ns}.agents.status.dlq")
    await broker.exchange(f"{ns}.events")
    tag = await work.consume(ack)

    listing, _ = await list_broker(listed)
    [kept] = await remove_namespaces(listed, listing, [ns])
    assert kept.skipped and kept.skipped.startswith("in use")
    assert await broker.queue_exists(f"{ns}.agents.status.dlq")  # not even the idle queue beside it

    await work.cancel(tag)
    listing, _ = await list_broker(listed)
    [removal] = await remove_namespaces(listed, listing, [ns])
    assert sorted(removal.deleted_queues) == [f"{ns}.agents.status", f"{ns}.agents.status.dlq"]
    assert removal.deleted_exchanges == [f"{ns}.events"]


async def test_the_broker_not_the_listing_says_whether_a_namespace_is_in_use(infra, names, broker):
    # The management API's consumer counts lag by seconds: a listing may say 0 while a stack consumes.
    ns = names.namespace
    work = await broker.queue(f"{ns}.router.work")
    await broker.queue(f"{ns}.router.work.dlq")
    await work.consume(ack)
    stale = Listing("a listing made before the consumer came", (Queue(f"{ns}.router.work"), Queue(f"{ns}.router.work.dlq")), ())

    [removal] = await remove_namespaces(Broker.from_urls(infra.amqp_url), stale, [ns])
    assert removal.skipped and removal.skipped.startswith("in use") and removal.deleted_queues == []
    assert await broker.queue_exists(f"{ns}.router.work") and await broker.queue_exists(f"{ns}.router.work.dlq")


async def test_without_a_list_the_names_the_code_knows_are_removed(infra, names, broker):
    """What runs after every test where the management API is off: known names, agents from the database."""
    ns = names.namespace
    known = [f"{ns}.router.work", f"{ns}.router.work.dlq", f"{ns}.agent.default.ann", f"{ns}.agent.default.ann.dlq",
             f"{ns}.intake.outbound.sms", f"{ns}.bench.hop1"]
    for name in known:
        await broker.queue(name)
    await broker.exchange(f"{ns}.events")
    await broker.exchange(f"{ns}.deliveries")
    mongo = AsyncMongoClient(infra.mongo_url)
    try:
        await mongo[ns]["agents"].insert_one({"workspace_id": "default", "agent_id": "ann"})
        closed = f"http://127.0.0.1:{free_port()}"  # no management API there
        await remove_namespace(infra.amqp_url, infra.mongo_url, ns, (f"{ns}.bench.hop1",), management_url=closed)
        assert ns not in await mongo.list_database_names()
    finally:
        await mongo.close()
    assert [name for name in known if await broker.queue_exists(name)] == []
    assert not await broker.exchange_exists(f"{ns}.events") and not await broker.exchange_exists(f"{ns}.deliveries")


def test_namespaces_are_the_first_dotted_component_and_tests_are_t_and_12_hex():
    listing = Listing(
        "made here",
        (Queue("t0123456789ab.router.work", 3, 1), Queue("t0123456789ab.agent.default.ann"),
         Queue("switchyard.router.work"), Queue("t0123456789abc.router.work"), Queue("solo")),
        ("", "amq.topic", "bench0123456789ab.events"),
    )
    assert listing.namespaces() == ["bench0123456789ab", "solo", "switchyard", "t0123456789ab", "t0123456789abc"]
    assert [ns for ns in listing.namespaces() if TEST_NAMESPACE.fullmatch(ns)] == ["t0123456789ab"]
    assert [q.name for q in listing.of("t0123456789ab").queues] == ["t0123456789ab.router.work", "t0123456789ab.agent.default.ann"]
    table = cleanup.summary_table(listing)
    assert any(line.split() == ["t0123456789ab", "2", "3", "1", "0", "yes"] for line in table), table


@pytest.mark.parametrize("bad", ["", "amq", "*", "a b", ".x", "t#"])
def test_a_namespace_that_could_reach_other_names_is_refused(bad):
    with pytest.raises(ValueError):
        check_namespace(bad)


async def test_a_name_outside_the_namespace_is_never_deleted(infra, names, broker):
    ns = names.namespace
    await broker.queue(f"{ns}x.router.work")
    forged = Listing("a listing that lies", (Queue(f"{ns}x.router.work"),), ())
    async with await aio_pika.connect(infra.amqp_url) as connection:
        deleter = cleanup._Deleter(connection, ns)
        with pytest.raises(ValueError, match="not in namespace"):
            await deleter.queue(forged.queues[0].name)
    assert await broker.queue_exists(f"{ns}x.router.work")


def test_a_hung_listing_command_is_ended_with_everything_it_started(tmp_path):
    # Debian's rabbitmqctl runs its VM under `su`, in a session of its own: on a silent node it
    # hangs, and killing only the command left that VM behind for good.
    pid_file = tmp_path / "child.pid"
    script = f"setsid sleep 300 & echo $! > {pid_file}; wait"
    with pytest.raises(cleanup.SourceUnavailable, match="no answer within 1s"):
        cleanup.run_bounded(["sh", "-c", script], 1)
    child = int(pid_file.read_text())
    # SIGKILL was sent before run_bounded returned; the kernel may take a moment to end the process.
    with contextlib.suppress(ProcessLookupError):
        exited = os.pidfd_open(child)
        try:
            select.select([exited], [], [], 5)  # readable once the process has ended
        finally:
            os.close(exited)
    assert not alive(child), f"process {child} outlived the timeout"


def alive(pid: int) -> bool:
    """Running, not merely a zombie waiting for init to reap it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"
