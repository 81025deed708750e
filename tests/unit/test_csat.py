"""CSAT's pure parts: scores, button payloads, SMS digits, signed links, settings, the answer rules,
each channel's survey format and how each provider's answer is read (no broker, no database)."""

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from services.agents import csat as agents_csat
from services.agents.facts import resolution
from services.intake.channels import messenger, telegram, twilio, whatsapp
from services.intake.channels.webchat import pending_survey_frame
from services.intake.csat import Outcome, _number
from services.reporting.normalize import MalformedBody, normalize
from shared import events
from shared.csat import (
    CsatSettings,
    LinkError,
    ScoreError,
    button_payload,
    language_of,
    lone_digit,
    parse_score,
    read_link,
    read_payload,
    sign_link,
)
from shared.models import Contact, CsatReceived, OutboundMessage, SurveyRequest
from tests.fixtures import messenger as messenger_fx
from tests.fixtures import telegram as telegram_fx
from tests.fixtures import whatsapp as whatsapp_fx

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SURVEY_ID = "0123456789abcdef"


# -- scores, payloads, digits ------------------------------------------------------------------


@pytest.mark.parametrize("raw, score", [(1, 1), (5, 5), ("4", 4), (" 3 ", 3)])
def test_scores_from_1_to_5(raw, score):
    assert parse_score(raw) == score


@pytest.mark.parametrize("raw", [0, 6, -1, "abc", "", "4.5", 4.0, True, None, "１", "10"])
def test_anything_else_is_no_score(raw):
    with pytest.raises(ScoreError):
        parse_score(raw)


def test_a_button_payload_round_trips_and_others_are_not_ours():
    payload = button_payload(SURVEY_ID, 4)
    assert payload == f"csat:{SURVEY_ID}:4" and len(payload.encode()) <= 64  # Telegram's callback_data limit
    assert read_payload(payload) == (SURVEY_ID, "4")
    assert read_payload(f"csat:{SURVEY_ID}:abc") == (SURVEY_ID, "abc")  # ours, with a bad score: refused later
    for other in (None, "", "yes_refund", "csat:", "csat:a:b:c", "DEVELOPER_DEFINED_PAYLOAD"):
        assert read_payload(other) is None


@pytest.mark.parametrize("text, digit", [("4", "4"), (" 4 ", "4"), ("4.", "4"), ("5!", "5"), ("0", "0"), ("7", "7")])
def test_a_lone_digit(text, digit):
    assert lone_digit(text) == digit


@pytest.mark.parametrize("text", ["4 stars", "12", "four", "", "4 5", "#4"])
def test_text_that_is_no_lone_digit(text):
    assert lone_digit(text) is None


# -- signed links ------------------------------------------------------------------------------


def test_a_signed_link_reads_back_until_it_expires():
    token = sign_link("s3cret", "default", SURVEY_ID, NOW + timedelta(days=7))
    assert read_link("s3cret", token, NOW) == ("default", SURVEY_ID, NOW + timedelta(days=7))
    with pytest.raises(LinkError) as late:
        read_link("s3cret", token, NOW + timedelta(days=7, seconds=1))
    assert late.value.status == 410


@pytest.mark.parametrize("mangle", [
    lambda t: t[:-1] + ("0" if t[-1] != "0" else "1"),  # the signature changed
    lambda t: "A" + t[1:],  # the payload changed (another survey, workspace or expiry)
    lambda t: t.split(".")[0],  # no signature
    lambda t: "ü" + t,  # not even ASCII
])
def test_a_tampered_link_is_forged(mangle):
    token = sign_link("s3cret", "default", SURVEY_ID, NOW + timedelta(days=7))
    with pytest.raises(LinkError) as forged:
        read_link("s3cret", mangle(token), NOW)
    assert forged.value.status == 403


