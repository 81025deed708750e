"""What a waiting web chat customer is told, over the real broker: their place in the queue and the
expected wait (changing as others are assigned), "Ann joined" with the agent's name, replies with the
agent's name, and "resolved" before the CSAT survey (docs/webchat.md)."""

from tests.conftest import auth
from tests.service.helpers import running_apps
from tests.service.test_typing import Chat, assigned_to

NOTICES = {"router_settings": {"queue_notice_seconds": 0.2, "tick_seconds": 0.1}}


async def open_chat(apps) -> Chat:
    chat = Chat(await apps.intake.ws_connect("/v1/chat/ws?workspace=default"))
    session = await chat.next_frame()
    assert session["type"] == "session"
    assert (await chat.next_frame())["type"] == "history"
    chat.token = session["token"]  # to come back with
    return chat


async def frame_of(chat: Chat, kind: str, **expected) -> dict:
    """The next frame of this type with these values; frames before it of other kinds or values are passed over
    (a place told earlier, an ack)."""
    while True:
        frame = await chat.next_frame()
        if frame["type"] == kind and all(frame.get(k) == v for k, v in expected.items()):
            return frame


async def resolve(apps, conversation_id: str) -> None:
    response = await apps.agents.post(f"/v1/conversations/{conversation_id}/resolve", headers=auth())
    assert response.status == 200, await response.text()


async def test_waiting_customers_see_their_place_and_wait_and_who_joined(names):
    async with running_apps(names, **NOTICES) as apps:
        await apps.put_agent("ann", capacity=1)  # named "Ann" (tests/e2e/client.py)
        desk = await apps.desk("ann")
        first = await open_chat(apps)
        await first.say("first in", "f1")
        first_conversation = await assigned_to(desk)
        joined = await frame_of(first, "notice")
        assert (joined["notice"], joined["agent_name"]) == ("joined", "Ann")
        assert joined["message_id"].startswith("joined:")

        # Three more wait, in the order they wrote: each is told its place; one assignment so far
        # gives no pace, so no expected wait yet.
        waiting = []
        for n in range(3):
            chat = await open_chat(apps)
            await chat.say(f"waiting {n}", f"w{n}")
            waiting.append(chat)
        for place, chat in enumerate(waiting, start=1):
            assert await frame_of(chat, "queue") == {"type": "queue", "position": place, "expected_wait_seconds": None}

        # The last one reloads its page: its place comes right after the history, though it has not changed.
        token = waiting[-1].token
        await waiting[-1].ws.close()
        back = Chat(await apps.intake.ws_connect(f"/v1/chat/ws?session={token}"))
        assert [(await back.next_frame())["type"] for _ in range(2)] == ["session", "history"]
        assert await back.next_frame() == {"type": "queue", "position": 3, "expected_wait_seconds": None}
        waiting[-1] = back

        # Ann finishes the first: the next is hers and told who joined; the others move up, now with an
        # expected wait (the pace of two assignments), the same for each place's share of it.
        await resolve(apps, first_conversation)
        second = await frame_of(waiting[0], "notice", notice="joined")
        assert second["agent_name"] == "Ann"
        moved = [await frame_of(chat, "queue") for chat in waiting[1:]]
        assert [f["position"] for f in moved] == [1, 2]
        assert all(isinstance(f["expected_wait_seconds"], int) for f in moved)
        assert moved[1]["expected_wait_seconds"] >= moved[0]["expected_wait_seconds"]


async def test_replies_carry_the_agents_name_and_a_resolve_is_told_before_the_survey(names):
    async with running_apps(names, **NOTICES) as apps:
        response = await apps.router.put("/v1/routing/config", json={"csat": {"default": {}}}, headers=auth())
        assert response.status == 202, await response.text()
        await apps.put_agent("ann")
        response = await apps.agents.put("/v1/agents/ann", json={"name": "Ann Lee", "max_conversations": 3}, headers=auth())
        assert response.status == 200, await response.text()
        desk = await apps.desk("ann")
        chat = Chat(await apps.intake.ws_connect("/v1/chat/ws?workspace=default"))
        token = (await chat.next_frame())["token"]
        assert (await chat.next_frame())["type"] == "history"
        await chat.say("hello", "h1")
        conversation_id = await assigned_to(desk)
        assert (await frame_of(chat, "notice"))["agent_name"] == "Ann Lee"

        reply = await apps.agents.post(f"/v1/conversations/{conversation_id}/messages", json={"text": "Hi!"}, headers=auth())
        assert reply.status == 201
        message = await frame_of(chat, "message")
        assert (message["text"], message["agent_id"], message["agent_name"]) == ("Hi!", "ann", "Ann Lee")
        # A page that comes back (another browser with the token) gets the name in the history too.
        again = Chat(await apps.intake.ws_connect(f"/v1/chat/ws?session={token}"))
        assert (await again.next_frame())["type"] == "session"
        history = await again.next_frame()
        assert [(m["direction"], m["text"], m["agent_name"]) for m in history["messages"]] == [
            ("inbound", "hello", None), ("outbound", "Hi!", "Ann Lee")]
        await again.ws.close()

        await resolve(apps, conversation_id)
        frames = [await chat.next_frame(), await chat.next_frame()]
        kinds = {f["type"]: f for f in frames}
        assert set(kinds) == {"notice", "survey"}, frames
        assert kinds["notice"]["notice"] == "resolved" and kinds["notice"]["agent_name"] is None


async def test_the_survey_is_asked_in_the_pages_language(names):
    async with running_apps(names, **NOTICES) as apps:
        response = await apps.router.put("/v1/routing/config", json={"csat": {"default": {}}}, headers=auth())
        assert response.status == 202, await response.text()
        await apps.put_agent("ann")
        bad = await apps.intake.get("/v1/chat/ws?workspace=default&lang=Ukrainian")
        assert bad.status == 400 and "lang" in (await bad.json())["error"]["message"]
        desk = await apps.desk("ann")
        chat = Chat(await apps.intake.ws_connect("/v1/chat/ws?workspace=default&lang=uk"))
        assert [(await chat.next_frame())["type"] for _ in range(2)] == ["session", "history"]
        await chat.say("привіт", "u1")
        conversation_id = await assigned_to(desk)
        await resolve(apps, conversation_id)
        survey = await frame_of(chat, "survey")
        assert survey["question"].startswith("Оцініть, будь ласка")
