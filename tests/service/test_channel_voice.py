"""Voice calls over the real broker and database: Twilio's requests signed as Twilio signs them, a
local stand-in for Twilio's REST API (call updates, messages) and one for a PBX's connect URL."""

import asyncio
import json
import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aio_pika
from aiohttp import web

from shared import events
from tests.conftest import auth
from tests.fixtures import twilio as sms_fx
from tests.fixtures import voice as fx
from tests.service.helpers import Apps, Desk, running_apps, stand_in_server, texts

PUBLIC_URL = "https://switchyard.example.com"
WEBHOOK = "/v1/webhooks/voice/default"
STATUS = WEBHOOK + "/status"
DIALED = WEBHOOK + "/dialed"
TELEPHONY = "/v1/webhooks/telephony/default"
REPLY_SID = "SM" + "c" * 32
WAIT = 15


@dataclass
class TwilioApi:
    """The stand-in REST API: records call updates and created messages."""

    url: str = ""
    updates: asyncio.Queue = field(default_factory=asyncio.Queue)
    messages: asyncio.Queue = field(default_factory=asyncio.Queue)
    # Calls that are over: Twilio refuses to update them.
    gone: set[str] = field(default_factory=set)


@asynccontextmanager
async def twilio_api() -> AsyncIterator[TwilioApi]:
    api = TwilioApi()

    async def update_call(request: web.Request) -> web.Response:
        sid = request.match_info["call"]
        api.updates.put_nowait((sid, dict(await request.post())))
        if sid in api.gone:
            return web.json_response(fx.NOT_IN_PROGRESS, status=400)
        return web.json_response(fx.call_resource(sid))

    async def create_message(request: web.Request) -> web.Response:
        form = dict(await request.post())
        api.messages.put_nowait(form)
        return web.json_response(sms_fx.created_message(REPLY_SID, form["To"], form["Body"]), status=201)

    async with stand_in_server(("POST", "/2010-04-01/Accounts/{sid}/Calls/{call}.json", update_call),
                               ("POST", "/2010-04-01/Accounts/{sid}/Messages.json", create_message)) as base:
        api.url = base
        yield api


def settings(api: TwilioApi, agents: tuple[str, ...] = ("ann",), **overrides) -> dict:
    voice = {**fx.CONFIG, "base_url": api.url, "agents": {a: f"sip:{a}@pbx.example.com" for a in agents}}
    return {"channels": {"default": {"voice": voice}}, "public_url": PUBLIC_URL, **overrides}


async def post_signed(apps: Apps, path: str, params: dict[str, str], *, token: str = fx.AUTH_TOKEN):
    """Call intake as Twilio would: a form signed for the public URL plus `path` (with its query)."""
    headers, body = sms_fx.signed_request(PUBLIC_URL, path, params, token)
    return await apps.intake.post(path, data=body, headers=headers)


async def twiml_of(response) -> ET.Element:
    assert response.status == 200, await response.text()
    assert response.content_type == "text/xml"
    return ET.fromstring(await response.text())


async def next_update(api: TwilioApi) -> tuple[str, ET.Element]:
    """The next call update Twilio got: (CallSid, its TwiML)."""
    sid, form = await asyncio.wait_for(api.updates.get(), WAIT)
    return sid, ET.fromstring(form["Twiml"])


async def put_voice_agent(apps: Apps, agent_id: str) -> None:
    """An online agent who can take one call (or, between calls, chats)."""
    body = {"name": agent_id.title(), "max_conversations": 3, "channel_capacity": {"voice": 1}}
    response = await apps.agents.put(f"/v1/agents/{agent_id}", json=body, headers=auth())
    assert response.status == 200, await response.text()
    response = await apps.agents.put(f"/v1/agents/{agent_id}/status", json={"status": "online"}, headers=auth())
    assert response.status == 200, await response.text()


async def frame_of(desk: Desk, kind: str) -> dict:
    frames = await desk.frames_until(lambda f: any(x["type"] == kind for x in f))
    return next(x for x in frames if x["type"] == kind)


