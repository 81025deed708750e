"""CSAT answers at the edge: what channels bring is handed to the agents service, which keeps or refuses it.

Intake holds no survey state (it has no database on the hot path): each answer is posted to the
agents service's `POST /v1/csat/answers` with the workspace's key, and what it says decides the
channel's answer (a thank-you, a polite refusal, or, for an SMS digit with no survey pending,
"route it as a normal message"). A survey answer is never published as `message.received`: it
opens, reopens and routes nothing. The email channel's survey page is here too (a signed link).
"""

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote

import aiohttp
import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from shared.csat import (
    MAX_COMMENT_CHARS,
    THANKS,
    LinkError,
    ScoreError,
    parse_score,
    read_link,
    read_payload,
    sign_link,
)
from shared.models import InboundMessage, OutboundMessage
from shared.web import Answer, Operation, http_error, model_response, path_parameter, read_limited, validate_json

if TYPE_CHECKING:
    from services.intake.context import Intake

log = structlog.get_logger(__name__)
STATIC = Path(__file__).parent / "static"
PAGE_PATH = "/csat/{token}"

# A polite word per refusal and language, for messengers that can show one (Telegram's callback
# answer, an SMS, the chat page); English where the survey's language has none.
REFUSALS = {
    "en": {
        "out_of_range": "Please choose a rating from 1 to 5.",
        "repeated": "You have already rated this conversation. Thank you!",
        "late": "Sorry, this survey has closed.",
        "forged": "Sorry, this survey is not yours to answer.",
        "unknown_survey": "Sorry, we could not find this survey.",
    },
    "ru": {
        "out_of_range": "Пожалуйста, выберите оценку от 1 до 5.",
        "repeated": "Вы уже оценили этот разговор. Спасибо!",
        "late": "К сожалению, этот опрос уже закрыт.",
    },
    "uk": {
        "out_of_range": "Будь ласка, оберіть оцінку від 1 до 5.",
        "repeated": "Ви вже оцінили цю розмову. Дякуємо!",
        "late": "На жаль, це опитування вже закрито.",
    },
}


@dataclass(frozen=True)
class Outcome:
    """What the agents service said about an answer: `status` 200 kept (or repeated), else why not."""

    status: int
    reason: str | None = None  # unknown_survey, forged, out_of_range, repeated, late (see docs/csat.md)
    message: str = ""
    language: str = "en"

    @property
    def kept(self) -> bool:
        return self.status == 200

    def polite_text(self) -> str:
        """A line to show the customer: thanks in the survey's language, or why it was not taken."""
        if self.kept:
            return THANKS.get(self.language, THANKS["en"])
        reason = self.reason or ""
        return (REFUSALS.get(self.language, {}).get(reason) or REFUSALS["en"].get(reason)
                or "Sorry, we could not record your rating.")


def refused_locally(reason: str, message: str) -> Outcome:
    """An answer intake can refuse without asking (a score that is no number)."""
    return Outcome(422, reason, message)


async def submit(intake: "Intake", workspace_id: str, *, channel: str, score: object, survey_id: str | None = None,
                 thread_id: str | None = None, comment: str | None = None, answer_ref: str | None = None) -> Outcome:
    """Hand an answer to the agents service; its verdict. A JSON 503 when it cannot be reached, so the
    provider retries (the agents service takes a repeat of a kept answer as the same answer)."""
    number = _number(score)
    if number is None:
        return refused_locally("out_of_range", "the score must be a whole number from 1 to 5")
    body = {"survey_id": survey_id, "channel": channel, "thread_id": thread_id, "score": number,
            "comment": (comment or "").strip()[:MAX_COMMENT_CHARS] or None, "answer_ref": answer_ref}
    return await _post(intake, workspace_id, body)


def _number(score: object) -> int | None:
    """A whole number to hand on (0-99: whether it is in range is the agents service's word, once it
    knows a survey is pending), or None for anything that is no score at all ("abc", 4.5, true)."""
    try:
        return parse_score(score)
    except ScoreError:
        pass
    if isinstance(score, str) and score.strip().isascii() and score.strip().isdigit() and len(score.strip()) <= 2:
        return int(score.strip())
    if isinstance(score, int) and not isinstance(score, bool) and 0 <= score <= 99:
        return score
    return None


async def _post(intake: "Intake", workspace_id: str, body: dict[str, Any]) -> Outcome:
    key = intake.workspace_key(workspace_id)
    url = f"{intake.settings.agents_url.rstrip('/')}/v1/csat/answers"
    try:
        async with intake.http.post(url, json=body, headers={"Authorization": f"Bearer {key}"},
                                    timeout=aiohttp.ClientTimeout(total=intake.settings.send_timeout)) as response:
            answer = await response.json(content_type=None)
            status = response.status
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        log.warning("csat.agents_unreachable", error=repr(error))
        raise http_error(web.HTTPServiceUnavailable, "the survey could not be recorded now, retry later") from None
    if status >= 500 or status in (401, 403) and not _refusal(answer):
        # The agents service failing, or refusing our key (a workspace with no API key): not the
        # customer's doing, so the provider is told to retry rather than the customer refused.
        log.warning("csat.agents_failed", status=status)
        raise http_error(web.HTTPServiceUnavailable, "the survey could not be recorded now, retry later")
    answer = answer if isinstance(answer, dict) else {}
    details = answer.get("error") if status != 200 and isinstance(answer.get("error"), dict) else {}
    language = (answer if status == 200 else details).get("language") or "en"
    outcome = Outcome(status, details.get("reason"), details.get("message", ""), language)
    log.info("csat.answer", status=status, reason=outcome.reason, channel=body["channel"])
    intake.metrics.csat_answers.labels(channel=body["channel"], outcome="recorded" if outcome.kept else outcome.reason or f"http_{status}").inc()
    return outcome


