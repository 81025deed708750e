"""What Meta's messaging platforms (WhatsApp Cloud API, Messenger, Instagram) share.

- The GET verification handshake: Meta calls the webhook URL with `hub.mode=subscribe`,
  `hub.verify_token` and `hub.challenge`; we answer the challenge as text if the token is ours.
- `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the raw body, keyed with the app secret>` on
  every POST, checked before the body is parsed.
- The Graph API send call, with Graph's error document mapped to retry / do not retry.

Docs: https://developers.facebook.com/docs/graph-api/webhooks/getting-started
      https://developers.facebook.com/docs/graph-api/guides/error-handling
"""

import hashlib
import hmac
import json
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import aiohttp
import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, WrapValidator

from services.intake import context  # the module, not its names: context imports the channels package
from services.intake.channels.base import SendError, provider_json, signature_header, webhook_operation, webhook_path
from shared.models import MAX_REJECTED_ITEM_CHARS, RejectedInput
from shared.web import Answer, Operation, http_error, query_parameter, read_limited

if TYPE_CHECKING:
    from services.intake.context import Intake

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "X-Hub-Signature-256"
DEFAULT_GRAPH_BASE_URL = "https://graph.facebook.com/v21.0"

# Graph error codes that mean "slow down" or "temporary trouble", whatever the HTTP status:
# 1/2 API unknown/service (temporary), 4/17/32/613 app/user/page/custom rate limits,
# 80007 Messenger/Instagram rate limit, 130429 and 131056 WhatsApp throughput and pair rate limits,
# 131016 WhatsApp service unavailable.
RETRYABLE_GRAPH_CODES = frozenset({1, 2, 4, 17, 32, 613, 80007, 130429, 131016, 131056})

M = TypeVar("M", bound=BaseModel)


class MetaConfig(BaseModel):
    """Credentials every Meta channel needs, per workspace."""

    model_config = ConfigDict(extra="forbid")

    # App Dashboard > App settings > Basic > App secret: keys X-Hub-Signature-256.
    app_secret: str = Field(min_length=1)
    # Any string of yours, typed into the dashboard's "Verify token" box too.
    verify_token: str = Field(min_length=1)
    # A system user (or Page) access token allowed to send messages.
    access_token: str = Field(min_length=1)
    graph_base_url: str = DEFAULT_GRAPH_BASE_URL


class Payload(BaseModel):
    """Base of the provider payload models: Meta adds fields over time, so extra ones are allowed."""

    model_config = ConfigDict(extra="allow")


class Rejected(BaseModel):
    """An item of a provider's batch that did not validate: kept with the reason, not fatal to the batch."""

    reason: str
    raw: Any


def each_or_rejected(model: type[M]) -> Any:
    """A list element type: `model`, or a Rejected when the element is not a valid `model`.

    Meta batches many customers' messages in one POST and retries the whole POST on any non-2xx;
    one malformed item answered with a 400 would hold back, and finally drop, every other one."""

    def validate(value: Any, _handler: Any) -> M | Rejected:
        try:
            return model.model_validate(value)
        except ValidationError as error:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'item'}: {e['msg']}" for e in error.errors())
            return Rejected(reason=f"invalid {model.__name__}: {problems}"[:2000], raw=value)

    return Annotated[model | Rejected, WrapValidator(validate)]


def rejected_input(rejected: Rejected, workspace_id: str, channel: str) -> RejectedInput:
    """What intake dead-letters for a Rejected item: the reason and the item as the provider sent it."""
    return RejectedInput(workspace_id=workspace_id, channel=channel, reason=rejected.reason,
                         item=json.dumps(rejected.raw, default=str)[:MAX_REJECTED_ITEM_CHARS])


