"""The Telegram channel over the real broker and database, with a local stand-in for the Bot API."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

from aiohttp import web

from tests.conftest import auth
from tests.fixtures import telegram as fx
from tests.service.helpers import Apps, running_apps, stand_in_server, texts

WEBHOOK = "/v1/webhooks/telegram/default"


@dataclass
class BotApi:
    """The stand-in Bot API: records each call, answers with `answer(call number)`."""

    url: str
    calls: asyncio.Queue = field(default_factory=asyncio.Queue)


@asynccontextmanager
async def bot_api(answer: Callable[[int], tuple[int, dict]] = lambda _: (200, fx.SEND_OK)) -> AsyncIterator[BotApi]:
    count = 0
    api = BotApi(url="")

    async def method(request: web.Request) -> web.Response:
        nonlocal count
        count += 1
        api.calls.put_nowait((request.match_info["token"], request.match_info["method"], await request.json()))
        status, body = answer(count)
        return web.json_response(body, status=status)

    async with stand_in_server(("POST", "/bot{token}/{method}", method)) as base:
        api.url = f"{base}"
        yield api


def channels(api: BotApi) -> dict:
    return {"default": {"telegram": {**fx.BENCH_CONFIG, "base_url": api.url}}}


async def deliver(apps: Apps, payload: dict, secret: str | None = fx.SECRET_TOKEN):
    headers = fx.headers(secret) if secret is not None else {"Content-Type": "application/json"}
    return await apps.intake.post(WEBHOOK, data=fx.body(payload), headers=headers)


async def conversation_where(apps: Apps, conversation_id: str, done: Callable[[dict], bool], timeout: float = 15) -> dict:
    """Poll the conversation until `done` holds (an HTTP view: the condition, not the pause, ends it)."""
    async with asyncio.timeout(timeout):
        while True:
            response = await apps.agents.get(f"/v1/conversations/{conversation_id}", headers=auth())
            body = await response.json()
            if done(body):
                return body
            await asyncio.sleep(0.05)


async def test_an_update_reaches_the_agent_and_the_reply_goes_out_through_send_message(names):
    async with bot_api() as api, running_apps(names, channels=channels(api)) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        response = await deliver(apps, fx.TEXT)
        assert response.status == 200, await response.text()
        (assigned,) = await desk.frames_until(lambda f: f)
        assert assigned["type"] == "conversation.assigned"
        conversation = assigned["conversation"]
        assert (conversation["channel"], conversation["thread_id"]) == ("telegram", str(fx.CHAT_ID))
        assert conversation["contact"]["name"] == "Ada Lovelace"
        assert texts([assigned]) == ["Hello, my parcel has not arrived"]

        reply = await apps.agents.post(f"/v1/conversations/{conversation['conversation_id']}/messages",
                                       json={"text": "Let me check"}, headers=auth())
        assert reply.status == 201, await reply.text()
        token, method, payload = await asyncio.wait_for(api.calls.get(), 15)
        assert (token, method, payload) == (fx.BOT_TOKEN, "sendMessage", {"chat_id": fx.CHAT_ID, "text": "Let me check"})
        body = await conversation_where(apps, conversation["conversation_id"], lambda c: c["messages"][-1]["status"] == "sent")
        assert body["messages"][-1]["text"] == "Let me check"


async def test_files_and_buttons_arrive_as_references_and_button_presses_are_answered(names):
    async with bot_api() as api, running_apps(names, channels=channels(api)) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert (await deliver(apps, fx.PHOTO)).status == 200
        pressed = await deliver(apps, fx.CALLBACK_QUERY)
        assert pressed.status == 200
        # The webhook's answer carries the answerCallbackQuery call that stops the button's spinner.
        assert await pressed.json() == {"method": "answerCallbackQuery", "callback_query_id": "4382bfdwdsb323b2d9"}
        frames = await desk.frames_until(lambda f: len(texts(f)) >= 2)
        assert texts(frames) == ["the damaged box", "[button] yes_refund"]
        photo = frames[0]["messages"][0]
        assert photo["attachments"][0]["url"] == "telegram:file/AgACAgQAAxkBAAIBlarge"


async def test_refused_and_ignored_updates_publish_nothing(names):
    async with bot_api() as api, running_apps(names, channels=channels(api)) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        missing = await deliver(apps, fx.update(1, message=fx.message(1, text="no secret")), secret=None)
        assert missing.status == 401 and (await missing.json())["error"]["message"] == "missing secret token"
        wrong = await deliver(apps, fx.update(2, message=fx.message(2, text="wrong secret")), secret="guessed")
        assert wrong.status == 403 and (await wrong.json())["error"]["message"] == "wrong secret token"
        ignored = await deliver(apps, fx.MY_CHAT_MEMBER)
        assert ignored.status == 200
        assert (await deliver(apps, fx.update(3, message=fx.message(3, text="the real one")))).status == 200
        # Same chat, so anything published before would have come first in this conversation.
        (assigned,) = await desk.frames_until(lambda f: f)
        assert texts([assigned]) == ["the real one"]


async def test_a_redelivered_update_yields_one_message(names):
    async with bot_api() as api, running_apps(names, channels=channels(api)) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        for _ in range(3):
            assert (await deliver(apps, fx.TEXT)).status == 200
        assert (await deliver(apps, fx.EDITED)).status == 200
        frames = await desk.frames_until(lambda f: any("[edited]" in t for t in texts(f)))
        assert texts(frames) == ["Hello, my parcel has not arrived", "[edited] Hello, my parcel has not arrived (order 42)"]
        body = await conversation_where(apps, frames[0]["conversation"]["conversation_id"], lambda c: len(c["messages"]) >= 2)
        assert len(body["messages"]) == 2


async def test_bad_bodies_get_json_errors(names):
    async with bot_api() as api, running_apps(names, channels=channels(api)) as apps:
        headers = fx.headers()
        malformed = await apps.intake.post(WEBHOOK, data=b"{not json", headers=headers)
        assert malformed.status == 400 and (await malformed.json())["error"]["message"] == "malformed JSON"
        not_an_update = await apps.intake.post(WEBHOOK, data=b'{"hello": 1}', headers=headers)
        assert not_an_update.status == 400 and (await not_an_update.json())["error"]["message"] == "not a Telegram Update"
        huge = fx.body(fx.update(5, message=fx.message(5, text="x" * (64 * 1024 + 1))))
        oversize = await apps.intake.post(WEBHOOK, data=huge, headers=headers)
        assert oversize.status == 413 and "limit" in (await oversize.json())["error"]["message"]
        unknown = await apps.intake.post("/v1/webhooks/telegram/nowhere", data=fx.body(fx.TEXT), headers=headers)
        assert unknown.status == 404 and "not configured" in (await unknown.json())["error"]["message"]


async def test_a_bot_api_answering_500_leaves_the_reply_failed_after_the_retries(names):
    failing = (500, {"ok": False, "error_code": 500, "description": "Internal Server Error"})
    async with bot_api(lambda _: failing) as api, running_apps(
        names, channels=channels(api), send_max_attempts=2, send_retry_delay=0.01
    ) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert (await deliver(apps, fx.TEXT)).status == 200
        conversation_id = (await desk.frames_until(lambda f: f))[0]["conversation"]["conversation_id"]
        await apps.agents.post(f"/v1/conversations/{conversation_id}/messages", json={"text": "hello?"}, headers=auth())
        body = await conversation_where(apps, conversation_id, lambda c: c["messages"][-1]["status"] == "failed")
        reason = body["messages"][-1]["status_reason"]
        assert "Internal Server Error" in reason and "after 2 attempts" in reason
        assert api.calls.qsize() == 2