async def conversation_where(apps: Apps, conversation_id: str, done) -> dict:
    """Poll the conversation until `done` holds (the condition, not the pause, ends it)."""
    async with asyncio.timeout(WAIT):
        while True:
            body = await (await apps.agents.get(f"/v1/conversations/{conversation_id}", headers=auth())).json()
            if done(body):
                return body
            await asyncio.sleep(0.05)


def dialled(twiml: ET.Element) -> list[tuple[str, str | None]]:
    dial = twiml.find("Dial")
    assert dial is not None, ET.tostring(twiml)
    [(noun_tag, target)] = [(noun.tag, noun.text) for noun in dial]
    agent_id = (target or "").removeprefix("sip:").split("@")[0]
    # The action URL names the agent rung, so a "no answer" says whose it was.
    assert dial.get("action") == PUBLIC_URL + DIALED + "?" + urlencode({"agent": agent_id})
    return [(noun_tag, target)]


async def test_a_call_holds_is_dialled_to_the_agent_and_frees_her_when_it_ends(names):
    async with twilio_api() as api, running_apps(names, **settings(api)) as apps:
        await put_voice_agent(apps, "ann")
        desk = await apps.desk("ann")
        first = fx.call_sid(1)
        for _ in range(2):  # the second is Twilio retrying the same call: nothing new comes of it
            hold = await twiml_of(await post_signed(apps, WEBHOOK, fx.incoming_call(1)))
            assert [verb.tag for verb in hold] == ["Say", "Pause", "Redirect"]
            assert hold[2].text == PUBLIC_URL + WEBHOOK + "/hold"
        sid, twiml = await next_update(api)
        assert sid == first and dialled(twiml) == [("Sip", "sip:ann@pbx.example.com")]
        assigned = await frame_of(desk, "conversation.assigned")
        info = assigned["conversation"]
        assert (info["channel"], info["thread_id"], info["contact"]["phone"]) == ("voice", first, fx.CALLER)
        assert texts([assigned]) == [f"Incoming call from {fx.CALLER}"]

        # Still on hold somewhere in between: the hold loop keeps the caller waiting.
        still = await twiml_of(await post_signed(apps, WEBHOOK + "/hold", fx.status_callback(first, "in-progress")))
        assert [verb.tag for verb in still] == ["Pause", "Redirect"]
        assert (await post_signed(apps, STATUS, fx.status_callback(first, "in-progress", sequence=1))).status == 200
        assert (await post_signed(apps, STATUS, fx.status_callback(first, "completed", sequence=2))).status == 200
        ended = await frame_of(desk, "conversation.ended")
        assert ended["reason"] == "call completed"
        body = await conversation_where(apps, info["conversation_id"], lambda c: c["status"] == "resolved")
        assert body["resolved_reason"] == "call completed" and len(body["messages"]) == 1

        # She is free: the next call is dialled to her, and ends through the Dial action.
        second = fx.call_sid(2)
        await twiml_of(await post_signed(apps, WEBHOOK, fx.incoming_call(2, caller=fx.SECOND_CALLER)))
        sid, twiml = await next_update(api)
        assert sid == second and dialled(twiml) == [("Sip", "sip:ann@pbx.example.com")]
        assigned = await frame_of(desk, "conversation.assigned")
        hangup = await twiml_of(await post_signed(apps, DIALED + "?agent=ann",
                                                  fx.dial_action(second, "completed", caller=fx.SECOND_CALLER)))
        assert [verb.tag for verb in hangup] == ["Hangup"]
        await conversation_where(apps, assigned["conversation"]["conversation_id"], lambda c: c["status"] == "resolved")
        assert api.updates.empty()  # each call was dialled once
        listed = await (await apps.agents.get("/v1/conversations?channel=voice", headers=auth())).json()
        assert sorted(c["thread_id"] for c in listed["conversations"]) == [first, second]


