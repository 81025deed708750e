"""Customer feedback (CSAT) surveys: the settings, and the pure rules every service applies the same way.

A survey goes out when a conversation is resolved (the agents service decides and records it on
the conversation); intake renders it the way each channel does best and reads the answer back
(`csat:<survey_id>:<score>` in a button's payload, a lone digit by SMS, a signed link by email);
the agents service checks and records the answer and publishes `csat.received` for reporting.
See docs/csat.md.
"""

import base64
import hashlib
import hmac
import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import Field, field_validator

from shared.models import Wire

SCORES = (1, 2, 3, 4, 5)
MAX_COMMENT_CHARS = 1000
# Channels that can show a survey; voice cannot (nor can `api`, whose caller owns its own UI).
SURVEY_CHANNELS = ("webchat", "telegram", "whatsapp", "messenger", "instagram", "sms", "email")
SURVEY_ID = re.compile(r"^[0-9a-f]{16}$")
# What a button carries: short enough for Telegram's 64-byte callback_data.
PAYLOAD = re.compile(r"^csat:(?P<survey>[^:]{1,64}):(?P<score>[^:]{0,16})$")

DEFAULT_QUESTIONS = {
    "en": "How would you rate our help? 1 (poor) to 5 (excellent).",
    "ru": "Оцените, пожалуйста, нашу помощь: от 1 (плохо) до 5 (отлично).",
    "uk": "Оцініть, будь ласка, нашу допомогу: від 1 (погано) до 5 (чудово).",
}
# How each channel asks for the answer beyond the question (SMS has no buttons).
SMS_INSTRUCTIONS = {
    "en": "Reply with one digit from 1 to 5.",
    "ru": "Ответьте одной цифрой от 1 до 5.",
    "uk": "Дайте відповідь однією цифрою від 1 до 5.",
}
# The label of the button that opens a WhatsApp list (at most 20 characters).
LIST_BUTTON = {"en": "Rate us", "ru": "Оценить", "uk": "Оцінити"}
THANKS = {"en": "Thank you for your feedback!", "ru": "Спасибо за отзыв!", "uk": "Дякуємо за відгук!"}

Language = Annotated[str, Field(pattern=r"^[a-z]{2,3}$")]


class CsatSettings(Wire):
    """One workspace's survey settings, in the routing configuration's `csat` section (by workspace id)."""

    enabled: bool = True
    channels: list[str] = Field(default_factory=lambda: list(SURVEY_CHANNELS), max_length=20)
    # The question per language; the contact's language picks one, else `default_language`.
    questions: dict[Language, Annotated[str, Field(min_length=1, max_length=500)]] = Field(
        default_factory=lambda: dict(DEFAULT_QUESTIONS), max_length=50)
    default_language: Language = "en"
    # An answer after this long is refused as late (7 days; at most a year).
    answer_window_seconds: float = Field(7 * 24 * 3600, gt=0, le=366 * 24 * 3600, allow_inf_nan=False)

    @field_validator("channels")
    @classmethod
    def _survey_channels(cls, channels: list[str]) -> list[str]:
        unknown = sorted(set(channels) - set(SURVEY_CHANNELS))
        if unknown:
            raise ValueError(f"channels that cannot carry a survey: {', '.join(unknown)} (known: {', '.join(SURVEY_CHANNELS)})")
        return channels

    def question(self, language: str | None) -> tuple[str, str]:
        """(language, question): the contact's language when there is a question in it, else the default."""
        for candidate in (language, self.default_language):
            if candidate and candidate in self.questions:
                return candidate, self.questions[candidate]
        if self.default_language in DEFAULT_QUESTIONS:
            return self.default_language, DEFAULT_QUESTIONS[self.default_language]
        return next(iter(self.questions.items()), ("en", DEFAULT_QUESTIONS["en"]))

    def surveys(self, channel: str) -> bool:
        return self.enabled and channel in self.channels


def language_of(raw: object) -> str | None:
    """A language code as the settings key it: "uk-UA", "UK" -> "uk"; None for anything else."""
    if not isinstance(raw, str):
        return None
    code = raw.strip().lower().replace("_", "-").split("-", 1)[0]
    return code if re.fullmatch(r"[a-z]{2,3}", code) else None


# -- answers -----------------------------------------------------------------------------------


class ScoreError(ValueError):
    """Not a score from 1 to 5; the text says why, fit to show a customer."""


def parse_score(raw: object) -> int:
    """A score from a button, a digit or a form: an integer 1-5 (a "4" string too), else ScoreError."""
    if isinstance(raw, bool):
        raise ScoreError("the score must be a whole number from 1 to 5")
    if isinstance(raw, str):
        text = raw.strip()
        if not re.fullmatch(r"[0-9]{1,3}", text):
            raise ScoreError(f"the score must be a whole number from 1 to 5, not {raw[:20]!r}")
        raw = int(text)
    if not isinstance(raw, int):
        raise ScoreError("the score must be a whole number from 1 to 5")
    if raw not in SCORES:
        raise ScoreError(f"the score must be from 1 to 5, not {raw}")
    return raw


def button_payload(survey_id: str, score: int) -> str:
    """What a button of the survey carries back: `csat:<survey_id>:<score>`."""
    return f"csat:{survey_id}:{score}"


def read_payload(data: str | None) -> tuple[str, str] | None:
    """(survey id, the raw score) of a survey button's payload; None when it is not one of ours."""
    if not data:
        return None
    match = PAYLOAD.fullmatch(data)
    return (match["survey"], match["score"]) if match else None


def lone_digit(text: str) -> str | None:
    """The digit an SMS consists of ("4", " 4 ", "4."); None for anything else ("4 stars", "12")."""
    match = re.fullmatch(r"\s*([0-9])\s*[.!]?\s*", text)
    return match[1] if match else None


# -- the email survey link: HMAC-signed, with its expiry ------------------------------------------


def sign_link(secret: str, workspace_id: str, survey_id: str, expires_at: datetime) -> str:
    """A token naming the survey and its workspace until `expires_at`: `<payload>.<signature>`."""
    payload = f"{workspace_id}\x1f{survey_id}\x1f{int(expires_at.timestamp())}"
    encoded = base64.urlsafe_b64encode(payload.encode()).decode().rstrip("=")
    return f"{encoded}.{_signature(secret, encoded)}"


class LinkError(ValueError):
    """A survey link that is forged, malformed or expired; `status` is the HTTP status to answer."""

    def __init__(self, reason: str, status: int) -> None:
        super().__init__(reason)
        self.status = status


def read_link(secret: str, token: str, now: datetime | None = None) -> tuple[str, str, datetime]:
    """(workspace, survey id, expiry) of a link token; LinkError (403 forged, 400 malformed, 410 expired)."""
    encoded, _, signature = token.partition(".")
    # Bytes, not str: compare_digest raises TypeError on a str with a non-ASCII character.
    if not hmac.compare_digest(signature.encode(), _signature(secret, encoded).encode()):
        raise LinkError("the survey link's signature does not match: it was altered or forged", 403)
    try:
        payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
        workspace_id, survey_id, expiry = payload.split("\x1f")
        expires_at = datetime.fromtimestamp(int(expiry), UTC)
    except (ValueError, OverflowError, OSError):
        raise LinkError("the survey link is malformed", 400) from None
    if (now or datetime.now(UTC)) > expires_at:
        raise LinkError("this survey has closed: answers are taken for a limited time after the conversation", 410)
    return workspace_id, survey_id, expires_at


def _signature(secret: str, payload: str) -> str:
    return hmac.new(secret.encode(), f"csat-link\x1f{payload}".encode(), hashlib.sha256).hexdigest()