def signature_for(app_secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value Meta sends for `body`."""
    return "sha256=" + hmac.new(app_secret.encode(), body, hashlib.sha256).hexdigest()


def check_signature(intake: "Intake", channel: str, app_secret: str, body: bytes, header: str | None) -> None:
    """Refuse the call unless it is signed with the app secret: 401 if unsigned, 403 if forged."""
    if not header:
        raise intake.reject(channel, f"missing {SIGNATURE_HEADER} header", web.HTTPUnauthorized)
    if not hmac.compare_digest(header.strip().encode(), signature_for(app_secret, body).encode()):
        raise intake.reject(channel, f"{SIGNATURE_HEADER} does not match the body", web.HTTPForbidden)


def parse_payload(raw: bytes, model: type[M]) -> M:
    """The verified body as `model`, or a JSON 400 naming what is wrong with it."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        problems = error.errors(include_url=False, include_context=False, include_input=False)
        malformed = any(p["type"] == "json_invalid" for p in problems)
        message = "malformed JSON" if malformed else "webhook body is not the expected shape"
        raise http_error(web.HTTPBadRequest, message, problems=problems) from None


def verification_handler(channel: str) -> Callable[[web.Request], Awaitable[web.Response]]:
    """The GET handshake Meta performs when the webhook URL is saved in the App Dashboard."""

    async def verify(request: web.Request) -> web.Response:
        intake = request.app[context.INTAKE]
        config = intake.channel_config(channel, request.match_info["workspace"])
        mode = request.query.get("hub.mode", "")
        token = request.query.get("hub.verify_token", "")
        if mode != "subscribe" or not hmac.compare_digest(token.encode(), config.verify_token.encode()):
            reason = "hub.verify_token does not match or hub.mode is not subscribe"
            raise intake.reject(channel, reason, web.HTTPForbidden)
        challenge = request.query.get("hub.challenge")
        if challenge is None:
            raise http_error(web.HTTPBadRequest, "hub.challenge is missing")
        return web.Response(text=challenge, content_type="text/plain")

    return verify


WebhookHandler = Callable[["Intake", str, Any, Any], Awaitable[None]]


def webhook_routes(
    channel: str, webhook_object: str, model: type[BaseModel], handle: WebhookHandler
) -> list[web.RouteDef]:
    """GET handshake and POST notifications at /v1/webhooks/<channel>/{workspace}.

    The POST reads the body (413 over the limit), checks the signature, parses it into `model`
    (400 if malformed or not about `webhook_object`), then `handle(intake, workspace_id, config,
    payload)` publishes what it carries; the 200 goes out only once every publish is confirmed,
    so that Meta retries the call otherwise.
    """

    async def receive(request: web.Request) -> web.Response:
        intake = request.app[context.INTAKE]
        workspace_id = request.match_info["workspace"]
        config = intake.channel_config(channel, workspace_id)
        raw = await read_limited(request, intake.settings.max_body_bytes)
        check_signature(intake, channel, config.app_secret, raw, request.headers.get(SIGNATURE_HEADER))
        payload = parse_payload(raw, model)
        if getattr(payload, "object", None) != webhook_object:
            # Each Meta product has its own callback URL; another product's events sent here are a setup mistake.
            found = getattr(payload, "object", None)
            raise http_error(web.HTTPBadRequest, f"object is {found!r}, expected {webhook_object!r} at this URL")
        await handle(intake, workspace_id, config, payload)
        return web.Response(text="EVENT_RECEIVED", content_type="text/plain")

    path = webhook_path(channel)
    return [web.get(path, verification_handler(channel)), web.post(path, receive)]


def webhook_operations(channel: str, product: str, docs: str) -> list[Operation]:
    """How /openapi.json declares the two routes webhook_routes() makes."""
    path = webhook_path(channel)
    return [
        webhook_operation("GET", path, f"{product}: the verification handshake Meta makes when the URL is saved", (
            Answer(200, "hub.challenge, echoed", media_type="text/plain"),
        ), parameters=(
            query_parameter("hub.mode", "Always subscribe", required=True, enum=["subscribe"]),
            query_parameter("hub.verify_token", "The workspace's verify token (403 if it is not)", required=True),
            query_parameter("hub.challenge", "Echoed back once the token matches", required=True),
        ), errors=(400, 403, 404)),
        webhook_operation("POST", path, f"{product}: Meta's notifications (messages, receipts)", (
            Answer(200, "Received: every message in it is published", media_type="text/plain"),
        ), parameters=(signature_header(SIGNATURE_HEADER, "sha256=<hex HMAC-SHA256 of the body with the app secret>"),),
            content=provider_json(f"{product}'s webhook notification", docs)),
    ]


def clip(text: str | None, limit: int) -> str | None:
    """Provider strings cut to what our models accept (a long profile name must not fail the batch)."""
    return None if text is None else text[:limit]


async def graph_send(intake: "Intake", url: str, access_token: str, body: dict[str, Any]) -> dict[str, Any]:
    """POST a send request to the Graph API; its JSON answer, or SendError saying whether to retry.

    The token travels in the Authorization header, never the query string, so that it cannot
    end up in a logged URL or in a failure reason stored with the reply.
    """
    headers = {"Authorization": f"Bearer {access_token}"}
    timeout = aiohttp.ClientTimeout(total=intake.settings.send_timeout)
    try:
        async with intake.http.post(url, json=body, headers=headers, timeout=timeout) as response:
            answer = await _json_or_none(response)
            if response.status < 300:
                return answer or {}
            raise graph_error(response.status, answer)
    except (aiohttp.ClientError, TimeoutError) as error:
        raise SendError(f"Graph API unreachable: {type(error).__name__}", retry=True) from None


async def _json_or_none(response: aiohttp.ClientResponse) -> dict[str, Any] | None:
    try:
        answer = await response.json(content_type=None)
    except ValueError:  # not JSON (a proxy's HTML error page)
        return None
    return answer if isinstance(answer, dict) else None


def graph_error(status: int, answer: dict[str, Any] | None) -> SendError:
    """Graph's error document as a SendError: 5xx, 429 and throttling codes retry, other 4xx do not."""
    error = (answer or {}).get("error")
    error = error if isinstance(error, dict) else {}
    code = error.get("code")
    detail = f"Graph API HTTP {status}"
    if code is not None:
        detail += f", code {code}"
        if error.get("error_subcode"):
            detail += f"/{error['error_subcode']}"
    if error.get("message"):
        detail += f": {str(error['message'])[:300]}"
    retry = status >= 500 or status == 429 or code in RETRYABLE_GRAPH_CODES
    return SendError(detail, retry=retry)