async def test_a_call_the_agent_lets_ring_out_goes_to_the_next_agent_while_the_caller_holds(names):
    async with twilio_api() as api, running_apps(names, **settings(api, agents=("ann", "bob"))) as apps:
        await put_voice_agent(apps, "ann")
        await put_voice_agent(apps, "bob")
        desks = {"ann": await apps.desk("ann"), "bob": await apps.desk("bob")}
        sid = fx.call_sid(5)
        await twiml_of(await post_signed(apps, WEBHOOK, fx.incoming_call(5)))
        _, twiml = await next_update(api)
        [(_, target)] = dialled(twiml)
        first = target.removeprefix("sip:").split("@")[0]
        second = "bob" if first == "ann" else "ann"
        assigned = await frame_of(desks[first], "conversation.assigned")

        holding = await twiml_of(await post_signed(apps, DIALED + f"?agent={first}", fx.dial_action(sid, "no-answer")))
        assert [verb.tag for verb in holding] == ["Say", "Pause", "Redirect"]  # on hold again, not voicemail
        revoked = await frame_of(desks[first], "conversation.revoked")
        assert revoked["reason"] == "not answered: agent no-answer"
        again, twiml = await next_update(api)
        assert again == sid and dialled(twiml) == [("Sip", f"sip:{second}@pbx.example.com")]
        taken = await frame_of(desks[second], "conversation.assigned")
        assert taken["conversation"]["conversation_id"] == assigned["conversation"]["conversation_id"]

        hangup = await twiml_of(await post_signed(apps, DIALED + f"?agent={second}", fx.dial_action(sid, "completed")))
        assert [verb.tag for verb in hangup] == ["Hangup"]
        body = await conversation_where(apps, taken["conversation"]["conversation_id"], lambda c: c["status"] == "resolved")
        assert body["assignee_id"] == second and body["resolved_reason"] == "call completed"


async def test_a_call_that_cannot_be_connected_does_not_hold_the_agent(names):
    fast_retries = {"send_max_attempts": 3, "send_retry_delay": 0.01, "send_max_retry_delay": 0.01}
    async with twilio_api() as api, running_apps(names, **settings(api, **fast_retries)) as apps:
        await put_voice_agent(apps, "ann")
        desk = await apps.desk("ann")
        gone = fx.call_sid(41)
        api.gone.add(gone)  # the caller hung up, and Twilio's status callback never reached us
        await twiml_of(await post_signed(apps, WEBHOOK, fx.incoming_call(41)))
        assigned = await frame_of(desk, "conversation.assigned")
        for _ in range(3):  # "not in progress" may only mean still ringing: tried again, a bounded number of times
            assert (await next_update(api))[0] == gone
        body = await conversation_where(apps, assigned["conversation"]["conversation_id"], lambda c: c["status"] == "resolved")
        assert body["resolved_reason"].startswith("could not connect the agent: Twilio Calls/") and "21220" in body["resolved_reason"]
        await twiml_of(await post_signed(apps, WEBHOOK, fx.incoming_call(42, caller=fx.SECOND_CALLER)))
        assert (await next_update(api))[0] == fx.call_sid(42)


async def test_a_caller_who_hangs_up_while_waiting_is_never_connected(names):
    async with twilio_api() as api, running_apps(names, **settings(api)) as apps:
        await apps.put_agent("ann")  # online, but without voice capacity: calls wait
        gone = fx.call_sid(11)
        await twiml_of(await post_signed(apps, WEBHOOK, fx.incoming_call(11)))
        assert (await post_signed(apps, STATUS, fx.status_callback(gone, "completed"))).status == 200
        await put_voice_agent(apps, "bob")
        desk = await apps.desk("bob")
        await twiml_of(await post_signed(apps, WEBHOOK, fx.incoming_call(12, caller=fx.SECOND_CALLER)))
        # Bob takes one call at a time: had the first still waited, it would have been dialled first.
        sid, twiml = await next_update(api)
        assert sid == fx.call_sid(12) and dialled(twiml) == [("Client", "bob")]
        assigned = await frame_of(desk, "conversation.assigned")
        assert assigned["conversation"]["thread_id"] == fx.call_sid(12)
        listed = await (await apps.agents.get("/v1/conversations?channel=voice", headers=auth())).json()
        assert [c["thread_id"] for c in listed["conversations"]] == [fx.call_sid(12)]


