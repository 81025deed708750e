"""Quick replies over the real broker: a reply with buttons rendered as each provider expects (the
stand-in provider records the request), and a press coming back on the broker as `message.received`
with `action` and the button's title as text; malformed presses get the channel's usual handling."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email import message_from_bytes, policy

from aiohttp import web

from services.intake.settings import CallbackTarget
from shared import events
from shared.broker import Broker
from shared.models import Contact, InboundMessage, OutboundMessage, QuickReply, RejectedInput, ReplyContext
from tests.conftest import auth
from tests.fixtures import email as email_fx
from tests.fixtures import messenger as messenger_fx
from tests.fixtures import telegram as telegram_fx
from tests.fixtures import twilio as twilio_fx
from tests.fixtures import whatsapp as whatsapp_fx
from tests.service import test_channel_email as email_channel
from tests.service import test_channel_messenger as messenger
from tests.service import test_channel_telegram as telegram
from tests.service import test_channel_twilio as twilio
from tests.service import test_channel_whatsapp as whatsapp
from tests.service.helpers import callback_receiver, running_apps, texts
from tests.service.test_csat_webchat import open_chat

CHOICES = [QuickReply(id="kb.answered", title="Yes, thanks"), QuickReply(id="kb:human", title="No, talk to a person")]
QUESTION = "Here is our article on refunds. Did this answer your question?"


class BrokerView:
    """The test's own view of the broker: what intake publishes as message.received, and a way to hand
    intake an outbound message as the agents service (or the bot) would."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.received: asyncio.Queue[InboundMessage] = asyncio.Queue()

    async def next_received(self, timeout: float = 15) -> InboundMessage:
        """The next published customer message, read as the contract's model (a field it lacks fails here)."""
        return await asyncio.wait_for(self.received.get(), timeout)

    async def send(self, channel: str, thread_id: str, **fields) -> OutboundMessage:
        """Publish a bot's reply (the question and its two buttons unless `fields` say otherwise)."""
        defaults = {"message_id": f"bot-{channel}-{thread_id}", "text": QUESTION, "quick_replies": CHOICES}
        message = OutboundMessage(workspace_id="default", conversation_id="c-quick", channel=channel,
                                  thread_id=thread_id, contact=Contact(id=thread_id), agent_id="kb-bot",
                                  **(defaults | fields))
        await self.broker.publish(message, self.broker.topology.outbound_routing_key(channel),
                                  message_type=events.MESSAGE_OUTBOUND, message_id=message.message_id,
                                  workspace_id="default")
        return message


@asynccontextmanager
async def wire(names) -> AsyncIterator[BrokerView]:
    broker = Broker(names.infra.amqp_url, names.topology)
    await broker.start()
    try:
        listener = BrokerView(broker)
        queue = await broker.channel.declare_queue(exclusive=True, auto_delete=True)
        await queue.bind(names.topology.events_exchange, events.MESSAGE_RECEIVED)

        async def take(delivery) -> None:
            await delivery.ack()
            listener.received.put_nowait(InboundMessage.model_validate_json(delivery.body))

        await queue.consume(take)
        yield listener
    finally:
        await broker.close()


# -- Telegram -----------------------------------------------------------------------------------


def press(update_id: int, query_id: str, data: str, markup: dict | None) -> dict:
    """A callback_query on the message we sent, as Telegram sends it: with that message and its keyboard."""
    sent = {**telegram_fx.message(1400, text=QUESTION), "from": {"id": 123456, "is_bot": True, "first_name": "Shop"}}
    if markup is not None:
        sent["reply_markup"] = markup
    return telegram_fx.update(update_id, callback_query={
        "id": query_id, "from": telegram_fx.USER, "chat_instance": "-8345678901234567890", "data": data,
        "message": sent})


