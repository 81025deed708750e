"""The pre-routing bot over the real broker and database (docs/bot.md): intake, router, agents and
assist as apps; a web chat customer asks, the bot answers from the knowledge base with buttons, and
yes resolves it without a human while no, no good article, or a bot that is down hand it to an agent
at once, with the transcript and the original wait."""

from contextlib import asynccontextmanager
from datetime import datetime

from services.assist.app import create_app as create_assist
from services.assist.settings import AssistSettings
from tests.conftest import auth, serve
from tests.service.helpers import running_apps
from tests.service.test_typing import Chat
from tests.service.test_webchat_notices import frame_of, open_chat

BOT = {"channels": ["webchat"], "min_score": 0.3, "answer_seconds": 5, "reply_seconds": 60}
ROUTER = {"router_settings": {"tick_seconds": 0.1}}
PASSWORD = {"title": "Reset your password", "language": "en", "status": "published", "tags": ["account"],
            "body": "Forgot your password? Open **Sign in**, choose *Forgot password* and follow the link we email you."}


@asynccontextmanager
async def bot_floor(names, bot: dict = BOT, *, with_assist: bool = True):
    """The four apps, the bot on for web chats, one article, and Ann online at her desk."""
    async with running_apps(names, **ROUTER) as apps:
        # Applied in order with the messages of the workspace's partition: before the customers below write.
        response = await apps.router.put("/v1/routing/config", json={"bot": bot}, headers=auth())
        assert response.status == 202, await response.text()
        await apps.put_agent("ann", capacity=3)
        desk = await apps.desk("ann")
        if not with_assist:
            yield apps, desk, None
            return
        async with serve(create_assist(names.settings(AssistSettings, public_url="https://help.example"))) as assist:
            created = await assist.post("/v1/kb/articles", json=PASSWORD, headers=auth())
            assert created.status == 201, await created.text()
            yield apps, desk, (await created.json())["id"]


async def press(chat: Chat, button: dict, client_id: str) -> None:
    await chat.ws.send_json({"type": "message", "text": button["title"], "action": button["id"], "client_id": client_id})
    ack = await chat.next_frame()
    assert ack["type"] == "ack" and ack["client_id"] == client_id, ack


async def bot_answer(chat: Chat) -> dict:
    frame = await frame_of(chat, "message", direction="outbound")
    assert frame["agent_name"] == "Assistant", frame
    return frame


async def test_yes_resolves_it_without_a_human_and_no_hands_it_over_with_its_transcript(names):
    async with bot_floor(names) as (apps, desk, article_id):
        first = await open_chat(apps)
        await first.say("I forgot my password, how can I reset it?", "q1")
        answer = await bot_answer(first)
        assert "Reset your password" in answer["text"]
        assert f"https://help.example/help/default/articles/{article_id}" in answer["text"]
        assert [b["id"] for b in answer["quick_replies"]] == ["bot.yes", "bot.no"]
        await press(first, answer["quick_replies"][0], "yes1")
        thanks = await bot_answer(first)
        assert "Glad it helped" in thanks["text"] and "quick_replies" not in thanks

        second = await open_chat(apps)
        await second.say("how do i reset my password", "q2")
        answer = await bot_answer(second)
        await press(second, answer["quick_replies"][1], "no2")
        assert "passing you to a person" in (await bot_answer(second))["text"]
        # The first customer was never offered to Ann: the second is the first conversation she gets.
        frames = await desk.frames_until(lambda f: any(x["type"] == "conversation.assigned" for x in f))
        assigned = next(x for x in frames if x["type"] == "conversation.assigned")
        assert [m["text"] for m in assigned["messages"]] == ["how do i reset my password", "No, a person please"]
        assert assigned["messages"][1]["action"] == "bot.no"
        conversation = assigned["conversation"]
        # The wait counts from when the customer wrote, not from the handover.
        # The wait counts from when the customer wrote, not from the handover after their "no".
        assert datetime.fromisoformat(conversation["waiting_since"]) < datetime.fromisoformat(
            assigned["messages"][1]["created_at"])
        stored = await apps.agents.get(f"/v1/conversations/{conversation['conversation_id']}", headers=auth())
        texts = [(m["direction"], m["text"]) for m in (await stored.json())["messages"]]
        assert ("outbound", answer["text"]) in texts  # the bot's answer is in the agent's transcript
        assert texts.index(("outbound", answer["text"])) < texts.index(("inbound", "No, a person please"))


async def test_a_question_no_article_answers_goes_straight_to_a_person(names):
    async with bot_floor(names) as (apps, desk, _):
        chat = await open_chat(apps)
        await chat.say("My cat walked over the keyboard and ordered twelve sofas", "q1")
        frames = await desk.frames_until(lambda f: any(x["type"] == "conversation.assigned" for x in f))
        assigned = next(x for x in frames if x["type"] == "conversation.assigned")
        assert [m["text"] for m in assigned["messages"]] == ["My cat walked over the keyboard and ordered twelve sofas"]
        joined = await chat.next_frame()  # the customer's next frame is Ann joining: the bot said nothing
        assert (joined["type"], joined.get("notice")) == ("notice", "joined"), joined


async def test_a_bot_that_is_down_never_holds_a_customer_longer_than_its_answer_time(names):
    async with bot_floor(names, {**BOT, "answer_seconds": 1}, with_assist=False) as (apps, desk, _):
        chat = await open_chat(apps)
        await chat.say("I forgot my password", "q1")
        frames = await desk.frames_until(lambda f: any(x["type"] == "conversation.assigned" for x in f))
        assigned = next(x for x in frames if x["type"] == "conversation.assigned")
        assert [m["text"] for m in assigned["messages"]] == ["I forgot my password"]
