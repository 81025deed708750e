"""The agents' WebSocket: a hub of connected desks and the JSON frames they receive.

Frames: `snapshot` (on connect: the agent's status and every open conversation of the agent with
its messages, so a reconnecting desk gets what it missed), `conversation.assigned`, `message`,
`message.status`, `presence` (`status`, `reason`: request, missed_offers or desk_closed, `at`: on
every change of the agent's presence, whoever made it), `typing` (the customer is typing; ephemeral).
A desk may be connected to any replica: frames reach it through the socket relay (shared/relay.py),
those one process sends for one agent in the order it sent them. Each frame names its conversation and message ids,
so a desk can drop a frame it already has. The desk talks over REST; the one frame it sends is
`{"type": "typing", "conversation_id"}`; anything else it sends is answered with an `error` frame
(which the desk page ignores) and the socket stays open.
"""

import asyncio
from datetime import datetime
from typing import Any, Literal

import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from shared.broker import Broker
from shared.relay import SocketRelay
from shared.web import FrameError, parse_frame

log = structlog.get_logger(__name__)
AgentKey = tuple[str, str]


# The search index (search.py), a reply's outbox copy and the outbox's flags (outbox.py): not the desk's.
INTERNAL_FIELDS = frozenset({"terms", "outbound", "pending_outbound", "pending_snapshot", "pending_resolved",
                             "pending_labels"})


def jsonable(doc: dict, id_field: str) -> dict[str, Any]:
    """A stored document as the API shows it: `_id` renamed, datetimes as ISO 8601, the search terms left out."""
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if key in INTERNAL_FIELDS:
            continue
        if key == "_id":
            out[id_field] = value
        elif isinstance(value, datetime):
            out[key] = value.isoformat()
        else:
            out[key] = value
    return out


class DeskTyping(BaseModel):
    """The one frame a desk sends: its agent is typing on a conversation."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["typing"]
    conversation_id: str = Field(min_length=1, max_length=200)


# Read through shared.web.parse_frame, which turns any frame (deep, malformed, wrong) into a FrameError.
DESK_INPUT: TypeAdapter[DeskTyping] = TypeAdapter(DeskTyping)


def typing_conversation(data: str) -> str | None:
    """The conversation of a desk's `{"type": "typing", "conversation_id"}` frame; None for any other frame."""
    try:
        return parse_frame(data, DESK_INPUT).conversation_id
    except FrameError:
        return None


class DeskConnection:
    """One open desk; frames sent before its snapshot went out are held, then sent in order."""

    def __init__(self, ws: web.WebSocketResponse) -> None:
        self.ws = ws
        self._held: list[dict] | None = []
        self._lock = asyncio.Lock()

    async def send(self, frame: dict) -> None:
        async with self._lock:
            if self._held is not None:
                self._held.append(frame)
                return
            await self._send_now(frame)

    async def open_with(self, snapshot: dict) -> None:
        async with self._lock:
            await self._send_now(snapshot)
            held, self._held = self._held or [], None
            for frame in held:
                await self._send_now(frame)

    async def _send_now(self, frame: dict) -> None:
        if self.ws.closed:
            return
        try:
            await self.ws.send_json(frame)
        except (ConnectionError, RuntimeError) as error:  # the desk went away; it resyncs on reconnect
            log.info("desk.send_failed", error=repr(error))


RESYNC = "resync"  # a control frame between replicas: never sent to a desk


class DeskHub:
    """The desks this process holds, by agent; a frame sent here reaches the agent's desks on every
    replica (shared/relay.py): this process's at once, the others' through the relay."""

    def __init__(self, broker: Broker) -> None:
        self._desks: dict[AgentKey, set[DeskConnection]] = {}
        self.relay = SocketRelay(broker, "agents", self.send_local, self.resync)

    async def add(self, key: AgentKey, connection: DeskConnection) -> None:
        """Hold a desk and bind its agent's key, before its snapshot is read: a frame another replica
        sends after that read reaches it. Raises (the desk not held) if the broker would not bind."""
        self._desks.setdefault(key, set()).add(connection)
        try:
            await self.relay.watch(key)
        except BaseException:
            self._forget(key, connection)
            raise

    async def remove(self, key: AgentKey, connection: DeskConnection) -> None:
        if self._forget(key, connection):
            await self.relay.unwatch(key)

    def _forget(self, key: AgentKey, connection: DeskConnection) -> bool:
        desks = self._desks.get(key)
        if desks is None or connection not in desks:
            return False
        desks.discard(connection)
        if not desks:
            del self._desks[key]
        return True

    def connected(self, key: AgentKey) -> bool:
        """Whether this process holds a desk of the agent (other replicas may hold more)."""
        return key in self._desks

    def agents(self) -> list[AgentKey]:
        """The agents this process holds a desk of."""
        return list(self._desks)

    async def send(self, key: AgentKey, frame: dict) -> None:
        """To the agent's desks wherever they are connected."""
        await self.send_local(key, frame)
        await self.relay.publish(key, frame)

    async def send_local(self, key: AgentKey, frame: dict) -> None:
        """To this process's desks of the agent only (a frame relayed here, or one every replica makes)."""
        if frame.get("type") == RESYNC:
            await asyncio.gather(*(connection.ws.close(code=1012, message=b"reconnect for a fresh snapshot")
                                   for connection in list(self._desks.get(key, ()))))
            return
        for connection in list(self._desks.get(key, ())):
            await connection.send(frame)

    async def resync_agent(self, key: AgentKey) -> None:
        """The agent's desks, on every replica, reconnect and get a fresh snapshot: frames may have been
        lost with a replica that stored something and died before relaying it."""
        await self.send(key, {"type": RESYNC})

    async def resync(self) -> None:
        """Frames may have been lost (a broker outage): every desk here reconnects and gets a fresh snapshot."""
        await self._close_every(1012, b"reconnect for a fresh snapshot")

    async def close_all(self) -> None:
        await self._close_every(1001, b"server shutting down")

    async def _close_every(self, code: int, message: bytes) -> None:
        # At once: a page slow to answer the close does not hold up the others.
        await asyncio.gather(*(connection.ws.close(code=code, message=message)
                               for desks in list(self._desks.values()) for connection in list(desks)))