async def test_telegram_buttons_go_out_as_an_inline_keyboard_and_a_press_comes_back_once(names):
    async with telegram.bot_api() as api, running_apps(names, channels=telegram.channels(api)) as apps, \
            wire(names) as broker:
        await broker.send("telegram", str(telegram_fx.CHAT_ID))
        _, method, sent = await asyncio.wait_for(api.calls.get(), 15)
        # The two titles are too long for one row: a row each, each carrying qr:<id> back.
        assert (method, sent) == ("sendMessage", {"chat_id": telegram_fx.CHAT_ID, "text": QUESTION, "reply_markup": {
            "inline_keyboard": [[{"text": "Yes, thanks", "callback_data": "qr:kb.answered"}],
                                [{"text": "No, talk to a person", "callback_data": "qr:kb:human"}]]}})

        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        update = press(20001, "press-1", "qr:kb:human", sent["reply_markup"])
        for _ in range(2):  # Telegram redelivers an update it did not see answered
            answer = await telegram.deliver(apps, update)
            assert answer.status == 200
            assert await answer.json() == {"method": "answerCallbackQuery", "callback_query_id": "press-1"}
        first, again = await broker.next_received(), await broker.next_received()
        assert (first.action, first.text, first.channel, first.thread_id) == (
            "kb:human", "No, talk to a person", "telegram", str(telegram_fx.CHAT_ID))
        assert again.message_id == first.message_id  # the same message id: the router takes it once
        after = telegram_fx.update(20002, message=telegram_fx.message(1401, text="after the press"))
        assert (await telegram.deliver(apps, after)).status == 200
        frames = await desk.frames_until(lambda f: len(texts(f)) >= 2)
        assert texts(frames) == ["No, talk to a person", "after the press"]  # the redelivery made no second one

        # A second press of the same button is a message of its own (Telegram gives each press its id).
        await broker.next_received()  # "after the press"
        assert (await telegram.deliver(apps, press(20003, "press-2", "qr:kb:human", sent["reply_markup"]))).status == 200
        second = await broker.next_received()
        assert second.action == "kb:human" and second.message_id != first.message_id


async def test_telegram_odd_presses_are_plain_button_presses_and_csat_is_untouched(names):
    async with telegram.bot_api() as api, running_apps(names, channels=telegram.channels(api)) as apps, \
            wire(names) as broker:
        # Short titles share a row.
        await broker.send("telegram", str(telegram_fx.CHAT_ID), quick_replies=[
            QuickReply(id="yes", title="Yes"), QuickReply(id="no", title="No")])
        _, _, sent = await asyncio.wait_for(api.calls.get(), 15)
        assert sent["reply_markup"] == {"inline_keyboard": [[{"text": "Yes", "callback_data": "qr:yes"},
                                                             {"text": "No", "callback_data": "qr:no"}]]}
        # Our prefix with an id we never send: a button press as any other, no action.
        assert (await telegram.deliver(apps, press(20013, "odd-1", "qr:not an id!", None))).status == 200
        odd = await broker.next_received()
        assert (odd.action, odd.text) == (None, "[button] qr:not an id!")
        # A press whose message Telegram no longer sends (too old): the id stands in for the title.
        assert (await telegram.deliver(apps, press(20004, "old-1", "qr:yes", None))).status == 200
        old = await broker.next_received()
        assert (old.action, old.text) == ("yes", "yes")
        # Not an Update at all: the channel's JSON 400.
        broken = await apps.intake.post(telegram.WEBHOOK, data=b'{"update_id": "x", "callback_query": 1}',
                                        headers=telegram_fx.headers())
        assert broken.status == 400 and "error" in await broken.json()
        # A CSAT press is still the survey's: handed to the agents service (no such survey here), never published.
        refused = await telegram.deliver(apps, press(20005, "csat-1", "csat:0123456789abcdef:4", None))
        assert refused.status == 200 and (await refused.json())["method"] == "answerCallbackQuery"
        assert (await telegram.deliver(apps, telegram_fx.update(20006, message=telegram_fx.message(9, text="after")))).status == 200
        assert (await broker.next_received()).text == "after"  # nothing was published in between


# -- WhatsApp -----------------------------------------------------------------------------------


def button_reply(wamid: str, reply_id: str, title: str | None) -> dict:
    reply = {"id": reply_id, **({"title": title} if title is not None else {})}
    return whatsapp_fx.received(whatsapp_fx.message(wamid, "interactive", context={
        "from": whatsapp_fx.DISPLAY_PHONE_NUMBER, "id": "wamid.sent-0"},
        interactive={"type": "button_reply", "button_reply": reply}))


async def test_whatsapp_buttons_go_out_as_reply_buttons_and_replies_come_back_with_the_action(names):
    async with whatsapp.stand_in_graph() as graph, whatsapp.whatsapp_stack(names, graph) as apps, wire(names) as broker:
        await broker.send("whatsapp", whatsapp_fx.WA_ID)
        _, _, sent = await asyncio.wait_for(graph.requests.get(), 15)
        assert sent == {"messaging_product": "whatsapp", "recipient_type": "individual", "to": whatsapp_fx.WA_ID,
                        "type": "interactive", "interactive": {
                            "type": "button", "body": {"text": QUESTION}, "action": {"buttons": [
                                {"type": "reply", "reply": {"id": "qr:kb.answered", "title": "Yes, thanks"}},
                                {"type": "reply", "reply": {"id": "qr:kb:human", "title": "No, talk to a person"}}]}}}

        assert await whatsapp.post_webhook(apps, button_reply("wamid.press-1", "qr:kb.answered", "Yes, thanks")) == 200
        pressed = await broker.next_received()
        assert (pressed.action, pressed.text, pressed.thread_id) == ("kb.answered", "Yes, thanks", whatsapp_fx.WA_ID)
        # A template's quick-reply button (the older `button` type): its payload and text.
        template = whatsapp_fx.received(whatsapp_fx.message("wamid.template-1", "button", button={
            "payload": "qr:kb:human", "text": "No, talk to a person"}))
        assert await whatsapp.post_webhook(apps, template) == 200
        older = await broker.next_received()
        assert (older.action, older.text) == ("kb:human", "No, talk to a person")
        # Someone else's button (no prefix) keeps its old shape: a reply without action.
        assert await whatsapp.post_webhook(apps, whatsapp_fx.BUTTON_REPLY) == 200
        theirs = await broker.next_received()
        assert (theirs.action, theirs.text) == (None, "Change my order")


