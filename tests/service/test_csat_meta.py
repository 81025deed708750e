"""CSAT on WhatsApp (an interactive list) and Messenger (quick replies), real broker and database,
Graph stood in: the survey in the provider's format, the answer in the provider's webhook shape,
kept once, refused when forged, late or out of range, and never routed as a customer message."""

import asyncio

from shared.csat import button_payload
from tests.fixtures import messenger as messenger_fx
from tests.fixtures import whatsapp as whatsapp_fx
from tests.service import test_channel_messenger as messenger_tests
from tests.service import test_channel_whatsapp as whatsapp_tests
from tests.service.csat_helpers import assigned_to, close_survey, conversation, conversations_of, enable_csat, resolve
from tests.service.test_reporting_events import reporting_queue


def list_reply(wamid: str, row_id: str, sender: str = whatsapp_fx.WA_ID) -> dict:
    """A customer's pick from our list message, as the Cloud API posts it."""
    return whatsapp_fx.received(whatsapp_fx.message(
        wamid, "interactive", sender=sender, context={"from": whatsapp_fx.DISPLAY_PHONE_NUMBER, "id": "wamid.survey"},
        interactive={"type": "list_reply", "list_reply": {"id": row_id, "title": row_id.rsplit(":", 1)[-1]}}))


async def test_a_whatsapp_survey_is_a_list_of_five_rows_answered_by_a_list_reply(names):
    async with (whatsapp_tests.stand_in_graph() as graph, whatsapp_tests.whatsapp_stack(names, graph) as apps,
                reporting_queue(names) as reported):
        await enable_csat(apps)
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert await whatsapp_tests.post_webhook(apps, whatsapp_fx.TEXT) == 200
        conversation_id = (await assigned_to(desk))["conversation_id"]
        survey_id = (await resolve(apps, conversation_id))["csat"]["survey_id"]

        _, _, sent = await asyncio.wait_for(graph.requests.get(), 15)
        assert sent["to"] == whatsapp_fx.WA_ID and sent["type"] == "interactive"
        interactive = sent["interactive"]
        assert interactive["type"] == "list" and interactive["body"]["text"].startswith("How would you rate")
        assert interactive["action"]["button"] == "Rate us" and len(interactive["action"]["button"]) <= 20
        (section,) = interactive["action"]["sections"]
        assert section["rows"] == [{"id": f"csat:{survey_id}:{n}", "title": str(n)} for n in range(1, 6)]

        # Forged (another number), out of range: refused, nothing published.
        assert await whatsapp_tests.post_webhook(apps, list_reply("wamid.a1", button_payload(survey_id, 5),
                                                                  sender="16505559999")) == 200
        assert await whatsapp_tests.post_webhook(apps, list_reply("wamid.a2", f"csat:{survey_id}:0")) == 200
        # The customer's pick, then Meta's retry of it: kept once.
        assert await whatsapp_tests.post_webhook(apps, list_reply("wamid.a3", button_payload(survey_id, 2))) == 200
        assert await whatsapp_tests.post_webhook(apps, list_reply("wamid.a3", button_payload(survey_id, 2))) == 200
        received = await reported.of("csat.received", conversation_id)
        assert (received.data["score"], received.channel, received.event_id) == (2, "whatsapp", f"csat.received:{survey_id}")
        shown = await conversation(apps, conversation_id)
        assert (shown["status"], shown["csat"]["score"]) == ("resolved", 2)
        assert len(await conversations_of(apps, "whatsapp", whatsapp_fx.WA_ID)) == 1
        assert [m for m in shown["messages"] if m["direction"] == "inbound"][1:] == []
        # Another list's reply is still a customer message (it opens the next conversation).
        assert await whatsapp_tests.post_webhook(apps, whatsapp_fx.LIST_REPLY) == 200
        reopened = await reported.of("conversation.reopened", conversation_id)
        assert [m["text"] for m in (await conversation(apps, reopened.data["new_conversation_id"]))["messages"]] == [
            "Express shipping"]


async def test_a_messenger_survey_is_quick_replies_answered_by_their_payload(names):
    async with (messenger_tests.stand_in_graph() as graph, messenger_tests.meta_stack(names, graph) as apps,
                reporting_queue(names) as reported):
        await enable_csat(apps)
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert await messenger_tests.post_webhook(apps, messenger_fx.TEXT) == 200
        conversation_id = (await assigned_to(desk))["conversation_id"]
        survey_id = (await resolve(apps, conversation_id))["csat"]["survey_id"]

        _, _, _, sent = await asyncio.wait_for(graph.requests.get(), 15)
        assert sent["recipient"] == {"id": messenger_fx.PSID}
        assert sent["message"]["text"].startswith("How would you rate")
        assert sent["message"]["quick_replies"] == [
            {"content_type": "text", "title": str(n), "payload": f"csat:{survey_id}:{n}"} for n in range(1, 6)]

        def tapped(mid: str, payload: str, sender: str = messenger_fx.PSID) -> dict:
            return messenger_fx.webhook(messenger_fx.event(sender=sender, message={
                "mid": mid, "text": payload.rsplit(":", 1)[-1], "quick_reply": {"payload": payload}}))

        assert await messenger_tests.post_webhook(apps, tapped("m_a1", f"csat:{survey_id}:abc")) == 200
        assert await messenger_tests.post_webhook(apps, tapped("m_a2", button_payload(survey_id, 4),
                                                               sender="6999999999999999")) == 200
        assert await messenger_tests.post_webhook(apps, tapped("m_a3", button_payload(survey_id, 4))) == 200
        assert await messenger_tests.post_webhook(apps, tapped("m_a4", button_payload(survey_id, 1))) == 200  # refused: repeated
        received = await reported.of("csat.received", conversation_id)
        assert (received.data["score"], received.channel) == (4, "messenger")
        shown = await conversation(apps, conversation_id)
        assert (shown["status"], shown["csat"]["score"]) == ("resolved", 4)
        assert len(await conversations_of(apps, "messenger", messenger_fx.PSID)) == 1

        # Late: refused, the conversation untouched.
        await close_survey(names, conversation_id)  # answered already; a late repeat of the same is still the same
        assert await messenger_tests.post_webhook(apps, tapped("m_a5", button_payload(survey_id, 4))) == 200
        assert (await conversation(apps, conversation_id))["csat"]["score"] == 4


async def test_a_late_whatsapp_answer_is_refused(names):
    async with whatsapp_tests.stand_in_graph() as graph, whatsapp_tests.whatsapp_stack(names, graph) as apps:
        await enable_csat(apps)
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert await whatsapp_tests.post_webhook(apps, whatsapp_fx.TEXT) == 200
        conversation_id = (await assigned_to(desk))["conversation_id"]
        survey_id = (await resolve(apps, conversation_id))["csat"]["survey_id"]
        await close_survey(names, conversation_id)
        assert await whatsapp_tests.post_webhook(apps, list_reply("wamid.late", button_payload(survey_id, 5))) == 200
        shown = await conversation(apps, conversation_id)
        assert (shown["csat"]["status"], len(await conversations_of(apps, "whatsapp", whatsapp_fx.WA_ID))) == ("pending", 1)
