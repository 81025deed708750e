"""Event subscriptions on the real broker and database, with real receivers on local ports: signed
deliveries, retries with the same delivery id, dead letters and re-sending, order per conversation
without stalling the others, idempotent recording, replay, a restart with deliveries pending, the
API's validation and workspace isolation."""

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import groupby

import pytest
from aiohttp import web

from services.reporting.app import STORE
from services.reporting.app import create_app as create_reporting
from services.reporting.model import ReportEvent
from services.reporting.settings import ReportingSettings
from services.reporting.subscriptions.api import SUBSCRIPTION_STORE
from services.reporting.subscriptions.signing import verify
from services.reporting.subscriptions.urls import is_public
from shared import events
from shared.models import utcnow
from tests.conftest import Names, auth, free_port, serve
from tests.service.helpers import running_apps
from tests.service.test_reporting_events import post_json
from tests.service.test_reporting_service import publish, routing_event

SECRET = "whsec-test-0123456789"
POLL = 0.05
# Fast retries so the tests take no time; no timing is asserted.
FAST = {"subscriptions_backoff_seconds": 0.02, "subscriptions_backoff_cap_seconds": 0.1,
        "subscriptions_poll_seconds": 0.05, "subscriptions_timeout_seconds": 2, "subscriptions_settle_seconds": 0}


async def until(check: Callable, timeout: float = 20):
    async with asyncio.timeout(timeout):
        while not (result := await check()):
            await asyncio.sleep(POLL)
        return result


@dataclass
class Received:
    headers: dict[str, str]
    raw: bytes
    status: int

    @property
    def body(self) -> dict:
        return json.loads(self.raw)


@dataclass
class Receiver:
    """A real HTTP server standing in for an external system; `answer` decides each status from the body."""

    answer: Callable[[dict, int], int | tuple[int, dict]] = lambda body, n: 200
    requests: list[Received] = field(default_factory=list)
    url: str = ""

    def delivered(self, **match) -> list[dict]:
        """Bodies answered 2xx whose data holds `match`."""
        return [r.body for r in self.requests if 200 <= r.status < 300
                and all(r.body["data"].get(k) == v for k, v in match.items())]

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        body = json.loads(raw)
        tries = sum(r.headers["X-Switchyard-Delivery"] == request.headers["X-Switchyard-Delivery"]
                    for r in self.requests)
        answer = self.answer(body, tries)
        status, headers = answer if isinstance(answer, tuple) else (answer, {})
        self.requests.append(Received(dict(request.headers), raw, status))
        return web.json_response({"ok": status < 300}, status=status, headers=headers)


