"""Time inside a queue's business hours, on the router's model of them (services/router/config.py)."""

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from services.router.config import WEEKDAYS, BusinessHours


@lru_cache(maxsize=4096)
def _window_times(window: str) -> tuple[time, time]:
    start, end = window.split("-")
    return time.fromisoformat(start), time.fromisoformat(end)


def _open_windows(day: date, hours: BusinessHours, tz: ZoneInfo) -> list[tuple[datetime, datetime]]:
    """The day's open windows as UTC instants (a window across a DST change is as long as it really is)."""
    if day in hours.holidays:
        return []
    windows = []
    for window in hours.weekly.get(WEEKDAYS[day.weekday()], []):
        opens, closes = _window_times(window)
        windows.append((datetime.combine(day, opens, tzinfo=tz).astimezone(UTC),
                        datetime.combine(day, closes, tzinfo=tz).astimezone(UTC)))
    return windows


def business_time(start: datetime, end: datetime, hours: BusinessHours) -> timedelta:
    """How much of [start, end) falls inside the business hours (zero when end is not after start)."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= start:
        return timedelta(0)
    tz = ZoneInfo(hours.timezone)
    total = timedelta(0)
    day, last = start.astimezone(tz).date(), end.astimezone(tz).date()
    while day <= last:  # a window lies within its local day, so these days hold every overlap
        for opens, closes in _open_windows(day, hours, tz):
            overlap = min(closes, end) - max(opens, start)
            if overlap > timedelta(0):
                total += overlap
        day += timedelta(days=1)
    return total


def business_seconds(start: datetime, end: datetime, hours: BusinessHours) -> float:
    """Seconds of [start, end) inside the business hours."""
    return business_time(start, end, hours).total_seconds()
