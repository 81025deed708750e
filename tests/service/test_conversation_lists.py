"""The desk's conversation lists through the real services: latest activity first, and for a
supervisor the waiting conversations no agent has held yet (known only to the router) listed with
the rest, filtered the same way; an agent token lists only what it holds."""

from services.router.app import DB as ROUTER_DB
from tests.conftest import auth
from tests.service.helpers import Apps, running_apps
from tests.service.test_roles import agent_token, bearer
from tests.service.test_routing_flow import configure, frame_of, until


async def listed(apps: Apps, headers: dict | None = None, **query) -> list[dict]:
    response = await apps.agents.get("/v1/conversations", params=query, headers=headers or auth())
    assert response.status == 200, await response.text()
    return (await response.json())["conversations"]


def contacts_of(conversations: list[dict]) -> list[str]:
    return [c["contact"]["id"] for c in conversations]


async def routed_waiting(apps: Apps, count: int, messages: int) -> None:
    """Until the router saved `count` waiting conversations holding `messages` messages in all."""
    db = apps.router.app[ROUTER_DB]

    async def saved() -> bool:
        return (await db["routing_conversations"].count_documents({"assignee_id": None}) == count
                and await db["routing_backlog"].count_documents({}) == messages)
    await until(saved)


async def test_a_supervisor_lists_waiting_conversations_nobody_has_held_filtered_and_by_activity(names):
    async with running_apps(names) as apps:
        await apps.put_agent("ann", status="away")  # nobody online: both wait, unknown to the agents service
        await apps.intake.post("/v1/messages", json={"contact": {"id": "dana", "name": "Dana Waits"},
                                                     "text": "my parcel is lost"}, headers=auth())
        await routed_waiting(apps, 1, 1)
        await apps.post("kim", "refund please")
        await routed_waiting(apps, 2, 2)
        await apps.post("kim", "and invoice 42")  # kim wrote last: her conversation comes first
        await routed_waiting(apps, 2, 3)

        waiting = await listed(apps, status="waiting")
        assert contacts_of(waiting) == ["kim", "dana"]
        assert {(c["status"], c["assignee_id"], c["queue"], c["channel"]) for c in waiting} == {
            ("waiting", None, "default", "api")}
        assert waiting[0]["last_message_at"] > waiting[1]["last_message_at"]
        assert contacts_of(await listed(apps)) == ["kim", "dana"]  # every status: the waiting ones too
        assert await listed(apps, status="assigned") == []

        # Every filter applies to them: words of any message (the backlog's too) or of the contact,
        # channel, queue, contact, assignee.
        assert contacts_of(await listed(apps, status="waiting", q="invoice")) == ["kim"]
        assert contacts_of(await listed(apps, status="waiting", q="dana parc")) == ["dana"]
        assert await listed(apps, status="waiting", q="parcel refund") == []
        assert contacts_of(await listed(apps, status="waiting", channel="api", queue="default")) == ["kim", "dana"]
        assert await listed(apps, status="waiting", channel="sms") == []
        assert await listed(apps, status="waiting", queue="tier2") == []
        assert await listed(apps, status="waiting", assignee_id="ann") == []
        assert await listed(apps, status="waiting", label="vip") == []
        assert contacts_of(await listed(apps, status="waiting", contact_id=waiting[1]["contact_id"])) == ["dana"]
        assert contacts_of(await listed(apps, status="waiting", limit=1)) == ["kim"]

        # A supervisor reads one (read only): the messages the router holds for it.
        path = f"/v1/conversations/{waiting[0]['conversation_id']}"
        read = await apps.agents.get(path, headers=auth())
        assert read.status == 200, await read.text()
        assert [m["text"] for m in (await read.json())["messages"]] == ["refund please", "and invoice 42"]

        # An agent token lists what it holds only: waiting conversations are a supervisor's view.
        ann = bearer(await agent_token(apps, "ann"))
        assert (await apps.agents.get(path, headers=ann)).status == 404
        assert await listed(apps, headers=ann) == []
        refused = await apps.agents.get("/v1/conversations", params={"status": "waiting"}, headers=ann)
        assert refused.status == 403 and (await refused.json())["error"]["status"] == 403

        # Ann comes online and takes both: nothing waits any more, and the list follows activity.
        await apps.put_agent("ann", status="online")
        desk = await apps.desk("ann")
        await desk.frames_until(lambda f: sum(x["type"] == "conversation.assigned" for x in f) >= 2)
        assert await listed(apps, status="waiting") == []
        assert contacts_of(await listed(apps, status="assigned")) == ["kim", "dana"]
        await apps.post("dana", "any news?")
        await frame_of(desk, "message")
        assert contacts_of(await listed(apps, status="assigned")) == ["dana", "kim"]
        assert contacts_of(await listed(apps, headers=ann)) == ["dana", "kim"]


async def test_a_conversation_waiting_again_is_listed_once(names):
    async with running_apps(names) as apps:
        await configure(apps, {"queues": [{"name": "default"}, {"name": "tier2", "skills": {"tier2": 1}}]})
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        await apps.post("cust", "hello")
        conversation_id = (await frame_of(desk, "conversation.assigned"))["conversation"]["conversation_id"]
        moved = await apps.agents.post(f"/v1/conversations/{conversation_id}/transfer", json={"to_queue": "tier2"},
                                       headers=auth())
        assert moved.status == 202, await moved.text()
        await frame_of(desk, "conversation.revoked")  # nobody has tier2: it waits, known to both services

        async def waiting_in_both() -> list[dict]:
            found = await listed(apps, status="waiting")
            stored = await apps.agents.get(f"/v1/conversations/{conversation_id}", headers=auth())
            routed = await apps.router.app[ROUTER_DB]["routing_conversations"].find_one({"_id": conversation_id})
            both = (await stored.json())["status"] == "waiting" and routed and routed["assignee_id"] is None
            return found if both else []
        found = await until(waiting_in_both)
        assert [(c["conversation_id"], c["queue"]) for c in found] == [(conversation_id, "tier2")]
        # The router's queue is the current one (the agents service stored "default" when ann took it).
        assert [c["conversation_id"] for c in await listed(apps, status="waiting", queue="tier2")] == [conversation_id]
        assert await listed(apps, status="waiting", queue="default") == []
        assert [c["conversation_id"] for c in await listed(apps, q="hello")] == [conversation_id]  # its stored words
