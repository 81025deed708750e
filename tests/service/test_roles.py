"""A supervisor's key and an agent's token through the real services: the agent sees and acts on its
own presence and conversations only; everything else is the supervisor's (a 403, never a leak)."""

from datetime import timedelta

from shared.settings import CommonSettings
from shared.tokens import issue_agent_token
from tests.conftest import auth
from tests.service.helpers import Apps, running_apps
from tests.service.test_reporting_service import today_range
from tests.service.test_routing_flow import frame_of


async def agent_token(apps: Apps, agent_id: str) -> str:
    response = await apps.agents.post(f"/v1/agents/{agent_id}/token", headers=auth())
    assert response.status == 201, await response.text()
    body = await response.json()
    assert body["agent_id"] == agent_id and body["expires_at"]
    return body["token"]


DEFAULT_SECRET = CommonSettings.model_fields["token_secret"].default  # what the test apps run with


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_an_agent_token_reaches_only_what_is_the_agents_own(names):
    async with running_apps(names, reporting={}) as apps:
        await apps.put_agent("ann", capacity=1)
        await apps.put_agent("bob", capacity=1)
        ann_desk = await apps.desk("ann")
        await apps.post("cust-a", "for whoever is free")
        ann_conversation = (await frame_of(ann_desk, "conversation.assigned"))["conversation"]["conversation_id"]
        await apps.post("cust-b", "and another one")  # ann is full: bob's
        bob_desk = await apps.desk("bob")
        bob_conversation = (await frame_of(bob_desk, "conversation.assigned"))["conversation"]["conversation_id"]
        ann = bearer(await agent_token(apps, "ann"))

        # Her own: herself, her status, her conversations, her contact, replies, labels.
        assert (await apps.agents.get("/v1/agents/ann", headers=ann)).status == 200
        assert (await apps.agents.put("/v1/agents/ann/status", json={"status": "online"}, headers=ann)).status == 200
        listed = await (await apps.agents.get("/v1/conversations", headers=ann)).json()
        assert [c["conversation_id"] for c in listed["conversations"]] == [ann_conversation]
        mine = await apps.agents.get(f"/v1/conversations/{ann_conversation}", headers=ann)
        assert mine.status == 200
        contact_id = (await mine.json())["contact_id"]
        assert (await apps.agents.get(f"/v1/contacts/{contact_id}", headers=ann)).status == 200
        reply = await apps.agents.post(f"/v1/conversations/{ann_conversation}/messages", json={"text": "hi"}, headers=ann)
        assert reply.status == 201, await reply.text()
        labels = await apps.agents.put(f"/v1/conversations/{ann_conversation}/labels", json={"labels": ["x"]}, headers=ann)
        assert labels.status == 200

        # Not hers: bob and his conversation, his contact, and what only a supervisor does.
        bob_doc = await (await apps.agents.get(f"/v1/conversations/{bob_conversation}", headers=auth())).json()
        refused = [
            await apps.agents.get("/v1/agents/bob", headers=ann),
            await apps.agents.put("/v1/agents/bob/status", json={"status": "away"}, headers=ann),
            await apps.agents.get("/v1/conversations", params={"assignee_id": "bob"}, headers=ann),
            await apps.agents.get(f"/v1/conversations/{bob_conversation}", headers=ann),
            await apps.agents.post(f"/v1/conversations/{bob_conversation}/messages", json={"text": "x"}, headers=ann),
            await apps.agents.post(f"/v1/conversations/{bob_conversation}/resolve", headers=ann),
            await apps.agents.post(f"/v1/conversations/{bob_conversation}/transfer", json={"to_queue": "default"},
                                   headers=ann),
            await apps.agents.post(f"/v1/conversations/{bob_conversation}/offer",
                                   json={"agent_id": "bob", "accept": True}, headers=ann),
            await apps.agents.get(f"/v1/contacts/{bob_doc['contact_id']}", headers=ann),
            await apps.agents.put("/v1/agents/ann", json={"max_conversations": 50}, headers=ann),
            await apps.agents.post("/v1/agents/ann/token", headers=ann),
            await apps.router.get("/v1/queue", headers=ann),
            await apps.router.put("/v1/routing/config", json={"queues": [{"name": "default"}]}, headers=ann),
            await apps.intake.post("/v1/messages", json={"channel": "api", "thread_id": "t", "text": "x",
                                                         "contact": {"id": "c"}}, headers=ann),
            await apps.reporting.get("/v1/reports/conversations.csv", params=today_range(), headers=ann),
            await apps.reporting.get("/v1/reports/summary", params=today_range(), headers=ann),
        ]
        for response in refused:
            assert response.status == 403, (response.url, response.status, await response.text())
            assert (await response.json())["error"]["status"] == 403

        # Reports: her own row of the agent grouping; live: the queues, and of agents only herself.
        own = await apps.reporting.get("/v1/reports/summary", params=today_range() | {"group_by": "agent"}, headers=ann)
        assert own.status == 200
        assert {row["key"]["agent"] for row in (await own.json())["rows"]} <= {"ann"}
        live = await (await apps.reporting.get("/v1/reports/live", headers=ann)).json()
        assert {agent["agent_id"] for agent in live["agents"]} <= {"ann"}

        # The supervisor's key still does everything, and a forged or foreign token nothing.
        assert (await apps.agents.get("/v1/agents/bob", headers=auth())).status == 200
        for bad in (ann["Authorization"] + "x", "Bearer not-a-token"):
            assert (await apps.agents.get("/v1/agents/ann", headers={"Authorization": bad})).status == 401
        assert (await apps.agents.post("/v1/agents/nobody/token", headers=auth())).status == 404


async def test_an_agent_token_of_another_secret_or_expired_is_refused(names):
    async with running_apps(names) as apps:
        await apps.put_agent("ann")
        foreign, _ = issue_agent_token("some-other-deployment-secret", "default", "ann")
        expired, _ = issue_agent_token(DEFAULT_SECRET, "default", "ann", timedelta(seconds=-1))
        fresh, _ = issue_agent_token(DEFAULT_SECRET, "default", "ann")
        assert (await apps.agents.get("/v1/agents/ann", headers=bearer(fresh))).status == 200
        for token in (foreign, expired):
            response = await apps.agents.get("/v1/agents/ann", headers=bearer(token))
            assert response.status == 401, await response.text()


async def test_the_session_says_who_the_caller_is(names):
    """The desk decides from /v1/session which list views to show: the key is a supervisor's, a token its agent's."""
    async with running_apps(names) as apps:
        await apps.put_agent("ann")
        supervisor = await apps.agents.get("/v1/session", headers=auth())
        assert supervisor.status == 200
        assert await supervisor.json() == {"workspace_id": "default", "role": "supervisor", "agent_id": None}
        agent = await apps.agents.get("/v1/session", headers=bearer(await agent_token(apps, "ann")))
        assert await agent.json() == {"workspace_id": "default", "role": "agent", "agent_id": "ann"}
        assert (await apps.agents.get("/v1/session")).status == 401
        assert (await apps.agents.get("/v1/session", headers=bearer("not-a-token"))).status == 401
