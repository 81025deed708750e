"""A socket relay: frames reach a WebSocket whichever replica of the service holds it.

A service runs as N replicas; the replica that produces a frame (it handled a delivery, a reply
left through it) is often not the one the desk or chat socket is connected to. Each service has a
durable direct exchange `<ns>.relay.<service>` (shared/topology.py) and each of its processes an
exclusive, auto-delete classic queue of its own, bound by the key of every (workspace, id) it holds
a socket of: bound on the key's first local socket, unbound on its last.

Sending a frame: the process gives it to its own sockets of the key at once, then publishes it
(transient, non-mandatory, no confirm) with its process id as `app_id`; every process bound to
the key gets it and skips its own. So one replica costs no extra broker round trip for its own
desks, and frames one process sends for one key keep their order everywhere (one channel, one
queue, one reader, in order).

Frames are ephemeral: what they say is in MongoDB, and a socket that reconnects gets a snapshot or
its history. So a frame no process is bound for is dropped by the broker, and after the relay's
channel comes back from a broker outage (aio-pika's RobustQueue declares the queue again and
restores its bindings) every local socket is asked to resync (`resync`: the hubs close them with
1012, "service restart", and the pages reconnect), since frames of the outage were lost.

Routing keys are a hash of (workspace, id): ids may be long or hold dots; the exact key travels in
the body, so a hash collision costs a frame nobody here shows, never a frame on the wrong socket.
"""

import asyncio
import json
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue
from aio_pika.exceptions import DeliveryError
from aiormq.exceptions import AMQPError, ChannelInvalidStateError, PublishError

from shared.broker import Broker
from shared.partitions import stable_hash
from shared.topology import RELAY_QUEUE_ARGUMENTS, declare_ephemeral_queue

log = structlog.get_logger(__name__)

RelayKey = tuple[str, str]  # (workspace, agent) or (workspace, thread)
Deliver = Callable[[RelayKey, dict], Awaitable[Any]]  # to this process's sockets of the key
Resync = Callable[[], Awaitable[None]]  # every local socket: frames may have been lost

# What watch() raises when the broker is away or refuses: the socket is refused and reconnects.
RELAY_UNAVAILABLE = (TimeoutError, ConnectionError, AMQPError, ChannelInvalidStateError)
PUBLISH_TIMEOUT = 1.0  # seconds: a frame is not worth holding up the work that made it
BIND_TIMEOUT = 5.0  # seconds: a socket whose key cannot be bound is refused (it reconnects)
MAX_PENDING = 10_000  # frames read but not yet shown; beyond, the sockets resync
KEY_SEPARATOR = "\x1f"  # a character no id holds: ("ab", "c") and ("a", "bc") hash apart


def relay_key(workspace_id: str, local_id: str) -> str:
    """The fixed-length routing key of (workspace, agent or thread): 16 hex digits, whatever the ids."""
    return f"{stable_hash(workspace_id + KEY_SEPARATOR + local_id):016x}"


def encode(process_id: str, key: RelayKey, frame: dict) -> aio_pika.Message:
    return aio_pika.Message(json.dumps({"key": list(key), "frame": frame}).encode(), content_type="application/json",
                            delivery_mode=aio_pika.DeliveryMode.NOT_PERSISTENT, app_id=process_id)


def decode(body: bytes) -> tuple[RelayKey, dict]:
    """The key and frame of a relayed message; ValueError for anything else."""
    data = json.loads(body)
    if not isinstance(data, dict):
        raise ValueError("not a relayed frame: not a JSON object")
    key, frame = data.get("key"), data.get("frame")
    if not (isinstance(key, list) and len(key) == 2 and all(isinstance(part, str) for part in key)
            and isinstance(frame, dict)):
        raise ValueError("not a relayed frame: {key: [workspace, id], frame: {...}}")
    return (key[0], key[1]), frame


