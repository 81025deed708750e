"""Private notes and the agents list, through the real services: a note is in the history and on the
assignee's desk, never sent to the customer; pickers list who is online; agent tokens stay in bounds."""

from tests.conftest import auth
from tests.service.helpers import running_apps
from tests.service.test_roles import agent_token, bearer
from tests.service.test_routing_flow import frame_of


async def test_a_private_note_is_for_colleagues_only(names):
    async with running_apps(names) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        await apps.post("cust", "my order is late")
        conversation_id = (await frame_of(desk, "conversation.assigned"))["conversation"]["conversation_id"]

        # A supervisor's note, for ann: on her desk at once, in the history, never outbound.
        response = await apps.agents.post(f"/v1/conversations/{conversation_id}/notes",
                                          json={"text": "VIP: refund without asking", "by": "sam"}, headers=auth())
        assert response.status == 201, await response.text()
        note = await response.json()
        assert (note["direction"], note["agent_id"], note["status"]) == ("note", "sam", "note")
        pushed = await frame_of(desk, "message")
        assert pushed["message"]["message_id"] == note["message_id"]
        history = (await (await apps.agents.get(f"/v1/conversations/{conversation_id}", headers=auth())).json())
        assert [m["text"] for m in history["messages"] if m["direction"] == "note"] == ["VIP: refund without asking"]
        assert [m for m in history["messages"] if m["direction"] == "outbound"] == []

        # Ann's token writes as ann, and only as ann; bad notes are refused with the reason.
        ann = bearer(await agent_token(apps, "ann"))
        mine = await apps.agents.post(f"/v1/conversations/{conversation_id}/notes", json={"text": "on it"}, headers=ann)
        assert mine.status == 201 and (await mine.json())["agent_id"] == "ann"
        forged = await apps.agents.post(f"/v1/conversations/{conversation_id}/notes",
                                        json={"text": "x", "by": "bob"}, headers=ann)
        assert forged.status == 403
        for body in ({"text": ""}, {"text": "x" * 4097}, {}):
            refused = await apps.agents.post(f"/v1/conversations/{conversation_id}/notes", json=body, headers=auth())
            assert refused.status == 422, body
        missing = await apps.agents.post("/v1/conversations/nope/notes", json={"text": "x"}, headers=auth())
        assert missing.status == 404


async def test_pickers_list_agents_by_presence(names):
    async with running_apps(names) as apps:
        await apps.put_agent("bob")
        await apps.put_agent("ann")
        await apps.put_agent("cid", status="away")
        everyone = await (await apps.agents.get("/v1/agents", headers=auth())).json()
        assert [a["agent_id"] for a in everyone["agents"]] == ["ann", "bob", "cid"]
        online = await (await apps.agents.get("/v1/agents", params={"status": "online"}, headers=auth())).json()
        assert [(a["agent_id"], a["status"]) for a in online["agents"]] == [("ann", "online"), ("bob", "online")]
        ann = bearer(await agent_token(apps, "ann"))
        assert (await apps.agents.get("/v1/agents", params={"status": "online"}, headers=ann)).status == 200
        assert (await apps.agents.get("/v1/agents", params={"status": "busy"}, headers=auth())).status == 400


async def test_the_contact_panel_edits_name_attributes_and_labels(names):
    async with running_apps(names) as apps:
        await apps.put_agent("ann")
        await apps.put_agent("bob", status="away")
        desk = await apps.desk("ann")
        await apps.post("cust-c", "hello")
        contact_id = (await frame_of(desk, "conversation.assigned"))["conversation"]["contact_id"]
        path = f"/v1/contacts/{contact_id}"

        edited = await apps.agents.patch(path, json={"name": "Dana I.", "attributes": {"plan": "gold", "city": "Kyiv"},
                                                     "labels": ["vip", "vip", "b2b"]}, headers=auth())
        assert edited.status == 200, await edited.text()
        body = await edited.json()
        assert (body["name"], body["attributes"], body["labels"]) == (
            "Dana I.", {"plan": "gold", "city": "Kyiv"}, ["b2b", "vip"])
        assert body["conversations"] and body["identities"]  # the panel's other parts come along

        # One attribute removed with null, one changed; the rest stays, and so does what was left out.
        again = await (await apps.agents.patch(path, json={"attributes": {"city": None, "plan": "silver"}},
                                                headers=auth())).json()
        assert (again["name"], again["attributes"], again["labels"]) == ("Dana I.", {"plan": "silver"}, ["b2b", "vip"])
        assert (await (await apps.agents.get(path, headers=auth())).json())["attributes"] == {"plan": "silver"}

        # Ann holds this contact's conversation: her token may edit it; bob's may not.
        ann, bob = bearer(await agent_token(apps, "ann")), bearer(await agent_token(apps, "bob"))
        assert (await apps.agents.patch(path, json={"labels": []}, headers=ann)).status == 200
        assert (await apps.agents.patch(path, json={"labels": []}, headers=bob)).status == 403
        for bad in ({"attributes": {"Bad Key": "x"}}, {"attributes": {"k": "x" * 501}}, {"name": ""},
                    {"attributes": {f"a{i}": "x" for i in range(51)}}, {"unknown": 1}):
            assert (await apps.agents.patch(path, json=bad, headers=auth())).status == 422, bad
        many = {f"a{i}": "x" for i in range(50)}
        assert (await apps.agents.patch(path, json={"attributes": many}, headers=auth())).status == 422  # 51 with plan
        assert (await apps.agents.patch("/v1/contacts/nope", json={}, headers=auth())).status == 404


