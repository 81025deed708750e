"""Local hours, days and weeks as unions of 15-minute UTC buckets, DST and half-hour zones included."""

from datetime import UTC, datetime, timedelta

import pytest

from services.reporting.intervals import (
    BUCKET,
    DAY,
    HOUR,
    ReportQueryError,
    UnknownInterval,
    UnknownTimeZone,
    bucket_start,
    bucket_starts,
    buckets_by_interval,
    intervals,
    tile,
    tiles_by_interval,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_bucket_start_floors_to_the_quarter_hour_in_utc():
    assert bucket_start(utc(2026, 3, 2, 9, 14, 59, 999999)) == utc(2026, 3, 2, 9, 0)
    assert bucket_start(utc(2026, 3, 2, 9, 15)) == utc(2026, 3, 2, 9, 15)
    kolkata_time = datetime.fromisoformat("2026-03-02T14:50:00+05:30")  # 09:20 UTC
    assert bucket_start(kolkata_time) == utc(2026, 3, 2, 9, 15)
    with pytest.raises(ValueError):
        bucket_start(datetime(2026, 3, 2, 9, 0))  # naive


def test_bucket_starts_cover_every_bucket_overlapping_the_range():
    assert bucket_starts(utc(2026, 3, 2, 9, 7), utc(2026, 3, 2, 9, 31)) == [
        utc(2026, 3, 2, 9, 0), utc(2026, 3, 2, 9, 15), utc(2026, 3, 2, 9, 30)]
    assert bucket_starts(utc(2026, 3, 2, 9, 0), utc(2026, 3, 2, 9, 0)) == []


def test_kyiv_days_across_the_spring_change_are_23_hours():
    # Kyiv: EET (+02:00) until 2026-03-29 03:00 local, then EEST (+03:00).
    rows = buckets_by_interval(utc(2026, 3, 27, 22), utc(2026, 3, 30, 21), "day", "Europe/Kyiv")
    starts = [start for start, _ in rows]
    assert [s.isoformat() for s in starts] == [
        "2026-03-28T00:00:00+02:00", "2026-03-29T00:00:00+02:00", "2026-03-30T00:00:00+03:00"]
    assert [len(buckets) for _, buckets in rows] == [96, 92, 96]  # 24 h, 23 h, 24 h
    assert rows[1][1][0] == utc(2026, 3, 28, 22) and rows[1][1][-1] == utc(2026, 3, 29, 20, 45)


def test_kyiv_autumn_change_gives_a_25_hour_day_and_the_repeated_hour_twice():
    days = buckets_by_interval(utc(2026, 10, 24, 21), utc(2026, 10, 25, 22), "day", "Europe/Kyiv")
    assert [(s.isoformat(), len(b)) for s, b in days] == [("2026-10-25T00:00:00+03:00", 100)]
    hours = intervals(utc(2026, 10, 24, 23), utc(2026, 10, 25, 2), "hour", "Europe/Kyiv")
    # 02:00 EEST, 03:00 EEST, then clocks go back to 03:00 EET: the 03:00 hour happens twice.
    assert [h.isoformat() for h in hours] == [
        "2026-10-25T02:00:00+03:00", "2026-10-25T03:00:00+03:00", "2026-10-25T03:00:00+02:00"]
    assert [h.astimezone(UTC).hour for h in hours] == [23, 0, 1]


def test_a_midnight_that_happens_twice_starts_one_day_not_two():
    # Havana, 2025-11-02: clocks go back from 01:00 CDT to 00:00 CST, so 00:00-01:00 is lived twice.
    rows = buckets_by_interval(utc(2025, 11, 2, 4), utc(2025, 11, 3, 5), "day", "America/Havana")
    assert [(s.isoformat(), len(b)) for s, b in rows] == [("2025-11-02T00:00:00-04:00", 100)]


def test_kolkata_days_start_at_18_30_utc():
    rows = buckets_by_interval(utc(2026, 3, 1, 18, 30), utc(2026, 3, 3, 18, 30), "day", "Asia/Kolkata")
    assert [s.isoformat() for s, _ in rows] == ["2026-03-02T00:00:00+05:30", "2026-03-03T00:00:00+05:30"]
    assert [len(b) for _, b in rows] == [96, 96]
    assert rows[0][1][0] == utc(2026, 3, 1, 18, 30)
    hours = intervals(utc(2026, 3, 2, 3, 30), utc(2026, 3, 2, 5, 30), "hour", "Asia/Kolkata")
    assert [h.astimezone(UTC).strftime("%H:%M") for h in hours] == ["03:30", "04:30"]


def test_kathmandu_plus_05_45_days_are_whole_buckets_too():
    rows = buckets_by_interval(utc(2026, 3, 1, 18, 15), utc(2026, 3, 2, 18, 15), "day", "Asia/Kathmandu")
    assert [(s.isoformat(), len(b), b[0]) for s, b in rows] == [
        ("2026-03-02T00:00:00+05:45", 96, utc(2026, 3, 1, 18, 15))]


def test_weeks_start_on_monday_in_the_zone():
    # 2026-03-01 is a Sunday: in Kyiv it belongs to the week of Monday 2026-02-23.
    weeks = intervals(utc(2026, 3, 1, 12), utc(2026, 3, 10), "week", "Europe/Kyiv")
    assert [w.isoformat() for w in weeks] == [
        "2026-02-23T00:00:00+02:00", "2026-03-02T00:00:00+02:00", "2026-03-09T00:00:00+02:00"]
    assert all(w.weekday() == 0 for w in weeks)


def test_a_range_edge_inside_an_interval_keeps_only_the_buckets_in_the_range():
    rows = buckets_by_interval(utc(2026, 3, 2, 10), utc(2026, 3, 2, 11, 30), "day", "UTC")
    assert [(s.isoformat(), len(b)) for s, b in rows] == [("2026-03-02T00:00:00+00:00", 6)]


def test_unknown_time_zone_or_interval_is_a_clear_value_error():
    with pytest.raises(UnknownTimeZone, match="Europe/Kiev2"):
        intervals(utc(2026, 3, 1), utc(2026, 3, 2), "day", "Europe/Kiev2")
    for bad in ("", "../etc/passwd", "Europe", "x" * 300):
        with pytest.raises(UnknownTimeZone):
            intervals(utc(2026, 3, 1), utc(2026, 3, 2), "day", bad)
    with pytest.raises(UnknownInterval, match="month"):
        intervals(utc(2026, 3, 1), utc(2026, 3, 2), "month", "UTC")
    assert issubclass(UnknownTimeZone, ReportQueryError) and issubclass(ReportQueryError, ValueError)


def test_every_bucket_of_a_year_lands_in_exactly_one_local_day():
    start, end = utc(2025, 12, 31, 20), utc(2027, 1, 1, 4)
    for tz in ("Europe/Kyiv", "Asia/Kolkata", "America/St_Johns", "Australia/Lord_Howe"):
        rows = buckets_by_interval(start, end, "day", tz)
        buckets = [b for _, day in rows for b in day]
        assert buckets == bucket_starts(start, end)
        for local_start, day in rows[1:-1]:
            # a whole local day: from its midnight to the next one, 23, 23.5, 24, 24.5 or 25 hours
            next_midnight = (local_start + timedelta(days=1)).replace(hour=0, minute=0)
            assert day[0] == local_start.astimezone(UTC)
            assert day[-1] + timedelta(minutes=15) == next_midnight.astimezone(UTC)


def test_a_range_is_tiled_by_the_coarsest_aligned_spans_and_exactly():
    start = datetime(2026, 3, 1, 22, 45, tzinfo=UTC)
    tiles = tile(start, datetime(2026, 3, 3, 1, 30, tzinfo=UTC), (BUCKET, HOUR, DAY))
    assert [(at.strftime("%d %H:%M"), span) for at, span in tiles] == [
        ("01 22:45", BUCKET), ("01 23:00", HOUR), ("02 00:00", DAY), ("03 00:00", HOUR),
        ("03 01:00", BUCKET), ("03 01:15", BUCKET)]
    assert tile(start, start) == []
    assert tile(start, start + 3 * HOUR, (BUCKET,)) == [(start + i * BUCKET, BUCKET) for i in range(12)]


@pytest.mark.parametrize("tz", ["UTC", "Europe/Kyiv", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Lord_Howe"])
@pytest.mark.parametrize("interval", ["hour", "day", "week"])
def test_the_tiles_of_each_interval_cover_exactly_its_buckets(tz, interval):
    start, end = datetime(2026, 3, 25, 7, 50, tzinfo=UTC), datetime(2026, 4, 8, 3, 5, tzinfo=UTC)
    tiled = tiles_by_interval(start, end, interval, tz)
    by_buckets = buckets_by_interval(start, end, interval, tz)
    assert [local for local, _ in tiled] == [local for local, _ in by_buckets]
    for (_, tiles), (_, buckets) in zip(tiled, by_buckets, strict=True):
        assert [b for at, span in tiles for b in bucket_starts(at, at + span)] == buckets
