"""A web chat is left when its last socket closed and none came back within the wait (ChatHub's timers)."""

import asyncio

from services.intake.channels.webchat import ChatHub, ChatSession
from shared.models import utcnow

SESSION = ChatSession(workspace_id="default", contact_id="web-1")


class Socket:
    """Stands in for a customer's socket: the hub only keeps it and closes it on stop."""

    closed = False

    async def close(self, **_: object) -> None:
        self.closed = True


def recorder() -> tuple[asyncio.Queue, object]:
    told: asyncio.Queue = asyncio.Queue()

    async def on_left(workspace_id: str, thread_id: str, closed_at) -> None:
        await told.put((workspace_id, thread_id, closed_at))

    return told, on_left


async def test_a_chat_whose_last_socket_closed_is_left_after_the_wait():
    told, on_left = recorder()
    hub = ChatHub(0.05, on_left)
    first, second = Socket(), Socket()
    await hub.add(SESSION, first)
    await hub.add(SESSION, second)
    await hub.remove(SESSION, first)
    assert not hub.leaving("default", "web-1")  # another tab is still open
    closed = utcnow()
    await hub.remove(SESSION, second)
    assert hub.leaving("default", "web-1")
    workspace_id, thread_id, closed_at = await asyncio.wait_for(told.get(), 5)
    assert (workspace_id, thread_id) == ("default", "web-1") and closed <= closed_at <= utcnow()
    assert not hub.leaving("default", "web-1")


async def test_a_chat_that_comes_back_within_the_wait_is_not_left():
    told, on_left = recorder()
    hub = ChatHub(60, on_left)
    socket = Socket()
    await hub.add(SESSION, socket)
    await hub.remove(SESSION, socket)
    assert hub.leaving("default", "web-1")
    await hub.add(SESSION, Socket())  # the page reloaded
    assert not hub.leaving("default", "web-1")
    await hub.close_all()
    assert told.empty()


async def test_chats_closed_as_intake_stops_are_not_left():
    told, on_left = recorder()
    hub = ChatHub(0.01, on_left)
    socket = Socket()
    await hub.add(SESSION, socket)
    await hub.close_all()
    await hub.remove(SESSION, socket)  # the handler's cleanup, after the stop closed its socket
    assert socket.closed and not hub.leaving("default", "web-1") and told.empty()
