"""Surges and incidents over the real broker and database (docs/incidents.md): customers write through
intake, the router hands their messages to assist, a burst of the same problem from many customers
opens an incident that links them (and not the others), the router sends each linked conversation the
status reply and moves it to the incident's queue, and supervisors confirm, merge, dismiss, resolve."""

from contextlib import asynccontextmanager

from services.assist.app import create_app as create_assist
from services.assist.settings import AssistSettings
from shared.mongo import create_client
from tests.conftest import auth, serve
from tests.service.helpers import running_apps
from tests.service.test_routing_flow import until
from tests.service.test_typing import assigned_to

CONFIG = {"queues": [{"name": "default"}, {"name": "outage", "priority": 10}],
          "incidents": {"status_reply": "We know about this problem and are fixing it.", "queue": "outage"}}
BACKGROUND = [
    "where is my order 4411, it was due yesterday", "how do I change my delivery address",
    "I want to return the shoes I bought last week", "can I pay with PayPal", "please cancel my subscription",
    "the invoice for March has the wrong company name", "do you ship to Canada", "my discount code expired",
    "how long does a refund take", "I need to update my phone number on the account",
]
BURST = [
    "the app crashes as soon as I open it", "your app keeps crashing when I open it",
    "app crashes right after opening, please fix", "the mobile app crashes immediately when opened",
    "every time I open the app it crashes", "app crashes on opening since this morning",
]


@asynccontextmanager
async def surge_floor(names):
    """Intake, router and agents (nobody online: conversations wait), and assist with a detector that
    needs no warm-up day, the incident configuration in force."""
    async with running_apps(names, router_settings={"tick_seconds": 0.1}) as apps:
        response = await apps.router.put("/v1/routing/config", json=CONFIG, headers=auth())
        assert response.status == 202, await response.text()
        settings = names.settings(AssistSettings, surge_warmup=0, surge_min_conversations=3, surge_tick_seconds=0.5)
        async with serve(create_assist(settings)) as assist:
            yield apps, assist


async def incidents(assist, **params) -> list[dict]:
    response = await assist.get("/v1/incidents", params=params, headers=auth())
    assert response.status == 200, await response.text()
    return (await response.json())["incidents"]


async def waiting(apps) -> dict[str, dict]:
    body = await (await apps.router.get("/v1/queue", headers=auth())).json()
    return {c["thread_id"]: c for c in body["waiting"]}


