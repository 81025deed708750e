"""15-minute UTC buckets, and the hours, days and weeks of a time zone made of them.

Every offset of every time zone in use (+05:30, +05:45, -09:30, +12:45, DST shifts of 30 or 60
minutes) is a multiple of 15 minutes, so a local hour, day or week is a union of whole UTC
buckets: a report in any zone merges stored bucket rollups and never rescans events.

Aware datetimes of one ZoneInfo compare and subtract as wall times (fold ignored), so everything
here is computed on UTC instants and only converted to the zone for the answer.
"""

from datetime import UTC, datetime, time, timedelta
from typing import Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

BUCKET = timedelta(minutes=15)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# The spans of stored rollups, finest first: each is a whole number of the one before and starts at a
# multiple of itself since the epoch (UTC hours, 2 and 6 hours from midnight, days), so a coarser one
# is the merge of its finer ones. 2 and 6 hours let a local day off UTC by whole hours take 6 or 7.
SPANS = (BUCKET, HOUR, 2 * HOUR, 6 * HOUR, DAY)
Interval = Literal["hour", "day", "week"]
INTERVALS: tuple[str, ...] = get_args(Interval)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class ReportQueryError(ValueError):
    """A report query that cannot be answered as asked (the API answers 422)."""


class UnknownTimeZone(ReportQueryError):
    """The time zone is not in the IANA database."""


class UnknownInterval(ReportQueryError):
    """The interval is not hour, day or week."""


def zone(name: str) -> ZoneInfo:
    """The IANA time zone of this name, or UnknownTimeZone."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a directory's name, an overlong one
        raise UnknownTimeZone(f"unknown time zone {name!r}: use an IANA name such as Europe/Kyiv") from None


def _aware_utc(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"{at!r} has no time zone: reporting times are aware")
    return at.astimezone(UTC)


def bucket_start(at: datetime) -> datetime:
    """The start (UTC) of the 15-minute bucket holding this instant."""
    instant = _aware_utc(at)
    return instant - (instant - _EPOCH) % BUCKET


def bucket_starts(start: datetime, end: datetime) -> list[datetime]:
    """Every bucket overlapping [start, end), in order."""
    first, stop = bucket_start(start), _aware_utc(end)
    count = max(0, -((first - stop) // BUCKET))  # ceil((stop - first) / BUCKET)
    return [first + i * BUCKET for i in range(count)]


def interval_start(at: datetime, interval: Interval, tz: ZoneInfo) -> datetime:
    """The start (UTC) of the local hour, day or week (from Monday) holding this instant."""
    local = _aware_utc(at).astimezone(tz)
    if interval == "hour":
        # replace keeps fold, so the second 01:00 of a fall-back night stays a distinct hour.
        start = local.replace(minute=0, second=0, microsecond=0)
    elif interval == "day":
        start = datetime.combine(local.date(), time(0), tzinfo=tz)
    elif interval == "week":
        start = datetime.combine(local.date() - timedelta(days=local.weekday()), time(0), tzinfo=tz)
    else:
        raise UnknownInterval(f"unknown interval {interval!r}: use one of {', '.join(INTERVALS)}")
    # A midnight inside a DST gap (fold 0: the offset before it) is the instant the day begins.
    return start.astimezone(UTC)


def buckets_by_interval(start: datetime, end: datetime, interval: str, tz_name: str
                        ) -> list[tuple[datetime, list[datetime]]]:
    """The local intervals overlapping [start, end), each with its UTC buckets inside the range.

    Interval starts are aware datetimes in the zone. A list, not a dict: two local times of
    one zone that differ only by fold (the repeated hour) compare equal as keys.
    """
    tz = zone(tz_name)
    if interval not in INTERVALS:
        raise UnknownInterval(f"unknown interval {interval!r}: use one of {', '.join(INTERVALS)}")
    rows: list[tuple[datetime, list[datetime]]] = []
    current: datetime | None = None
    for bucket in bucket_starts(start, end):
        owner = interval_start(bucket, interval, tz)  # type: ignore[arg-type]
        if owner != current:
            current = owner
            rows.append((owner.astimezone(tz), []))
        rows[-1][1].append(bucket)
    return rows


def span_start(at: datetime, span: timedelta) -> datetime:
    """The start (UTC) of the span (a bucket, a UTC hour, a UTC day) holding this instant."""
    instant = _aware_utc(at)
    return instant - (instant - _EPOCH) % span


def tile(start: datetime, end: datetime, spans: tuple[timedelta, ...] = SPANS) -> list[tuple[datetime, timedelta]]:
    """[start, end) (bucket starts) as the fewest aligned spans: at each point the coarsest span that
    starts there and fits. The spans tile it exactly, so their merge is the merge of its buckets."""
    found, at = [], start
    while at < end:
        span = next((s for s in sorted(spans, reverse=True) if span_start(at, s) == at and at + s <= end), BUCKET)
        found.append((at, span))
        at += span
    return found


def tiles_by_interval(start: datetime, end: datetime, interval: str, tz_name: str,
                      spans: tuple[timedelta, ...] = SPANS) -> list[tuple[datetime, list[tuple[datetime, timedelta]]]]:
    """`buckets_by_interval`, each interval's buckets (a run without gaps) as the fewest stored spans."""
    return [(local_start, tile(buckets[0], buckets[-1] + BUCKET, spans))
            for local_start, buckets in buckets_by_interval(start, end, interval, tz_name)]


def intervals(start: datetime, end: datetime, interval: str, tz_name: str) -> list[datetime]:
    """The starts of the local hours, days or weeks overlapping [start, end), aware in the zone."""
    return [local_start for local_start, _ in buckets_by_interval(start, end, interval, tz_name)]
