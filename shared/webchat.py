"""Per-workspace web chat settings: how the chat and its embeddable widget look, and when people answer.

They live in the routing configuration document, in a `webchat` section by workspace id beside `csat`
(PUT /v1/routing/config; docs/webchat.md says why there): the router validates and stores it, intake
reads it from the stored document through a short cache (services/intake/chat_settings.py).
"""

import re
from datetime import datetime, time
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from shared.models import Wire

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")


def _minutes(clock: str) -> int:
    hours, minutes = clock.split(":")
    return int(hours) * 60 + int(minutes)


class Span(Wire):
    """Open from `start` to `end` ("HH:MM", local time; "24:00" is the end of the day)."""

    start: str = Field(pattern=CLOCK.pattern, examples=["09:00"])
    end: str = Field(pattern=CLOCK.pattern, examples=["17:30"])

    @model_validator(mode="after")
    def _ordered(self) -> "Span":
        if _minutes(self.end) <= _minutes(self.start):
            raise ValueError(f"a span must end after it starts ({self.start}-{self.end})")
        return self

    def holds(self, at: time) -> bool:
        return _minutes(self.start) <= at.hour * 60 + at.minute < _minutes(self.end)


class OpeningHours(Wire):
    """A weekly schedule in a time zone (IANA name); a day not listed is closed."""

    time_zone: str = Field(min_length=1, max_length=64, examples=["Europe/Kyiv"])
    weekly: dict[Weekday, Annotated[list[Span], Field(max_length=12)]] = Field(default_factory=dict)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, name: str) -> str:
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError) as error:
            raise ValueError(f"unknown time zone {name!r}") from error
        return name

    def is_open(self, now: datetime) -> bool:
        local = now.astimezone(ZoneInfo(self.time_zone))
        return any(span.holds(local.time()) for span in self.weekly.get(WEEKDAYS[local.weekday()], ()))


class WebchatSettings(Wire):
    """One workspace's chat: its title, greeting, colour and language, and its opening hours."""

    title: str | None = Field(None, min_length=1, max_length=100)  # else the page's own, in the reader's language
    greeting: str | None = Field(None, min_length=1, max_length=500)  # the first line of an empty chat
    # The page's language when the reader's browser asks for none the chat has (a `lang` parameter and
    # the browser's languages come first).
    language: str | None = Field(None, pattern=r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})?$")
    accent_color: str | None = Field(None, pattern=r"^#[0-9a-fA-F]{6}$", examples=["#2f6fde"])
    hours: OpeningHours | None = None  # None: always open

    def is_open(self, now: datetime) -> bool:
        return self.hours is None or self.hours.is_open(now)
