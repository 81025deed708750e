"""Canned responses through the real agents service and database: shared ones a supervisor's, personal
ones their agent's, a shortcut unique per owner, and each filled for the conversation it is used in."""

from tests.conftest import auth
from tests.service.helpers import running_apps
from tests.service.test_roles import agent_token, bearer
from tests.service.test_routing_flow import frame_of

BASE = "/v1/canned-responses"


async def test_shared_and_personal_responses_filled_for_a_conversation(names):
    async with running_apps(names) as apps:
        await apps.api.put_agent("ann", capacity=3)
        await apps.agents.put("/v1/agents/ann", json={"name": "Ann Lee", "max_conversations": 3}, headers=auth())
        await apps.put_agent("bob", status="away")  # so the customer is surely ann's
        desk = await apps.desk("ann")
        response = await apps.intake.post("/v1/messages", json={"contact": {"id": "dana", "name": "Dana Ivanova"},
                                                                "text": "hello"}, headers=auth())
        assert response.status == 202
        assigned = (await frame_of(desk, "conversation.assigned"))["conversation"]
        conversation_id = assigned["conversation_id"]
        assert assigned["assignee_id"] == "ann"
        ann, bob = bearer(await agent_token(apps, "ann")), bearer(await agent_token(apps, "bob"))

        shared = await apps.agents.post(BASE, json={"shortcut": "hi", "title": "Greeting",
                                                    "text": "Hi {{contact.first_name|there}}, {{agent.first_name}} here."},
                                        headers=auth())
        assert shared.status == 201, await shared.text()
        mine = await apps.agents.post(BASE, json={"shortcut": "bye", "text": "Bye from {{agent.name}}", "personal": True},
                                      headers=ann)
        assert mine.status == 201 and (await mine.json())["owner"] == "ann"
        assert (await apps.agents.post(BASE, json={"shortcut": "bye", "text": "bob's", "personal": True},
                                       headers=bob)).status == 201  # another owner: the same shortcut is free
        taken = await apps.agents.post(BASE, json={"shortcut": "bye", "text": "again", "personal": True}, headers=ann)
        assert taken.status == 409

        listed = await (await apps.agents.get(BASE, params={"conversation_id": conversation_id}, headers=ann)).json()
        by_shortcut = {r["shortcut"]: r for r in listed["responses"]}
        assert set(by_shortcut) == {"hi", "bye"} and by_shortcut["bye"]["owner"] == "ann"  # not bob's
        assert by_shortcut["hi"]["rendered"] == "Hi Dana, Ann here."
        assert by_shortcut["bye"]["rendered"] == "Bye from Ann Lee"
        everything = await (await apps.agents.get(BASE, headers=auth())).json()
        assert len(everything["responses"]) == 3 and all("rendered" not in r or r["rendered"] is None
                                                         for r in everything["responses"])

        # What each may write: shared ones a supervisor's; personal ones their agent's.
        shared_id, mine_id = (await shared.json())["id"], (await mine.json())["id"]
        assert (await apps.agents.post(BASE, json={"shortcut": "x", "text": "x"}, headers=ann)).status == 403
        assert (await apps.agents.put(f"{BASE}/{shared_id}", json={"shortcut": "hi", "text": "y"}, headers=ann)).status == 403
        assert (await apps.agents.delete(f"{BASE}/{mine_id}", headers=bob)).status == 403
        changed = await apps.agents.put(f"{BASE}/{mine_id}", json={"shortcut": "ciao", "text": "Ciao!"},
                                        headers=ann)
        assert changed.status == 200 and (await changed.json())["shortcut"] == "ciao"
        assert (await apps.agents.delete(f"{BASE}/{mine_id}", headers=ann)).status == 204
        assert (await apps.agents.delete(f"{BASE}/{mine_id}", headers=ann)).status == 404

        # Bad input is a 4xx naming the problem.
        bad = await apps.agents.post(BASE, json={"shortcut": "typo", "text": "Hi {{contact.nmae}}"}, headers=auth())
        assert bad.status == 422 and "contact.nmae" in await bad.text()
        orphan = await apps.agents.post(BASE, json={"shortcut": "p", "text": "x", "personal": True}, headers=auth())
        assert orphan.status == 422
        assert (await apps.agents.get(BASE, params={"conversation_id": "nope"}, headers=auth())).status == 404
        assert (await apps.agents.get(BASE, params={"agent_id": "not valid!"}, headers=auth())).status == 400
