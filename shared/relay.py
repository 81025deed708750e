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
channel comes back from a broker outage every local socket is asked to resync (`resync`: the hubs
close them with 1012, "service restart", and the pages reconnect), since frames of the outage were
lost. The queue is then declared afresh, under a new name, with every key still held bound again:
aio-pika's RobustQueue would restore the bindings too, but under the old exclusive name, which
the broker may still be deleting for the lost connection (seen: the queue gone right after its
restore, and every later bind NOT_FOUND).

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
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
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
    if isinstance(data, dict):
        key, frame = data.get("key"), data.get("frame")
        if (isinstance(key, list) and len(key) == 2 and all(isinstance(part, str) for part in key)
                and isinstance(frame, dict)):
            return (key[0], key[1]), frame
    raise ValueError("not a relayed frame: {key: [workspace, id], frame: {...}}")


class SocketRelay:
    """One process's end of a service's relay: binds the keys it holds sockets of, relays frames."""

    def __init__(self, broker: Broker, service: str, deliver: Deliver, resync: Resync) -> None:
        self.broker = broker
        self.service = service
        self.deliver = deliver
        self.resync = resync
        self.process_id = uuid.uuid4().hex  # its own frames, coming back through its queue, are skipped
        self._watched: Counter[str] = Counter()  # routing key -> local sockets of it
        self._bound: set[str] = set()  # routing keys the queue is bound by (unbinding lags the last socket)
        self._binding = asyncio.Lock()  # a key's bind and unbind go in the order they were asked
        self._inbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=MAX_PENDING)
        self._channel: AbstractChannel | None = None
        self._queue: Any = None  # the AbstractQueue read now (a new one after the channel reopens)
        self._worker: asyncio.Task | None = None
        self._tasks: set[asyncio.Task] = set()
        self._overflowing = False  # a resync for frames dropped is under way

    @property
    def exchange(self) -> str:
        return self.broker.topology.relay_exchange(self.service)

    async def start(self) -> None:
        # A robust channel without confirms; after it reopens, a queue of a new name (_reopened).
        self._channel = await self.broker.new_channel(prefetch=0, publisher_confirms=False)
        await self._open_queue()
        self._channel.reopen_callbacks.add(self._on_reopen)
        self._worker = asyncio.create_task(self._run(), name=f"relay:{self.service}")

    async def _open_queue(self) -> None:
        """Declare this process's queue, bind every key it holds sockets of, and read it."""
        assert self._channel is not None
        queue = await declare_ephemeral_queue(self._channel, self.broker.topology.relay_queue(self.service),
                                              RELAY_QUEUE_ARGUMENTS, robust=False)
        self._bound = set()
        for routing_key in list(self._watched):
            await queue.bind(self.exchange, routing_key, robust=False)
            self._bound.add(routing_key)
        await queue.consume(self._on_delivery, no_ack=True, robust=False)
        self._queue = queue

    async def stop(self) -> None:
        if self._channel is not None and not self._channel.is_closed:
            await self._channel.close()  # the queue goes with it
        for task in (self._worker, *self._tasks):
            if task is not None:
                task.cancel()
        await asyncio.gather(*(t for t in (self._worker, *self._tasks) if t is not None), return_exceptions=True)

    async def watch(self, key: RelayKey) -> None:
        """A local socket of the key opened: bind the key (on its first). Raises if the broker would not."""
        routing_key = relay_key(*key)
        async with self._binding:
            if routing_key not in self._bound:
                await self._rpc(self._queue.bind(self.exchange, routing_key, robust=False))
                self._bound.add(routing_key)
            self._watched[routing_key] += 1

    async def unwatch(self, key: RelayKey) -> None:
        """A local socket of the key closed: unbind the key (on its last), in the background: the
        socket's handler may be cancelled, and it has nothing to wait for."""
        routing_key = relay_key(*key)
        if self._watched[routing_key] > 1:
            self._watched[routing_key] -= 1
            return
        self._watched.pop(routing_key, None)
        self._in_background(self._unbind_unwatched(routing_key))

    async def _unbind_unwatched(self, routing_key: str) -> None:
        async with self._binding:
            if self._watched[routing_key] > 0 or routing_key not in self._bound:
                return  # a socket of the key opened again meanwhile
            self._bound.discard(routing_key)
            try:
                await self._rpc(self._queue.unbind(self.exchange, routing_key))
            except Exception as error:  # noqa: BLE001 - a binding left over costs frames shown to no one
                log.info("relay.unbind_failed", service=self.service, error=repr(error))

    @staticmethod
    async def _rpc(call: Awaitable[Any]) -> None:
        """A bind or unbind, within BIND_TIMEOUT for the caller but never cancelled itself: aiormq
        closes a channel whose RPC is cancelled, and this channel's queue would go with it."""
        await asyncio.wait_for(asyncio.shield(call), BIND_TIMEOUT)

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
        except asyncio.QueueFull:  # frames are being lost: the sockets here resync, once per overflow
            if not self._overflowing:
                self._overflowing = True
                log.warning("relay.overflow", service=self.service, pending=MAX_PENDING)
                self._in_background(self._resync("overflow"))

    def _on_reopen(self, _channel: Any) -> None:
        self._in_background(self._reopened())

    async def _reopened(self) -> None:
        """The channel is back (its queue went with the connection or the channel): a new queue, then resync."""
        async with self._binding:  # a socket opening meanwhile binds on the new queue
            try:
                await self._open_queue()
            except Exception as error:  # noqa: BLE001 - the sockets resync below; they bind again on reconnect
                log.warning("relay.reopen_failed", service=self.service, error=repr(error))
        await self._resync("reconnected")

    async def _resync(self, why: str) -> None:
        log.info("relay.resync", service=self.service, why=why)
        self._overflowing = False
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
