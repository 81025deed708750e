"""Business time: the part of an interval inside a queue's hours, on the router's model of them."""

import random
from datetime import UTC, date, datetime, timedelta

from services.reporting.business import business_seconds
from services.router.config import BusinessHours

KYIV = BusinessHours(timezone="Europe/Kyiv", weekly={
    "mon": ["09:00-13:00", "14:00-18:00"], "tue": ["09:00-18:00"], "wed": ["09:00-18:00"],
    "thu": ["09:00-18:00"], "fri": ["09:00-17:00"], "sat": ["02:00-05:00"]}, holidays=[date(2026, 3, 31)])


def kyiv(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_an_interval_inside_one_window_counts_whole():
    assert business_seconds(kyiv("2026-03-02T10:00+02:00"), kyiv("2026-03-02T10:20+02:00"), KYIV) == 1200


def test_closed_time_lunch_nights_and_weekends_are_left_out():
    # Monday 12:30 -> Tuesday 09:30: 30 min before lunch, 14:00-18:00 (4 h), Tuesday 09:00-09:30.
    seconds = business_seconds(kyiv("2026-03-02T12:30+02:00"), kyiv("2026-03-03T09:30+02:00"), KYIV)
    assert seconds == (30 + 240 + 30) * 60
    # Friday 16:00 -> Monday 09:10: Friday 1 h, Saturday 02:00-05:00 (3 h), Monday 10 min.
    seconds = business_seconds(kyiv("2026-03-06T16:00+02:00"), kyiv("2026-03-09T09:10+02:00"), KYIV)
    assert seconds == (60 + 180 + 10) * 60


def test_holidays_are_closed():
    # Tuesday 2026-03-31 is a holiday: Monday 17:00 -> Wednesday 10:00 is Monday's last hour and Wednesday's first.
    assert business_seconds(kyiv("2026-03-30T17:00+03:00"), kyiv("2026-04-01T10:00+03:00"), KYIV) == 2 * 3600


def test_a_window_across_the_dst_change_is_as_long_as_it_really_is():
    # Saturday 2026-03-28 02:00-05:00 is +02:00 all through (the change is Sunday 03:00): 3 h.
    assert business_seconds(kyiv("2026-03-28T00:00+02:00"), kyiv("2026-03-28T23:00+02:00"), KYIV) == 3 * 3600
    sunday_night = BusinessHours(timezone="Europe/Kyiv", weekly={"sun": ["02:00-05:00"]})
    # Sunday 2026-03-29 02:00-05:00 local: clocks jump 03:00 -> 04:00, so 2 real hours.
    assert business_seconds(kyiv("2026-03-29T00:00+02:00"), kyiv("2026-03-29T12:00+03:00"), sunday_night) == 2 * 3600


def test_an_empty_or_backward_interval_is_zero():
    at = kyiv("2026-03-02T10:00+02:00")
    assert business_seconds(at, at, KYIV) == 0
    assert business_seconds(at, at - timedelta(hours=1), KYIV) == 0


def test_random_intervals_agree_with_the_routers_is_open_minute_by_minute():
    rng = random.Random(3)
    base = datetime(2026, 3, 20, tzinfo=UTC)  # spans the spring change and the holiday
    for _ in range(60):
        start = base + timedelta(minutes=rng.randint(0, 20 * 24 * 60))
        end = start + timedelta(minutes=rng.randint(0, 4 * 24 * 60))
        minutes = int((end - start).total_seconds() // 60)
        expected = sum(60 for m in range(minutes) if KYIV.is_open(start + timedelta(minutes=m)))
        assert business_seconds(start, end, KYIV) == expected, (start, end)
