"""CSAT by SMS (Twilio), real broker and database, the Messages API stood in: the survey asks for a
digit; the next lone digit while it is pending is the answer (told in TwiML, never routed); anything
else, or a digit with no survey pending, is a customer message as before."""

import asyncio

from tests.fixtures import twilio as fx
from tests.service.csat_helpers import assigned_to, close_survey, conversation, conversations_of, enable_csat, resolve
from tests.service.helpers import running_apps
from tests.service.test_channel_twilio import WEBHOOK, messages_api, post_signed, settings
from tests.service.test_reporting_events import reporting_queue

EMPTY = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def twiml(text: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{text}</Message></Response>'


async def sms(apps, n: int, body: str) -> str:
    response = await post_signed(apps, WEBHOOK, fx.incoming_sms(n, body))
    assert response.status == 200, await response.text()
    return await response.text()


async def test_a_lone_digit_answers_the_pending_sms_survey_and_is_not_routed(names):
    async with messages_api() as api, running_apps(names, **settings(api)) as apps, reporting_queue(names) as reported:
        await enable_csat(apps)
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert await sms(apps, 1, "Where is my parcel?") == EMPTY
        conversation_id = (await assigned_to(desk))["conversation_id"]
        survey_id = (await resolve(apps, conversation_id))["csat"]["survey_id"]

        _, _, sent = await asyncio.wait_for(api.calls.get(), 15)
        assert sent["To"] == fx.CUSTOMER
        assert sent["Body"] == "How would you rate our help? 1 (poor) to 5 (excellent). Reply with one digit from 1 to 5."

        # A lone digit out of range: the survey is pending, so it is a (refused) answer, not a message.
        assert await sms(apps, 2, "7") == twiml("Please choose a rating from 1 to 5.")
        # The answer, and Twilio retrying the same webhook: thanked both times, kept once.
        assert await sms(apps, 3, " 4. ") == twiml("Thank you for your feedback!")
        assert await sms(apps, 3, " 4. ") == twiml("Thank you for your feedback!")
        received = await reported.of("csat.received", conversation_id)
        assert (received.event_id, received.data["score"], received.channel) == (f"csat.received:{survey_id}", 4, "sms")
        shown = await conversation(apps, conversation_id)
        assert (shown["status"], shown["csat"]["score"]) == ("resolved", 4)
        assert len(await conversations_of(apps, "sms", fx.CUSTOMER)) == 1

        # Answered: the survey is no longer pending, so the next digit is the customer writing again.
        assert await sms(apps, 4, "5") == EMPTY
        reopened = await reported.of("conversation.reopened", conversation_id)
        assert [m["text"] for m in (await conversation(apps, reopened.data["new_conversation_id"]))["messages"]] == ["5"]
        assert (await conversation(apps, conversation_id))["csat"]["score"] == 4


async def test_text_that_is_no_lone_digit_is_a_customer_message(names):
    async with messages_api() as api, running_apps(names, **settings(api)) as apps, reporting_queue(names) as reported:
        await enable_csat(apps)
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert await sms(apps, 1, "Where is my parcel?") == EMPTY
        first = (await assigned_to(desk))["conversation_id"]
        await resolve(apps, first)
        await asyncio.wait_for(api.calls.get(), 15)

        # "4 stars" is not a lone digit: a customer message (it opens the next conversation).
        assert await sms(apps, 2, "4 stars, thanks") == EMPTY
        reopened = await reported.of("conversation.reopened", first)
        second = reopened.data["new_conversation_id"]
        assert [m["text"] for m in (await conversation(apps, second))["messages"]] == ["4 stars, thanks"]
        assert (await conversation(apps, first))["csat"]["status"] == "pending"



async def test_a_digit_after_the_window_is_the_customer_writing_again(names):
    async with messages_api() as api, running_apps(names, **settings(api)) as apps, reporting_queue(names) as reported:
        await enable_csat(apps)
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert await sms(apps, 1, "Where is my parcel?") == EMPTY
        first = (await assigned_to(desk))["conversation_id"]
        await resolve(apps, first)
        await asyncio.wait_for(api.calls.get(), 15)
        await close_survey(names, first)
        assert await sms(apps, 2, "3") == EMPTY  # late: no answer, a customer message (it reopens)
        reopened = await reported.of("conversation.reopened", first)
        assert [m["text"] for m in (await conversation(apps, reopened.data["new_conversation_id"]))["messages"]] == ["3"]
        assert (await conversation(apps, first))["csat"]["status"] == "pending"

async def test_a_digit_in_a_newer_conversation_is_for_the_agent_not_the_old_survey(names):
    async with messages_api() as api, running_apps(names, **settings(api)) as apps:
        await enable_csat(apps)
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert await sms(apps, 1, "Where is my parcel?") == EMPTY
        first = (await assigned_to(desk))["conversation_id"]
        await resolve(apps, first)
        await asyncio.wait_for(api.calls.get(), 15)
        # The customer writes again before rating: a new conversation with ann, who asks a question.
        assert await sms(apps, 2, "Actually, one more question") == EMPTY
        second = (await assigned_to(desk))["conversation_id"]
        assert second != first
        # "2" now answers the agent: routed into the open conversation; the old survey stays unanswered.
        assert await sms(apps, 3, "2") == EMPTY
        frames = await desk.frames_until(lambda f: any(x["type"] == "message" and x["message"]["text"] == "2" for x in f))
        assert next(x for x in frames if x["type"] == "message")["conversation_id"] == second
        assert (await conversation(apps, first))["csat"]["status"] == "pending"