async def configure_max_wait(apps: Apps, seconds: float) -> None:
    """Queue `default` sends callers waiting `seconds` to a callback (voicemail); wait until it is in force."""
    config = {"queues": [{"name": "default", "max_wait": {"seconds": seconds, "action": "callback"}}]}
    response = await apps.router.put("/v1/routing/config", json=config, headers=auth())
    assert response.status == 202, await response.text()
    async with asyncio.timeout(WAIT):
        while True:
            current = await (await apps.router.get("/v1/routing/config", headers=auth())).json()
            if current["queues"][0].get("max_wait"):
                return
            await asyncio.sleep(0.05)


async def test_a_caller_who_waits_too_long_leaves_a_voicemail_that_an_agent_answers_by_sms(names):
    async with twilio_api() as api, running_apps(names, router_settings={"tick_seconds": 0.05}, **settings(api)) as apps:
        await configure_max_wait(apps, 0.3)
        await apps.put_agent("ann")  # chats only: nobody can take the call
        desk = await apps.desk("ann")
        sid = fx.call_sid(21)
        await twiml_of(await post_signed(apps, WEBHOOK, fx.incoming_call(21)))
        updated, twiml = await next_update(api)
        assert updated == sid and [verb.tag for verb in twiml] == ["Say", "Record", "Say", "Hangup"]
        record = twiml.find("Record")
        assert record is not None and record.get("transcribe") == "true"
        recorded_path = record.get("action", "").removeprefix(PUBLIC_URL)
        transcription_path = record.get("transcribeCallback", "").removeprefix(PUBLIC_URL)
        assert recorded_path == WEBHOOK + "/voicemail/recorded"
        assert transcription_path == WEBHOOK + "/voicemail/transcription?" + urlencode({"from": fx.CALLER})

        goodbye = await twiml_of(await post_signed(apps, recorded_path, fx.record_action(sid)))
        assert [verb.tag for verb in goodbye] == ["Say", "Hangup"]
        text = "Hi, this is Ann, please call me back about order 1234"
        assert (await post_signed(apps, transcription_path, fx.transcription(sid, text))).status == 200
        assigned = await frame_of(desk, "conversation.assigned")
        info, (message,) = assigned["conversation"], assigned["messages"]
        assert (info["channel"], info["thread_id"], message["text"]) == ("voicemail", sid, text)
        assert message["attachments"][0]["url"] == fx.recording_url(sid)
        # The waiting call was dropped when it went to voicemail: it never reaches an agent.
        listed = await (await apps.agents.get("/v1/conversations?channel=voice", headers=auth())).json()
        assert listed["conversations"] == []

        conversation_id = info["conversation_id"]
        reply = await apps.agents.post(f"/v1/conversations/{conversation_id}/messages", json={"text": "Calling you at 3"},
                                       headers=auth())
        assert reply.status == 201, await reply.text()
        sms = await asyncio.wait_for(api.messages.get(), WAIT)
        status_path = WEBHOOK + "/replies/voicemail/status"
        assert sms == {"To": fx.CALLER, "From": fx.OUR_NUMBER, "Body": "Calling you at 3", "StatusCallback": PUBLIC_URL + status_path}
        await conversation_where(apps, conversation_id, lambda c: c["messages"][-1]["status"] == "sent")
        assert (await post_signed(apps, status_path, sms_fx.status_callback(REPLY_SID, "delivered"))).status == 200
        await conversation_where(apps, conversation_id, lambda c: c["messages"][-1]["status"] == "delivered")


