"""What every channel module provides, and what intake gives it.

A channel module (one file under `channels/`) exports `PLUGIN = ChannelPlugin(...)` (or several,
when one provider serves two channels, as Twilio does SMS and voice):
- `routes`: its webhooks, mounted under `/v1/webhooks/<channel>/<workspace>/...` (public: each
  webhook verifies the provider's own signature or token instead of an API key);
- `sender`: builds the object that sends agents' replies out (intake consumes the channel's
  outbound queue and hands each reply to it);
- `background`: optional; a long-running part of the channel (the SMTP listener) as an async
  context manager entered when intake starts and left when it stops;
- `config`: the pydantic model of the channel's per-workspace credentials, read from
  `INTAKE_CHANNELS` / `INTAKE_CHANNELS_FILE` and validated at start;
- `operations`: how /openapi.json declares its webhooks (shared.web.Operation), one per route;
- `fetch_media`: optional; given the intake, the workspace id and one attachment whose `url` is
  the provider's reference (written by that channel's normalizer), returns the file's bytes
  (`FetchedMedia`), raises `MediaFetchError` with a short reason, or returns None when the
  reference is not one this channel fetches. Intake calls it before publishing (see
  `Intake.publish_inbound`), under a timeout, and stores what it returns.

Adding a channel touches only this folder and the list in `channels/__init__.py`.
"""

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar
from urllib.parse import unquote, urlsplit

import aiohttp
import structlog
from aiohttp import web
from pydantic import BaseModel

from shared.models import Attachment, DeliveryState, OutboundMessage
from shared.web import Answer, Operation, Parameter, header_parameter, path_parameter

if TYPE_CHECKING:
    from services.intake.context import Intake

log = structlog.get_logger(__name__)

# Stable message ids from a channel's own ids: a provider's retry maps to the same message.
MESSAGE_ID_NAMESPACE = uuid.UUID("6f1b8c3e-8f0e-4a55-9a3c-5b2b1c1d7e42")


def message_id_for(workspace_id: str, channel: str, channel_message_id: str | None) -> str:
    if channel_message_id is None:
        return uuid.uuid4().hex
    return uuid.uuid5(MESSAGE_ID_NAMESPACE, f"{workspace_id}\x1f{channel}\x1f{channel_message_id}").hex


class SendError(Exception):
    """A send failed. `retry` says whether trying again could help (a 5xx, a timeout) or not (a 4xx)."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


@dataclass(frozen=True)
class Backoff:
    """How a call to a provider is retried: at most `attempts` tries, waits doubling from `delay` up to `max_delay`."""

    attempts: int
    delay: float
    max_delay: float


@dataclass(frozen=True)
class Tried:
    """What came of the tries: the last one's result when `ok`, else the last failure's reason."""

    ok: bool
    result: Any = None
    reason: str = ""
    attempts: int = 0


async def with_retries(attempt: Callable[[], Awaitable[Any]], backoff: Backoff,
                       retryable: Callable[[SendError], bool] = lambda error: error.retry) -> Tried:
    """Call `attempt` until it works, a SendError is not worth retrying, or the tries run out."""
    reason = ""
    for number in range(1, backoff.attempts + 1):
        try:
            return Tried(True, await attempt(), attempts=number)
        except SendError as error:
            reason = error.reason
            log.warning("send.attempt_failed", attempt=number, reason=reason, retry=error.retry)
            if not retryable(error):
                return Tried(False, reason=reason, attempts=number)
        if number < backoff.attempts:
            await asyncio.sleep(min(backoff.delay * 2 ** (number - 1), backoff.max_delay))
    return Tried(False, reason=reason, attempts=backoff.attempts)


@dataclass(frozen=True)
class Sent:
    """A send that worked: how far it got, and the provider's id for the message (for receipts)."""

    state: DeliveryState = "sent"
    channel_message_id: str | None = None


class Sender(Protocol):
    channel: str

    async def send(self, message: OutboundMessage) -> Sent:
        """Send one reply, or raise SendError."""
        ...


class MediaFetchError(Exception):
    """A provider's file could not be had; `reason` is short and safe to show an agent (no credentials)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class FetchedMedia:
    """A provider's file in hand, with what the provider said about it (None where it said nothing)."""

    data: bytes
    content_type: str | None = None
    filename: str | None = None


MediaFetcher = Callable[["Intake", str, Attachment], Awaitable[FetchedMedia | None]]


@dataclass(frozen=True)
class ChannelPlugin:
    name: str
    routes: Sequence[web.RouteDef] = ()
    sender: "Callable[[Intake], Sender] | None" = None
    background: "Callable[[Intake], AbstractAsyncContextManager[None]] | None" = None
    config: type[BaseModel] | None = None
    fetch_media: MediaFetcher | None = None
    operations: Sequence[Operation] = ()


def webhook_path(channel: str, suffix: str = "") -> str:
    """The webhook route of a channel; the provider is given it with the workspace filled in."""
    return f"/v1/webhooks/{channel}/{{workspace}}{suffix}"


# -- how the webhooks are declared in /openapi.json ----------------------------------------------