def test_a_link_signed_with_another_secret_is_forged():
    with pytest.raises(LinkError) as forged:
        read_link("s3cret", sign_link("other", "default", SURVEY_ID, NOW + timedelta(days=1)), NOW)
    assert forged.value.status == 403


# -- settings ----------------------------------------------------------------------------------


def test_the_question_follows_the_contacts_language_else_the_default():
    settings = CsatSettings(default_language="ru")
    assert settings.question("uk")[0] == "uk"
    assert settings.question("de") == ("ru", settings.questions["ru"])
    assert settings.question(None)[0] == "ru"
    assert CsatSettings(questions={"de": "Wie war es?"}, default_language="de").question("en") == ("de", "Wie war es?")
    assert [language_of(x) for x in ("uk-UA", "RU", "en_GB", "", 5, "x")] == ["uk", "ru", "en", None, None, None]


def test_settings_refuse_a_channel_that_cannot_carry_a_survey_and_odd_windows():
    with pytest.raises(ValidationError, match="voice"):
        CsatSettings(channels=["webchat", "voice"])
    with pytest.raises(ValidationError):
        CsatSettings(answer_window_seconds=0)
    settings = CsatSettings(channels=["sms"])
    assert settings.surveys("sms") and not settings.surveys("webchat")
    assert not CsatSettings(enabled=False).surveys("sms")


# -- the answer rules (agents) -----------------------------------------------------------------


def surveyed(status="pending", score=None, comment=None) -> dict:
    return {"_id": "c1", "workspace_id": "default", "channel": "sms", "thread_id": "+14155550123",
            "assignee_id": "ann", "queue": "billing",
            "csat": {"survey_id": SURVEY_ID, "status": status, "channel": "sms", "language": "en",
                     "question": "How?", "sent_at": NOW, "expires_at": NOW + timedelta(days=7),
                     "score": score, "comment": comment, "answered_at": NOW if score else None}}


def answer(score=4, thread="+14155550123", comment=None) -> agents_csat.Answer:
    return agents_csat.Answer(survey_id=SURVEY_ID, channel="sms", thread_id=thread, score=score, comment=comment)


def refusal(conversation: dict, given: agents_csat.Answer, now: datetime = NOW) -> tuple[int, str]:
    with pytest.raises(agents_csat.CsatRefused) as refused:
        agents_csat.judge(conversation, given, now)
    return refused.value.status, refused.value.reason


def test_a_first_valid_answer_is_new_and_its_repeat_is_not():
    assert agents_csat.judge(surveyed(), answer(4), NOW) is True
    assert agents_csat.judge(surveyed("answered", 4), answer(4), NOW) is False
    # A repeat is still the same answer after the window (a provider retrying what was kept in time).
    assert agents_csat.judge(surveyed("answered", 4), answer(4), NOW + timedelta(days=30)) is False


def test_refusals_name_their_reason():
    assert refusal(surveyed(), answer(4, thread="+10000000000")) == (403, "forged")
    assert refusal(surveyed(), answer(0)) == (422, "out_of_range")
    assert refusal(surveyed(), answer(6)) == (422, "out_of_range")
    assert refusal(surveyed("answered", 4), answer(5)) == (409, "repeated")
    assert refusal(surveyed("answered", 4, "ok"), answer(4, comment="changed")) == (409, "repeated")
    assert refusal(surveyed(), answer(4), NOW + timedelta(days=7, seconds=1)) == (410, "late")


def test_the_kept_answer_is_one_event_per_survey_and_the_resolution_says_surveyed():
    kept = surveyed("answered", 5, "great")
    event = agents_csat.received(kept)
    assert (event.event_id, event.score, event.comment, event.agent_id, event.queue, event.channel) == (
        f"csat.received:{SURVEY_ID}", 5, "great", "ann", "billing", "sms")
    assert resolution({**kept, "resolved_at": NOW}).surveyed is True
    assert resolution({**kept, "csat": None, "resolved_at": NOW}).surveyed is False