@asynccontextmanager
async def receiving(receiver: Receiver) -> AsyncIterator[Receiver]:
    app = web.Application()
    app.router.add_post("/hooks", receiver.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    receiver.url = f"http://127.0.0.1:{port}/hooks"
    try:
        yield receiver
    finally:
        await runner.cleanup()


def reporting_app(names: Names, **settings):
    return serve(create_reporting(names.settings(ReportingSettings, **(FAST | settings))))


async def subscribe(client, url: str, wanted: list[str] | None = None, key: str = "test-key") -> dict:
    response = await client.post("/v1/subscriptions", headers=auth(key),
                                 json={"url": url, "events": wanted or ["*"], "secret": SECRET})
    assert response.status == 201, await response.text()
    return await response.json()


def fact(conversation: str, type_: str, n: int, at: datetime, **fields) -> ReportEvent:
    """A ReportEvent as the normalizer makes it (recorded straight into the store, as a batch would be)."""
    base = {"workspace_id": "default", "conversation_id": conversation, "queue": "sales", "channel": "api"}
    data = {"conversation.opened": {"priority": 0, "skills": []}, "conversation.queued": {"reason": "opened"},
            "message.created": {"direction": "inbound"}}.get(type_, {})
    return ReportEvent(event_id=f"{conversation}:{n}:{type_}", type=type_, at=at, data=data, **(base | fields))


def conversation_facts(conversation: str, start: datetime) -> list[ReportEvent]:
    return [fact(conversation, "conversation.opened", 0, start),
            fact(conversation, "conversation.queued", 1, start + timedelta(seconds=1)),
            fact(conversation, "conversation.assigned", 2, start + timedelta(seconds=2), agent_id="ann")]


async def record(client, batch: list[ReportEvent]) -> None:
    await client.app[STORE].record(batch, recompute=False)


async def deliveries(client, subscription_id: str) -> list[dict]:
    store = client.app[STORE]
    return [d async for d in store.db["subscription_deliveries"].find({"subscription_id": subscription_id})]


async def settled(client, subscription_id: str, count: int = 1) -> list[dict]:
    """The subscription's deliveries once `count` are no longer pending (the receiver answers before they are
    recorded)."""
    async def done() -> list[dict]:
        found = await deliveries(client, subscription_id)
        return found if sum(d["status"] != "pending" for d in found) >= count else []
    return await until(done)


async def test_deliveries_through_the_broker_are_signed_and_verified_like_a_receiver_would(names):
    async with receiving(Receiver()) as receiver, reporting_app(names) as client:
        subscription = await subscribe(client, receiver.url, ["conversation.created", "conversation.assigned"])
        assert subscription["secret_hint"] == f"…{SECRET[-4:]}" and SECRET not in json.dumps(subscription)
        for item in [routing_event("B1", events.CONVERSATION_OPENED, 0, details={"priority": 0, "skills": [],
                                                                                  "channel": "api"}),
                     routing_event("B1", events.CONVERSATION_QUEUED, 1, details={"reason": "opened"}),
                     routing_event("B1", events.CONVERSATION_ROUTED, 2, agent_id="ann", details={"channel": "api"})]:
            await publish(names, *item)
        await until(lambda: _true(len(receiver.requests) >= 2))
        created, assigned = receiver.requests[:2]
        for request in (created, assigned):
            # What a receiver does: HMAC-SHA256 of "<timestamp>.<raw body>" with the secret, a fresh timestamp.
            assert verify(SECRET, request.headers["X-Switchyard-Timestamp"], request.raw,
                          request.headers["X-Switchyard-Signature"], now=utcnow().timestamp())
            assert not verify("not-the-secret-at-all", request.headers["X-Switchyard-Timestamp"], request.raw,
                              request.headers["X-Switchyard-Signature"], now=utcnow().timestamp())
            assert request.headers["X-Switchyard-Delivery"] == request.body["id"]
            assert request.headers["X-Switchyard-Event"] == request.body["event"]
        assert [r.body["event"] for r in receiver.requests] == ["conversation.created", "conversation.assigned"]
        assert created.body["workspace_id"] == "default" and created.body["data"]["conversation_id"] == "B1"
        assert assigned.body["data"]["agent_id"] == "ann"
        assert datetime.fromisoformat(created.body["occurred_at"]) <= datetime.fromisoformat(
            assigned.body["occurred_at"])


async def _true(value) -> bool:
    return bool(value)


async def test_a_failing_receiver_is_retried_with_the_same_delivery_id_until_it_answers(names):
    # 503, then 429 with Retry-After, then a timeout-free 200.
    answers = {0: 503, 1: (429, {"Retry-After": "0"})}
    async with receiving(Receiver(lambda body, n: answers.get(n, 200))) as receiver, reporting_app(names) as client:
        subscription = await subscribe(client, receiver.url, ["conversation.created"])
        await record(client, conversation_facts("R1", utcnow()))
        (delivery,) = await settled(client, subscription["id"])
        assert [r.status for r in receiver.requests] == [503, 429, 200]
        assert len({r.headers["X-Switchyard-Delivery"] for r in receiver.requests}) == 1
        assert len({r.raw for r in receiver.requests}) == 1  # the same body every time
        assert delivery["status"] == "delivered" and delivery["attempts"] == 3
        assert [a["status"] for a in delivery["history"]] == [503, 429, 200]


async def test_a_refusing_or_ever_failing_receiver_ends_in_the_dead_letters_and_can_be_sent_again(names):
    refuse = {"R-410": 410, "R-500": 500, "R-302": (302, {"Location": "http://169.254.169.254/latest"})}
    fixed = False

    def answer(body: dict, _: int) -> int | tuple[int, dict]:
        return 200 if fixed else refuse[body["data"]["conversation_id"]]

    async with receiving(Receiver(answer)) as receiver, reporting_app(names, subscriptions_max_attempts=3) as client:
        subscription = await subscribe(client, receiver.url, ["conversation.created"])
        now = utcnow()
        await record(client, [fact(c, "conversation.opened", 0, now) for c in refuse])
        path = f"/v1/subscriptions/{subscription['id']}/dead-letters"

        async def dead() -> list[dict]:
            response = await client.get(path, headers=auth())
            found = (await response.json())["dead_letters"]
            return found if len(found) == 3 else []

        letters = {d["event_id"]: d for d in await until(dead)}
        by_conversation = {json.loads(r.raw)["data"]["conversation_id"]: r for r in receiver.requests}
        gone = letters[by_conversation["R-410"].body["event_id"]]
        failing = letters[by_conversation["R-500"].body["event_id"]]
        redirected = letters[by_conversation["R-302"].body["event_id"]]
        assert redirected["attempts"] == 1 and "not followed" in redirected["reason"], redirected
        assert gone["attempts"] == 1 and "410" in gone["reason"] and "final" in gone["reason"], gone
        assert failing["attempts"] == 3 and "gave up after 3 attempts" in failing["reason"], failing
        assert [a["status"] for a in failing["history"]] == [500, 500, 500]
        detail = await (await client.get(f"/v1/subscriptions/{subscription['id']}", headers=auth())).json()
        assert (detail["pending"], detail["dead_letters"]) == (0, 3)

        fixed = True
        resent = await client.post(f"{path}/{gone['id']}/resend", headers=auth())
        assert resent.status == 202 and (await resent.json()) == {"id": gone["id"], "status": "pending"}
        await until(lambda: _true(receiver.delivered(conversation_id="R-410")))
        (again,) = receiver.delivered(conversation_id="R-410")
        assert again["id"] == gone["id"]  # the same delivery id
        assert {d["id"] for d in (await (await client.get(path, headers=auth())).json())["dead_letters"]} == {
            failing["id"], redirected["id"]}
        missing = await client.post(f"{path}/{gone['id']}/resend", headers=auth())  # not dead any more
        assert missing.status == 404 and (await missing.json())["error"]["status"] == 404
        every = await client.post(f"{path}/resend", headers=auth())
        assert every.status == 202 and await every.json() == {"resent": 2}
        await until(lambda: _true(receiver.delivered(conversation_id="R-500")))
        assert (await (await client.get(path, headers=auth())).json())["dead_letters"] == []


async def test_a_conversation_keeps_its_order_and_a_failing_one_stalls_no_other(names):
    def answer(body: dict, tries: int) -> int:
        conversation = body["data"]["conversation_id"]
        if conversation == "STUCK":
            return 503  # never answers well: retried (max attempts is high), never dead meanwhile
        if conversation == "ORDER" and body["data"].get("status") is None and body["event"] == "conversation.created":
            return 503 if tries == 0 else 200  # the conversation's first event fails its first attempt
        return 200

    async with receiving(Receiver(answer)) as receiver, receiving(Receiver()) as other, \
            reporting_app(names, subscriptions_max_attempts=1000) as client:
        subscription = await subscribe(client, receiver.url)
        await subscribe(client, other.url, ["conversation.created"])
        now = utcnow()
        # One batch, as the consumer records them: the stuck conversation first.
        await record(client, conversation_facts("STUCK", now) + conversation_facts("ORDER", now))
        await until(lambda: _true(len(receiver.delivered(conversation_id="ORDER")) == 4))
        ordered = [r.body for r in receiver.requests if r.body["data"]["conversation_id"] == "ORDER"]
        assert [(b["event"], b["data"].get("status")) for b in ordered] == [
            ("conversation.created", None), ("conversation.created", None),  # failed, then again
            ("conversation.status_changed", "queued"), ("conversation.assigned", None),
            ("conversation.status_changed", "assigned")]
        # The stuck conversation: only its first event was ever tried, again and again; the others wait behind it.
        await until(lambda: _true(sum(r.body["data"]["conversation_id"] == "STUCK" for r in receiver.requests) >= 3))
        stuck = {r.body["event_id"] for r in receiver.requests if r.body["data"]["conversation_id"] == "STUCK"}
        assert len(stuck) == 1
        async def only_stuck_pending() -> bool:  # ORDER's last one may be answered, not yet recorded
            pending = [d for d in await deliveries(client, subscription["id"]) if d["status"] == "pending"]
            return {d["chain"] for d in pending} == {"conversation:STUCK"} and len(pending) == 4
        await until(only_stuck_pending)
        # Another subscription got both conversations' events meanwhile.
        await until(lambda: _true(len(other.delivered()) == 2))


async def test_the_same_batch_recorded_twice_makes_each_delivery_once(names):
    async with receiving(Receiver()) as receiver, reporting_app(names) as client:
        subscription = await subscribe(client, receiver.url, ["conversation.status_changed"])
        batch = conversation_facts("TWICE", utcnow())
        await record(client, batch)
        await record(client, batch)
        await record(client, list(reversed(batch)))
        await settled(client, subscription["id"], 2)  # queued, assigned
        await record(client, batch)  # also after they were delivered
        stored = await deliveries(client, subscription["id"])
        assert len(stored) == 2 and {d["status"] for d in stored} == {"delivered"}
        assert len(receiver.requests) == 2


async def test_a_replay_sends_the_stored_events_from_a_time_again_in_order(names):
    async with receiving(Receiver()) as receiver, reporting_app(names) as client:
        subscription = await subscribe(client, receiver.url, ["conversation.created", "conversation.status_changed"])
        start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
        await record(client, conversation_facts("EARLY", start) + conversation_facts("LATE", start + timedelta(hours=1)))
        await until(lambda: _true(len(receiver.delivered()) == 6))
        first = {r.body["event_id"]: r.body for r in receiver.requests}

        path = f"/v1/subscriptions/{subscription['id']}/replay"
        response = await client.post(path, headers=auth(), json={"from": "2026-03-02T12:00:00+02:00"})  # 10:00 UTC
        assert response.status == 202, await response.text()
        replay = await response.json()
        assert (replay["events"], replay["scheduled"], replay["truncated"]) == (3, 3, False)
        await until(lambda: _true(len(receiver.delivered()) == 9))
        replayed = receiver.requests[6:]
        assert [r.body["data"]["conversation_id"] for r in replayed] == ["LATE"] * 3
        assert [r.body["data"].get("status") for r in replayed] == [None, "queued", "assigned"]  # in order
        for request in replayed:
            original = first[request.body["event_id"]]  # the same event id, a new delivery id
            assert request.body["id"] != original["id"] and request.body["data"] == original["data"]
            assert request.headers["X-Switchyard-Replay"] == replay["replay_id"]


async def test_pending_deliveries_survive_a_restart_of_the_service(names):
    up = False
    async with receiving(Receiver(lambda body, n: 200 if up else 503)) as receiver:
        async with reporting_app(names, subscriptions_max_attempts=1000) as client:
            subscription = await subscribe(client, receiver.url, ["conversation.created"])
            await record(client, conversation_facts("RESTART", utcnow()))
            await until(lambda: _true(len(receiver.requests) >= 2))  # tried, failing
        tried = len(receiver.requests)
        up = True
        async with reporting_app(names) as client:
            (delivery,) = await settled(client, subscription["id"])
            assert delivery["status"] == "delivered" and delivery["attempts"] >= tried
        assert len({r.headers["X-Switchyard-Delivery"] for r in receiver.requests}) == 1


async def test_bad_requests_get_a_json_4xx_and_workspaces_see_only_their_own(names):
    good = {"url": "https://example.com/hooks", "events": ["*"], "secret": SECRET}
    cases = [
        (good | {"url": "ftp://example.com/"}, 422),
        (good | {"url": "https://user:pw@example.com/"}, 422),
        (good | {"url": "https://example.com:99999/"}, 422),
        (good | {"url": "https://example.com/" + "a" * 2048}, 422),
        (good | {"events": []}, 422),
        (good | {"events": ["conversation.exploded"]}, 422),
        (good | {"secret": "short"}, 422),
        ({k: v for k, v in good.items() if k != "secret"}, 422),
        (good | {"extra": 1}, 422),
        (b"{not json", 400),
    ]
    async with reporting_app(names, subscriptions_allow_private=False, subscriptions_per_workspace=2) as client:
        assert (await client.get("/v1/subscriptions")).status == 401
        for body, status in cases:
            kwargs = {"data": body} if isinstance(body, bytes) else {"json": body}
            response = await client.post("/v1/subscriptions", headers=auth(), **kwargs)
            assert response.status == status, (body, await response.text())
            assert (await response.json())["error"]["status"] == status
        for private in ("http://127.0.0.1:8080/h", "http://169.254.169.254/latest", "http://localhost/h"):
            response = await client.post("/v1/subscriptions", headers=auth(), json=good | {"url": private})
            assert response.status == 422 and "forbids" in (await response.json())["error"]["message"]

        mine = await subscribe(client, "https://example.com/a")
        assert await (await client.get(f"/v1/subscriptions/{mine['id']}", headers=auth())).json() == mine | {
            "pending": 0, "dead_letters": 0}
        theirs = await subscribe(client, "https://example.com/b", key="other-key")
        await subscribe(client, "https://example.com/c")
        full = await client.post("/v1/subscriptions", headers=auth(), json=good)
        assert full.status == 409
        listed = (await (await client.get("/v1/subscriptions", headers=auth())).json())["subscriptions"]
        assert [s["url"] for s in listed] == ["https://example.com/a", "https://example.com/c"]
        assert SECRET not in json.dumps(listed)
        for path in (f"/v1/subscriptions/{theirs['id']}", f"/v1/subscriptions/{theirs['id']}/dead-letters"):
            assert (await client.get(path, headers=auth())).status == 404
        assert (await client.post(f"/v1/subscriptions/{theirs['id']}/replay", headers=auth(),
                                  json={"from": "2026-03-02T00:00:00Z"})).status == 404
        assert (await client.delete(f"/v1/subscriptions/{theirs['id']}", headers=auth())).status == 404
        assert (await client.get(f"/v1/subscriptions/{theirs['id']}", headers=auth("other-key"))).status == 200

        replay = f"/v1/subscriptions/{mine['id']}/replay"
        for body in ({"from": "yesterday"}, {"from": "2026-03-02T00:00:00"}, {}, {"from": 5}):
            response = await client.post(replay, headers=auth(), json=body)
            assert response.status == 422, (body, await response.text())
        bad_limit = await client.get(f"/v1/subscriptions/{mine['id']}/dead-letters?limit=0", headers=auth())
        assert bad_limit.status == 400
        assert (await client.delete(f"/v1/subscriptions/{mine['id']}", headers=auth())).status == 204
        assert (await client.get(f"/v1/subscriptions/{mine['id']}", headers=auth())).status == 404


async def test_private_receivers_are_refused_at_send_time_where_the_settings_forbid_them(names):
    """A subscription made while private addresses were allowed (or a name that resolves inside later) is not
    sent to: the delivery is dead at once with the reason, the receiver never called."""
    host = socket.gethostname()
    resolved = {info[4][0] for info in socket.getaddrinfo(host, 80)}
    if any(is_public(address) for address in resolved):
        pytest.skip(f"this machine's name {host} resolves to a public address")
    async with receiving(Receiver()) as receiver, reporting_app(names, subscriptions_allow_private=False) as client:
        store = client.app[SUBSCRIPTION_STORE]
        port = receiver.url.split(":")[2].split("/")[0]
        literal = await store.create("default", receiver.url, ["conversation.created"], SECRET, utcnow())
        named = await store.create("default", f"http://{host}:{port}/hooks", ["conversation.created"], SECRET, utcnow())
        await record(client, [fact("SSRF", "conversation.opened", 0, utcnow())])

        async def dead(subscription: dict) -> list[dict]:
            found = [d for d in await deliveries(client, subscription["_id"]) if d["status"] == "dead"]
            return found

        (by_literal,) = await until(lambda: dead(literal))
        (by_name,) = await until(lambda: dead(named))
        assert "127.0.0.1" in by_literal["dead_reason"] and "forbids" in by_literal["dead_reason"]
        assert "resolves to a non-public address" in by_name["dead_reason"], by_name["dead_reason"]
        assert by_literal["attempts"] == by_name["attempts"] == 1
        assert receiver.requests == []


async def test_a_slow_receiver_holds_only_its_share_of_the_slots(names):
    """A receiver that does not answer (each try would take the whole timeout) holds at most its share of the
    requests in flight; another subscription's deliveries go on meanwhile."""
    release = asyncio.Event()
    in_flight, most, slow_received = 0, 0, []

    async def slow(request: web.Request) -> web.Response:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await release.wait()
        slow_received.append(await request.json())
        in_flight -= 1
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/slow", slow)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    settings = {"subscriptions_concurrency": 4, "subscriptions_concurrency_per_subscription": 2,
                "subscriptions_timeout_seconds": 60}
    try:
        async with receiving(Receiver()) as fast, reporting_app(names, **settings) as client:
            await subscribe(client, f"http://127.0.0.1:{port}/slow", ["conversation.created"])
            await subscribe(client, fast.url, ["conversation.created"])
            now = utcnow()
            await record(client, [fact(f"C{n}", "conversation.opened", 0, now) for n in range(10)])
            await until(lambda: _true(len(fast.delivered()) == 10))
            assert most <= 2 and slow_received == []
            release.set()
            await until(lambda: _true(len(slow_received) == 10))
    finally:
        release.set()
        await runner.cleanup()