async def test_forged_unsigned_and_bad_call_requests_publish_nothing(names):
    async with twilio_api() as api, running_apps(names, **settings(api)) as apps:
        await put_voice_agent(apps, "ann")
        forged = await post_signed(apps, WEBHOOK, fx.incoming_call(31), token="not-the-token")
        assert forged.status == 403 and (await forged.json())["error"]["message"] == "invalid X-Twilio-Signature"
        unsigned = await apps.intake.post(WEBHOOK, data=urlencode(fx.incoming_call(32)).encode(),
                                          headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert unsigned.status == 401
        forged_end = await post_signed(apps, STATUS, fx.status_callback(fx.call_sid(33), "completed"), token="nope")
        assert forged_end.status == 403
        malformed = await apps.intake.post(WEBHOOK, data=b'{"CallSid": 1}', headers={"X-Twilio-Signature": "x"})
        assert malformed.status == 400 and (await malformed.json())["error"]["message"].startswith("malformed form body")
        params = fx.incoming_call(34)
        del params["CallSid"]
        incomplete = await post_signed(apps, WEBHOOK, params)
        assert incomplete.status == 400 and "CallSid" in await incomplete.text()
        oversize = await post_signed(apps, WEBHOOK, fx.incoming_call(35, CallerName="x" * (64 * 1024)))
        assert oversize.status == 413
        unknown = await post_signed(apps, "/v1/webhooks/voice/nowhere", fx.incoming_call(36))
        assert unknown.status == 404 and "not configured" in (await unknown.json())["error"]["message"]
        no_caller = await post_signed(apps, WEBHOOK + "/voicemail/transcription", fx.transcription(fx.call_sid(37), "x", caller=""))
        assert no_caller.status == 400
        assert (await post_signed(apps, WEBHOOK + "/replies/sms/status", sms_fx.status_callback(REPLY_SID, "sent"))).status == 404

        await twiml_of(await post_signed(apps, WEBHOOK, fx.incoming_call(38)))
        sid, _ = await next_update(api)
        assert sid == fx.call_sid(38)  # the first call anything was published for


@dataclass
class Pbx:
    url: str = ""
    actions: asyncio.Queue = field(default_factory=asyncio.Queue)


@asynccontextmanager
async def pbx_stand_in() -> AsyncIterator[Pbx]:
    """A PBX's connect URL: checks our signature as a PBX script would, records each action."""
    pbx = Pbx()

    async def connect(request: web.Request) -> web.Response:
        body = await request.read()
        expected = fx.pbx_sign(fx.PBX_SECRET, request.headers["X-Switchyard-Timestamp"], body)
        if request.headers.get("X-Switchyard-Signature") != expected:
            return web.json_response({"error": "bad signature"}, status=403)
        pbx.actions.put_nowait(json.loads(body))
        return web.json_response({"ok": True})

    async with stand_in_server(("POST", "/switchyard", connect)) as base:
        pbx.url = base + "/switchyard"
        yield pbx


async def post_pbx(apps: Apps, event: dict, **signing):
    headers, body = fx.pbx_request(event, **signing)
    return await apps.intake.post(TELEPHONY, data=body, headers=headers)


async def test_a_pbx_call_is_bridged_by_the_pbx_and_its_voicemail_reaches_an_agent(names):
    async with pbx_stand_in() as pbx:
        channels = {"default": {"telephony": {"secret": fx.PBX_SECRET, "connect_url": pbx.url, "agents": {"ann": "PJSIP/ann"}}}}
        async with running_apps(names, channels=channels, public_url=PUBLIC_URL) as apps:
            await put_voice_agent(apps, "ann")
            desk = await apps.desk("ann")
            incoming = {"event": "call.incoming", "call_id": "1700000000.42", "from": fx.CALLER, "to": "600"}
            forged = await post_pbx(apps, incoming, secret="another-secret-of-16-chars")
            assert forged.status == 403
            stale = await post_pbx(apps, incoming, timestamp=1_000_000)
            assert stale.status == 403 and "stale" in (await stale.json())["error"]["message"]
            unsigned = await apps.intake.post(TELEPHONY, json=incoming)
            assert unsigned.status == 401
            invalid = await post_pbx(apps, {**incoming, "from": None})
            assert invalid.status == 422

            accepted = await post_pbx(apps, incoming)
            assert accepted.status == 202, await accepted.text()
            action = await asyncio.wait_for(pbx.actions.get(), WAIT)
            assigned = await frame_of(desk, "conversation.assigned")
            info = assigned["conversation"]
            assert action == {"action": "connect", "call_id": "1700000000.42", "agent_id": "ann", "target": "PJSIP/ann",
                              "workspace_id": "default", "conversation_id": info["conversation_id"]}
            assert (info["channel"], info["thread_id"]) == ("voice", "pbx:1700000000.42")

            ended = await post_pbx(apps, {"event": "call.ended", "call_id": "1700000000.42", "status": "completed"})
            assert ended.status == 202
            await conversation_where(apps, info["conversation_id"], lambda c: c["status"] == "resolved")

            # The agent is free again; a voicemail left on the PBX is a conversation of its own.
            voicemail = {"event": "voicemail", "call_id": "1700000000.43", "from": fx.SECOND_CALLER,
                         "transcription": "call me", "recording_url": "https://pbx.example.com/vm/43.wav"}
            assert (await post_pbx(apps, voicemail)).status == 202
            assigned = await frame_of(desk, "conversation.assigned")
            assert (assigned["conversation"]["channel"], assigned["conversation"]["thread_id"]) == ("voicemail", "pbx:1700000000.43")
            assert texts([assigned]) == ["call me"]
            assert pbx.actions.empty()


async def test_a_pbx_call_the_agent_does_not_pick_up_is_bridged_to_the_next_agent(names):
    async with pbx_stand_in() as pbx:
        agents = {"ann": "PJSIP/ann", "bob": "PJSIP/bob"}
        channels = {"default": {"telephony": {"secret": fx.PBX_SECRET, "connect_url": pbx.url, "agents": agents}}}
        async with running_apps(names, channels=channels, public_url=PUBLIC_URL) as apps:
            await put_voice_agent(apps, "ann")
            await put_voice_agent(apps, "bob")
            incoming = {"event": "call.incoming", "call_id": "1700000000.77", "from": fx.CALLER, "to": "600"}
            assert (await post_pbx(apps, incoming)).status == 202
            first = await asyncio.wait_for(pbx.actions.get(), WAIT)
            missed = {"event": "call.not_answered", "call_id": "1700000000.77", "agent_id": first["agent_id"],
                      "status": "no-answer"}
            nameless = await post_pbx(apps, {**missed, "agent_id": None})
            assert nameless.status == 422 and "agent_id" in await nameless.text()
            answer = await post_pbx(apps, missed)
            assert answer.status == 202 and (await answer.json())["rerouted"] is True
            second = await asyncio.wait_for(pbx.actions.get(), WAIT)
            assert second["action"] == "connect" and second["call_id"] == "1700000000.77"
            assert {first["agent_id"], second["agent_id"]} == {"ann", "bob"}
            assert second["target"] == agents[second["agent_id"]]
            assert second["conversation_id"] == first["conversation_id"]


async def test_the_agent_picking_up_tells_the_router_the_call_is_answered(names):
    async with twilio_api() as api, running_apps(names, **settings(api)) as apps:
        connection = await aio_pika.connect(names.infra.amqp_url)
        async with connection:
            channel = await connection.channel()
            answered = await channel.declare_queue(exclusive=True)
            await answered.bind(names.topology.events_exchange, events.CONVERSATION_ANSWERED)
            await put_voice_agent(apps, "ann")
            desk = await apps.desk("ann")
            sid = fx.call_sid(9)
            await twiml_of(await post_signed(apps, WEBHOOK, fx.incoming_call(9)))
            _, twiml = await next_update(api)
            conversation_id = (await frame_of(desk, "conversation.assigned"))["conversation"]["conversation_id"]
            hook = twiml.find("Dial")[0].get("url")
            assert hook == PUBLIC_URL + WEBHOOK + "/answered?" + urlencode({"agent": "ann", "conversation": conversation_id})

            leg = {**fx.status_callback("CA" + "e" * 32, "in-progress"), "ParentCallSid": sid}
            bridge = await twiml_of(await post_signed(apps, hook.removeprefix(PUBLIC_URL), leg))
            assert list(bridge) == []  # nothing played to the agent: the bridge goes ahead
            async with asyncio.timeout(WAIT), answered.iterator() as published:
                message = await anext(aiter(published))
                await message.ack()
            event = json.loads(message.body)
            assert (event["conversation_id"], event["agent_id"], event["workspace_id"]) == (conversation_id, "ann", "default")

            no_context = await post_signed(apps, WEBHOOK + "/answered?agent=ann", leg)
            assert no_context.status == 400 and "conversation" in (await no_context.json())["error"]["message"]
