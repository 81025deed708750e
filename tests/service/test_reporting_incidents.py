"""Incidents on the live view and in subscriptions, on the real broker and database.

assist's announcements are published as assist publishes them (services/assist/incidents/watcher.py:
a RoutingEvent of the kind with `incident_summary` as details, the kind as type header and routing
key, through shared.broker.Broker.publish); reporting keeps the newest state of each (a redelivered
or older one changes nothing), the live view (HTTP and its WebSocket) lists the open and confirmed
ones, a resolved one leaves it, and a subscriber gets the three events, signed."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta

from services.assist.incidents.watcher import incident_summary
from services.reporting.feed import read_live_view
from services.reporting.model import ReportEvent
from services.reporting.normalize import normalize
from services.reporting.subscriptions.signing import verify
from shared import events
from shared.broker import Broker
from shared.models import RoutingEvent, utcnow
from tests.conftest import Names, auth
from tests.service.test_reporting_service import until
from tests.service.test_subscriptions import SECRET, Receiver, receiving, reporting_app, subscribe

OPENED = utcnow().replace(microsecond=0) - timedelta(minutes=10)


def incident(incident_id: str, status: str, conversations: int, minutes: float, workspace: str = "default") -> dict:
    """The incident as assist stores it, its last link `minutes` after it opened."""
    return {"_id": incident_id, "workspace_id": workspace, "title": f"The app crashes at checkout ({incident_id})",
            "status": status, "conversations": conversations,
            "channels": {"webchat": conversations - 1, "telegram": 1}, "opened_at": OPENED,
            "last_link_at": OPENED + timedelta(minutes=minutes)}


def announcement(kind: str, doc: dict, event_id: str, minutes: float) -> RoutingEvent:
    return RoutingEvent(event_id=event_id, type=kind, workspace_id=doc["workspace_id"],
                        at=OPENED + timedelta(minutes=minutes), details=incident_summary(doc))


def facts(event: RoutingEvent) -> list[ReportEvent]:
    return normalize(event.type, event.model_dump_json().encode())


@asynccontextmanager
async def assist_broker(names: Names) -> AsyncIterator[Broker]:
    broker = Broker(names.infra.amqp_url, names.topology)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.close()


async def announce(broker: Broker, event: RoutingEvent, *, mandatory: bool = True) -> None:
    """As assist's publish_incident (which says mandatory=False; reporting binds the keys, so a mandatory
    publish is taken too: it would fail if no queue did)."""
    await broker.publish(event, event.type, message_type=event.type, message_id=event.event_id,
                         workspace_id=event.workspace_id, mandatory=mandatory)


DETECTED = announcement(events.INCIDENT_DETECTED, incident("inc-a", "open", 4, 1), "inc-a:incident.detected", 1)
GREW = announcement(events.INCIDENT_UPDATED, incident("inc-a", "open", 9, 4), "inc-a:updated:4", 4)
CONFIRMED = announcement(events.INCIDENT_UPDATED, incident("inc-a", "confirmed", 9, 4), "inc-a:confirmed:x", 5)
RESOLVED = announcement(events.INCIDENT_RESOLVED, incident("inc-a", "resolved", 9, 4), "inc-a:resolved", 8)


async def test_the_newest_state_is_kept_whatever_order_and_however_often_announcements_come(store):
    other = announcement(events.INCIDENT_DETECTED, incident("inc-b", "open", 5, 2), "inc-b:incident.detected", 2)
    elsewhere = announcement(events.INCIDENT_DETECTED, incident("inc-c", "open", 4, 1, "other"), "inc-c:d", 1)
    await store.record([*facts(CONFIRMED), *facts(other), *facts(elsewhere)])
    await store.record([*facts(DETECTED), *facts(GREW)])  # older, one batch later: nothing moves back
    await store.record(facts(CONFIRMED))  # a redelivery
    view = await read_live_view(store, "default", "UTC")
    assert [(i.incident_id, i.status, i.conversations, i.channels) for i in view.incidents] == [
        ("inc-a", "confirmed", 9, {"telegram": 1, "webchat": 8}), ("inc-b", "open", 5, {"telegram": 1, "webchat": 4})]
    assert (view.incidents[0].opened_at, view.incidents[0].last_link_at) == (OPENED, OPENED + timedelta(minutes=4))
    assert [i.incident_id for i in (await read_live_view(store, "other", "UTC")).incidents] == ["inc-c"]

    await store.record(facts(RESOLVED))
    await store.record([*facts(GREW), *facts(CONFIRMED)])  # late ones after the resolution: it stays resolved
    assert [i.incident_id for i in (await read_live_view(store, "default", "UTC")).incidents] == ["inc-b"]
    stored = await store.incidents.find_one({"incident_id": "inc-a"})
    assert (stored["status"], stored["event_id"]) == ("resolved", "inc-a:resolved")


async def test_published_as_assist_does_the_live_view_shows_the_incident_then_not_once_resolved(names):
    async with reporting_app(names) as client, assist_broker(names) as broker:
        ws = await client.ws_connect("/v1/reports/live/ws", params={"token": "test-key", "tz": "UTC"})
        first = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
        assert first["incidents"] == []

        async def frame_where(check) -> dict:
            async with asyncio.timeout(20):
                while not check(frame := json.loads((await ws.receive()).data)):
                    pass
                return frame

        await announce(broker, DETECTED, mandatory=False)  # exactly as assist publishes it
        shown = await frame_where(lambda f: f["incidents"])
        assert shown["incidents"] == [{
            "incident_id": "inc-a", "title": "The app crashes at checkout (inc-a)", "status": "open",
            "conversations": 4, "channels": {"telegram": 1, "webchat": 3}, "opened_at": OPENED.isoformat(),
            "last_link_at": (OPENED + timedelta(minutes=1)).isoformat()}]

        for event in (GREW, CONFIRMED, DETECTED):  # the last one redelivered late
            await announce(broker, event)
        confirmed = await frame_where(lambda f: f["incidents"] and f["incidents"][0]["status"] == "confirmed")
        assert confirmed["incidents"][0]["conversations"] == 9

        async def live() -> dict:
            response = await client.get("/v1/reports/live", headers=auth())
            assert response.status == 200, await response.text()
            return await response.json()

        # Queued behind CONFIRMED and the late DETECTED: once the view shows them done, it is still confirmed.
        assert [(i["status"], i["conversations"]) for i in (await live())["incidents"]] == [("confirmed", 9)]
        await announce(broker, RESOLVED)
        await frame_where(lambda f: f["incidents"] == [])
        assert (await live())["incidents"] == []
        await ws.close()


async def test_a_subscriber_receives_the_incident_events(names):
    async with receiving(Receiver()) as receiver, reporting_app(names) as client, assist_broker(names) as broker:
        await subscribe(client, receiver.url, [events.INCIDENT_DETECTED, events.INCIDENT_UPDATED,
                                               events.INCIDENT_RESOLVED])
        for event in (DETECTED, GREW, RESOLVED):
            await announce(broker, event, mandatory=False)

        async def all_in():
            return len(receiver.delivered()) >= 3 or None
        await until(all_in)
        sent = {body["event"]: body for body in receiver.delivered()}
        assert sorted(sent) == [events.INCIDENT_DETECTED, events.INCIDENT_RESOLVED, events.INCIDENT_UPDATED]
        assert sent[events.INCIDENT_DETECTED]["data"] == {
            "incident_id": "inc-a", "title": "The app crashes at checkout (inc-a)", "status": "open",
            "conversations": 4, "channels": {"webchat": 3, "telegram": 1},
            "opened_at": OPENED.isoformat(), "last_link_at": (OPENED + timedelta(minutes=1)).isoformat()}
        assert (sent[events.INCIDENT_UPDATED]["data"]["conversations"], sent[events.INCIDENT_RESOLVED]["data"]["status"]) \
            == (9, "resolved")
        assert sent[events.INCIDENT_RESOLVED]["occurred_at"] == RESOLVED.at.isoformat()
        # In the order they happened (one incident is one chain), each signed with the subscription's secret.
        delivered = [r for r in receiver.requests if r.status == 200]
        assert [json.loads(r.raw)["event"] for r in delivered] == [
            events.INCIDENT_DETECTED, events.INCIDENT_UPDATED, events.INCIDENT_RESOLVED]
        for request in delivered:
            assert verify(SECRET, request.headers["X-Switchyard-Timestamp"], request.raw,
                          request.headers["X-Switchyard-Signature"], now=utcnow().timestamp())
