"""Fixtures: the real broker and database, and per-test isolation by name.

RabbitMQ comes from AMQP_URL (started locally if installed and silent; of a cluster's node list,
the tests take the first node, since they connect with plain aio_pika.connect); MongoDB from
MONGO_URL, else an embedded SecantusDB started for the session. Every test gets a namespace
of its own (exchange and queue names) and a database of its own, removed afterwards.
"""

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from deploy.local import (
    Infrastructure,
    LocalSettings,
    Stack,
    bring_up_infrastructure,
    free_port,
    remove_namespace,
    stack_env,
)
from shared.amqp_hosts import first_broker_url
from shared.topology import Topology

API_KEY = "test-key"
WORKSPACE = "default"
# Test stacks run on fewer partitions than a deployment's default: each test declares its own queues.
PARTITIONS = 2


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infrastructure]:
    log = tmp_path_factory.mktemp("mongo") / "secantusd.log"
    settings = LocalSettings(amqp_url=first_broker_url(LocalSettings().amqp_url))
    infra = bring_up_infrastructure(settings, ":memory:", free_port(), log)
    try:
        yield infra
    finally:
        infra.stop()


@dataclass(frozen=True)
class Names:
    """One test's namespace and database, and the settings every service gets in it."""

    infra: Infrastructure
    namespace: str

    @property
    def topology(self) -> Topology:
        return Topology(self.namespace, "quorum", PARTITIONS)

    def settings(self, cls, **overrides):
        return cls(
            amqp_url=self.infra.amqp_url,
            mongo_url=self.infra.mongo_url,
            mongo_db=self.namespace,
            namespace=self.namespace,
            api_keys={API_KEY: WORKSPACE, "other-key": "other"},
            **({"partitions": PARTITIONS} | overrides),
        )

    def env(self) -> dict[str, str]:
        return stack_env(self.infra, self.namespace, f"{WORKSPACE}:{API_KEY},other:other-key") | {
            "SWITCHYARD_PARTITIONS": str(PARTITIONS)}


@pytest.fixture
async def names(infra: Infrastructure) -> AsyncIterator[Names]:
    names = Names(infra, f"t{uuid.uuid4().hex[:12]}")
    yield names
    await remove_namespace(infra.amqp_url, infra.mongo_url, names.namespace)


@asynccontextmanager
async def serve(app: web.Application) -> AsyncIterator[TestClient]:
    """Run an app on a real local port (its cleanup context included) and give a client for it."""
    client = TestClient(TestServer(app, host="127.0.0.1", port=free_port()))
    await client.start_server()
    try:
        yield client
    finally:
        await client.close()


def auth(key: str = API_KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def stack_factory(names: Names, tmp_path: Path) -> Iterator:
    """Build the three services as real processes in this test's namespace."""
    stacks: list[Stack] = []

    def build(**extra_env: str) -> Stack:
        stack = Stack.on_free_ports(names.env() | extra_env, log_dir=tmp_path)
        stacks.append(stack)
        return stack

    yield build
    for stack in stacks:
        stack.stop_all()


@dataclass
class RunningStack:
    intake_url: str
    agents_url: str
    router_url: str
    api_key: str
    workspace: str
    stack: Stack


@pytest.fixture
def stack(stack_factory) -> RunningStack:
    """The whole system running: intake, router and agents as processes."""
    built = stack_factory()
    built.start_all()
    return RunningStack(built.url("intake"), built.url("agents"), built.url("router"), API_KEY, WORKSPACE, built)
