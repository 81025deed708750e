"""Quick replies as pure logic: the contract's limits, the payload, the choices line, and each channel's
rendering and reading of a press (no broker, no provider)."""

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from services.intake.channels import api, messenger, telegram, twilio, webchat, whatsapp
from shared import quick_replies
from shared.models import Contact, InboundMessage, OutboundMessage, QuickReply, ReplyContext, SurveyRequest
from tests.fixtures import messenger as messenger_fx
from tests.fixtures import telegram as telegram_fx
from tests.fixtures import whatsapp as whatsapp_fx

YES = QuickReply(id="yes", title="Yes, thanks")
HUMAN = QuickReply(id="kb:human", title="No, talk to a person")


def outbound(channel: str = "sms", **fields) -> OutboundMessage:
    return OutboundMessage(**({"message_id": "m1", "workspace_id": "default", "conversation_id": "c1", "channel": channel,
                               "thread_id": "t1", "contact": Contact(id="t1"), "agent_id": "kb-bot",
                               "text": "Did this answer your question?", "quick_replies": [YES, HUMAN]} | fields))


# -- the contract ---------------------------------------------------------------------------------


@pytest.mark.parametrize("reply_id", ["", "a" * 49, "has space", "ünï", "semi;colon", "new\nline", "yes\n"])
def test_a_quick_reply_id_outside_the_pattern_is_refused(reply_id):
    with pytest.raises(ValidationError):
        QuickReply(id=reply_id, title="Yes")


@pytest.mark.parametrize("title", ["", "   ", "x" * 21])
def test_a_title_must_be_1_to_20_characters_after_trimming(title):
    with pytest.raises(ValidationError):
        QuickReply(id="yes", title=title)


def test_titles_are_trimmed_and_ids_take_the_allowed_punctuation():
    reply = QuickReply(id="kb.answer_1:yes-A", title="  " + "x" * 20 + " ")
    assert reply.title == "x" * 20


def test_at_most_three_quick_replies_and_actions_follow_the_id_pattern():
    with pytest.raises(ValidationError):
        outbound(quick_replies=[YES, HUMAN, QuickReply(id="c", title="C"), QuickReply(id="d", title="D")])
    assert outbound().quick_replies == [YES, HUMAN]
    fields = {"message_id": "m", "channel": "sms", "thread_id": "t", "contact": Contact(id="t"), "text": "Yes"}
    assert InboundMessage(**fields, action="kb:human").action == "kb:human"
    assert InboundMessage(**fields).action is None
    with pytest.raises(ValidationError):
        InboundMessage(**fields, action="not an id")


def test_the_payload_round_trips_and_nothing_else_reads_as_an_action():
    assert quick_replies.payload(HUMAN) == "qr:kb:human"
    assert quick_replies.action_of("qr:kb:human") == "kb:human"
    for other in (None, 5, "", "qr:", "qr:bad id", "qr:" + "a" * 49, "csat:0123456789abcdef:4", "yes", "QR:yes"):
        assert quick_replies.action_of(other) is None, other
    assert len(quick_replies.payload(QuickReply(id="a" * 48, title="A")).encode()) <= 64  # Telegram's callback_data


# -- the line for channels without buttons ----------------------------------------------------------


def test_the_choices_line_is_numbered_in_the_customers_language_else_english():
    assert quick_replies.choices_line(outbound()) == "Reply 1 — Yes, thanks; 2 — No, talk to a person"
    russian = outbound(reply_to=ReplyContext(metadata={"language": "ru-RU"}))
    assert quick_replies.choices_line(russian) == "Ответьте цифрой: 1 — Yes, thanks; 2 — No, talk to a person"
    german = outbound(reply_to=ReplyContext(metadata={"language": "de"}))
    assert quick_replies.choices_line(german).startswith("Reply 1 — ")
    assert quick_replies.choices_line(outbound(quick_replies=[])) == ""


def test_sms_lists_the_choices_under_the_text_and_a_survey_keeps_its_own_instructions():
    assert twilio.sms_text(outbound()) == "Did this answer your question?\nReply 1 — Yes, thanks; 2 — No, talk to a person"
    assert twilio.sms_text(outbound(quick_replies=[])) == "Did this answer your question?"
    survey = SurveyRequest(survey_id="0123456789abcdef", question="Rate us", expires_at=datetime(2030, 1, 1, tzinfo=UTC))
    assert twilio.sms_text(outbound(survey=survey)) == "Did this answer your question? Reply with one digit from 1 to 5."


# -- Telegram ------------------------------------------------------------------------------------


def test_telegram_puts_short_titles_in_one_row_and_long_ones_a_row_each():
    short = telegram.keyboard(outbound("telegram", quick_replies=[QuickReply(id="y", title="Yes"),
                                                                  QuickReply(id="n", title="No")]))
    assert short == {"reply_markup": {"inline_keyboard": [[{"text": "Yes", "callback_data": "qr:y"},
                                                           {"text": "No", "callback_data": "qr:n"}]]}}
    long = telegram.keyboard(outbound("telegram"))["reply_markup"]["inline_keyboard"]
    assert long == [[{"text": "Yes, thanks", "callback_data": "qr:yes"}],
                    [{"text": "No, talk to a person", "callback_data": "qr:kb:human"}]]
    assert telegram.keyboard(outbound("telegram", quick_replies=[])) == {}


def telegram_press(data: str, keyboard: list | None) -> telegram.Update:
    sent = telegram_fx.message(1400, text="Did this answer your question?")
    if keyboard is not None:
        sent["reply_markup"] = {"inline_keyboard": keyboard}
    return telegram.Update.model_validate(telegram_fx.update(1, callback_query={
        "id": "q1", "from": telegram_fx.USER, "chat_instance": "1", "data": data, "message": sent}))