WORKSPACE_PARAMETER = path_parameter("workspace", "The workspace whose account with the provider calls this URL",
                                     example="default")
# What every webhook may answer besides its success: malformed (400), unsigned (401), forged (403),
# the channel not configured for the workspace (404), over the size limit (413), what the message
# model refuses (422), the broker away (503: the provider retries).
WEBHOOK_ERRORS = (400, 401, 403, 404, 413, 422, 503)
TWIML_ANSWER = Answer(200, "TwiML for Twilio", media_type="text/xml")


def signature_header(name: str, description: str) -> Parameter:
    """The header that proves a call comes from the provider (a 401 without it, a 403 if it does not match)."""
    return header_parameter(name, description, required=True)


def provider_json(what: str, docs: str) -> dict[str, dict[str, Any]]:
    """A provider's JSON payload, as a request body: its shape is the provider's to document (a 400 if it is not it)."""
    return {"application/json": {"type": "object", "description": f"{what}, as the provider documents it: {docs}"}}


def form_schema(model: type[BaseModel]) -> dict[str, Any]:
    """A flat form model's JSON schema (by the provider's parameter names), for a form request body."""
    schema = model.model_json_schema(by_alias=True)
    if "$defs" in schema:
        raise ValueError(f"{model.__name__}: a form is flat, it cannot nest models")
    return schema


def webhook_operation(method: str, path: str, summary: str, answers: tuple[Answer, ...], *,
                      parameters: tuple[Parameter, ...] = (), **fields: Any) -> Operation:
    """A public webhook route: the workspace in its path, its own proof of origin instead of an API key."""
    return Operation(method, path, summary, answers, parameters=(WORKSPACE_PARAMETER, *parameters),
                     errors=fields.pop("errors", WEBHOOK_ERRORS), public=True, **fields)


# -- fetching a provider's file ----------------------------------------------------------------

LOOKUP_LIMIT_BYTES = 64 * 1024  # a provider's JSON answer about a file (getFile, a Graph media lookup)


def over_limit(limit: int) -> MediaFetchError:
    return MediaFetchError(f"over the {limit} byte limit")


def provider_refused(status: int, detail: object = None) -> MediaFetchError:
    """A provider's error answer, with its own words when it gave some."""
    return MediaFetchError(f"provider answered {status}" + (f": {str(detail)[:200]}" if detail else ""))


def referenced_id(reference: str | None, prefix: str) -> str | None:
    """The id after `prefix` in a reference a normalizer wrote ("telegram:file/<id>"); None for anything else."""
    if reference is None or not reference.startswith(prefix) or len(reference) == len(prefix):
        return None
    return reference.removeprefix(prefix)


C = TypeVar("C", bound=BaseModel)


def fetch_config(intake: "Intake", channel: str, workspace_id: str, config_type: type[C]) -> C:
    """The workspace's credentials to fetch a file with; MediaFetchError if it has not connected the channel."""
    config = intake.configs.get((channel, workspace_id))
    if not isinstance(config, config_type):
        raise MediaFetchError(f"{channel} is not configured for workspace {workspace_id!r}")
    return config


async def download(
    http: aiohttp.ClientSession, url: str, limit: int, *, headers: dict[str, str] | None = None
) -> FetchedMedia:
    """GET a file (redirects followed), at most `limit` bytes of it; MediaFetchError on a 4xx/5xx or over the limit.

    aiohttp drops the Authorization header on a redirect to another origin, so credentials stay
    with the provider's API when it redirects to a CDN.
    """
    status, fetched = await request_limited(http, "GET", url, limit, headers=headers)
    if status >= 400:
        raise provider_refused(status)
    return fetched


async def request_limited(
    http: aiohttp.ClientSession, method: str, url: str, limit: int, **options: Any
) -> tuple[int, FetchedMedia]:
    """One request: its status and body, read only up to `limit` bytes (MediaFetchError past it).

    A declared Content-Length over the limit stops before the body; without one, reading stops as
    soon as the limit is passed, so a provider cannot make intake hold more than `limit` bytes.
    """
    async with http.request(method, url, allow_redirects=True, **options) as response:
        if response.content_length is not None and response.content_length > limit:
            raise over_limit(limit)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_chunked(64 * 1024):
            size += len(chunk)
            if size > limit:
                raise over_limit(limit)
            chunks.append(chunk)
        content_type = response.content_type if "Content-Type" in response.headers else None
        return response.status, FetchedMedia(b"".join(chunks), content_type=content_type)


async def lookup_json(http: aiohttp.ClientSession, method: str, url: str, **options: Any) -> tuple[int, dict[str, Any] | None]:
    """A provider's small JSON answer about a file (getFile, a Graph media lookup): status and the object, None if not one."""
    status, fetched = await request_limited(http, method, url, LOOKUP_LIMIT_BYTES, **options)
    try:
        answer = json.loads(fetched.data)
    except ValueError:
        return status, None
    return status, answer if isinstance(answer, dict) else None


def url_filename(url: str) -> str | None:
    """The last path segment of a URL, as a file name for the download ("photo.jpg"); None if there is none."""
    name = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
    return name[-256:] or None
