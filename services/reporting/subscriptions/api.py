"""The subscriptions API: create, list, read, delete; dead letters and their re-sending; replays.

Every route acts within the API key's workspace: another workspace's subscription is a 404, as one
that does not exist. Secrets are never answered back, only their last four characters.
"""

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from services.reporting.subscriptions.dispatcher import Dispatcher
from services.reporting.subscriptions.events import EventName
from services.reporting.subscriptions.store import SubscriptionStore, deliveries_of
from services.reporting.subscriptions.urls import MAX_URL_LENGTH, host_problem, url_problem
from shared.models import utcnow
from shared.web import (
    WORKSPACE,
    Answer,
    Operation,
    Timestamp,
    http_error,
    integer_query,
    model_response,
    parse_body,
    path_parameter,
)


@dataclass(frozen=True)
class ApiLimits:
    allow_private: bool
    per_workspace: int
    replay_max_events: int


SUBSCRIPTION_STORE = web.AppKey("subscription_store", SubscriptionStore)
DISPATCHER = web.AppKey("subscription_dispatcher", Dispatcher)
LIMITS = web.AppKey("subscription_limits", ApiLimits)
BODY_LIMIT = 16 * 1024


def _valid_url(url: str) -> str:
    problem = url_problem(url)
    if problem is not None:
        raise ValueError(f"the URL {problem}")
    return url


# http(s)://, a host (a DNS name in ASCII: an international one in its xn-- form, or an IP literal),
# an optional port, then an optional path and query of printable ASCII but `"` and `#` (no fragment).
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
URL_PATTERN = (rf"^[Hh][Tt][Tt][Pp][Ss]?://(\[[0-9A-Fa-f:.]+\]|{_LABEL}(\.{_LABEL})*\.?)(:[0-9]{{1,5}})?"
               r"([/?][!$-~]*)?$")
ReceiverUrl = Annotated[str, Field(max_length=MAX_URL_LENGTH, pattern=URL_PATTERN), AfterValidator(_valid_url)]
Secret = Annotated[str, Field(min_length=16, max_length=256, pattern=r"^[\x21-\x7e]+$")]
WantedEvent = EventName | Literal["*"]


class SubscriptionRequest(BaseModel):
    """A receiver URL, the events it wants (`*`: every one, also those added later) and the signing secret."""

    model_config = ConfigDict(extra="forbid")

    url: ReceiverUrl
    events: Annotated[list[WantedEvent], Field(min_length=1, max_length=20)]
    secret: Secret  # printable ASCII, no spaces; signs every delivery (docs/events.md)