async def test_whatsapp_malformed_replies_are_rejected_items_and_long_texts_list_the_choices(names):
    async with whatsapp.stand_in_graph() as graph, whatsapp.whatsapp_stack(names, graph) as apps, wire(names) as broker:
        # A button reply without its title: kept on the rejected queue, the call still answered 200.
        assert await whatsapp.post_webhook(apps, button_reply("wamid.untitled", "qr:kb:human", None)) == 200
        rejected = RejectedInput.model_validate_json(await whatsapp.next_rejected(names))
        assert rejected.channel == "whatsapp" and "title" in rejected.reason
        # An oversized id with our prefix: an ordinary reply, no action.
        assert await whatsapp.post_webhook(apps, button_reply("wamid.big", "qr:" + "x" * 300, "Big")) == 200
        big = await broker.next_received()
        assert (big.action, big.text) == (None, "Big")

        # Over 1024 characters, reply buttons cannot carry the text: it goes as text with the choices listed.
        await broker.send("whatsapp", whatsapp_fx.WA_ID, text="a" * 1100)
        _, _, sent = await asyncio.wait_for(graph.requests.get(), 15)
        assert sent["type"] == "text"
        assert sent["text"]["body"] == "a" * 1100 + "\nReply 1 — Yes, thanks; 2 — No, talk to a person"


# -- Messenger ----------------------------------------------------------------------------------


async def test_messenger_buttons_go_out_as_quick_replies_and_taps_and_postbacks_come_back(names):
    async with messenger.stand_in_graph() as graph, messenger.meta_stack(names, graph) as apps, wire(names) as broker:
        await broker.send("messenger", messenger_fx.PSID)
        node, _, _, sent = await asyncio.wait_for(graph.requests.get(), 15)
        assert node == messenger_fx.PAGE_ID
        assert sent["message"] == {"text": QUESTION, "quick_replies": [
            {"content_type": "text", "title": "Yes, thanks", "payload": "qr:kb.answered"},
            {"content_type": "text", "title": "No, talk to a person", "payload": "qr:kb:human"}]}

        tap = messenger_fx.webhook(messenger_fx.event(message={
            "mid": "m_tap-1", "text": "Yes, thanks", "quick_reply": {"payload": "qr:kb.answered"}}))
        assert await messenger.post_webhook(apps, tap) == 200
        tapped = await broker.next_received()
        assert (tapped.action, tapped.text, tapped.thread_id) == ("kb.answered", "Yes, thanks", messenger_fx.PSID)
        postback = messenger_fx.webhook(messenger_fx.event(postback={
            "mid": "m_postback-q", "title": "No, talk to a person", "payload": "qr:kb:human"}))
        assert await messenger.post_webhook(apps, postback) == 200
        pressed = await broker.next_received()
        assert (pressed.action, pressed.text) == ("kb:human", "No, talk to a person")
        # Someone else's quick reply keeps its old shape.
        assert await messenger.post_webhook(apps, messenger_fx.QUICK_REPLY) == 200
        theirs = await broker.next_received()
        assert (theirs.action, theirs.text) == (None, "Red")


async def test_messenger_malformed_taps_are_rejected_items_or_plain_messages(names):
    async with messenger.stand_in_graph() as graph, messenger.meta_stack(names, graph) as apps, wire(names) as broker:
        # A quick reply without its payload: the event is kept on the rejected queue, the call answered 200.
        broken = messenger_fx.webhook(messenger_fx.event(message={"mid": "m_broken", "text": "Yes", "quick_reply": {}}))
        assert await messenger.post_webhook(apps, broken) == 200
        rejected = RejectedInput.model_validate_json(await whatsapp.next_rejected(names))
        assert rejected.channel == "messenger" and "payload" in rejected.reason
        odd = messenger_fx.webhook(messenger_fx.event(message={
            "mid": "m_odd", "text": "Yes", "quick_reply": {"payload": "qr:" + "y" * 1000}}))
        assert await messenger.post_webhook(apps, odd) == 200
        plain = await broker.next_received()
        assert (plain.action, plain.text) == (None, "Yes")
        not_json = await apps.intake.post(messenger.PATH, data=b"{", headers=messenger_fx.signed_headers(b"{"))
        assert not_json.status == 400 and "error" in await not_json.json()