async def test_a_conversation_through_the_whole_stack_reaches_a_subscriber_as_documented(names):
    """Intake, router, agents and reporting running: what a subscriber gets is docs/events.md's events."""
    async with receiving(Receiver()) as receiver, \
            running_apps(names, reporting=FAST | {"subscriptions_settle_seconds": 0.5}) as apps:
        assert apps.reporting is not None
        await subscribe(apps.reporting, receiver.url)
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        await apps.post("cust-1", "my bill is wrong")
        frames = await desk.frames_until(lambda f: any(x["type"] == "conversation.assigned" for x in f))
        conversation = next(f for f in frames if f["type"] == "conversation.assigned")["conversation"]
        conversation_id = conversation["conversation_id"]
        await post_json(apps, f"/v1/conversations/{conversation_id}/messages", {"text": "let me check"}, 201)
        await post_json(apps, f"/v1/conversations/{conversation_id}/resolve")

        def of_conversation() -> list[set[tuple[str, str | None]]]:
            """What happened, a set per time (events at the same time: the message that opened the conversation
            and its opening; its queueing and its assignment at once), in time order. They are also sent in that order where they
            reached reporting within the settle time; this test asserts no timing, so it does not insist on it."""
            bodies = sorted(receiver.delivered(conversation_id=conversation_id), key=lambda b: b["occurred_at"])
            return [{(b["event"], b["data"].get("status") or b["data"].get("direction")) for b in group}
                    for _, group in groupby(bodies, key=lambda b: b["occurred_at"])]

        await until(lambda: _true(any(("conversation.status_changed", "resolved") in at for at in of_conversation())))
        assert of_conversation() == [
            {("conversation.created", None), ("message.created", "inbound")},
            {("conversation.status_changed", "queued"),  # an agent was free: queued and assigned at once
             ("conversation.assigned", None), ("conversation.status_changed", "assigned")},
            {("message.created", "outbound")}, {("conversation.status_changed", "resolved")}]
        reply = receiver.delivered(conversation_id=conversation_id, direction="outbound")[0]
        assert reply["data"]["agent_id"] == "ann" and reply["data"]["message_id"]
        await until(lambda: _true(any(b["event"] == "agent.status_changed" and b["data"]["status"] == "online"
                                      for b in receiver.delivered(agent_id="ann"))))