class Subscription(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    url: str
    events: list[str]
    secret_hint: str  # the secret's last four characters, never the secret
    created_at: Timestamp


class SubscriptionDetail(Subscription):
    pending: int  # deliveries not yet delivered or dead-lettered
    dead_letters: int


class SubscriptionList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subscriptions: list[Subscription]


class Attempt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    at: Timestamp
    status: int | None  # the receiver's HTTP status; None: no answer (network error, timeout)
    error: str | None
    took_ms: int


class DeadLetter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str  # the delivery id (X-Switchyard-Delivery), kept when it is re-sent
    event: str
    event_id: str
    occurred_at: Timestamp
    attempts: int
    reason: str
    dead_at: Timestamp
    history: list[Attempt]  # the last attempts, oldest first


class DeadLetterList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dead_letters: list[DeadLetter]


class Resent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    status: Literal["pending"]


class ResentAll(BaseModel):
    model_config = ConfigDict(extra="forbid")

    resent: int  # dead letters pending again


class ReplayRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_: AwareDatetime = Field(alias="from")  # RFC 3339 with an offset


class Replay(BaseModel):
    model_config = ConfigDict(extra="forbid")

    replay_id: str
    events: int  # stored events read from `from` on
    scheduled: int  # deliveries made (the events the subscription wants)
    truncated: bool  # more events follow: replay again from `until`
    until: Timestamp | None  # the time of the last event read


SUBSCRIPTION_ID = path_parameter("subscription_id", "The subscription's id", maxLength=64,
                                 example="sub_0123456789abcdef01234567")
DELIVERY_ID = path_parameter("delivery_id", "The delivery's id (X-Switchyard-Delivery)", maxLength=64)
LIMIT = integer_query("limit", "At most this many, the latest first", default=100, minimum=1, maximum=500)


def _answer(document: dict[str, Any]) -> dict[str, Any]:
    return {"id": document["_id"], "url": document["url"], "events": document["events"],
            "secret_hint": f"…{document['secret'][-4:]}", "created_at": document["created_at"]}


def _wanted(events: list[str]) -> list[str]:
    """Duplicates dropped, order kept; `*` alone means every event."""
    unique = list(dict.fromkeys(events))
    return ["*"] if "*" in unique else unique


async def create_subscription(request: web.Request) -> web.Response:
    wanted = await parse_body(request, SubscriptionRequest, BODY_LIMIT)
    limits = request.app[LIMITS]
    if not limits.allow_private and (problem := host_problem(wanted.url)):
        raise http_error(web.HTTPUnprocessableEntity, f"url: the URL {problem}", parameter="url")
    store = request.app[SUBSCRIPTION_STORE]
    workspace = request[WORKSPACE]
    if await store.count(workspace) >= limits.per_workspace:
        raise http_error(web.HTTPConflict, f"a workspace has at most {limits.per_workspace} subscriptions: "
                         "delete one first")
    document = await store.create(workspace, wanted.url, _wanted(wanted.events), wanted.secret, utcnow())
    return model_response(Subscription(**_answer(document)), status=201)


async def list_subscriptions(request: web.Request) -> web.Response:
    found = await request.app[SUBSCRIPTION_STORE].of_workspace(request[WORKSPACE])
    return model_response(SubscriptionList(subscriptions=[Subscription(**_answer(d)) for d in found]))


async def _subscription(request: web.Request) -> dict[str, Any]:
    found = await request.app[SUBSCRIPTION_STORE].get(request[WORKSPACE], SUBSCRIPTION_ID.raw(request) or "")
    if found is None:
        raise http_error(web.HTTPNotFound, "no such subscription in this workspace")
    return found


async def get_subscription(request: web.Request) -> web.Response:
    document = await _subscription(request)
    counts = await request.app[SUBSCRIPTION_STORE].counts(document["_id"])
    return model_response(SubscriptionDetail(**_answer(document), pending=counts["pending"],
                                             dead_letters=counts["dead"]))


async def delete_subscription(request: web.Request) -> web.Response:
    if not await request.app[SUBSCRIPTION_STORE].delete(request[WORKSPACE], SUBSCRIPTION_ID.raw(request) or ""):
        raise http_error(web.HTTPNotFound, "no such subscription in this workspace")
    return web.Response(status=204)


async def list_dead_letters(request: web.Request) -> web.Response:
    document = await _subscription(request)
    found = await request.app[SUBSCRIPTION_STORE].dead_letters(document["_id"], LIMIT.whole_number(request))
    return model_response(DeadLetterList(dead_letters=[DeadLetter(
        id=d["_id"], event=d["event"], event_id=d["event_id"], occurred_at=d["occurred_at"], attempts=d["attempts"],
        reason=d["dead_reason"], dead_at=d["dead_at"], history=[Attempt(**a) for a in d["history"]],
    ) for d in found]))


async def resend_dead_letter(request: web.Request) -> web.Response:
    document = await _subscription(request)
    resent = await request.app[SUBSCRIPTION_STORE].resend(document["_id"], DELIVERY_ID.raw(request) or "", utcnow())
    if resent is None:
        raise http_error(web.HTTPNotFound, "no such dead letter of this subscription")
    request.app[DISPATCHER].wake()
    return model_response(Resent(id=resent["_id"], status="pending"), status=202)


async def resend_dead_letters(request: web.Request) -> web.Response:
    document = await _subscription(request)
    resent = await request.app[SUBSCRIPTION_STORE].resend_all(document["_id"], utcnow())
    request.app[DISPATCHER].wake()
    return model_response(ResentAll(resent=resent), status=202)


async def replay(request: web.Request) -> web.Response:
    document = await _subscription(request)
    since: datetime = (await parse_body(request, ReplayRequest, BODY_LIMIT)).from_
    store, limit = request.app[SUBSCRIPTION_STORE], request.app[LIMITS].replay_max_events
    events = await store.stored_events(document["workspace_id"], since, limit + 1)
    truncated = len(events) > limit
    events = events[:limit]
    replay_id = f"rpl_{secrets.token_hex(8)}"
    scheduled = await store.insert(deliveries_of(events, [document], utcnow(), replay_id))
    request.app[DISPATCHER].wake()
    return model_response(Replay(replay_id=replay_id, events=len(events), scheduled=scheduled, truncated=truncated,
                                 until=events[-1].at if events else None), status=202)


BASE, ONE = "/v1/subscriptions", "/v1/subscriptions/{subscription_id}"
VALIDITY = ("The URL must be http or https with a host, no credentials and no fragment, at most 2048 characters; "
            "with REPORTING_SUBSCRIPTIONS_ALLOW_PRIVATE=false, not a private, loopback or link-local address. "
            "A URL the pattern allows but that is not one (a bad port, a bad host) is a 422.")


def add_subscription_routes(app: web.Application) -> None:
    app.router.add_post(BASE, create_subscription)
    app.router.add_get(BASE, list_subscriptions)
    app.router.add_get(ONE, get_subscription)
    app.router.add_delete(ONE, delete_subscription)
    app.router.add_get(f"{ONE}/dead-letters", list_dead_letters)
    app.router.add_post(f"{ONE}/dead-letters/resend", resend_dead_letters)
    app.router.add_post(f"{ONE}/dead-letters/{{delivery_id}}/resend", resend_dead_letter)
    app.router.add_post(f"{ONE}/replay", replay)


SUBSCRIPTION_OPERATIONS = [
    Operation("POST", BASE, "Subscribe a URL to events (webhooks out, docs/events.md)",
              (Answer(201, "The subscription (its secret only as a hint)", Subscription),),
              body=SubscriptionRequest, errors=(400, 409, 413, 422),
              description=VALIDITY + " A workspace has at most REPORTING_SUBSCRIPTIONS_PER_WORKSPACE (50) "
                                     "subscriptions: a 409 past it."),
    Operation("GET", BASE, "The workspace's subscriptions", (Answer(200, "Oldest first", SubscriptionList),)),
    Operation("GET", ONE, "One subscription, with its pending and dead-lettered deliveries counted",
              (Answer(200, "The subscription", SubscriptionDetail),), parameters=(SUBSCRIPTION_ID,), errors=(404,)),
    Operation("DELETE", ONE, "Unsubscribe: its pending deliveries are dropped",
              (Answer(204, "Deleted"),), parameters=(SUBSCRIPTION_ID,), errors=(404,)),
    Operation("GET", f"{ONE}/dead-letters", "Deliveries given up on, with the reason and the last attempts",
              (Answer(200, "The latest first", DeadLetterList),), parameters=(SUBSCRIPTION_ID, LIMIT),
              errors=(400, 404)),
    Operation("POST", f"{ONE}/dead-letters/resend", "Send every dead letter again (once the receiver is fixed)",
              (Answer(202, "How many are pending again, each with its delivery id and a fresh budget", ResentAll),),
              parameters=(SUBSCRIPTION_ID,), errors=(404,)),
    Operation("POST", f"{ONE}/dead-letters/{{delivery_id}}/resend", "Send a dead letter again (same delivery id)",
              (Answer(202, "Pending again, with a fresh budget of attempts", Resent),),
              parameters=(SUBSCRIPTION_ID, DELIVERY_ID), errors=(404,)),
    Operation("POST", f"{ONE}/replay", "Send the stored events from a time again, in order",
              (Answer(202, "Deliveries made (new delivery ids, the same event ids)", Replay),),
              body=ReplayRequest, parameters=(SUBSCRIPTION_ID,), errors=(400, 404, 413, 422),
              description="`from` is an RFC 3339 time with its offset. At most REPORTING_SUBSCRIPTIONS_REPLAY_MAX_"
                          "EVENTS (10,000) events a request: `truncated` says more follow, from `until`."),
]
