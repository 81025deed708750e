"""CSAT on Telegram, real broker and database, the Bot API stood in: an inline keyboard after the
resolve, the press answered through the webhook's answerCallbackQuery, kept once, never routed."""

import asyncio

from shared.csat import button_payload
from tests.fixtures import telegram as fx
from tests.service.csat_helpers import assigned_to, close_survey, conversation, conversations_of, enable_csat, resolve
from tests.service.helpers import running_apps
from tests.service.test_channel_telegram import bot_api, channels, deliver
from tests.service.test_reporting_events import reporting_queue


def press(update_id: int, data: str, chat_id: int = fx.CHAT_ID) -> dict:
    """A callback_query for a button of our survey message, as Telegram sends it."""
    user = {**fx.USER, "id": chat_id}
    chat = {**fx.PRIVATE_CHAT, "id": chat_id}
    survey_message = {**fx.message(1500, text="How would you rate our help?"), "chat": chat,
                      "from": {"id": 123456, "is_bot": True, "first_name": "Shop"}}
    return fx.update(update_id, callback_query={"id": f"cb-{update_id}", "from": user, "chat_instance": "-834567",
                                                "data": data, "message": survey_message})


async def pressed(apps, update_id: int, data: str, chat_id: int = fx.CHAT_ID) -> dict:
    response = await deliver(apps, press(update_id, data, chat_id))
    assert response.status == 200, await response.text()
    return await response.json()


async def test_a_telegram_survey_is_an_inline_keyboard_answered_by_a_callback_query(names):
    async with bot_api() as api, running_apps(names, channels=channels(api)) as apps, reporting_queue(names) as reported:
        await enable_csat(apps)
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        # The customer's Telegram app is in Ukrainian: the question is asked in Ukrainian.
        ukrainian = fx.update(20000, message={**fx.message(1400, text="Привіт"), "from": {**fx.USER, "language_code": "uk"}})
        assert (await deliver(apps, ukrainian)).status == 200
        conversation_id = (await assigned_to(desk))["conversation_id"]
        survey_id = (await resolve(apps, conversation_id))["csat"]["survey_id"]

        _, method, sent = await asyncio.wait_for(api.calls.get(), 15)
        assert method == "sendMessage" and sent["chat_id"] == fx.CHAT_ID
        assert sent["text"].startswith("Оцініть")
        assert sent["reply_markup"] == {"inline_keyboard": [[
            {"text": str(n), "callback_data": f"csat:{survey_id}:{n}"} for n in range(1, 6)]]}
        assert all(len(b["callback_data"].encode()) <= 64 for b in sent["reply_markup"]["inline_keyboard"][0])

        # Out of range (a forged button): refused, politely, in the callback's answer, in the survey's language.
        refused = await pressed(apps, 20001, f"csat:{survey_id}:9")
        assert refused == {"method": "answerCallbackQuery", "callback_query_id": "cb-20001",
                           "text": "Будь ласка, оберіть оцінку від 1 до 5."}
        # Another chat pressing this survey's button: a forgery, refused.
        forged = await pressed(apps, 20002, button_payload(survey_id, 1), chat_id=2222222)
        assert forged["text"] == "Sorry, this survey is not yours to answer."
        # The press: kept, thanked in the survey's language; the same press again, the same answer.
        kept = await pressed(apps, 20003, button_payload(survey_id, 5))
        assert (kept["method"], kept["callback_query_id"], kept["text"]) == ("answerCallbackQuery", "cb-20003", "Дякуємо за відгук!")
        assert (await pressed(apps, 20003, button_payload(survey_id, 5)))["text"] == "Дякуємо за відгук!"
        assert (await pressed(apps, 20004, button_payload(survey_id, 3)))["text"] == "Ви вже оцінили цю розмову. Дякуємо!"

        received = await reported.of("csat.received", conversation_id)
        assert (received.data["score"], received.channel, received.agent_id) == (5, "telegram", "ann")
        shown = await conversation(apps, conversation_id)
        assert (shown["status"], shown["csat"]["score"], shown["csat"]["language"]) == ("resolved", 5, "uk")
        # No press opened, reopened or joined a conversation.
        assert len(await conversations_of(apps, "telegram", str(fx.CHAT_ID))) == 1
        assert [m["text"] for m in shown["messages"] if m["direction"] == "inbound"] == ["Привіт"]

        # Other buttons are still customer messages, as before.
        assert (await deliver(apps, fx.CALLBACK_QUERY)).status == 200
        reopened = await reported.of("conversation.reopened", conversation_id)
        assert [m["text"] for m in (await conversation(apps, reopened.data["new_conversation_id"]))["messages"]] == [
            "[button] yes_refund"]


async def test_a_late_press_is_refused_and_a_malformed_one_too(names):
    async with bot_api() as api, running_apps(names, channels=channels(api)) as apps:
        await enable_csat(apps)
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert (await deliver(apps, fx.TEXT)).status == 200
        conversation_id = (await assigned_to(desk))["conversation_id"]
        survey_id = (await resolve(apps, conversation_id))["csat"]["survey_id"]
        await asyncio.wait_for(api.calls.get(), 15)
        assert (await pressed(apps, 20010, f"csat:{survey_id}:abc"))["text"] == "Please choose a rating from 1 to 5."
        assert (await pressed(apps, 20011, "csat:ffffffffffffffff:4"))["text"] == "Sorry, we could not find this survey."
        await close_survey(names, conversation_id)
        assert (await pressed(apps, 20012, button_payload(survey_id, 4)))["text"] == "Sorry, this survey has closed."
        shown = await conversation(apps, conversation_id)
        assert (shown["csat"]["status"], len(await conversations_of(apps, "telegram", str(fx.CHAT_ID)))) == ("pending", 1)
