"""CSAT end to end with the reporting service running: two web chats surveyed, one answered (twice),
and the summary's CSAT mean, share of 4-5 and response rate, and the CSV's score, are those by hand."""

import csv
import io

from tests.conftest import auth
from tests.service.csat_helpers import assigned_to, enable_csat, resolve
from tests.service.helpers import running_apps
from tests.service.test_csat_webchat import open_chat
from tests.service.test_reporting_service import get_summary, today_range, until


async def test_an_answer_reaches_the_reports_once(names):
    async with running_apps(names, reporting={}) as apps:
        await enable_csat(apps)
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        first, second = await open_chat(apps), await open_chat(apps)
        await first.say("hello", "a1")
        one = (await assigned_to(desk))["conversation_id"]
        await second.say("hi", "b1")
        two = (await assigned_to(desk))["conversation_id"]
        await resolve(apps, one)
        await resolve(apps, two)
        survey_id = (await first.next_of("survey"))["survey_id"]
        await second.next_of("survey")
        assert (await first.rate(survey_id, 4, "fine"))["type"] == "csat.recorded"
        assert (await first.rate(survey_id, 4, "fine"))["type"] == "csat.recorded"  # the same answer again

        # By hand: 2 surveyed, 1 answered with a 4 -> mean 4, share of 4-5 1.0, response rate 0.5.
        async def metrics():
            rows = (await get_summary(apps, interval="day"))["rows"]
            found = rows[0]["metrics"] if rows else {}
            return found if found.get("csat_response_rate") == 0.5 else None

        found = await until(metrics)
        assert (found["csat_mean"], found["csat_satisfied_share"], found["csat_response_rate"]) == (4, 1, 0.5)
        assert apps.reporting is not None
        response = await apps.reporting.get("/v1/reports/conversations.csv", params=today_range(), headers=auth())
        rows = {r["conversation_id"]: r for r in csv.DictReader(io.StringIO(await response.text()))}
        assert (rows[one]["csat_score"], rows[one]["surveyed"], rows[two]["csat_score"]) == ("4", "true", "")
