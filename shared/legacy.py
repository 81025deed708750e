"""Upgrading to partitions: what the queues of the old layout still hold moves to the partitions.

Before partitions (shared/partitions.py) the router had one work queue (`<ns>.router.work`) and
each agent a durable queue of its own, each with a dead-letter queue beside it. At start the
router and the agents service look for theirs (a passive declare, so nothing is created), move
what each holds, in its order, to the partition it now belongs to (each message confirmed there
before it is acked here), and delete the emptied queue. A legacy dead-letter queue that still holds
messages is kept for an operator to read; an empty one goes.
"""

import contextlib
from dataclasses import dataclass

import structlog
from aio_pika.abc import AbstractChannel, AbstractQueue
from aiormq.exceptions import ChannelNotFoundEntity

from shared.broker import ROUTING_KEY_HEADER, Broker, routing_key_of

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class LegacyQueue:
    name: str
    bindings: tuple[tuple[str, str], ...]  # (exchange, routing key) that fed it: removed before the drain
    destination: tuple[str, str]  # (exchange, routing key) its messages go to now


async def drain_legacy_queues(broker: Broker, queues: list[LegacyQueue]) -> int:
    """Move every message of each old queue that exists to its destination; the number moved.

    Its bindings go first, so nothing new arrives while it drains; then it is deleted (quorum queues
    refuse an if-empty delete: it is empty because the last get found nothing and nothing feeds it).
    The router partition header is set again from each message's workspace; its routing key is kept
    in a header (`routing_key_of`) for consumers that read it (reporting normalizes by it)."""
    assert broker.connection is not None
    moved = 0
    channel = await broker.connection.channel()
    try:
        for legacy in queues:
            queue, channel = await _existing(broker, channel, legacy.name)
            if queue is None:
                continue
            for exchange, routing_key in legacy.bindings:
                await queue.unbind(exchange, routing_key)
            moved += await _move_all(broker, queue, legacy.destination)
            # Empty (its last get found nothing) and unbound: nothing can arrive before the delete.
            await queue.delete(if_unused=False, if_empty=False)
            log.info("legacy.queue_drained", queue=legacy.name)
            dead, channel = await _existing(broker, channel, broker.topology.dead_letter_queue(legacy.name))
            if dead is not None and dead.declaration_result.message_count == 0:
                await dead.delete(if_unused=False, if_empty=False)
            elif dead is not None:
                log.warning("legacy.dead_letters_kept", queue=dead.name, messages=dead.declaration_result.message_count)
    finally:
        with contextlib.suppress(Exception):
            await channel.close()
    return moved


async def _move_all(broker: Broker, queue: AbstractQueue, destination: tuple[str, str]) -> int:
    moved = 0
    exchange, routing_key = destination
    while (message := await queue.get(no_ack=False, fail=False)) is not None:
        # It goes to its destination by that key, so its own key travels in a header (routing_key_of).
        headers = {ROUTING_KEY_HEADER: routing_key_of(message)} | dict(message.headers or {})
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
