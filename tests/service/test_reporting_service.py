"""The reporting service on the real broker and database: conversations driven through intake, router
and agents reach its summary and CSV export; repeated and reordered events change nothing; a poison
message is dead-lettered with its reason while the rest is reported; bad queries get a JSON 4xx."""

import asyncio
import csv
import io
import json
from datetime import timedelta

import aio_pika

from services.reporting.app import SERVICE, STORE
from shared import events
from shared.models import RoutingEvent, utcnow
from tests.conftest import Names, auth
from tests.service.helpers import Apps, running_apps
from tests.service.test_reporting_events import chat_and_leave, post_json, set_status

POLL = 0.1


async def until(check, timeout: float = 20):
    async with asyncio.timeout(timeout):
        while not (result := await check()):
            await asyncio.sleep(POLL)
        return result


def today_range() -> dict[str, str]:
    now = utcnow()
    return {"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}


async def get_summary(apps: Apps, key: str = "test-key", **query: str) -> dict:
    assert apps.reporting is not None
    response = await apps.reporting.get("/v1/reports/summary", params=today_range() | query, headers=auth(key))
    assert response.status == 200, await response.text()
    return await response.json()


async def counts(apps: Apps, group_by: str = "none", key: str = "test-key") -> dict[str, dict]:
    """Per group key ("all" for none), the counts summed over the rows' intervals."""
    totals: dict[str, dict] = {}
    for row in (await get_summary(apps, key, group_by=group_by, interval="day"))["rows"]:
        group = totals.setdefault(row["key"].get(group_by, "all"), {})
        for name in ("opened", "queued", "answered", "resolved", "abandoned", "transferred"):
            group[name] = group.get(name, 0) + (row["metrics"][name] or 0)  # None: not counted for agents
    return totals


async def test_conversations_through_the_stack_are_counted_and_exported(names):
    async with running_apps(names, webchat_abandon_seconds=0.3, reporting={}) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        await apps.post("cust-1", "hello")
        await apps.post("cust-2", "my order")
        frames = await desk.frames_until(lambda f: sum(x["type"] == "conversation.assigned" for x in f) >= 2)
        first, second = [f["conversation"]["conversation_id"] for f in frames if f["type"] == "conversation.assigned"]
        await post_json(apps, f"/v1/conversations/{first}/messages", {"text": "hi, how can I help?"}, 201)
        await post_json(apps, f"/v1/conversations/{first}/resolve")
        await set_status(apps, "ann", "away")
        await chat_and_leave(apps, "anyone there?")  # nobody online: it waits, the page closes: abandoned

        want = {"opened": 3, "queued": 3, "answered": 2, "resolved": 1, "abandoned": 1, "transferred": 0}
        await until(lambda: _equals(counts(apps), {"all": want}))
        assert await counts(apps, "queue") == {"default": want}
        by_agent = await counts(apps, "agent")
        assert (by_agent["ann"]["answered"], by_agent["ann"]["resolved"]) == (2, 1)
        row = (await get_summary(apps))["rows"][0]
        assert row["metrics"]["abandonment_rate"] == 1 / 3 and row["metrics"]["first_response_time_mean"] >= 0

        assert apps.reporting is not None
        response = await apps.reporting.get("/v1/reports/conversations.csv", params=today_range(), headers=auth())
        assert response.status == 200 and response.content_type == "text/csv"
        rows = list(csv.DictReader(io.StringIO(await response.text())))
        assert len(rows) == 3
        by_id = {r["conversation_id"]: r for r in rows}
        assert by_id[first]["resolved_at"] and by_id[first]["first_agent"] == "ann"
        assert by_id[first]["opened_at"] <= by_id[first]["answered_at"] <= by_id[first]["resolved_at"]
        assert by_id[second]["answered_at"] and not by_id[second]["resolved_at"]
        (abandoned,) = [r for r in rows if r["conversation_id"] not in (first, second)]
        assert abandoned["channel"] == "webchat" and abandoned["abandoned_at"] and not abandoned["answered_at"]


async def _equals(found, wanted) -> bool:
    return await found == wanted


async def publish(names: Names, routing_key: str, body: bytes, message_id: str) -> None:
    connection = await aio_pika.connect(names.infra.amqp_url)
    async with connection:
        channel = await connection.channel(publisher_confirms=True, on_return_raises=True)
        exchange = await channel.get_exchange(names.topology.events_exchange, ensure=False)
        message = aio_pika.Message(body, message_id=message_id, delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
                                   content_type="application/json")
        await exchange.publish(message, routing_key, mandatory=True)


def routing_event(conversation: str, type_: str, n: int, workspace_id: str = "default",
                  **fields) -> tuple[str, bytes, str]:
    event = RoutingEvent(event_id=f"{conversation}:{n}:{type_}", type=type_, workspace_id=workspace_id,
                         conversation_id=conversation, queue="sales", at=utcnow(), **fields)
    routing_key = f"{type_}.api" if type_ == events.CONVERSATION_ROUTED else type_
    return routing_key, event.model_dump_json().encode(), event.event_id


async def rollup_documents(apps: Apps, workspace: str = "default") -> list[str]:
    assert apps.reporting is not None
    store = apps.reporting.app[STORE]
    return sorted([json.dumps(d, default=str, sort_keys=True)
                   async for d in store.rollups.find({"workspace_id": workspace}, {"_id": 0})])


async def test_repeated_and_reordered_events_change_nothing_and_poison_is_dead_lettered(names):
    async with running_apps(names, reporting={}) as apps:
        conversation = [
            routing_event("R1", events.CONVERSATION_OPENED, 0, details={"priority": 0, "skills": [], "channel": "api"}),
            routing_event("R1", events.CONVERSATION_QUEUED, 1, details={"reason": "opened", "channel": "api"}),
            routing_event("R1", events.CONVERSATION_ROUTED, 2, agent_id="ann", details={"channel": "api"}),
        ]
        for item in conversation:
            await publish(names, *item)
        await publish(names, events.CONVERSATION_OPENED, b'{"not": "an event"}', "poison-1")
        await until(lambda: _equals(counts(apps, "queue"), {"sales": {
            "opened": 1, "queued": 1, "answered": 1, "resolved": 0, "abandoned": 0, "transferred": 0}}))
        before = await rollup_documents(apps)
        assert before

        for item in [*reversed(conversation), *conversation]:  # redelivered, out of order, twice
            await publish(names, *item)
        # The queue is consumed in order: once the sentinel (another workspace's) counts, everything
        # before it was applied.
        await publish(names, *routing_event("R2", events.CONVERSATION_OPENED, 0, workspace_id="other",
                                            details={"priority": 0, "skills": [], "channel": "api"}))
        await until(lambda: _equals(counts(apps, key="other-key"), {"all": {
            "opened": 1, "queued": 0, "answered": 0, "resolved": 0, "abandoned": 0, "transferred": 0}}))
        assert await rollup_documents(apps, "default") == before

        dead = await dead_letters(names)
        assert [m.message_id for m in dead] == ["poison-1"]
        reason = dead[0].headers["x-error"]
        assert "conversation.opened" in reason and "RoutingEvent" in reason, reason


async def dead_letters(names: Names) -> list:
    connection = await aio_pika.connect(names.infra.amqp_url)
    async with connection:
        channel = await connection.channel()
        queue = await channel.declare_queue(names.topology.dead_letter_queue(names.topology.reporting_queue),
                                            passive=True)
        found = []
        while (message := await queue.get(fail=False, no_ack=True)) is not None:
            found.append(message)
        return found


async def test_bad_queries_get_a_json_4xx_naming_the_problem(names):
    day = {"from": "2026-03-02T00:00:00+02:00", "to": "2026-03-03T00:00:00+02:00"}
    cases = [
        ("/v1/reports/summary", {"to": day["to"]}, 400, "from"),
        ("/v1/reports/summary", day | {"from": "yesterday"}, 400, "from"),
        ("/v1/reports/summary", day | {"to": "2026-03-03T00:00:00"}, 400, "to"),  # no offset: whose midnight?
        ("/v1/reports/summary", day | {"from": "2026-13-02T00:00:00Z"}, 400, "from"),
        ("/v1/reports/summary", day | {"tz": "Mars/Olympus_Mons"}, 422, "tz"),
        ("/v1/reports/summary", day | {"tz": "../../etc/passwd"}, 422, "tz"),
        ("/v1/reports/summary", {"from": day["to"], "to": day["from"]}, 422, "from"),
        ("/v1/reports/summary", {"from": "2024-01-01T00:00:00Z", "to": "2025-06-01T00:00:00Z"}, 422, "to"),
        ("/v1/reports/summary", day | {"group_by": "team"}, 400, "group_by"),
        ("/v1/reports/summary", day | {"interval": "month"}, 400, "interval"),
        ("/v1/reports/summary", day | {"include_abandons": "yes"}, 400, "include_abandons"),
        ("/v1/reports/summary", {"from": "0001-01-01T00:00:00+01:00", "to": day["to"]}, 400, "from"),
        ("/v1/reports/conversations.csv", {"from": day["to"], "to": day["from"]}, 422, "from"),
    ]
    async with running_apps(names, reporting={}) as apps:
        assert apps.reporting is not None
        unauthenticated = await apps.reporting.get("/v1/reports/summary", params=day)
        assert unauthenticated.status == 401
        for path, query, status, parameter in cases:
            response = await apps.reporting.get(path, params=query, headers=auth())
            body = await response.json()
            assert (response.status, body["error"].get("parameter")) == (status, parameter), (query, body)
            assert parameter in body["error"]["message"], body
        fine = await apps.reporting.get("/v1/reports/summary", params=day | {"tz": "Europe/Kyiv"}, headers=auth())
        assert fine.status == 200 and await fine.json() == {"rows": []}


async def test_an_event_parked_after_a_failure_comes_back_with_its_routing_key_and_is_stored(names):
    """A parked message returns by its queue's name; reporting normalizes by the key it was published with."""
    async with running_apps(names, reporting={}) as apps:
        assert apps.reporting is not None
        service = apps.reporting.app[SERVICE]
        record = service.store.record
        failures = []

        async def fails_once(batch, **options):
            batch = list(batch)
            if any(e.conversation_id == "P1" for e in batch) and not failures:
                failures.append(batch)
                raise RuntimeError("the store failed this once")
            return await record(batch, **options)

        service.store.record = fails_once
        await publish(names, *routing_event("P1", events.CONVERSATION_OPENED, 0,
                                            details={"priority": 0, "skills": [], "channel": "api"}))
        await until(lambda: _equals(counts(apps, "queue"), {"sales": {
            "opened": 1, "queued": 0, "answered": 0, "resolved": 0, "abandoned": 0, "transferred": 0}}))
        assert failures, "the first try failed and was parked"
        assert await dead_letters(names) == []
