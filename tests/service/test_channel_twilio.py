"""The Twilio SMS channel over the real broker and database, with a local stand-in for the Messages API."""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlencode

from aiohttp import web

from tests.conftest import auth
from tests.fixtures import twilio as fx
from tests.service.helpers import Apps, running_apps, stand_in_server, texts

PUBLIC_URL = "https://switchyard.example.com"
WEBHOOK = "/v1/webhooks/sms/default"
STATUS = "/v1/webhooks/sms/default/status"
REPLY_SID = "SM" + "c" * 32


@dataclass
class MessagesApi:
    """The stand-in Messages API: records each create call, answers with `answer(call number, form)`."""

    url: str
    calls: asyncio.Queue = field(default_factory=asyncio.Queue)


def created(_: int, form: dict) -> tuple[int, dict]:
    return 201, fx.created_message(REPLY_SID, form["To"], form["Body"])


@asynccontextmanager
async def messages_api(answer: Callable[[int, dict], tuple[int, dict]] = created) -> AsyncIterator[MessagesApi]:
    count = 0
    api = MessagesApi(url="")

    async def create(request: web.Request) -> web.Response:
        nonlocal count
        count += 1
        form = dict(await request.post())
        api.calls.put_nowait((request.match_info["sid"], request.headers.get("Authorization"), form))
        status, body = answer(count, form)
        return web.json_response(body, status=status)

    async with stand_in_server(("POST", "/2010-04-01/Accounts/{sid}/Messages.json", create)) as base:
        api.url = f"{base}"
        yield api


def settings(api: MessagesApi, **overrides) -> dict:
    channels = {"default": {"sms": {**fx.BENCH_CONFIG, "base_url": api.url}}}
    return {"channels": channels, "public_url": PUBLIC_URL, **overrides}


async def post_signed(apps: Apps, path: str, params: dict[str, str], *, token: str = fx.AUTH_TOKEN, signed_path: str | None = None):
    """Call intake as Twilio would, signing for the public URL (or for another path, to forge)."""
    headers, body = fx.signed_request(PUBLIC_URL, signed_path or path, params, token)
    return await apps.intake.post(path, data=body, headers=headers)


async def conversation_where(apps: Apps, conversation_id: str, done: Callable[[dict], bool], timeout: float = 15) -> dict:
    """Poll the conversation until `done` holds (an HTTP view: the condition, not the pause, ends it)."""
    async with asyncio.timeout(timeout):
        while True:
            response = await apps.agents.get(f"/v1/conversations/{conversation_id}", headers=auth())
            body = await response.json()
            if done(body):
                return body
            await asyncio.sleep(0.05)


def last_reply_is(status: str) -> Callable[[dict], bool]:
    return lambda conversation: conversation["messages"][-1]["status"] == status


async def open_conversation(apps: Apps, params: dict[str, str]) -> tuple[str, dict]:
    """Deliver an SMS to an online agent: (the conversation id, the assignment frame)."""
    await apps.put_agent("ann")
    desk = await apps.desk("ann")
    response = await post_signed(apps, WEBHOOK, params)
    assert response.status == 200, await response.text()
    assert response.content_type == "text/xml" and "<Response/>" in await response.text()
    (assigned,) = await desk.frames_until(lambda f: f)
    return assigned["conversation"]["conversation_id"], assigned


async def test_an_sms_reaches_the_agent_the_reply_goes_out_and_its_receipt_comes_back(names):
    async with messages_api() as api, running_apps(names, **settings(api)) as apps:
        conversation_id, assigned = await open_conversation(apps, fx.incoming_sms(1))
        assert (assigned["conversation"]["channel"], assigned["conversation"]["thread_id"]) == ("sms", fx.CUSTOMER)
        assert assigned["conversation"]["contact"]["phone"] == fx.CUSTOMER
        assert texts([assigned]) == ["Hi, is my order shipped?"]

        reply = await apps.agents.post(f"/v1/conversations/{conversation_id}/messages", json={"text": "Yes, today"}, headers=auth())
        assert reply.status == 201, await reply.text()
        account, authorization, form = await asyncio.wait_for(api.calls.get(), 15)
        assert account == fx.ACCOUNT_SID and authorization.startswith("Basic ")
        assert form == {"To": fx.CUSTOMER, "From": fx.OUR_NUMBER, "Body": "Yes, today", "StatusCallback": PUBLIC_URL + STATUS}
        await conversation_where(apps, conversation_id, last_reply_is("sent"))

        receipt = await post_signed(apps, STATUS, fx.status_callback(REPLY_SID, "delivered"))
        assert receipt.status == 200 and receipt.content_type == "text/xml"
        body = await conversation_where(apps, conversation_id, last_reply_is("delivered"))
        assert body["messages"][-1]["text"] == "Yes, today"