async def test_a_burst_opens_an_incident_linking_its_customers_who_get_the_status_reply_and_its_queue(names):
    async with surge_floor(names) as (apps, assist):
        for n, text in enumerate(BACKGROUND):
            await apps.post(f"background-{n}", text)
        for n, text in enumerate(BURST):
            await apps.post(f"burst-{n}", text)
        found = await until(lambda: incidents(assist, status="active"), timeout=30)
        incident, = found
        assert "crash" in incident["title"]
        # Every customer of the burst is linked (then Ann, below, can only get one of them).
        await until(lambda: _detail_with(assist, incident["id"], len(BURST)))

        async def settled() -> tuple[dict, list[str]] | None:
            """The incident and the queue once the router has moved every linked conversation."""
            detail = await (await assist.get(f"/v1/incidents/{incident['id']}", headers=auth())).json()
            queued = await _in_queue(apps, "outage", detail["conversations"])
            return (detail, queued) if queued is not None and len(queued) == detail["conversations"] else None
        # The router moved the linked conversations (nobody holds them) to the incident's queue.
        detail, queued = await until(settled)
        assert all(thread.startswith("burst-") for thread in queued)
        linked = {link["conversation_id"] for link in detail["links"]}
        assert sum(detail["channels"].values()) == detail["conversations"] == len(linked)
        assert detail["channels"] == {"api": len(linked)}
        assert sum(m["conversations"] for m in detail["timeline"]) == detail["conversations"]
        assert all("crash" in link["text"] for link in detail["links"])  # no background message linked
        # Each linked conversation got the status reply once (stored by the agents service, sent by intake).
        client = create_client(names.infra.mongo_url)
        try:
            async def replied() -> list[str] | None:
                found = await client[names.namespace]["messages"].find(
                    {"direction": "outbound", "text": CONFIG["incidents"]["status_reply"]}).to_list(None)
                return sorted(r["conversation_id"] for r in found) if len(found) >= len(linked) else None
            assert await until(replied) == sorted(linked)
        finally:
            await client.close()
        assert all(c["queue"] == "default" for t, c in (await waiting(apps)).items() if t.startswith("background-"))

        # Supervisors: confirm, then resolve; a dismissed or resolved one changes no more.
        confirmed = await assist.post(f"/v1/incidents/{incident['id']}/confirm", headers=auth())
        assert confirmed.status == 200 and (await confirmed.json())["status"] == "confirmed"
        assert (await assist.post(f"/v1/incidents/{incident['id']}/confirm", headers=auth())).status == 409
        # Ann comes online and takes one of them; resolving the incident replies to every linked
        # conversation once and resolves the one she holds (the others still wait for anyone).
        await apps.put_agent("ann", capacity=1)
        desk = await apps.desk("ann")
        held = await assigned_to(desk)
        assert held in linked
        fixed = "Fixed: please update the app."
        resolved = await assist.post(f"/v1/incidents/{incident['id']}/resolve", headers=auth(),
                                     json={"reply": fixed, "resolve_conversations": True})
        assert (await resolved.json())["status"] == "resolved"
        client = create_client(names.infra.mongo_url)
        try:
            async def replied_fixed() -> list[str] | None:
                found = await client[names.namespace]["messages"].find(
                    {"direction": "outbound", "text": fixed}).to_list(None)
                return sorted(r["conversation_id"] for r in found) if len(found) >= len(linked) else None
            assert await until(replied_fixed) == sorted(linked)
        finally:
            await client.close()
        assert (await until(lambda: _status(apps, held, "resolved")))["status"] == "resolved"
        # ... and the router closed the ones still waiting: none of the incident's is left in a queue.
        assert await until(lambda: _none_waiting(apps, linked)) is True
        assert (await assist.post(f"/v1/incidents/{incident['id']}/dismiss", headers=auth())).status == 409
        assert await incidents(assist, status="active") == []
        assert (await assist.get("/v1/incidents/nope", headers=auth())).status == 404
        assert (await assist.get("/v1/incidents", headers=auth("other-key"))).status == 200
        assert await incidents(assist, status="resolved") and not (
            await (await assist.get("/v1/incidents", headers=auth("other-key"))).json())["incidents"]


async def _none_waiting(apps, conversation_ids: set[str]) -> bool:
    return not {c["conversation_id"] for c in (await waiting(apps)).values()} & conversation_ids


async def _status(apps, conversation_id: str, status: str) -> dict | None:
    body = await (await apps.agents.get(f"/v1/conversations/{conversation_id}", headers=auth())).json()
    return body if body.get("status") == status else None


async def _detail_with(assist, incident_id: str, at_least: int) -> dict | None:
    detail = await (await assist.get(f"/v1/incidents/{incident_id}", headers=auth())).json()
    return detail if detail["conversations"] >= at_least else None


async def _in_queue(apps, queue: str, count: int) -> list[str] | None:
    threads = [t for t, c in (await waiting(apps)).items() if c["queue"] == queue]
    return threads if len(threads) >= count else None


async def test_a_restarted_detector_replays_the_day_and_keeps_linking_to_the_same_incident(names):
    async with running_apps(names, router_settings={"tick_seconds": 0.1}) as apps:
        response = await apps.router.put("/v1/routing/config", json=CONFIG, headers=auth())
        assert response.status == 202
        settings = names.settings(AssistSettings, surge_warmup=0, surge_min_conversations=3, surge_tick_seconds=0.5)
        async with serve(create_assist(settings)) as assist:
            for n, text in enumerate(BACKGROUND):
                await apps.post(f"background-{n}", text)
            for n, text in enumerate(BURST[:5]):
                await apps.post(f"burst-{n}", text)
            incident, = await until(lambda: incidents(assist, status="active"), timeout=30)
            confirmed = await assist.post(f"/v1/incidents/{incident['id']}/confirm", headers=auth())
            assert confirmed.status == 200
            before = (await until(lambda: _detail_with(assist, incident["id"], 4)))["conversations"]
        # A new process (or the standby taking over) knows nothing until it replays what was read.
        async with serve(create_assist(settings)) as assist:
            await apps.post("burst-late", BURST[5])
            after = await until(lambda: _detail_with(assist, incident["id"], before + 1))
            assert after["status"] == "confirmed" and after["conversations"] == before + 1
            assert [i["id"] for i in await incidents(assist)] == [incident["id"]]  # not detected a second time
