"""CSAT over web chat and the agents API, on the real broker and database: the survey frame after a
resolve, the answer kept once and reported, refusals with reasons, and nothing reopened by it."""

import asyncio
import json

from aiohttp import ClientWebSocketResponse, WSMsgType

from tests.service.csat_helpers import (
    answer_api,
    assigned_to,
    close_survey,
    conversation,
    conversations_of,
    enable_csat,
    resolve,
)
from tests.service.helpers import running_apps
from tests.service.test_reporting_events import reporting_queue


class Chat:
    """A customer's chat WebSocket, read frame by frame with a timeout (never a sleep)."""

    def __init__(self, ws: ClientWebSocketResponse) -> None:
        self.ws = ws
        self.thread_id = ""

    async def next_frame(self, timeout: float = 15) -> dict:
        message = await asyncio.wait_for(self.ws.receive(), timeout)
        assert message.type == WSMsgType.TEXT, message
        return json.loads(message.data)

    async def next_of(self, kind: str) -> dict:
        while (frame := await self.next_frame())["type"] != kind:
            pass
        return frame

    async def say(self, text: str, client_id: str) -> None:
        await self.ws.send_json({"type": "message", "text": text, "client_id": client_id})
        assert (await self.next_of("ack"))["client_id"] == client_id

    async def rate(self, survey_id: str, score, comment: str | None = None) -> dict:
        await self.ws.send_json({"type": "csat", "survey_id": survey_id, "score": score, "comment": comment})
        while (frame := await self.next_frame())["type"] not in ("csat.recorded", "error"):
            pass
        return frame


async def open_chat(apps) -> Chat:
    chat = Chat(await apps.intake.ws_connect("/v1/chat/ws?workspace=default"))
    session = await chat.next_frame()
    chat.thread_id = session["thread_id"]
    assert (await chat.next_frame())["type"] == "history"
    return chat


async def test_a_web_chat_survey_is_answered_once_reported_and_reopens_nothing(names):
    async with running_apps(names) as apps, reporting_queue(names) as reported:
        await enable_csat(apps)
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        chat = await open_chat(apps)
        await chat.say("my order is late", "c1")
        conversation_id = (await assigned_to(desk))["conversation_id"]
        resolved = await resolve(apps, conversation_id)
        assert resolved["csat"]["status"] == "pending"

        survey = await chat.next_of("survey")
        survey_id = survey["survey_id"]
        assert survey_id == resolved["csat"]["survey_id"] and survey["scores"] == [1, 2, 3, 4, 5]
        assert survey["question"].startswith("How would you rate") and survey["comment"] is True
        resolution = await reported.of("conversation.resolved", conversation_id)
        assert resolution.data["surveyed"] is True

        # Out of range or no number at all: refused, the survey stays open.
        for bad in ("abc", 6, 0, "4.5"):
            refused = await chat.rate(survey_id, bad)
            assert (refused["type"], refused["reason"]) == ("error", "out_of_range"), (bad, refused)
        # Kept; the same answer again is accepted as the same; another one is refused.
        kept = await chat.rate(survey_id, 4, "quick and kind")
        assert kept["type"] == "csat.recorded" and kept["message"] == "Thank you for your feedback!"
        assert (await chat.rate(survey_id, 4, "quick and kind"))["type"] == "csat.recorded"
        again = await chat.rate(survey_id, 2)
        assert (again["type"], again["reason"]) == ("error", "repeated")
        # A survey that does not exist.
        assert (await chat.rate("0123456789abcdef", 5))["reason"] == "unknown_survey"

        received = await reported.of("csat.received", conversation_id)
        assert (received.event_id, received.agent_id, received.channel) == (f"csat.received:{survey_id}", "ann", "webchat")
        assert received.data["score"] == 4 and received.data["comment"] == "quick and kind"
        shown = await conversation(apps, conversation_id)
        assert shown["status"] == "resolved"
        assert (shown["csat"]["status"], shown["csat"]["score"], shown["csat"]["comment"]) == ("answered", 4, "quick and kind")
        assert not [m for m in shown["messages"] if m["direction"] == "inbound" and m["text"] != "my order is late"]

        # A real message afterwards does open a new conversation; the answers before it opened none.
        await chat.say("one more thing", "c2")
        reopened = await reported.of("conversation.reopened", conversation_id)
        second = reopened.data["new_conversation_id"]
        assert len(await conversations_of(apps, "webchat", chat.thread_id)) == 2
        assert [m["text"] for m in (await conversation(apps, second))["messages"]] == ["one more thing"]
        # The repeated answer published the same event again, never another one.
        answers = [e for e in reported.events if e.type == "csat.received"]
        assert {e.event_id for e in answers} == {f"csat.received:{survey_id}"}
        assert not [e for e in reported.events if e.type == "conversation.reopened" and e.event_id != reopened.event_id]


