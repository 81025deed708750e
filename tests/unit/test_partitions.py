"""Partitions: which queue a workspace's inputs and an agent's deliveries go to, and who handles it."""

from collections import Counter

from shared.partitions import consumer_priority, partition_of, stable_hash
from shared.topology import Topology


def test_the_hash_is_the_same_in_every_process_and_version():
    # blake2b, not Python's salted hash(): these values are what every replica computes, always.
    assert stable_hash("default") == stable_hash("default") == 0xFE98B07B1BA6B3A2
    assert partition_of("default", 8) == 0xFE98B07B1BA6B3A2 % 8


def test_workspaces_and_agents_spread_over_the_partitions():
    counts = Counter(partition_of(f"workspace-{n}", 8) for n in range(8000))
    assert set(counts) == set(range(8)) and min(counts.values()) > 800  # about 1,000 each
    topology = Topology("sy", partitions=8)
    agents = Counter(topology.agent_partition("acme", f"agent-{n}") for n in range(8000))
    assert min(agents.values()) > 800


def test_the_queues_are_a_fixed_set_whatever_the_floor():
    topology = Topology("sy", partitions=4)
    assert topology.router_queues() == ("sy.router.work.0", "sy.router.work.1", "sy.router.work.2", "sy.router.work.3")
    assert topology.delivery_queues() == ("sy.deliveries.0", "sy.deliveries.1", "sy.deliveries.2", "sy.deliveries.3")
    keys = {topology.agent_routing_key("acme", f"agent-{n}") for n in range(1000)}
    assert keys == {"0", "1", "2", "3"}  # 1,000 agents, 4 routing keys: no queue per agent
    assert topology.workspace_partition("acme") == partition_of("acme", 4)


def test_replicas_rank_themselves_differently_per_partition():
    """Rendezvous hashing: each partition's highest-priority replica differs, so the active ones spread."""
    replicas = [f"replica-{n}" for n in range(3)]
    queues = [f"sy.router.work.{k}" for k in range(30)]
    winners = Counter(max(replicas, key=lambda r: consumer_priority(r, q)) for q in queues)
    assert len(winners) == 3 and min(winners.values()) >= 5
    assert all(0 <= consumer_priority(r, q) < 100 for r in replicas for q in queues)
