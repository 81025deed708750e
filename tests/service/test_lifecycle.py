"""Pending and snoozed conversations through the real services: the capacity slot they free is used
at once, the customer's next message or the snooze's end opens them again (at once when the agent
has room, else back to the queue reserved for that agent), and bad requests get their reason."""

from datetime import datetime, timedelta

from shared.models import utcnow
from tests.conftest import auth
from tests.service.helpers import running_apps
from tests.service.test_roles import agent_token, bearer
from tests.service.test_routing_flow import conversation, frame_of


async def set_state(apps, conversation_id: str, headers=None, **body):
    return await apps.agents.post(f"/v1/conversations/{conversation_id}/state", json=body, headers=headers or auth())


async def test_pending_frees_the_slot_and_the_customer_wakes_it_back_to_its_agent(names):
    async with running_apps(names) as apps:
        await apps.put_agent("ann", capacity=1)
        desk = await apps.desk("ann")
        await apps.post("c1", "where is my parcel?")
        first = (await frame_of(desk, "conversation.assigned"))["conversation"]["conversation_id"]
        await apps.post("c2", "refund please")  # waits: ann is full

        ann = bearer(await agent_token(apps, "ann"))
        accepted = await set_state(apps, first, ann, state="pending")
        assert accepted.status == 202, await accepted.text()
        frames = await desk.frames_until(lambda f: {x["type"] for x in f} >= {"conversation.state", "conversation.assigned"})
        state = next(x for x in frames if x["type"] == "conversation.state")
        assert (state["conversation_id"], state["status"]) == (first, "pending")
        second = next(x for x in frames if x["type"] == "conversation.assigned")["conversation"]["conversation_id"]
        assert (await conversation(apps, first))["status"] == "pending"

        # The customer answers while ann is full (c2 took the slot): back to the queue, reserved for ann.
        await apps.post("c1", "it is order 42")
        revoked = await frame_of(desk, "conversation.revoked")
        assert revoked["conversation_id"] == first and "no room" in revoked["reason"]
        resolved = await apps.agents.post(f"/v1/conversations/{second}/resolve", headers=ann)
        assert resolved.status == 200
        again = await frame_of(desk, "conversation.assigned")
        assert again["conversation"]["conversation_id"] == first
        messages = (await conversation(apps, first))["messages"]
        assert [m["text"] for m in messages if m["direction"] == "inbound"] == ["where is my parcel?", "it is order 42"]


async def test_a_snooze_wakes_with_room_and_the_api_says_what_is_wrong(names):
    async with running_apps(names) as apps:
        await apps.put_agent("ann", capacity=2)
        desk = await apps.desk("ann")
        await apps.post("c1", "hello")
        first = (await frame_of(desk, "conversation.assigned"))["conversation"]["conversation_id"]

        for body, status in (({"state": "snoozed"}, 422), ({"state": "pending", "seconds": 60}, 422),
                             ({"state": "snoozed", "seconds": 0}, 422), ({"state": "snoozed", "seconds": 91 * 86400}, 422),
                             ({"state": "closed"}, 422), ({"state": "snoozed", "seconds": "soon"}, 422)):
            refused = await set_state(apps, first, **body)
            assert refused.status == status, (body, await refused.text())
            assert (await refused.json())["error"], body
        assert (await set_state(apps, "nope", state="pending")).status == 404

        asked_at = utcnow()
        assert (await set_state(apps, first, state="snoozed", seconds=7200)).status == 202
        snoozed = await frame_of(desk, "conversation.state")
        assert snoozed["status"] == "snoozed"
        assert abs(datetime.fromisoformat(snoozed["snoozed_until"]) - (asked_at + timedelta(hours=2))) < timedelta(seconds=30)
        listed = await (await apps.agents.get("/v1/conversations", params={"status": "snoozed"}, headers=auth())).json()
        assert [c["conversation_id"] for c in listed["conversations"]] == [first]
        assert listed["conversations"][0]["snoozed_until"] is not None

        # A snoozed conversation is still ann's: on her desk after a reconnect, and she may reply.
        reconnected = await apps.desk("ann")
        assert [c["conversation"]["status"] for c in reconnected.snapshot["conversations"]] == ["snoozed"]
        assert (await apps.agents.post(f"/v1/conversations/{first}/messages", json={"text": "still checking"},
                                       headers=auth())).status == 201

        await apps.post("c1", "any news?")
        woken = await frame_of(desk, "conversation.state")
        assert (woken["status"], woken["reason"]) == ("assigned", "the customer wrote")
        assert (await conversation(apps, first))["status"] == "assigned"

        # A snooze ends by itself at its time.
        assert (await set_state(apps, first, state="snoozed", seconds=2)).status == 202
        assert (await frame_of(desk, "conversation.state"))["status"] == "snoozed"
        ended = await frame_of(desk, "conversation.state")
        assert (ended["status"], ended["reason"]) == ("assigned", "the snooze ended")

        # Open again by the agent, from pending.
        assert (await set_state(apps, first, state="pending")).status == 202
        assert (await frame_of(desk, "conversation.state"))["status"] == "pending"
        assert (await set_state(apps, first, state="open")).status == 202
        reopened = await frame_of(desk, "conversation.state")
        assert (reopened["status"], reopened["reason"]) == ("assigned", "opened by the agent")


async def test_an_agent_token_sets_only_its_own_conversations(names):
    async with running_apps(names) as apps:
        await apps.put_agent("ann", capacity=1)
        await apps.put_agent("bob", capacity=1)
        ann_desk = await apps.desk("ann")
        bob_desk = await apps.desk("bob")
        await apps.post("c1", "one")
        await apps.post("c2", "two")
        held = {}
        for name, desk in (("ann", ann_desk), ("bob", bob_desk)):
            held[name] = (await frame_of(desk, "conversation.assigned"))["conversation"]["conversation_id"]
        bob = bearer(await agent_token(apps, "bob"))
        assert (await set_state(apps, held["ann"], bob, state="pending")).status == 403
        resolved = await apps.agents.post(f"/v1/conversations/{held['bob']}/resolve", headers=bob)
        assert resolved.status == 200
        assert (await set_state(apps, held["bob"], bob, state="pending")).status == 409  # resolved: nothing to park
