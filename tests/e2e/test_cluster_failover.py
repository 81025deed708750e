"""The stack on a three-node RabbitMQ cluster of the test's own (AMQP_URL naming the three nodes);
kill -9 the node every service is connected to, under load. The services reconnect through the
other nodes and the quorum queues elect leaders there: nothing lost or stored twice, one agent
per conversation, no agent over capacity, order per conversation kept, and messages posted after
the kill are routed to a desk."""

import asyncio
import json
import time

import aiohttp
import pytest

from tests.conftest import API_KEY
from tests.e2e.broker_node import BrokerNode
from tests.e2e.client import StackClient, TimedDeskRecorder
from tests.e2e.test_router_failover import (
    AGENTS,
    PATIENCE,
    POSTERS,
    TOTAL,
    Load,
    _assigned_after,
    _first_delivery_after_kill,
    _stored_conversations,
    assert_no_agent_over_capacity,
    assert_nothing_lost_twice_or_reordered,
    assert_one_agent_per_conversation,
    start_desks,
    until_mid_load,
)

SERVICES = ("agents", "router", "intake")  # agents first: it declares the delivery queues


@pytest.mark.e2e
async def test_killing_the_connected_node_of_a_cluster_under_load_loses_nothing(cluster, stack_factory):
    # `cluster` first: set up before the stack, so it is torn down after the stack stopped.
    built = stack_factory(AMQP_URL=cluster.url)
    for service in SERVICES:
        built.start(service)
    first, *others = cluster.nodes
    assert_quorum_queues_on_every_node(first, built.env["SWITCHYARD_NAMESPACE"], len(cluster.nodes))
    # Every service connects through the first node of the list: that is the one to kill.
    assert connected_services(first, built.env["SWITCHYARD_NAMESPACE"]) == len(SERVICES)

    agents = [f"agent-{i}" for i in range(AGENTS)]
    async with aiohttp.ClientSession() as session:
        client = StackClient(session, built.url("intake"), built.url("agents"), API_KEY)
        desks = {a: TimedDeskRecorder(session, client.agents_url, a, API_KEY) for a in agents}
        try:
            await start_desks(client, desks)
            load = Load(client, desks)
            async with asyncio.timeout(3 * PATIENCE), asyncio.TaskGroup() as tasks:  # a failing task fails the test
                for poster in range(POSTERS):
                    tasks.create_task(load.post(poster))
                tasks.create_task(load.resolve_finished())
                await until_mid_load(load)
                accepted_before_kill, resolved_before_kill = load.accepted(), len(load.resolved)
                load.killed_at = time.monotonic()
                await asyncio.to_thread(first.kill)  # SIGKILL of its beam.smp: no goodbye to anyone
                load.killed.set()
                delivered = await _first_delivery_after_kill(load)
            stored = await _stored_conversations(client, set(load.sent_at))
        finally:
            for desk in desks.values():
                await desk.stop()
    reconnected = sum(connected_services(node, built.env["SWITCHYARD_NAMESPACE"]) for node in others)

    print(f"\nkilled {first.name}; a message posted after the kill reached a desk after {delivered:.3f}s; "
          f"before the kill: {accepted_before_kill}/{TOTAL} posts, {resolved_before_kill} resolves; "
          f"assignments after it: {_assigned_after(desks, load.killed_at)}; services reconnected: {reconnected}")
    assert_nothing_lost_twice_or_reordered(stored, load)
    assert_one_agent_per_conversation(stored, desks)
    assert_no_agent_over_capacity(stored)
    assert _assigned_after(desks, load.killed_at) > 0, "no waiting conversation was assigned after the kill"
    assert reconnected == len(SERVICES), "a service did not reconnect through the other nodes"


def assert_quorum_queues_on_every_node(node: BrokerNode, namespace: str, size: int) -> None:
    """Each quorum queue of the stack has a member on every node (its initial group is the cluster)."""
    listed = json.loads(node.ctl("list_queues", "name", "type", "members", "--formatter", "json", "--quiet"))
    quorum = [q for q in listed if q["name"].startswith(f"{namespace}.") and q["type"] == "quorum"]
    assert quorum, f"no quorum queue of {namespace} listed"
    for queue in quorum:
        assert len(queue["members"]) == size, f"{queue['name']} has members {queue['members']}"


def connected_services(node: BrokerNode, namespace: str) -> int:
    """How many of the stack's connections (named after the namespace) came in on `node`'s port."""
    listed = json.loads(node.ctl("list_connections", "port", "client_properties", "--formatter", "json", "--quiet"))
    return sum(
        1 for c in listed
        if c["port"] == node.port and any(p[0] == "connection_name" and p[2] == namespace for p in c["client_properties"])
    )
