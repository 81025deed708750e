"""CSAT by email, real broker, database and SMTP: the survey mail carries a signed link to a page on
intake; GET shows the form, POST keeps the first valid answer; forged, expired, malformed links and
bad scores get JSON 4xx with the reason; nothing is routed."""

import asyncio
import re
from datetime import timedelta
from email import message_from_bytes, policy
from urllib.parse import urlsplit

from services.intake.settings import IntakeSettings
from shared.csat import sign_link
from shared.models import utcnow
from tests.fixtures import email as fx
from tests.service.csat_helpers import assigned_to, conversation, conversations_of, enable_csat, resolve
from tests.service.test_channel_email import Relay, email_apps, smtp_send
from tests.service.test_reporting_events import reporting_queue

SECRET = IntakeSettings.model_fields["csat_secret"].default


async def survey_mail(relay: Relay):
    envelope = await asyncio.wait_for(relay.received.get(), 20)
    return message_from_bytes(envelope.original_content, policy=policy.default)


async def post_answer(apps, path: str, body, expected: int, **options) -> dict:
    if isinstance(body, dict):
        options["json"] = body
    else:
        options["data"] = body
    response = await apps.intake.post(path, **options)
    assert response.status == expected, await response.text()
    assert response.content_type == "application/json"
    return await response.json()


async def test_an_email_survey_is_a_signed_link_to_a_page_that_keeps_the_first_answer(names):
    relay = Relay()
    async with email_apps(names, relay) as (apps, smtp_port), reporting_queue(names) as reported:
        await enable_csat(apps, questions={"en": "Did we solve your problem?"})
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert await smtp_send(smtp_port, fx.PLAIN) == {}
        conversation_id = (await assigned_to(desk))["conversation_id"]
        survey = (await resolve(apps, conversation_id))["csat"]

        mail = await survey_mail(relay)
        assert mail["To"].addresses[0].addr_spec == fx.CUSTOMER and mail["Auto-Submitted"] == "auto-generated"
        text = mail.get_content()
        assert text.startswith("Did we solve your problem?")
        (link,) = re.findall(r"https?://\S+/csat/\S+", text)
        path = urlsplit(link).path

        page = await apps.intake.get(path)
        assert page.status == 200 and page.content_type == "text/html"
        assert 'name="score"' in await page.text()

        # Bad scores: refused with the reason, the survey still open.
        assert (await post_answer(apps, path, {"score": 6}, 422))["error"]["reason"] == "out_of_range"
        assert (await post_answer(apps, path, {"score": "abc"}, 422))["error"]["reason"] == "out_of_range"
        await post_answer(apps, path, b"{not json", 400, headers={"Content-Type": "application/json"})
        # A form post (the page without script) is kept; the same again is the same answer; another is refused.
        kept = await post_answer(apps, path, b"score=3&comment=slow+but+fine", 200,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
        assert kept == {"status": "recorded", "score": 3, "message": "Thank you for your feedback!"}
        await post_answer(apps, path, {"score": 3, "comment": "slow but fine"}, 200)
        assert (await post_answer(apps, path, {"score": 5}, 409))["error"]["reason"] == "repeated"

        received = await reported.of("csat.received", conversation_id)
        assert (received.event_id, received.data["score"], received.data["comment"], received.channel) == (
            f"csat.received:{survey['survey_id']}", 3, "slow but fine", "email")
        shown = await conversation(apps, conversation_id)
        assert (shown["status"], shown["csat"]["score"], shown["csat"]["comment"]) == ("resolved", 3, "slow but fine")
        assert len(await conversations_of(apps, "email", shown["thread_id"])) == 1


async def test_forged_expired_and_malformed_links_are_refused_as_json(names):
    relay = Relay()
    async with email_apps(names, relay) as (apps, smtp_port):
        await enable_csat(apps)
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        assert await smtp_send(smtp_port, fx.PLAIN) == {}
        conversation_id = (await assigned_to(desk))["conversation_id"]
        survey_id = (await resolve(apps, conversation_id))["csat"]["survey_id"]
        path = urlsplit(re.findall(r"https?://\S+/csat/\S+", (await survey_mail(relay)).get_content())[0]).path

        tampered = path[:-1] + ("0" if path[-1] != "0" else "1")
        for method in ("GET", "POST"):
            response = await apps.intake.request(method, tampered, json={"score": 5})
            assert response.status == 403 and (await response.json())["error"]["reason"] == "forged"
        # Signed with another secret: forged too.
        other = "/csat/" + sign_link("not-our-secret", "default", survey_id, utcnow() + timedelta(days=1))
        assert (await post_answer(apps, other, {"score": 5}, 403))["error"]["reason"] == "forged"
        # Correctly signed, but past its expiry: late.
        expired = "/csat/" + sign_link(SECRET, "default", survey_id, utcnow() - timedelta(seconds=1))
        assert (await apps.intake.get(expired)).status == 410
        assert (await post_answer(apps, expired, {"score": 5}, 410))["error"]["reason"] == "late"
        # Signed, but for a survey that does not exist.
        unknown = "/csat/" + sign_link(SECRET, "default", "0123456789abcdef", utcnow() + timedelta(days=1))
        assert (await post_answer(apps, unknown, {"score": 5}, 404))["error"]["reason"] == "unknown_survey"
        assert (await apps.intake.get("/csat/garbage")).status == 403
        assert (await conversation(apps, conversation_id))["csat"]["status"] == "pending"
