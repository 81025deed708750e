"""One customer writing by SMS and by WhatsApp from the same phone is one contact, through the
real signed webhooks, broker and database; the agent sees both channels' history."""

from tests.conftest import auth
from tests.fixtures import twilio as sms_fx
from tests.fixtures import whatsapp as wa_fx
from tests.service.helpers import running_apps
from tests.service.test_channel_twilio import PUBLIC_URL, WEBHOOK, messages_api, post_signed
from tests.service.test_channel_twilio import settings as sms_settings
from tests.service.test_channel_whatsapp import post_webhook, stand_in_graph

PHONE = "+16505551234"  # WhatsApp's wa_id 16505551234 in E.164


async def test_sms_and_whatsapp_from_one_phone_are_one_contact_with_one_history(names):
    async with messages_api() as sms_api, stand_in_graph() as graph:
        overrides = sms_settings(sms_api)
        overrides["channels"]["default"]["whatsapp"] = {**wa_fx.BENCH_CONFIG, "graph_base_url": graph.base_url}
        async with running_apps(names, **overrides) as apps:
            assert overrides["public_url"] == PUBLIC_URL
            await apps.put_agent("ann", capacity=5)
            desk = await apps.desk("ann")
            sms = await post_signed(apps, WEBHOOK, sms_fx.incoming_sms(1, body="Order 77 is late", From=PHONE))
            assert sms.status == 200, await sms.text()
            assert await post_webhook(apps, wa_fx.TEXT) == 200
            frames = await desk.frames_until(lambda f: len([x for x in f if x["type"] == "conversation.assigned"]) == 2)
            conversations = {x["conversation"]["channel"]: x["conversation"] for x in frames if x["type"] == "conversation.assigned"}
            assert set(conversations) == {"sms", "whatsapp"}

            stored = [await (await apps.agents.get(f"/v1/conversations/{c['conversation_id']}", headers=auth())).json()
                      for c in conversations.values()]
            (contact_id,) = {c["contact_id"] for c in stored}  # one contact behind both conversations
            contact = await (await apps.agents.get(f"/v1/contacts/{contact_id}", headers=auth())).json()
            assert {c["channel"] for c in contact["conversations"]} == {"sms", "whatsapp"}
            assert [m["text"] for m in contact["messages"]] == ["Order 77 is late", "Does it come in another color?"]