def test_a_new_survey_is_pending_with_its_window_and_a_random_id():
    conversation = {"channel": "telegram", "thread_id": "1"}
    one = agents_csat.new_survey(conversation, CsatSettings(answer_window_seconds=3600), "uk-UA", NOW)
    other = agents_csat.new_survey(conversation, CsatSettings(), None, NOW)
    assert (one["status"], one["language"], one["expires_at"]) == ("pending", "uk", NOW + timedelta(hours=1))
    assert one["survey_id"] != other["survey_id"] and len(one["survey_id"]) == 16


# -- reporting reads the producer's events -----------------------------------------------------


def test_reporting_normalizes_csat_received_and_surveyed():
    body = CsatReceived(event_id=f"csat.received:{SURVEY_ID}", workspace_id="default", conversation_id="c1",
                        survey_id=SURVEY_ID, channel="sms", agent_id="ann", queue="billing", score=4, comment="ok",
                        at=NOW).model_dump_json().encode()
    (event,) = normalize(events.CSAT_RECEIVED, body)
    assert (event.type, event.event_id, event.at, event.agent_id, event.queue, event.channel) == (
        "csat.received", f"csat.received:{SURVEY_ID}", NOW, "ann", "billing", "sms")
    assert (event.data["score"], event.data["comment"]) == (4, "ok")
    (resolved,) = normalize(events.CONVERSATION_RESOLVED,
                            resolution(surveyed() | {"resolved_at": NOW}).model_dump_json().encode())
    assert resolved.data == {"surveyed": True}
    with pytest.raises(MalformedBody):
        normalize(events.CSAT_RECEIVED, body.replace(b'"score":4', b'"score":9'))


# -- each channel's survey and how its answer is read ------------------------------------------


def survey_message(channel: str, thread: str, language: str = "en") -> OutboundMessage:
    return OutboundMessage(message_id="survey-1", workspace_id="default", conversation_id="c1", channel=channel,
                           thread_id=thread, contact=Contact(id=thread), agent_id="switchyard", text="How did we do?",
                           survey=SurveyRequest(survey_id=SURVEY_ID, question="How did we do?", language=language,
                                                expires_at=NOW + timedelta(days=7)))


def test_telegram_an_inline_keyboard_and_a_callback_query_naming_it():
    markup = telegram.survey_keyboard(survey_message("telegram", "1111111"))["reply_markup"]
    assert [b["callback_data"] for b in markup["inline_keyboard"][0]] == [f"csat:{SURVEY_ID}:{n}" for n in range(1, 6)]
    assert telegram.survey_keyboard(survey_message("telegram", "1").model_copy(update={"survey": None})) == {}
    press = telegram_fx.update(1, callback_query={**telegram_fx.CALLBACK_QUERY["callback_query"],
                                                  "data": f"csat:{SURVEY_ID}:5"})
    query, survey_id, score = telegram.survey_answer_of(telegram.Update.model_validate(press))
    assert (query.id, survey_id, score) == ("4382bfdwdsb323b2d9", SURVEY_ID, "5")
    # Another button, or a message: not a survey answer.
    assert telegram.survey_answer_of(telegram.Update.model_validate(telegram_fx.CALLBACK_QUERY)) is None
    assert telegram.survey_answer_of(telegram.Update.model_validate(telegram_fx.TEXT)) is None