async def test_conversations_are_found_by_words_of_their_messages_and_contact_and_by_label(names):
    async with running_apps(names) as apps:
        await apps.put_agent("ann", capacity=5)
        desk = await apps.desk("ann")
        for contact, text in (("dana", "My parcel has not arrived"), ("oleh", "Посылка не пришла, заказ 77"),
                              ("kim", "Refund for my invoice please")):
            response = await apps.intake.post("/v1/messages", json={"contact": {"id": contact, "name": f"{contact} X"},
                                                                    "text": text}, headers=auth())
            assert response.status == 202
        frames = await desk.frames_until(lambda f: sum(x["type"] == "conversation.assigned" for x in f) >= 3)
        ids = {f["conversation"]["contact"]["id"]: f["conversation"]["conversation_id"]
               for f in frames if f["type"] == "conversation.assigned"}
        await apps.agents.post(f"/v1/conversations/{ids['kim']}/messages", json={"text": "Refund approved"},
                               headers=auth())
        await apps.agents.put(f"/v1/conversations/{ids['dana']}/labels", json={"labels": ["delivery"]}, headers=auth())

        async def found(**query) -> set[str]:
            response = await apps.agents.get("/v1/conversations", params=query, headers=auth())
            assert response.status == 200, await response.text()
            return {c["conversation_id"] for c in (await response.json())["conversations"]}

        assert await found(q="parc") == {ids["dana"]}
        assert await found(q="ПОСЫЛК") == {ids["oleh"]}
        assert await found(q="refund approved") == {ids["kim"]}  # the agent's reply counts too
        assert await found(q="refund parcel") == set()  # every word must match
        assert await found(q="oleh") == {ids["oleh"]}  # the contact's name
        assert await found(q="zzz") == set()
        assert await found(label="delivery") == {ids["dana"]}
        assert await found(queue="default") == set(ids.values())
        assert (await apps.agents.get("/v1/conversations", params={"q": "x" * 201}, headers=auth())).status == 400
        detail = await (await apps.agents.get(f"/v1/conversations/{ids['dana']}", headers=auth())).json()
        assert "terms" not in detail  # the index is not part of the answer


async def test_a_failed_reply_is_sent_again_once_as_a_new_reply(names):
    async with running_apps(names) as apps:  # no callback URL for the api channel: its replies fail
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        inbound_id = await apps.post("cust-r", "hello")
        conversation_id = (await frame_of(desk, "conversation.assigned"))["conversation"]["conversation_id"]
        sent = await apps.agents.post(f"/v1/conversations/{conversation_id}/messages", json={"text": "hi!"},
                                      headers=auth())
        reply_id = (await sent.json())["message_id"]
        failed = await desk.frames_until(lambda f: any(x["type"] == "message.status" and x.get("status") == "failed"
                                                       for x in f))
        assert any(x.get("message_id") == reply_id for x in failed if x["type"] == "message.status")

        retried = await apps.agents.post(f"/v1/conversations/{conversation_id}/messages/{reply_id}/retry",
                                         headers=auth())
        assert retried.status == 201, await retried.text()
        again = await retried.json()
        assert again["message_id"] != reply_id and again["text"] == "hi!"
        history = (await (await apps.agents.get(f"/v1/conversations/{conversation_id}", headers=auth())).json())
        old = next(m for m in history["messages"] if m["message_id"] == reply_id)
        assert (old["status"], old["retried_by"]) == ("failed", again["message_id"])
        twice = await apps.agents.post(f"/v1/conversations/{conversation_id}/messages/{reply_id}/retry", headers=auth())
        assert twice.status == 409 and "already" in await twice.text()
        customers = await apps.agents.post(f"/v1/conversations/{conversation_id}/messages/{inbound_id}/retry",
                                           headers=auth())
        assert customers.status == 404  # only replies are sent again


async def test_the_desk_frame_contract_is_served(names):
    async with running_apps(names) as apps:
        await apps.put_agent("ann")
        for headers in (auth(), bearer(await agent_token(apps, "ann"))):
            response = await apps.agents.get("/v1/desk/frames.schema.json", headers=headers)
            assert response.status == 200
            assert "presence" in (await response.json())["discriminator"]["mapping"]