async def test_a_long_replay_is_cut_at_its_bound_and_says_where_to_go_on(names):
    async with receiving(Receiver()) as receiver, reporting_app(names, subscriptions_replay_max_events=2) as client:
        subscription = await subscribe(client, receiver.url, ["conversation.status_changed"])
        start = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
        await record(client, conversation_facts("LONG", start))  # opened, queued, assigned
        path = f"/v1/subscriptions/{subscription['id']}/replay"
        first = await (await client.post(path, headers=auth(), json={"from": start.isoformat()})).json()
        # Two events read (opened, queued); one of them is a status change.
        assert (first["events"], first["scheduled"], first["truncated"]) == (2, 1, True)
        assert datetime.fromisoformat(first["until"]) == start + timedelta(seconds=1)
        rest = await (await client.post(path, headers=auth(), json={"from": first["until"]})).json()
        assert (rest["events"], rest["scheduled"], rest["truncated"]) == (2, 2, False)  # queued again, assigned
        await until(lambda: _true(len(receiver.delivered()) == 5))  # live (queued, assigned) + replays (1 + 2)


async def test_a_batch_that_fails_after_its_deliveries_were_made_makes_them_once_when_it_comes_again(names):
    """The consumer acks a batch only once it is recorded: one that failed midway (after its deliveries were
    made, before its events were stored) comes again, and its deliveries are neither lost nor made twice."""
    async with receiving(Receiver()) as receiver, reporting_app(names) as client:
        subscription = await subscribe(client, receiver.url, ["conversation.status_changed"])
        store = client.app[STORE]
        insert = store._insert_events
        failures = []

        async def failing_once(events: list[ReportEvent]) -> None:
            if not failures:
                failures.append(len(events))
                raise ConnectionError("the database went away")
            await insert(events)

        store._insert_events = failing_once
        batch = conversation_facts("CRASH", utcnow())
        with pytest.raises(ConnectionError):
            await record(client, batch)
        assert len(await deliveries(client, subscription["id"])) == 2  # made before the events were stored
        await record(client, batch)  # the broker delivers the unacked batch again
        await settled(client, subscription["id"], 2)
        assert len(await deliveries(client, subscription["id"])) == 2
        assert sorted(b["data"]["status"] for b in receiver.delivered()) == ["assigned", "queued"]
        assert len(receiver.requests) == 2
