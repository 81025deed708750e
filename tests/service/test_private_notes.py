"""Private notes and a supervisor's reply on the real broker and database: a note reaches the assignee's
desk and the conversation's history, never the customer (neither live nor in the history a returning
web chat page gets); a supervisor's reply goes out and is marked as theirs in the history."""

from tests.conftest import auth
from tests.service.csat_helpers import assigned_to
from tests.service.helpers import running_apps
from tests.service.test_csat_webchat import Chat


async def test_a_note_reaches_colleagues_never_the_customer_and_a_supervisor_reply_is_marked(names):
    async with running_apps(names) as apps:
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        chat = Chat(await apps.intake.ws_connect("/v1/chat/ws?workspace=default"))
        token = (await chat.next_frame())["token"]
        assert (await chat.next_frame())["type"] == "history"
        await chat.say("where is my parcel?", "c1")
        conversation_id = (await assigned_to(desk))["conversation_id"]

        ann = (await (await apps.agents.post("/v1/agents/ann/token", headers=auth())).json())["token"]
        note = await apps.agents.post(f"/v1/conversations/{conversation_id}/notes", json={"text": "VIP, be quick"},
                                      headers=auth(ann))
        assert note.status == 201, await note.text()
        assert (await note.json())["agent_id"] == "ann"
        frames = await desk.frames_until(lambda f: any(x["type"] == "message" and x["message"]["text"] == "VIP, be quick"
                                                       for x in f))
        assert any(x["message"].get("direction") == "note" for x in frames if x["type"] == "message")

        reply = await apps.agents.post(f"/v1/conversations/{conversation_id}/messages", json={"text": "On its way"},
                                       headers=auth())
        assert reply.status == 201, await reply.text()
        assert (await reply.json())["metadata"] == {"by": "supervisor"}
        # The customer's next message frame is the reply: the note, written before it, never came.
        received = await chat.next_of("message")
        assert (received["direction"], received["text"]) == ("outbound", "On its way")
        await chat.ws.close()

        back = Chat(await apps.intake.ws_connect(f"/v1/chat/ws?session={token}"))
        assert (await back.next_frame())["type"] == "session"
        history = await back.next_frame()
        assert history["type"] == "history"
        assert [(m["direction"], m["text"]) for m in history["messages"]] == [
            ("inbound", "where is my parcel?"), ("outbound", "On its way")]
        await back.ws.close()

        doc = await (await apps.agents.get(f"/v1/conversations/{conversation_id}", headers=auth())).json()
        assert [(m["direction"], m["text"], m.get("agent_id")) for m in doc["messages"]] == [
            ("inbound", "where is my parcel?", None), ("note", "VIP, be quick", "ann"), ("outbound", "On its way", "ann")]
        assert doc["messages"][-1]["metadata"] == {"by": "supervisor"}
