"""Upgrading from one queue per agent: what such a queue still holds moves to the agent's partition.

Before delivery partitions (shared/partitions.py) each agent had a durable queue of its own and a
dead-letter queue beside it. At start the agents service looks for them (a passive declare per
known agent, so nothing is created), moves what each holds to the agent's partition in its order
(each message confirmed there before it is acked here), and deletes the emptied queue. A legacy
dead-letter queue that still holds messages is kept, for an operator to read; an empty one goes.
"""

import contextlib

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel
from aiormq.exceptions import ChannelNotFoundEntity

from shared.broker import Broker

log = structlog.get_logger(__name__)


async def drain_legacy_agent_queues(broker: Broker, agents: list[dict]) -> int:
    """Move every message of the agents' old queues to their partitions; the number moved."""
    assert broker.connection is not None
    moved = 0
    topology = broker.topology
    channel = await broker.connection.channel()
    try:
        for agent in agents:
            key = (agent["workspace_id"], agent["agent_id"])
            name = topology.legacy_agent_queue(*key)
            queue, channel = await _existing(broker, channel, name)
            if queue is None:
                continue
            while (message := await queue.get(no_ack=False, fail=False)) is not None:
                await broker.publish_raw(message.body, topology.agent_routing_key(*key), message_type=message.type or "",
                                         message_id=message.message_id or "", workspace_id=key[0],
                                         exchange=topology.deliveries_exchange, headers=dict(message.headers or {}))
                await message.ack()
                moved += 1
            await queue.delete(if_unused=False, if_empty=True)
            dead, channel = await _existing(broker, channel, topology.dead_letter_queue(name))
            if dead is not None and dead.declaration_result.message_count == 0:
                await dead.delete(if_unused=False, if_empty=True)
            elif dead is not None:
                log.warning("agents.legacy_dead_letters_kept", queue=dead.name,
                            messages=dead.declaration_result.message_count)
            log.info("agents.legacy_queue_drained", queue=name)
    finally:
        with contextlib.suppress(Exception):
            await channel.close()
    return moved


async def _existing(broker: Broker, channel: AbstractChannel, name: str) -> tuple[aio_pika.abc.AbstractQueue | None, AbstractChannel]:
    """The queue if it exists (a passive declare), and a usable channel (a failed declare closes it)."""
    try:
        return await channel.declare_queue(name, passive=True), channel
    except ChannelNotFoundEntity:
        assert broker.connection is not None
        return None, await broker.connection.channel()