class SocketRelay:
    """One process's end of a service's relay: binds the keys it holds sockets of, relays frames."""

    def __init__(self, broker: Broker, service: str, deliver: Deliver, resync: Resync) -> None:
        self.broker = broker
        self.service = service
        self.exchange = broker.topology.relay_exchange(service)
        self.deliver = deliver
        self.resync = resync
        self.process_id = uuid.uuid4().hex  # its own frames, coming back through its queue, are skipped
        self._watched: Counter[str] = Counter()  # routing key -> local sockets of it
        self._binding = asyncio.Lock()  # a key's bind and unbind go in the order they were asked
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=MAX_PENDING)
        self._channel: AbstractChannel | None = None
        self._queue: AbstractQueue | None = None
        self._worker: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        # A robust channel without confirms: after a reconnect its queue is declared, bound and consumed again.
        self._channel = await self.broker.new_channel(prefetch=0, publisher_confirms=False)
        self._queue = await declare_ephemeral_queue(self._channel, self.broker.topology.relay_queue(self.service),
                                                    RELAY_QUEUE_ARGUMENTS)
        await self._queue.consume(self._on_delivery, no_ack=True)
        self._channel.reopen_callbacks.add(self._on_reopen)
        self._worker = asyncio.create_task(self._run(), name=f"relay:{self.service}")

    async def stop(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()  # the queue goes with it
        for task in (self._worker, *self._tasks):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (self._worker, *self._tasks) if t is not None), return_exceptions=True)

    def watching(self, key: RelayKey) -> bool:
        return self._watched[relay_key(*key)] > 0

    async def watch(self, key: RelayKey) -> None:
        """A local socket of the key opened: bind the key (on its first). Raises if the broker would not."""
        assert self._queue is not None, "start() first"
        routing_key = relay_key(*key)
        async with self._binding:
            if self._watched[routing_key] == 0:
                async with asyncio.timeout(BIND_TIMEOUT):
                    await self._queue.bind(self.exchange, routing_key)
            self._watched[routing_key] += 1

    async def unwatch(self, key: RelayKey) -> None:
        """A local socket of the key closed: unbind the key (on its last)."""
        assert self._queue is not None, "start() first"
        routing_key = relay_key(*key)
        async with self._binding:
            if self._watched[routing_key] > 1:
                self._watched[routing_key] -= 1
                return
            self._watched.pop(routing_key, None)
            try:
                async with asyncio.timeout(BIND_TIMEOUT):
                    await self._queue.unbind(self.exchange, routing_key)
            except Exception as error:  # noqa: BLE001 - a binding left over costs frames shown to no one
                log.info("relay.unbind_failed", service=self.service, error=repr(error))

    async def publish(self, key: RelayKey, frame: dict) -> None:
        """Relay a frame to the other processes' sockets of the key; lost (logged) if the broker is away."""
        if self._channel is None or self._channel.is_closed:
            return  # stopped, or reconnecting: the sockets resync once the channel is back
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                exchange = await self._channel.get_exchange(self.exchange, ensure=False)
                await exchange.publish(encode(self.process_id, key, frame), relay_key(*key), mandatory=False)
        except Exception as error:  # noqa: BLE001 - a lost frame is healed by the socket's resync
            log.info("relay.publish_failed", service=self.service, error=repr(error))

    async def publish_confirmed(self, key: RelayKey, frame: dict) -> bool:
        """Relay a frame, as publish() does, and say whether some process holds a socket of the key (its
        queue is bound for it): mandatory and confirmed, so a round trip. For a sender that reports
        `delivered`; frames it relays keep their order among themselves (one channel), not with publish()'s."""
        try:
            async with asyncio.timeout(PUBLISH_TIMEOUT):
                exchange = await self.broker.channel.get_exchange(self.exchange, ensure=False)
                await exchange.publish(encode(self.process_id, key, frame), relay_key(*key), mandatory=True)
        except (DeliveryError, PublishError):  # returned: no process is bound for the key
            return False
        except Exception as error:  # noqa: BLE001 - a lost frame is healed by the socket's resync
            log.info("relay.publish_failed", service=self.service, error=repr(error))
            return False
        return True

    async def _on_delivery(self, delivery: AbstractIncomingMessage) -> None:
        if delivery.app_id == self.process_id:
            return  # ours: its local sockets had it already
        try:
            self._inbox.put_nowait(delivery.body)
        except asyncio.QueueFull:
            log.warning("relay.overflow", service=self.service, pending=MAX_PENDING)
            self._in_background(self._resync("overflow"))

    def _on_reopen(self, _channel: Any) -> None:
        self._in_background(self._resync("reconnected"))

    async def _resync(self, why: str) -> None:
        log.info("relay.resync", service=self.service, why=why)
        await self.resync()

    def _in_background(self, work: Awaitable[None]) -> None:
        task = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self) -> None:
        while True:
            body = await self._inbox.get()
            try:
                key, frame = decode(body)
            except ValueError as error:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
                log.warning("relay.unparseable", service=self.service, error=str(error)[:300])
                continue
            try:
                await self.deliver(key, frame)
            except Exception:  # a lost frame is healed on reconnect; the relay must live on
                log.exception("relay.deliver_failed", service=self.service)