async def test_late_forged_and_invalid_answers_are_refused_with_reasons(names):
    async with running_apps(names) as apps:
        await enable_csat(apps)
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        chat = await open_chat(apps)
        await chat.say("hello", "c1")
        conversation_id = (await assigned_to(desk))["conversation_id"]
        survey_id = (await resolve(apps, conversation_id))["csat"]["survey_id"]
        await chat.next_of("survey")

        # Another customer's chat answering this survey, or an API caller naming another thread: a forgery.
        stranger = await open_chat(apps)
        assert (await stranger.rate(survey_id, 1))["reason"] == "forged"
        forged = await answer_api(apps, {"survey_id": survey_id, "channel": "webchat", "thread_id": "web-someone-else",
                                         "score": 5}, 403)
        assert forged["error"]["reason"] == "forged"
        # Not a number, or not strictly one: the API says which field.
        await answer_api(apps, {"survey_id": survey_id, "channel": "webchat", "score": "5"}, 422)
        await answer_api(apps, {"survey_id": survey_id, "channel": "webchat", "score": 6}, 422)
        # Past the window: late, and still unanswered.
        await close_survey(names, conversation_id)
        late = await chat.rate(survey_id, 5)
        assert (late["type"], late["reason"]) == ("error", "late")
        shown = await conversation(apps, conversation_id)
        assert (shown["status"], shown["csat"]["status"], shown["csat"]["score"]) == ("resolved", "pending", None)


async def test_no_survey_when_the_workspace_has_none_or_not_for_the_channel(names):
    async with running_apps(names) as apps:
        await enable_csat(apps, channels=["telegram"])  # on, but not for web chat
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        chat = await open_chat(apps)
        await chat.say("hello", "c1")
        conversation_id = (await assigned_to(desk))["conversation_id"]
        assert (await resolve(apps, conversation_id))["csat"] is None
        # The API customer of another workspace's key: no survey anywhere, the answer names nothing.
        refused = await answer_api(apps, {"channel": "webchat", "thread_id": chat.thread_id, "score": 5}, 404)
        assert refused["error"]["reason"] == "unknown_survey"


async def test_a_page_back_before_answering_gets_the_survey_again_and_not_after(names):
    async with running_apps(names) as apps:
        await enable_csat(apps)
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        chat = Chat(await apps.intake.ws_connect("/v1/chat/ws?workspace=default"))
        token = (await chat.next_frame())["token"]
        assert (await chat.next_frame())["type"] == "history"
        await chat.say("hello", "c1")
        conversation_id = (await assigned_to(desk))["conversation_id"]
        await chat.ws.close()  # the customer closed the page before the resolve
        survey_id = (await resolve(apps, conversation_id))["csat"]["survey_id"]

        back = Chat(await apps.intake.ws_connect(f"/v1/chat/ws?session={token}"))
        assert (await back.next_frame())["type"] == "session"
        history = await back.next_frame()
        assert history["type"] == "history" and history["messages"][-1]["message_id"] == f"survey-{survey_id}"
        survey = await back.next_frame()
        assert (survey["type"], survey["survey_id"], survey["message_id"]) == ("survey", survey_id, f"survey-{survey_id}")
        assert (await back.rate(survey_id, 5))["type"] == "csat.recorded"
        await back.ws.close()

        # Answered: a page back gets the history, and its next frame is the answer to what it sends.
        again = Chat(await apps.intake.ws_connect(f"/v1/chat/ws?session={token}"))
        assert [(await again.next_frame())["type"] for _ in range(2)] == ["session", "history"]
        await again.ws.send_json({"type": "message", "text": "thanks again", "client_id": "c2"})
        assert (await again.next_frame())["type"] == "ack"
