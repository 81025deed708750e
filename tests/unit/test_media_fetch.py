"""Reading providers' file references back, and the pure rules around a fetched file."""

import pytest

from services.intake.channels import messenger, telegram, twilio, voice, whatsapp
from services.intake.channels.base import FetchedMedia, MediaFetchError, url_filename
from services.intake.context import _content_type, _held_by_provider
from shared.models import Attachment
from tests.fixtures import messenger as ms
from tests.fixtures import telegram as tg
from tests.fixtures import twilio as tw
from tests.fixtures import voice as vo
from tests.fixtures import whatsapp as wa


def test_the_references_each_normalizer_writes_are_read_back():
    [photo] = telegram.normalize(telegram.Update.model_validate(tg.PHOTO), "default").attachments
    assert telegram.file_id_of(photo.url) == "AgACAgQAAxkBAAIBlarge"
    messages, _ = whatsapp.normalize(whatsapp.Webhook.model_validate(wa.DOCUMENT), "default")
    assert whatsapp.media_id_of(messages[0].attachments[0].url) == "1009123425562291"
    [image] = messenger.normalize(messenger.Webhook.model_validate(ms.IMAGE), "default")[0].attachments
    assert messenger.cdn_url_of(image.url) == "https://scontent.xx.fbcdn.net/v/t1.15752-9/photo.jpg?_nc_cat=1&oh=abc"


@pytest.mark.parametrize("reference", [None, "", "telegram:file/", "whatsapp:media/1", "https://example.com/x"])
def test_a_reference_of_another_kind_is_not_a_telegram_file(reference):
    assert telegram.file_id_of(reference) is None


@pytest.mark.parametrize("reference", [None, "whatsapp:media/", "telegram:file/abc", "1003383421387256"])
def test_a_reference_of_another_kind_is_not_a_whatsapp_media_id(reference):
    assert whatsapp.media_id_of(reference) is None


def test_a_cdn_url_too_long_to_keep_cannot_be_fetched():
    kept = messenger.reference("https://cdn.fbsbx.com/" + "a" * 3000, "messenger", "m_1", 0)
    assert kept == "messenger:attachment/m_1/0"
    assert messenger.cdn_url_of(kept) is None


SMS = twilio.SmsConfig.model_validate({**tw.BENCH_CONFIG, "base_url": "http://127.0.0.1:9999"})


def test_twilio_urls_are_fetched_from_the_accounts_api_and_nothing_else_gets_the_credentials():
    media = tw.incoming_mms(3)["MediaUrl0"]
    assert media.startswith("https://api.twilio.com/")
    assert twilio.api_url_of(SMS, media) == "http://127.0.0.1:9999" + media.removeprefix("https://api.twilio.com")
    default = twilio.SmsConfig.model_validate(tw.BENCH_CONFIG)
    assert twilio.api_url_of(default, media) == media
    assert twilio.api_url_of(SMS, "http://127.0.0.1:9999/2010-04-01/x?y=1") == "http://127.0.0.1:9999/2010-04-01/x?y=1"
    for elsewhere in ("https://evil.example/2010-04-01/x", "http://api.twilio.com/x", "https://pbx.example.com/vm/43.wav", None):
        assert twilio.api_url_of(SMS, elsewhere) is None


async def test_a_pbx_recording_is_left_as_a_reference_not_fetched():
    class NoHttpIntake:
        configs = {("voice", "default"): voice.VoiceConfig.model_validate(vo.CONFIG)}

    recording = Attachment(url="https://pbx.example.com/vm/43.wav", content_type="audio/wav")
    assert await voice.fetch_recording(NoHttpIntake(), "default", recording) is None
    assert await voice.fetch_recording(NoHttpIntake(), "elsewhere", Attachment(url=vo.recording_url(vo.call_sid(1)))) is None


def test_telegram_get_file_answers():
    ok = {"ok": True, "result": {"file_id": "x", "file_path": "photos/file_7.jpg", "file_size": 98211}}
    assert telegram._file_of(200, ok) == ("photos/file_7.jpg", 98211)
    with pytest.raises(MediaFetchError, match=r"^provider answered 400: Bad Request: invalid file_id$"):
        telegram._file_of(400, {"ok": False, "error_code": 400, "description": "Bad Request: invalid file_id"})
    with pytest.raises(MediaFetchError, match=r"^provider answered 502$"):
        telegram._file_of(502, None)
    with pytest.raises(MediaFetchError, match="without a file_path"):
        telegram._file_of(200, {"ok": True, "result": {"file_id": "x"}})


def test_whatsapp_media_lookup_answers():
    answer = {"messaging_product": "whatsapp", "url": "https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid=1",
              "mime_type": "image/jpeg", "sha256": "abc", "file_size": "303833", "id": "1"}
    assert whatsapp.media_of(200, answer) == (answer["url"], "image/jpeg", 303833)
    assert whatsapp.media_of(200, {**answer, "file_size": 12})[2] == 12
    with pytest.raises(MediaFetchError, match=r"^provider answered 404: Unsupported get request\.$"):
        whatsapp.media_of(404, {"error": {"message": "Unsupported get request.", "code": 100}})
    with pytest.raises(MediaFetchError, match="without a URL"):
        whatsapp.media_of(200, {"id": "1"})


def test_the_stored_type_is_the_webhooks_unless_it_was_vague():
    def stored_type(said: str, told: str | None) -> str:
        return _content_type(Attachment(url="x", content_type=said), FetchedMedia(b"", content_type=told))

    assert stored_type("image/*", "image/png") == "image/png"
    assert stored_type("application/octet-stream", "application/pdf") == "application/pdf"
    assert stored_type("image/jpeg", "application/octet-stream") == "image/jpeg"
    assert stored_type("audio/wav", "audio/x-wav") == "audio/wav"
    assert stored_type("image/*", None) == "image/*"


def test_only_references_without_a_stored_file_are_fetched():
    assert _held_by_provider(Attachment(url="telegram:file/x"))
    assert not _held_by_provider(Attachment(url="telegram:file/x", attachment_id="a1"))
    assert not _held_by_provider(Attachment(attachment_id="a1"))


def test_file_names_come_from_the_last_path_segment():
    assert url_filename("https://cdn.fbsbx.com/v/t59/receipt%20may.pdf?_nc_cat=1") == "receipt may.pdf"
    assert url_filename("documents/file_12.pdf") == "file_12.pdf"
    assert url_filename("https://cdn.example/") is None