async def take_answers(intake: "Intake", items: list, payload_of: "Callable[[InboundMessage], str | None]") -> list:
    """A provider's batch without its survey answers: each of those (a message whose button payload
    is a survey's) is handed to the agents service instead of being published. A refused answer is
    logged, not answered: Meta's channels have no place for a notice that is not a message."""
    rest = []
    for item in items:
        found = read_payload(payload_of(item)) if isinstance(item, InboundMessage) else None
        if found is None:
            rest.append(item)
            continue
        survey_id, score = found
        outcome = await submit(intake, item.workspace_id, channel=item.channel, survey_id=survey_id, score=score,
                               thread_id=item.thread_id)
        if not outcome.kept:
            log.info("csat.answer_refused", channel=item.channel, reason=outcome.reason)
    return rest


def _refusal(answer: object) -> bool:
    """Whether an error answer is a verdict on the answer (it names a reason), not on the call."""
    return isinstance(answer, dict) and isinstance(answer.get("error"), dict) and "reason" in answer["error"]


# -- the email survey: a signed link to a page served here --------------------------------------


def survey_link(intake: "Intake", message: OutboundMessage) -> str:
    """The survey page's address for this survey, signed, valid until the survey closes."""
    assert message.survey is not None
    token = sign_link(intake.settings.csat_secret, message.workspace_id, message.survey.survey_id,
                      message.survey.expires_at)
    return intake.settings.public_url.rstrip("/") + PAGE_PATH.format(token=quote(token, safe=""))


def with_link(intake: "Intake", message: OutboundMessage) -> OutboundMessage:
    """An email survey: its question and the link to answer it, as the mail's text."""
    return message.model_copy(update={"text": f"{message.text}\n\n{survey_link(intake, message)}\n"})


TOKEN = path_parameter("token", "The signed survey token from the email's link")


class PageAnswer(BaseModel):
    """The survey page's POST: a score from 1 to 5 and an optional comment (JSON or a form)."""

    model_config = ConfigDict(extra="forbid")

    score: int | str
    comment: str | None = Field(None, max_length=MAX_COMMENT_CHARS)


class PageRecorded(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: str
    score: int | None = None
    message: str


def _link_or_error(intake: "Intake", request: web.Request) -> tuple[str, str]:
    """(workspace, survey id) of the page's token; a JSON 400/403/410 for a malformed, forged or expired one."""
    try:
        workspace_id, survey_id, _ = read_link(intake.settings.csat_secret, TOKEN.raw(request))
    except LinkError as error:
        cls = {400: web.HTTPBadRequest, 403: web.HTTPForbidden, 410: web.HTTPGone}[error.status]
        reason = {400: "malformed", 403: "forged", 410: "late"}[error.status]
        raise http_error(cls, str(error), reason=reason) from None
    return workspace_id, survey_id


def _intake(request: web.Request) -> "Intake":
    # Imported here: context imports the channels, which import this module.
    from services.intake.context import INTAKE

    return request.app[INTAKE]


async def survey_page(request: web.Request) -> web.Response:
    """GET /csat/{token}: the form (1-5 and a comment); refused as JSON when the link is not good."""
    _link_or_error(_intake(request), request)
    return web.FileResponse(STATIC / "csat.html")


async def survey_answer(request: web.Request) -> web.Response:
    """POST /csat/{token}: keep the answer; 200 JSON, or a JSON 4xx with `reason` (forged, late, repeated, ...)."""
    intake = _intake(request)
    workspace_id, survey_id = _link_or_error(intake, request)
    answer = await _page_answer(request, intake.settings.max_body_bytes)
    outcome = await submit(intake, workspace_id, channel="email", survey_id=survey_id, score=answer.score,
                           comment=answer.comment)
    if not outcome.kept:
        cls = {404: web.HTTPNotFound, 403: web.HTTPForbidden, 409: web.HTTPConflict, 410: web.HTTPGone}.get(
            outcome.status, web.HTTPUnprocessableEntity)
        raise http_error(cls, outcome.message or outcome.polite_text(), reason=outcome.reason)
    return model_response(PageRecorded(status="recorded", score=parse_score(answer.score), message=outcome.polite_text()))


async def _page_answer(request: web.Request, limit: int) -> PageAnswer:
    """The page's answer as JSON or a urlencoded form; a JSON 400/422 naming what is wrong."""
    raw = await read_limited(request, limit)
    if request.content_type == "application/x-www-form-urlencoded":
        fields = dict(parse_qsl(raw.decode(errors="replace"), keep_blank_values=True))
        if "score" not in fields:
            raise http_error(web.HTTPUnprocessableEntity, "the form has no score", reason="out_of_range")
        return PageAnswer(score=fields["score"], comment=fields.get("comment") or None)
    return validate_json(raw, PageAnswer)


OPERATIONS = [
    Operation("GET", PAGE_PATH, "The email survey's page: rate 1-5 and comment (a signed link)",
              (Answer(200, "The page", media_type="text/html"),), parameters=(TOKEN,), errors=(400, 403, 410),
              public=True),
    Operation("POST", PAGE_PATH, "Answer the email survey (JSON or a form: score, comment)",
              (Answer(200, "Kept", PageRecorded),), body=PageAnswer, parameters=(TOKEN,),
              errors=(400, 403, 404, 409, 410, 413, 422, 503), public=True),
]
