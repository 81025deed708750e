"""The live view on the real database and through the running stack: what is stored now, read back
as tiles and agents; repeated or late events change nothing; the WebSocket moves when a customer
writes and an agent answers."""

import asyncio
import json
from datetime import timedelta

from services.reporting.feed import read_live_view
from tests.conftest import auth
from tests.fixtures.reporting import Conversation, clock, status
from tests.service.helpers import running_apps
from tests.service.test_reporting_events import set_status
from tests.service.test_reporting_service import get_summary
from tests.service.test_routing_flow import configure, frame_of

NOW = clock("10:00:00")


def morning() -> list:
    waiting = (Conversation("w1", "webchat").at("09:50:00", "conversation.opened", queue="billing")
               .at("09:50:00", "conversation.queued", queue="billing")
               .at("09:55:00", "conversation.labels_changed", labels=["refund"]))
    held = (Conversation("a1", "email").at("09:00:00", "conversation.opened", queue="billing")
            .at("09:00:00", "conversation.queued", queue="billing").at("09:00:10", "conversation.assigned", agent="ann")
            .at("09:20:00", "sla.breached", agent="ann", target="first_response")
            .at("09:20:00", "conversation.labels_changed", labels=["refund", "late"]))
    done = (Conversation("r1", "webchat").at("08:00:00", "conversation.opened", queue="billing")
            .at("08:00:00", "conversation.queued", queue="billing").at("08:00:05", "conversation.assigned", agent="ann")
            .at("08:01:00", "message.created", agent="ann", direction="outbound")
            .at("08:05:00", "conversation.resolved", agent="ann", surveyed=True)
            .at("08:07:00", "csat.received", score=4))
    last_week = (Conversation("old", "webchat").at(NOW - timedelta(days=7, hours=1), "conversation.opened", queue="billing")
                 .at(NOW - timedelta(days=7, hours=1), "conversation.labels_changed", labels=["refund"])
                 .at(NOW - timedelta(days=7), "conversation.abandoned", reason="left"))
    agents = [status("ann", "07:00:00", "online", 2), status("bob", "07:30:00", "online", 2),
              status("bob", "09:45:00", "away", 2)]
    return [*waiting.events, *held.events, *done.events, *last_week.events, *agents]


async def test_the_stored_morning_read_back_as_the_live_view(store):
    await store.record(morning())
    view = await read_live_view(store, "default", "UTC", now=NOW)

    billing = next(tile for tile in view.queues if tile.queue == "billing")
    assert (billing.waiting, billing.offers_out, billing.assigned, billing.sla_breaches_open) == (1, 0, 1, 1)
    assert billing.longest_wait_seconds == 600
    assert (billing.opened_today, billing.answered_today, billing.abandoned_today) == (3, 2, 0)
    assert (billing.csat_mean_today, billing.csat_responses_today) == (4.0, 1)
    agents = {agent.agent_id: agent for agent in view.agents}
    assert (agents["ann"].status, agents["ann"].since, agents["ann"].load) == ("online", clock("07:00:00"), {"email": 1})
    assert (agents["bob"].status, agents["bob"].seconds_in_status) == ("away", 15 * 60)
    assert [(b.conversation_id, b.agent_id) for b in view.breaches] == [("a1", "ann")]
    assert [(r.label, r.today, r.same_time_last_week) for r in view.reasons] == [("refund", 2, 1), ("late", 1, 0)]

    # The same events again, and an older snapshot of bob's arriving late, change nothing.
    late = status("bob", "09:40:00", "online", 2)
    await store.record([*morning(), late.model_copy(update={"data": {**late.data, "version": -5}})])
    assert await read_live_view(store, "default", "UTC", now=NOW) == view


async def test_a_day_in_kyiv_starts_at_local_midnight(store):
    await store.record(morning())
    view = await read_live_view(store, "default", "Europe/Kyiv", now=NOW)
    assert view.day_start.isoformat() == "2026-03-02T00:00:00+02:00"  # 22:00 UTC the day before
    billing = next(tile for tile in view.queues if tile.queue == "billing")
    assert billing.opened_today == 3


async def test_the_live_socket_moves_when_a_customer_writes_and_an_agent_answers(names):
    async with running_apps(names, reporting={}) as apps:
        assert apps.reporting is not None
        bad = await apps.reporting.get("/v1/reports/live", params={"tz": "Mars/Base"}, headers=auth())
        assert bad.status == 422 and (await bad.json())["error"]["parameter"] == "tz"
        refused = await apps.reporting.get("/v1/reports/live", headers=auth("no-such-key"))
        assert refused.status == 401

        ws = await apps.reporting.ws_connect("/v1/reports/live/ws", params={"token": "test-key", "tz": "Europe/Kyiv"})
        first = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
        assert first["day_start"].endswith(("+02:00", "+03:00")) and first["agents"] == []  # a new namespace

        async def frame_where(check) -> dict:
            async with asyncio.timeout(20):
                while True:
                    frame = json.loads((await ws.receive()).data)
                    if check(frame):
                        return frame

        def tile(frame: dict) -> dict:
            return next((t for t in frame["queues"] if t["queue"] == "default"), {"waiting": 0, "assigned": 0})

        await apps.post("live-cust", "is anyone there?")  # nobody online: it waits
        waiting = await frame_where(lambda f: tile(f)["waiting"] == 1)
        assert tile(waiting)["longest_wait_seconds"] >= 0

        await apps.put_agent("ann")  # ann comes online and gets it
        desk = await apps.desk("ann")
        await desk.frames_until(lambda frames: any(f["type"] == "conversation.assigned" for f in frames))
        assigned = await frame_where(lambda f: tile(f)["assigned"] == 1 and tile(f)["waiting"] == 0)
        ann = next(a for a in assigned["agents"] if a["agent_id"] == "ann")
        assert (ann["status"], ann["held"], ann["load"]) == ("online", 1, {"chat": 1})

        await set_status(apps, "ann", "away")
        away = await frame_where(lambda f: any(a["agent_id"] == "ann" and a["status"] == "away" for a in f["agents"]))
        assert tile(away)["assigned"] == 1  # going away keeps what she holds
        await ws.close()


async def test_label_rules_label_the_conversation_for_the_desk_and_the_reports(names):
    async with running_apps(names, reporting={}) as apps:
        await configure(apps, {"queues": [{"name": "default"}],
                               "label_rules": [{"keywords": ["outage"], "labels": ["outage"]},
                                               {"pattern": "(?i)invoice", "labels": ["billing"]}]})
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        await apps.post("lab-cust", "Is there an outage? My invoice page is down")
        conversation_id = (await frame_of(desk, "conversation.assigned"))["conversation"]["conversation_id"]
        doc = await (await apps.agents.get(f"/v1/conversations/{conversation_id}", headers=auth())).json()
        assert sorted(doc["labels"]) == ["billing", "outage"]

        async def by_label() -> dict:
            rows = (await get_summary(apps, group_by="label"))["rows"]
            return {row["key"]["label"]: row["metrics"]["opened"] for row in rows}
        async with asyncio.timeout(20):
            while await by_label() != {"billing": 1, "outage": 1}:
                await asyncio.sleep(0.2)
        view = await (await apps.reporting.get("/v1/reports/live", headers=auth())).json()
        assert {(r["label"], r["today"]) for r in view["reasons"]} == {("billing", 1), ("outage", 1)}
