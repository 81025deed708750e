"""Partitions: a fixed number of queues, whatever the number of agents and workspaces.

An agent's deliveries go to partition `hash(workspace/agent) mod SWITCHYARD_PARTITIONS`
(shared/topology.py). Each partition queue has a single active consumer: one replica handles it
at a time, in order, and every other replica consuming it stands by to take over the moment the
active one's connection goes. The hash is blake2b, not Python's `hash()`, so every process of
every version agrees on it.

Which replica is active for a partition: each consumer asks with a priority from rendezvous
hashing of (replica, partition). RabbitMQ 4.0 and later make the highest-priority consumer of a
single-active-consumer quorum queue the active one (once the current one has settled what it holds),
so the partitions spread over the replicas and move again when one joins or leaves; older brokers
keep the first consumer active, which is still correct, only not spread.

Every service of a deployment must use the same number: the first to start records it in
MongoDB (`deployment` collection) and a later one with another number refuses to start, naming both.
"""

import hashlib

from pymongo.asynchronous.database import AsyncDatabase

DEFAULT_PARTITIONS = 8
MAX_PARTITIONS = 64
PRIORITY_RANGE = 100  # consumer priorities 0..99


class PartitionMismatch(RuntimeError):
    pass


def stable_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


def partition_of(key: str, partitions: int) -> int:
    return stable_hash(key) % partitions


def consumer_priority(replica_id: str, queue_name: str) -> int:
    """Rendezvous hashing: the replica with the highest priority for a queue is its active consumer."""
    return stable_hash(f"{replica_id}|{queue_name}") % PRIORITY_RANGE


async def agree_on_partitions(db: AsyncDatabase, partitions: int) -> None:
    """Record the deployment's number of partitions, or refuse one that differs from the recorded one."""
    deployment = db["deployment"]
    await deployment.update_one({"_id": "partitions"}, {"$setOnInsert": {"count": partitions}}, upsert=True)
    recorded = await deployment.find_one({"_id": "partitions"})
    if recorded is not None and recorded["count"] != partitions:
        raise PartitionMismatch(
            f"SWITCHYARD_PARTITIONS is {partitions} here but {recorded['count']} for this deployment's database: "
            "every service must use the same number (changing it means draining the queues first)")
