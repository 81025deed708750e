"""Upgrading to partitions: what the queues of the old layout still hold moves to the partitions.

Before partitions (shared/partitions.py) the router had one work queue (`<ns>.router.work`) and
each agent a durable queue of its own, each with a dead-letter queue beside it. At start the
router and the agents service look for theirs (a passive declare, so nothing is created), move
what each holds, in its order, to the partition it now belongs to (each message confirmed there
before it is acked here), and delete the emptied queue. A legacy dead-letter queue that still holds
messages is kept for an operator to read; an empty one goes.
"""

import contextlib

import structlog
from aio_pika.abc import AbstractChannel, AbstractQueue
from aiormq.exceptions import ChannelNotFoundEntity

from shared.broker import Broker

log = structlog.get_logger(__name__)


async def drain_legacy_queues(broker: Broker, destinations: dict[str, tuple[str, str]]) -> int:
    """Move every message of each old queue that exists to its destination, (exchange, routing key);
    the number moved. The router partition header is set again from each message's workspace."""
    assert broker.connection is not None
    moved = 0
    channel = await broker.connection.channel()
    try:
        for name, destination in destinations.items():
            queue, channel = await _existing(broker, channel, name)
            if queue is None:
                continue
            moved += await _move_all(broker, queue, destination)
            await queue.delete(if_unused=False, if_empty=True)
            dead, channel = await _existing(broker, channel, broker.topology.dead_letter_queue(name))
            if dead is not None and dead.declaration_result.message_count == 0:
                await dead.delete(if_unused=False, if_empty=True)
            elif dead is not None:
                log.warning("legacy.dead_letters_kept", queue=dead.name, messages=dead.declaration_result.message_count)
            log.info("legacy.queue_drained", queue=name)
    finally:
        with contextlib.suppress(Exception):
            await channel.close()
    return moved


async def _move_all(broker: Broker, queue: AbstractQueue, destination: tuple[str, str]) -> int:
    moved = 0
    exchange, routing_key = destination
    while (message := await queue.get(no_ack=False, fail=False)) is not None:
        headers = dict(message.headers or {})
        workspace_id = str(headers.get("workspace_id", ""))
        await broker.publish_raw(message.body, routing_key, message_type=message.type or "",
                                 message_id=message.message_id or "", workspace_id=workspace_id,
                                 exchange=exchange, headers=headers | broker.routing_headers(workspace_id))
        await message.ack()
        moved += 1
    return moved


async def _existing(broker: Broker, channel: AbstractChannel, name: str) -> tuple[AbstractQueue | None, AbstractChannel]:
    """The queue if it exists (a passive declare), and a usable channel (a failed declare closes it)."""
    try:
        return await channel.declare_queue(name, passive=True), channel
    except ChannelNotFoundEntity:
        assert broker.connection is not None
        return None, await broker.connection.channel()