def test_a_telegram_press_takes_its_title_from_the_keyboard_of_the_pressed_message():
    keyboard = telegram.keyboard(outbound("telegram"))["reply_markup"]["inline_keyboard"]
    pressed = telegram.normalize(telegram_press("qr:kb:human", keyboard), "default")
    assert (pressed.action, pressed.text, pressed.channel_message_id) == ("kb:human", "No, talk to a person", "callback:q1")
    assert telegram.normalize(telegram_press("qr:kb:human", None), "default").text == "kb:human"
    other = telegram.normalize(telegram_press("yes_refund", keyboard), "default")
    assert (other.action, other.text) == (None, "[button] yes_refund")


# -- WhatsApp ------------------------------------------------------------------------------------


def test_whatsapp_sends_reply_buttons_and_falls_back_to_text_when_the_body_cannot_carry_them():
    content = whatsapp.content_of(outbound("whatsapp"))
    assert content["interactive"]["type"] == "button"
    assert [b["reply"] for b in content["interactive"]["action"]["buttons"]] == [
        {"id": "qr:yes", "title": "Yes, thanks"}, {"id": "qr:kb:human", "title": "No, talk to a person"}]
    long = whatsapp.content_of(outbound("whatsapp", text="a" * 1025))
    assert long["type"] == "text" and long["text"]["body"].endswith("\nReply 1 — Yes, thanks; 2 — No, talk to a person")
    assert whatsapp.content_of(outbound("whatsapp", quick_replies=[]))["type"] == "text"


def whatsapp_inbound(kind: str, **content) -> InboundMessage:
    webhook = whatsapp.Webhook.model_validate(whatsapp_fx.received(whatsapp_fx.message("wamid.x", kind, **content)))
    (message,), _ = whatsapp.normalize(webhook, "default")
    assert isinstance(message, InboundMessage)
    return message


def test_whatsapp_reads_button_replies_and_template_buttons_with_our_prefix():
    pressed = whatsapp_inbound("interactive", interactive={
        "type": "button_reply", "button_reply": {"id": "qr:yes", "title": "Yes, thanks"}})
    assert (pressed.action, pressed.text) == ("yes", "Yes, thanks")
    template = whatsapp_inbound("button", button={"payload": "qr:kb:human", "text": "No, talk to a person"})
    assert (template.action, template.text) == ("kb:human", "No, talk to a person")
    other = whatsapp_inbound("button", button={"payload": "TALK_TO_AGENT", "text": "Talk to an agent"})
    assert other.action is None
    # A CSAT row is still the survey's: its payload is read by the survey rules, never as an action.
    survey = whatsapp_inbound("interactive", interactive={
        "type": "list_reply", "list_reply": {"id": "csat:0123456789abcdef:4", "title": "4"}})
    assert survey.action is None and whatsapp.survey_payload(survey) == "csat:0123456789abcdef:4"


# -- Messenger -----------------------------------------------------------------------------------


def test_messenger_sends_text_quick_replies_and_reads_taps_and_postbacks():
    config = messenger.MessengerConfig.model_validate(messenger_fx.BENCH_CONFIG)
    body = messenger.send_body(config, outbound("messenger"))
    assert body["message"]["quick_replies"] == [
        {"content_type": "text", "title": "Yes, thanks", "payload": "qr:yes"},
        {"content_type": "text", "title": "No, talk to a person", "payload": "qr:kb:human"}]
    assert "quick_replies" not in messenger.send_body(config, outbound("messenger", quick_replies=[]))["message"]
    tap = messenger.Webhook.model_validate(messenger_fx.webhook(messenger_fx.event(message={
        "mid": "m1", "text": "Yes, thanks", "quick_reply": {"payload": "qr:yes"}})))
    postback = messenger.Webhook.model_validate(messenger_fx.webhook(messenger_fx.event(postback={
        "mid": "m2", "title": "No, talk to a person", "payload": "qr:kb:human"})))
    (tapped,) = messenger.normalize(tap, "default")
    (pressed,) = messenger.normalize(postback, "default")
    assert (tapped.action, tapped.text) == ("yes", "Yes, thanks")
    assert (pressed.action, pressed.text) == ("kb:human", "No, talk to a person")


# -- web chat and the API --------------------------------------------------------------------------


def test_web_chat_frames_carry_the_buttons_and_a_press_frame_its_action():
    settings = webchat.IntakeSettings()
    assert webchat.reply_frame(outbound("webchat"), settings)["quick_replies"] == [
        {"id": "yes", "title": "Yes, thanks"}, {"id": "kb:human", "title": "No, talk to a person"}]
    assert "quick_replies" not in webchat.reply_frame(outbound("webchat", quick_replies=[]), settings)
    frame = webchat.ChatFrame(type="message", text="Yes, thanks", client_id="c1", action="yes")
    session = webchat.ChatSession(workspace_id="default", contact_id="web-1")
    pressed = webchat.normalize(frame, session, webchat.Customer())
    assert (pressed.action, pressed.text) == ("yes", "Yes, thanks")
    with pytest.raises(ValidationError):
        webchat.ChatFrame(type="message", text="Yes", client_id="c1", action="x" * 49)


def test_api_callbacks_carry_quick_replies_only_when_there_are_some_and_posts_may_carry_an_action():
    assert api.unset_extras(outbound("api")) == {"survey"}
    assert api.unset_extras(outbound("api", quick_replies=[])) == {"survey", "quick_replies"}
    posted = api.PostedMessage(contact=Contact(id="cust-1"), text="Yes, thanks", action="yes")
    assert api.normalize(posted, "default", "k1").action == "yes"
