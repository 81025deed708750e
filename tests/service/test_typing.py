"""Typing indicators in web chat, both ways, over the real broker: customer to desk, desk to customer."""

import asyncio
import json

from aiohttp import ClientWebSocketResponse, WSMsgType

from tests.conftest import auth
from tests.service.helpers import Desk, running_apps


class Chat:
    """A customer's chat WebSocket, read frame by frame with a timeout (never a sleep)."""

    def __init__(self, ws: ClientWebSocketResponse) -> None:
        self.ws = ws

    async def next_frame(self, timeout: float = 15) -> dict:
        message = await asyncio.wait_for(self.ws.receive(), timeout)
        assert message.type == WSMsgType.TEXT, message
        return json.loads(message.data)

    async def say(self, text: str, client_id: str) -> None:
        await self.ws.send_json({"type": "message", "text": text, "client_id": client_id})
        ack = await self.next_frame()
        assert ack["type"] == "ack" and ack["client_id"] == client_id, ack


async def open_chat(apps) -> Chat:
    chat = Chat(await apps.intake.ws_connect("/v1/chat/ws?workspace=default"))
    assert (await chat.next_frame())["type"] == "session"
    assert (await chat.next_frame())["type"] == "history"
    return chat


async def told_joined(chat: Chat, agent_name: str) -> None:
    """The customer is told who joined (docs/webchat.md) before anything the agent does reaches them."""
    frame = await chat.next_frame()
    assert (frame["type"], frame["notice"], frame["agent_name"]) == ("notice", "joined", agent_name), frame


async def assigned_to(desk: Desk) -> str:
    """The id of the next conversation assigned to this desk."""
    frames = await desk.frames_until(lambda f: any(x["type"] == "conversation.assigned" for x in f))
    return next(x for x in frames if x["type"] == "conversation.assigned")["conversation"]["conversation_id"]


async def test_typing_reaches_the_desk_and_the_chat_page(names):
    async with running_apps(names) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        chat = await open_chat(apps)
        await chat.say("hello, anyone there?", "c1")
        conversation_id = await assigned_to(desk)
        await told_joined(chat, "Ann")

        # The customer types: the assignee's desk is told, on that conversation.
        await chat.ws.send_json({"type": "typing"})
        frame = await desk.next_frame()
        assert frame == {"type": "typing", "conversation_id": conversation_id, "who": "contact"}

        # Frames a desk should not send are ignored, and the desk stays open: the typing after
        # them still goes through (a desk's frames are handled in order).
        for bad in ("not json", "[1, 2]", "null", '{"type": "typing"}', '{"type": "typing", "conversation_id": 7}',
                    '{"type": "dance"}', '{"type": "typing", "conversation_id": "nope"}'):
            await desk.ws.send_str(bad)
        await desk.ws.send_bytes(b"\x00\x01")
        await desk.ws.send_json({"type": "typing", "conversation_id": conversation_id})
        assert await chat.next_frame() == {"type": "typing", "who": "agent"}
        assert not desk.ws.closed

        # The chat page's messages still work after typing frames (which get no answer).
        await chat.say("my order is late", "c2")
        frames = await desk.frames_until(lambda f: any(x["type"] == "message" for x in f))
        assert frames[-1]["message"]["text"] == "my order is late"


async def test_a_desk_typing_on_someone_elses_conversation_reaches_nobody(names):
    async with running_apps(names) as apps:
        await apps.put_agent("ann", capacity=1)
        await apps.put_agent("bob", capacity=1, status="offline")
        ann, bob = await apps.desk("ann"), await apps.desk("bob")
        chat_ann = await open_chat(apps)
        await chat_ann.say("for whoever is free", "a1")
        ann_conversation = await assigned_to(ann)
        await told_joined(chat_ann, "Ann")
        response = await apps.agents.put("/v1/agents/bob/status", json={"status": "online"}, headers=auth())
        assert response.status == 200
        chat_bob = await open_chat(apps)
        await chat_bob.say("me too", "b1")  # ann is full: this one is bob's
        bob_conversation = await assigned_to(bob)
        await told_joined(chat_bob, "Bob")

        # Bob types on ann's conversation, then on his own. His frames are handled in order and
        # the signals reach intake in order, so once his customer sees him typing, anything the
        # first frame caused would already be on ann's customer's socket.
        await bob.ws.send_json({"type": "typing", "conversation_id": ann_conversation})
        await bob.ws.send_json({"type": "typing", "conversation_id": bob_conversation})
        assert await chat_bob.next_frame() == {"type": "typing", "who": "agent"}

        # Ann's customer gets ann's reply, and nothing before it (after being told Ann joined).
        reply = await apps.agents.post(f"/v1/conversations/{ann_conversation}/messages", json={"text": "Hi, Ann here"},
                                       headers=auth())
        assert reply.status == 201
        frame = await chat_ann.next_frame()
        assert (frame["type"], frame["text"]) == ("message", "Hi, Ann here")
