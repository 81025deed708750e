"""What an attempt's outcome means, and when the next one is due (pure: no I/O, randomness passed in)."""

import email.utils
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, bounded by attempts and by age (REPORTING_SUBSCRIPTIONS_* settings)."""

    base_seconds: float = 1.0
    cap_seconds: float = 3600.0
    max_attempts: int = 15
    max_age: timedelta = timedelta(hours=24)

    def delay(self, attempts: int, random: Callable[[], float], retry_after: float | None = None) -> float:
        """Seconds before the next attempt, after `attempts` failed ones.

        Equal jitter: half the exponential delay is kept and the other half drawn, so retries of many
        deliveries that failed together spread out yet never come back sooner than half the schedule.
        A Retry-After from the receiver is honoured (at least that long), within the cap."""
        exponential = min(self.cap_seconds, self.base_seconds * 2 ** max(0, attempts - 1))
        delay = exponential / 2 + random() * exponential / 2
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap_seconds))
        return delay

    def exhausted(self, attempts: int, created_at: datetime, now: datetime) -> str | None:
        """Why no further attempt is made, or None while attempts and age allow one."""
        if attempts >= self.max_attempts:
            return f"gave up after {attempts} attempts"
        if now - created_at >= self.max_age:
            return f"gave up after {self.max_age.total_seconds():.0f} s"
        return None


Verdict = str  # "delivered", "retry" or "final"


def verdict(status: int | None) -> Verdict:
    """2xx delivered; network errors and timeouts (None), 408, 429 and 5xx retried; any other answer is final:
    a 4xx says the receiver will refuse this body again (a bad signature setup, a gone endpoint), and a 3xx is
    not followed (a redirect could lead the request anywhere, a private address included)."""
    if status is None or status in (408, 429) or status >= 500:
        return "retry"
    if 200 <= status < 300:
        return "delivered"
    return "final"


def retry_after_seconds(header: str | None, now: datetime) -> float | None:
    """A Retry-After header (seconds, or an HTTP date) as seconds from now; None when absent or unreadable."""
    if not header:
        return None
    header = header.strip()
    if header.isdigit():
        return float(header)
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    seconds = (when - now).total_seconds()
    return max(0.0, seconds) if math.isfinite(seconds) else None