async def test_an_undelivered_reply_is_marked_failed_with_the_error_code(names):
    async with messages_api() as api, running_apps(names, **settings(api)) as apps:
        conversation_id, _ = await open_conversation(apps, fx.incoming_sms(2))
        await apps.agents.post(f"/v1/conversations/{conversation_id}/messages", json={"text": "hi"}, headers=auth())
        await conversation_where(apps, conversation_id, last_reply_is("sent"))
        forged = await post_signed(apps, STATUS, fx.status_callback(REPLY_SID, "undelivered", "30003"), token="wrong-token")
        assert forged.status == 403
        queued = await post_signed(apps, STATUS, fx.status_callback(REPLY_SID, "queued"))
        assert queued.status == 200
        receipt = await post_signed(apps, STATUS, fx.status_callback(REPLY_SID, "undelivered", "30003"))
        assert receipt.status == 200
        body = await conversation_where(apps, conversation_id, last_reply_is("failed"))
        assert body["messages"][-1]["status_reason"] == "Twilio undelivered, error 30003"


async def test_an_mms_arrives_with_its_media_urls(names):
    async with messages_api() as api, running_apps(names, **settings(api)) as apps:
        _, assigned = await open_conversation(apps, fx.incoming_mms(3))
        message = assigned["messages"][0]
        assert message["text"] == "photos of the damage"
        assert [a["content_type"] for a in message["attachments"]] == ["image/jpeg", "image/png"]
        assert message["attachments"][0]["url"].startswith("https://api.twilio.com/2010-04-01/Accounts/")


async def test_forged_and_unsigned_calls_publish_nothing(names):
    async with messages_api() as api, running_apps(names, **settings(api)) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        wrong_token = await post_signed(apps, WEBHOOK, fx.incoming_sms(10, "forged"), token="not-the-token")
        assert wrong_token.status == 403 and (await wrong_token.json())["error"]["message"] == "invalid X-Twilio-Signature"
        # A real signature of another URL (the status route) replayed on the message route.
        replayed = await post_signed(apps, WEBHOOK, fx.incoming_sms(11, "replayed"), signed_path=STATUS)
        assert replayed.status == 403
        tampered_headers, _ = fx.signed_request(PUBLIC_URL, WEBHOOK, fx.incoming_sms(12, "original"))
        tampered = await apps.intake.post(WEBHOOK, data=urlencode(fx.incoming_sms(12, "tampered")).encode(), headers=tampered_headers)
        assert tampered.status == 403
        unsigned = await apps.intake.post(WEBHOOK, data=urlencode(fx.incoming_sms(13, "unsigned")).encode(),
                                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert unsigned.status == 401 and (await unsigned.json())["error"]["message"] == "missing X-Twilio-Signature"
        assert (await post_signed(apps, WEBHOOK, fx.incoming_sms(14, "the real one"))).status == 200
        # Same sender, so anything published before would have come first in this conversation.
        (assigned,) = await desk.frames_until(lambda f: f)
        assert texts([assigned]) == ["the real one"]


async def test_a_redelivered_sms_yields_one_message(names):
    async with messages_api() as api, running_apps(names, **settings(api)) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        for _ in range(3):
            assert (await post_signed(apps, WEBHOOK, fx.incoming_sms(20, "once"))).status == 200
        assert (await post_signed(apps, WEBHOOK, fx.incoming_sms(21, "after"))).status == 200
        frames = await desk.frames_until(lambda f: "after" in texts(f))
        assert texts(frames) == ["once", "after"]
        body = await conversation_where(apps, frames[0]["conversation"]["conversation_id"], lambda c: len(c["messages"]) >= 2)
        assert [m["text"] for m in body["messages"]] == ["once", "after"]


async def test_bad_bodies_get_json_errors(names):
    async with messages_api() as api, running_apps(names, **settings(api)) as apps:
        garbage = b'{"From": "+1"}'
        malformed = await apps.intake.post(WEBHOOK, data=garbage, headers={"X-Twilio-Signature": "x"})
        assert malformed.status == 400 and (await malformed.json())["error"]["message"].startswith("malformed form body")
        params = fx.incoming_sms(30)
        del params["MessageSid"]
        incomplete = await post_signed(apps, WEBHOOK, params)
        assert incomplete.status == 400
        document = await incomplete.json()
        assert document["error"]["message"] == "not a Twilio incoming message webhook" and "MessageSid" in str(document)
        oversize = await post_signed(apps, WEBHOOK, fx.incoming_sms(31, "x" * (64 * 1024)))
        assert oversize.status == 413 and "limit" in (await oversize.json())["error"]["message"]
        unknown = await post_signed(apps, "/v1/webhooks/sms/nowhere", fx.incoming_sms(32))
        assert unknown.status == 404 and "not configured" in (await unknown.json())["error"]["message"]


async def test_a_messages_api_answering_500_leaves_the_reply_failed_after_the_retries(names):
    def failing(_: int, __: dict) -> tuple[int, dict]:
        return 500, {"code": 20500, "message": "Internal Server Error", "status": 500}

    async with messages_api(failing) as api, running_apps(names, **settings(api, send_max_attempts=2, send_retry_delay=0.01)) as apps:
        conversation_id, _ = await open_conversation(apps, fx.incoming_sms(40))
        await apps.agents.post(f"/v1/conversations/{conversation_id}/messages", json={"text": "hello?"}, headers=auth())
        body = await conversation_where(apps, conversation_id, last_reply_is("failed"))
        reason = body["messages"][-1]["status_reason"]
        assert "error 20500" in reason and "after 2 attempts" in reason
        assert api.calls.qsize() == 2