# -- web chat -----------------------------------------------------------------------------------


async def test_web_chat_buttons_come_in_the_message_frame_and_a_press_is_a_message_with_its_action(names):
    async with running_apps(names) as apps, wire(names) as broker:
        chat = await open_chat(apps)
        sent = await broker.send("webchat", chat.thread_id)
        frame = await chat.next_of("message")
        assert (frame["message_id"], frame["text"]) == (sent.message_id, QUESTION)
        assert frame["quick_replies"] == [{"id": "kb.answered", "title": "Yes, thanks"},
                                          {"id": "kb:human", "title": "No, talk to a person"}]

        await chat.ws.send_json({"type": "message", "text": "No, talk to a person", "client_id": "p1", "action": "kb:human"})
        ack = await chat.next_of("ack")
        pressed = await broker.next_received()
        assert (pressed.action, pressed.text, pressed.channel) == ("kb:human", "No, talk to a person", "webchat")
        assert pressed.message_id == ack["message_id"] and pressed.thread_id == chat.thread_id

        # An action that is no quick reply id: the frame's usual error, nothing published.
        await chat.ws.send_json({"type": "message", "text": "hi", "client_id": "p2", "action": "x" * 49})
        error = await chat.next_of("error")
        assert "action" in json.dumps(error)
        # A reply without buttons has no quick_replies key at all (the frame as it always was).
        await broker.send("webchat", chat.thread_id, message_id="plain-1", text="plain", quick_replies=[])
        plain = await chat.next_of("message")
        assert plain["text"] == "plain" and "quick_replies" not in plain
        await chat.say("typed", "p3")
        typed = await broker.next_received()
        assert (typed.action, typed.text) == (None, "typed")


# -- channels without buttons -----------------------------------------------------------------------


async def test_an_sms_lists_the_choices_in_the_customers_language_and_a_digit_back_stays_text(names):
    async with twilio.messages_api() as api, running_apps(names, **twilio.settings(api)) as apps, wire(names) as broker:
        await broker.send("sms", "+14155550123", reply_to=ReplyContext(metadata={"language": "ru"}))
        _, _, form = await asyncio.wait_for(api.calls.get(), 15)
        assert form["Body"] == f"{QUESTION}\nОтветьте цифрой: 1 — Yes, thanks; 2 — No, talk to a person"
        answer = await twilio.post_signed(apps, twilio.WEBHOOK, twilio_fx.incoming_sms(40, "2"))
        assert answer.status == 200
        digit = await broker.next_received()
        assert (digit.action, digit.text) == (None, "2")  # intake keeps no state: the bot reads the digit


async def test_a_mail_lists_the_choices_under_the_text(names):
    relay = email_channel.Relay()
    async with email_channel.email_apps(names, relay) as _, wire(names) as broker:
        await broker.send("email", email_fx.CUSTOMER)
        envelope = await asyncio.wait_for(relay.received.get(), 20)
        mail = message_from_bytes(envelope.original_content, policy=policy.default)
        lines = mail.get_content().splitlines()  # SMTP's CRLF line ends
        assert lines == [QUESTION, "", "Reply 1 — Yes, thanks; 2 — No, talk to a person"]


async def test_the_api_channel_gets_the_buttons_as_data_and_posts_the_choice_back_with_its_action(names):
    bodies: asyncio.Queue[dict] = asyncio.Queue()

    async def callback(request: web.Request) -> web.Response:
        bodies.put_nowait(json.loads(await request.read()))
        return web.Response(status=204)

    async with callback_receiver(callback) as url, \
            running_apps(names, callbacks={"default": CallbackTarget(url=url, secret="callback-secret")}) as apps, wire(names) as broker:
        await broker.send("api", "cust-1")
        body = await asyncio.wait_for(bodies.get(), 15)
        assert body["text"] == QUESTION  # the external system draws its own buttons: no line added
        assert body["quick_replies"] == [{"id": "kb.answered", "title": "Yes, thanks"},
                                         {"id": "kb:human", "title": "No, talk to a person"}]
        await apps.post("cust-1", "Yes, thanks", action="kb.answered")
        chosen = await broker.next_received()
        assert (chosen.action, chosen.text, chosen.channel) == ("kb.answered", "Yes, thanks", "api")
        refused = await apps.intake.post("/v1/messages", json={"contact": {"id": "cust-1"}, "text": "Yes",
                                                               "action": "not an id"}, headers=auth())
        assert refused.status == 422 and "action" in json.dumps(await refused.json())
