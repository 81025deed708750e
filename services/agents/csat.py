"""CSAT surveys on the agents service's side: which resolutions get one, and which answers are kept.

The survey lives on its conversation (`conversation.csat`), so the answer shows where the
conversation does (GET /v1/conversations/{id}) and one write decides it. The first valid answer
wins: a repeat of it is accepted again (same event id and time, so reporting counts it once), a
different later one is refused. This is consistent with reporting's fold ("the latest valid
answer"): it only ever sees one answer per survey.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from pydantic import TypeAdapter, ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from shared.csat import CsatSettings, language_of
from shared.models import CsatReceived
from shared.routing_config import find_config

log = structlog.get_logger(__name__)
_settings_adapter: TypeAdapter[dict[str, CsatSettings]] = TypeAdapter(dict[str, CsatSettings])


async def settings_of(db: AsyncDatabase, workspace_id: str) -> CsatSettings | None:
    """The workspace's survey settings from the router's stored configuration; None: no surveys.

    Read at each resolve (one small find): a configuration put through the router's API applies
    to the next resolution. An invalid section is logged and sends nothing, as the router runs on
    its default then."""
    stored = await find_config(db, workspace_id, {"config.csat": 1})
    raw = ((stored or {}).get("config") or {}).get("csat") or {}
    try:
        return _settings_adapter.validate_python(raw).get(workspace_id)
    except ValidationError as error:
        log.error("csat.settings_invalid", error=str(error)[:500])
        return None


def new_survey(conversation: dict, settings: CsatSettings, language: str | None, now: datetime) -> dict:
    """The survey as stored on the conversation, pending until an answer or its expiry."""
    chosen, question = settings.question(language_of(language))
    return {
        # Random, not derived: an id nobody can guess from a conversation id (a forged answer
        # names an unknown survey), and short enough for Telegram's 64-byte callback_data.
        "survey_id": secrets.token_hex(8),
        "status": "pending",
        "channel": conversation["channel"],
        "language": chosen,
        "question": question,
        "sent_at": now,
        "expires_at": now + timedelta(seconds=settings.answer_window_seconds),
        "score": None,
        "comment": None,
        "answered_at": None,
        "answer_ref": None,
    }


class CsatRefused(Exception):
    """An answer that is not kept: `status` the HTTP status, `reason` a short code, the text why."""

    def __init__(self, status: int, reason: str, message: str, language: str = "en") -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.language = language  # the survey's, for intake's polite reply


@dataclass(frozen=True)
class Answer:
    """An answer as intake (or an API caller) hands it over, already a whole number."""

    survey_id: str | None
    channel: str
    thread_id: str | None
    score: int
    comment: str | None
    answer_ref: str | None = None


def judge(conversation: dict, answer: Answer, now: datetime) -> bool:
    """Whether the answer is new (True) or a repeat of the one kept (False); CsatRefused otherwise.

    Checked in this order: whose it is (another contact's survey is a forgery), the score, a
    different answer already kept, then lateness (a repeat stays accepted after the window: it
    is the provider retrying what was accepted in time)."""
    survey = conversation["csat"]
    language = survey["language"]
    if answer.thread_id is not None and (conversation["channel"], conversation["thread_id"]) != (answer.channel, answer.thread_id):
        raise CsatRefused(403, "forged", "this survey belongs to another contact's conversation")  # no language: not theirs
    if answer.score not in range(1, 6):
        raise CsatRefused(422, "out_of_range", f"the score must be from 1 to 5, not {answer.score}", language)
    if survey["status"] == "answered":
        if (survey["score"], survey["comment"]) == (answer.score, answer.comment):
            return False
        raise CsatRefused(409, "repeated", f"this survey was already answered ({survey['score']}); the first answer is kept",
                          language)
    if now > _aware(survey["expires_at"], now):
        raise CsatRefused(410, "late", "this survey has closed: answers are taken for a limited time after the conversation",
                          language)
    return True


def _aware(value: datetime, like: datetime) -> datetime:
    """MongoDB gives naive UTC datetimes back unless the client is tz-aware."""
    return value if value.tzinfo is not None else value.replace(tzinfo=like.tzinfo)


def received(conversation: dict) -> CsatReceived:
    """The answered survey as its event: the same id and time however often it is told."""
    survey: dict[str, Any] = conversation["csat"]
    return CsatReceived(
        event_id=f"csat.received:{survey['survey_id']}", workspace_id=conversation["workspace_id"],
        conversation_id=conversation["_id"], survey_id=survey["survey_id"], channel=conversation["channel"],
        agent_id=conversation.get("assignee_id"), queue=conversation.get("queue"), score=survey["score"],
        comment=survey["comment"], at=survey["answered_at"],
    )