def test_whatsapp_a_list_of_five_rows_and_list_or_button_replies_naming_it():
    content = whatsapp.content_of(survey_message("whatsapp", whatsapp_fx.WA_ID, "ru"))
    action = content["interactive"]["action"]
    assert content["type"] == "interactive" and content["interactive"]["type"] == "list"
    assert action["button"] == "Оценить" and len(action["button"]) <= 20  # WhatsApp's limit for the list button
    rows = action["sections"][0]["rows"]
    assert len(rows) == 5 and all(len(r["title"]) <= 24 and len(r["id"]) <= 200 for r in rows)
    for kind in ("list_reply", "button_reply"):
        payload = whatsapp_fx.received(whatsapp_fx.message("wamid.x", "interactive", interactive={
            "type": kind, kind: {"id": f"csat:{SURVEY_ID}:2", "title": "2"}}))
        messages, _ = whatsapp.normalize(whatsapp.Webhook.model_validate(payload), "default")
        assert read_payload(whatsapp.survey_payload(messages[0])) == (SURVEY_ID, "2")
    messages, _ = whatsapp.normalize(whatsapp.Webhook.model_validate(whatsapp_fx.TEXT), "default")
    assert whatsapp.survey_payload(messages[0]) is None


def test_messenger_quick_replies_and_their_payload_coming_back():
    body = messenger.send_body(messenger.MessengerConfig.model_validate(messenger_fx.BENCH_CONFIG),
                               survey_message("messenger", messenger_fx.PSID))
    assert body["message"]["quick_replies"][0] == {"content_type": "text", "title": "1",
                                                  "payload": f"csat:{SURVEY_ID}:1"}
    assert len(body["message"]["quick_replies"]) == 5
    tapped = messenger_fx.webhook(messenger_fx.event(message={
        "mid": "m_x", "text": "3", "quick_reply": {"payload": f"csat:{SURVEY_ID}:3"}}))
    (message,) = messenger.normalize(messenger.Webhook.model_validate(tapped), "default")
    assert read_payload(messenger.survey_payload(message)) == (SURVEY_ID, "3")
    (other,) = messenger.normalize(messenger.Webhook.model_validate(messenger_fx.QUICK_REPLY), "default")
    assert read_payload(messenger.survey_payload(other)) is None


def test_sms_asks_for_a_digit_and_answers_in_escaped_twiml():
    assert twilio.sms_text(survey_message("sms", "+1", "uk")).endswith("Дайте відповідь однією цифрою від 1 до 5.")
    assert twilio.twiml_message("<5 & more>") == (
        '<?xml version="1.0" encoding="UTF-8"?><Response><Message>&lt;5 &amp; more&gt;</Message></Response>')


# -- intake: the customer's words, and the survey again on a chat page's return ------------------


def test_polite_replies_in_the_surveys_language_with_english_where_there_is_none():
    assert Outcome(200, language="uk").polite_text() == "Дякуємо за відгук!"
    assert Outcome(422, "out_of_range", language="ru").polite_text() == "Пожалуйста, выберите оценку от 1 до 5."
    assert Outcome(403, "forged", language="uk").polite_text() == "Sorry, this survey is not yours to answer."
    assert Outcome(200, language="de").polite_text() == "Thank you for your feedback!"
    assert Outcome(400).polite_text() == "Sorry, we could not record your rating."


@pytest.mark.parametrize("raw, number", [(4, 4), ("5", 5), ("7", 7), (0, 0), (" 9 ", 9), ("abc", None), (4.5, None),
                                         (True, None), ("100", None), (-1, None), ("²", None), (None, None)])
def test_intake_hands_on_whole_numbers_and_refuses_what_is_no_score(raw, number):
    assert _number(raw) == number


def test_a_pending_survey_is_shown_again_and_an_answered_or_closed_one_is_not():
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    survey = {"survey_id": SURVEY_ID, "status": "pending", "question": "How?", "expires_at": later,
              "sent_at": NOW.isoformat()}
    frame = pending_survey_frame({"csat": survey})
    assert (frame["type"], frame["message_id"], frame["scores"]) == ("survey", f"survey-{SURVEY_ID}", [1, 2, 3, 4, 5])
    assert pending_survey_frame({"csat": survey | {"status": "answered"}}) is None
    assert pending_survey_frame({"csat": survey | {"expires_at": NOW.isoformat()}}) is None
    assert pending_survey_frame({"csat": None}) is None and pending_survey_frame({"messages": []}) is None
