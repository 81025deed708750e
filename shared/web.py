"""HTTP plumbing every service shares: JSON errors, API-key auth, body parsing, ops routes, OpenAPI."""

import json
import re
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, TypeVar, Union
from urllib.parse import parse_qsl, unquote_to_bytes

import aiohttp_cors
import pydantic_core
import structlog
from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
)
from pydantic.json_schema import JsonSchemaMode, JsonSchemaValue, models_json_schema
from pymongo.asynchronous.database import AsyncDatabase
from typing_extensions import TypeAliasType

from shared.mongo import is_reachable
from shared.tokens import Principal, read_agent_token

if TYPE_CHECKING:
    from shared.broker import Broker

log = structlog.get_logger(__name__)
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
ReadinessCheck = Callable[[], Awaitable[bool]]

API_KEYS = web.AppKey("api_keys", dict)  # key -> workspace
TOKEN_SECRET = web.AppKey("token_secret", str)  # signs agent tokens (shared/tokens.py)
WORKSPACE = web.RequestKey("workspace_id", str)
PRINCIPAL = web.RequestKey("principal", Principal)
OPEN_TO_AGENTS = "open_to_agents"  # a handler attribute: agent tokens may call it (it checks what is theirs)


def error_document(status: int, message: str, **details: Any) -> dict[str, Any]:
    """The one shape of every error body: {"error": {"status", "message", ...details}} (an ErrorDocument)."""
    return ErrorDocument(error=ErrorDetail(status=status, message=message, **details)).model_dump(mode="json")


def json_error(status: int, message: str, **details: Any) -> web.Response:
    return web.json_response(error_document(status, message, **details), status=status)


def http_error(cls: type[web.HTTPException], message: str, **details: Any) -> web.HTTPException:
    """An aiohttp HTTP error whose body is the JSON error document."""
    return cls(text=json.dumps(error_document(cls.status_code, message, **details)), content_type="application/json")


class PayloadTooLarge(web.HTTPClientError):
    """413 with a body of our own (aiohttp's HTTPRequestEntityTooLarge insists on its own text)."""

    status_code = 413


async def read_limited(request: web.Request, limit: int) -> bytes:
    """The raw body, or a JSON 413 once it passes `limit` bytes (read no further than that)."""
    if request.content_length is not None and request.content_length > limit:
        raise http_error(PayloadTooLarge, f"request body is {request.content_length} bytes, over the {limit} byte limit")
    chunks, size = [], 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            raise http_error(PayloadTooLarge, f"request body is over the {limit} byte limit")
        chunks.append(chunk)
    return b"".join(chunks)


@web.middleware
async def error_middleware(request: web.Request, handler: Callable) -> web.StreamResponse:
    """Every error leaves as JSON; an unexpected one is logged and becomes a JSON 500."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if error.status < 400 or error.content_type == "application/json":
            raise
        # aiohttp's own errors (404, 405, 413 over client_max_size, ...) get the JSON shape too.
        response = json_error(error.status, error.reason, detail=error.text)
        if "Allow" in error.headers:  # a 405 still says which methods the route takes
            response.headers["Allow"] = error.headers["Allow"]
        return response
    except (web.RequestPayloadError, HttpProcessingError) as error:
        # aiohttp raises these only for what the client sent: a body that does not decode as its
        # Content-Encoding says (gzip that is not gzip), a chunk or part header it cannot parse.
        return json_error(400, "the request body could not be read", detail=_parse_failure(error))
    except ValidationError as error:
        # A wire model built from what was sent (a channel's InboundMessage) refused it: the input
        # passed the channel's own checks but not the whole path's limits (docs/limits.md). Still
        # the sender's to fix, so a 422 naming the field; logged, for the channel to check earlier.
        log.warning("http.model_refused_input", path=request.path, error=str(error)[:500])
        return json_error(422, "the input cannot be carried as a message", problems=_problems(error))
    except Exception:
        log.exception("http.unhandled", path=request.path)
        return json_error(500, "internal error")


def _parse_failure(error: Exception) -> str:
    """aiohttp's own words for a parse failure (a RequestPayloadError carries them in its cause)."""
    cause = error if isinstance(error, HttpProcessingError) else error.__cause__
    detail = cause.message if isinstance(cause, HttpProcessingError) else str(error)
    return str(detail).strip()[:200]


@web.middleware
async def input_middleware(request: web.Request, handler: Callable) -> web.StreamResponse:
    """A JSON 400 for a request whose headers, query or path hold bytes that are not UTF-8.

    aiohttp hands such bytes on as lone surrogates (headers) or U+FFFD (query): the first crash
    the handler that encodes or stores them, the second silently change a token or an id. Refused
    here, before authentication, no handler meets either.
    """
    problem = undecodable_part(request)
    if problem is not None:
        raise http_error(web.HTTPBadRequest, f"{problem} is not valid UTF-8")
    return await handler(request)


def undecodable_part(request: web.Request) -> str | None:
    """Which part of the request is not UTF-8 ("header X-Foo", "the query string", "the path"), or None."""
    for name, value in request.raw_headers:
        if not value.isascii() and not _is_utf8(value):
            return f"header {name.decode('ascii', 'replace')}"
    url = request.rel_url
    if not _is_utf8(unquote_to_bytes(url.raw_query_string)):
        return "the query string"
    if not _is_utf8(unquote_to_bytes(url.raw_path)):
        return "the path"
    return None


def _is_utf8(raw: bytes) -> bool:
    # Python's UTF-8 codec refuses encoded surrogates (ED A0 80) as well as stray bytes.
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def service_middlewares(public_prefixes: tuple[str, ...]) -> list[Callable]:
    """The middlewares every service runs, outermost first: JSON errors, input checks, API keys."""
    return [error_middleware, input_middleware, auth_middleware(public_prefixes)]


# ASCII digits only: str.isdigit() and int() also take "²", "٣", "1_000" and " 7 ", and int()
# refuses past 4300 digits; 18 digits always fit a signed 64-bit integer (MongoDB's, BSON's).
WHOLE_NUMBER = re.compile(r"[0-9]{1,18}")


def whole_number(text: str | None) -> int | None:
    """`text` as a non-negative whole number written in ASCII digits, or None if it is not one."""
    return int(text) if text is not None and WHOLE_NUMBER.fullmatch(text) else None


def query_int(request: web.Request, name: str, default: int, *, minimum: int, maximum: int) -> int:
    """A whole-number query parameter within [minimum, maximum]; `default` when absent, else a JSON 400."""
    raw = request.query.get(name)
    if raw is None:
        return default
    value = whole_number(raw)
    if value is None or not minimum <= value <= maximum:
        raise http_error(web.HTTPBadRequest, f"{name} must be a whole number from {minimum} to {maximum}",
                         parameter=name)
    return value


def bearer_token(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() == "bearer" and token:
        return token.strip()
    # Browsers cannot set headers on a WebSocket: they pass the key as ?token=.
    return request.query.get("token")


def configure_auth(app: web.Application, settings: Any) -> None:
    """The workspace keys and the agent-token secret of the service's settings (CommonSettings)."""
    app[API_KEYS] = settings.api_keys
    app[TOKEN_SECRET] = settings.token_secret


def authenticate(request: web.Request) -> Principal:
    """Who calls: a workspace's key (a supervisor) or a valid agent token, else a JSON 401."""
    token = bearer_token(request) or ""
    workspace = request.app[API_KEYS].get(token)
    if workspace is not None:
        return Principal(workspace)
    secret = request.app.get(TOKEN_SECRET)
    agent = read_agent_token(secret, token) if secret and token else None
    if agent is None:
        raise http_error(web.HTTPUnauthorized, "missing, unknown or expired API key or agent token")
    return agent


def open_to_agents(handler: Callable) -> Callable:
    """Mark a handler that agent tokens may call; it must itself keep an agent to what is its own."""
    setattr(handler, OPEN_TO_AGENTS, True)
    return handler


def calling_agent(request: web.Request) -> str | None:
    """The agent of an agent token; None for the workspace's key (a supervisor)."""
    principal = request.get(PRINCIPAL)
    return principal.agent_id if principal is not None else None


def require_own(request: web.Request, agent_id: str | None, what: str = "this") -> None:
    """A 403 unless the caller is a supervisor or the agent `agent_id`."""
    caller = calling_agent(request)
    if caller is not None and caller != agent_id:
        raise http_error(web.HTTPForbidden, f"an agent token may only see and act on its own {what}")


def auth_middleware(public_prefixes: tuple[str, ...]) -> Callable:
    """Require a workspace key or an agent token on /v1 paths except the public ones; agent tokens
    only where the handler is open to agents (everything else is a supervisor's or a system's)."""

    @web.middleware
    async def middleware(request: web.Request, handler: Callable) -> web.StreamResponse:
        # A CORS preflight never carries credentials (browsers send none); it is answered from the
        # CORS configuration alone and does nothing (allow_cross_origin).
        preflight = request.method == "OPTIONS" and "Access-Control-Request-Method" in request.headers
        if request.path.startswith("/v1/") and not request.path.startswith(public_prefixes) and not preflight:
            principal = authenticate(request)
            request[WORKSPACE], request[PRINCIPAL] = principal.workspace_id, principal
            route_handler = request.match_info.handler
            unmatched = request.match_info.http_exception is not None  # its 404 or 405 answers as it is
            if not principal.is_supervisor and not unmatched and not getattr(route_handler, OPEN_TO_AGENTS, False):
                raise http_error(web.HTTPForbidden, "this needs the workspace's key (a supervisor's): "
                                                    "an agent token may not")
        return await handler(request)

    return middleware


async def parse_body(request: web.Request, model: type[M], limit: int | None = None) -> M:
    """The request body validated as `model`, strictly (as the document declares it), or a JSON 400/413/422.

    Strict: a number is a number and a boolean a boolean, not "5" or "yes", so that what the
    OpenAPI document calls invalid is refused, not coerced. As in JSON Schema, a whole number
    written with a fraction (`3.0`) is an integer.
    """
    # Without a limit, the app's client_max_size applies (its 413 is made JSON by error_middleware).
    raw = await request.read() if limit is None else await read_limited(request, limit)
    return validate_json(raw, model, strict=True)


def validate_json(raw: bytes, model: type[M], what: str = "invalid request body", *, strict: bool | None = None) -> M:
    """`raw` validated as `model`, or a JSON 400 (not JSON) / 422 (`what`) naming the problem.

    pydantic's parser refuses nesting past ~200 levels ("recursion limit exceeded", a 400) and
    lone surrogate escapes, so neither a deep body nor a "\\ud800" reaches a handler.
    """
    try:
        try:
            return model.model_validate_json(raw, strict=strict)
        except ValidationError as error:
            # Strict refuses 3.0 for an integer; JSON Schema calls it one. Written as 3, it is tried again.
            rewritten = _whole_floats_as_integers(raw, error) if strict else None
            if rewritten is None:
                raise
            return model.model_validate_json(rewritten, strict=strict)
    except ValidationError as error:
        problems = _problems(error)
        if any(p["type"] == "json_invalid" for p in problems):
            raise http_error(web.HTTPBadRequest, "malformed JSON", problems=problems) from None
        raise http_error(web.HTTPUnprocessableEntity, what, problems=problems) from None
    except (RecursionError, ValueError, TypeError, OSError) as error:
        # A validator that raised something other than ValueError: still the body's doing (a time
        # zone that names a directory), so a 422, but logged, for the validator to be fixed.
        log.exception("http.validator_crashed", model=model.__name__)
        raise http_error(web.HTTPUnprocessableEntity, what, problems=[{"msg": type(error).__name__}]) from None


def _whole_floats_as_integers(raw: bytes, error: ValidationError) -> bytes | None:
    """The body with each whole-number float an integer field refused (`3.0`) written as an integer; None if none."""
    places = [e["loc"] for e in error.errors(include_url=False)
              if e["type"] == "int_type" and isinstance(e.get("input"), float) and e["input"].is_integer()]
    if not places:
        return None
    document = pydantic_core.from_json(raw)
    for loc in places:
        parent = document
        try:
            for key in loc[:-1]:
                parent = parent[key]
            if isinstance(parent[loc[-1]], float):
                parent[loc[-1]] = int(parent[loc[-1]])
        except (KeyError, IndexError, TypeError):  # a place named through a union's member: leave it refused
            return None
    return pydantic_core.to_json(document)


def _problems(error: ValidationError) -> list[dict[str, Any]]:
    return error.errors(include_url=False, include_context=False, include_input=False)


MAX_FORM_PARTS = 100


PLAIN_ENCODINGS = ("", "identity", "binary", "7bit", "8bit")


class MalformedForm(ValueError):
    """A multipart body that parses but is not a form we take (answered with a 400)."""


@dataclass(frozen=True)
class FormFile:
    """A file part: its name as the client gave it, its declared Content-Type ("" if none), its bytes."""

    filename: str
    content_type: str
    data: bytes


@dataclass
class Form:
    """A multipart/form-data body: text fields and files by part name (the first of a name wins)."""

    fields: dict[str, str] = field(default_factory=dict)
    files: dict[str, FormFile] = field(default_factory=dict)


async def read_form(request: web.Request, limit: int) -> Form:
    """The request's form (multipart/form-data or urlencoded), at most `limit` bytes; else a JSON 415, 400 or 413.

    Multipart is read here rather than with request.post(), whose failures escape as ValueError,
    LookupError, RuntimeError and UnicodeDecodeError (a missing or long boundary, a truncated body,
    an unknown charset or part encoding) and which leaves its temporary files open when a part
    breaks off. Part encodings (Content-Transfer-Encoding, a part's Content-Encoding) are refused:
    RFC 7578 deprecates them and browsers never send them.
    """
    if request.content_type == "application/x-www-form-urlencoded":
        return _urlencoded(await read_limited(request, limit))
    if request.content_type != "multipart/form-data":
        raise http_error(web.HTTPUnsupportedMediaType, "expected multipart/form-data or a urlencoded form",
                         content_type=request.content_type[:128])
    if request.content_length is not None and request.content_length > limit:
        raise http_error(PayloadTooLarge, f"request body is {request.content_length} bytes, over the {limit} byte limit")
    try:
        return await _read_parts(await request.multipart(), limit)
    except (ValueError, LookupError, RuntimeError, HttpProcessingError, RuntimeWarning) as error:
        # RuntimeWarning: aiohttp warns of a malformed Content-Disposition (an error under -W error).
        raise http_error(web.HTTPBadRequest, f"malformed multipart body: {_parse_failure(error)}") from None


def _urlencoded(body: bytes) -> Form:
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, errors="strict", max_num_fields=MAX_FORM_PARTS)
    except ValueError as error:  # not UTF-8 (UnicodeDecodeError), or too many fields
        raise http_error(web.HTTPBadRequest, f"malformed form: {str(error)[:200]}") from None
    form = Form()
    for name, value in pairs:
        form.fields.setdefault(name, value)
    return form


async def _read_parts(reader: MultipartReader, limit: int) -> Form:
    form, size = Form(), 0
    for _ in range(MAX_FORM_PARTS):
        part = await reader.next()
        if part is None:
            return form
        if not isinstance(part, BodyPartReader):
            raise MalformedForm("nested multipart parts are not supported")
        if part.name is None:
            raise MalformedForm("a part has no name (Content-Disposition: form-data; name=...)")
        encodings = (part.headers.get(hdrs.CONTENT_TRANSFER_ENCODING, ""), part.headers.get(hdrs.CONTENT_ENCODING, ""))
        if any(encoding.lower() not in PLAIN_ENCODINGS for encoding in encodings):
            raise MalformedForm(f"part {part.name!r} is encoded ({', '.join(filter(None, encodings))}): send it as it is")
        data = await _read_part(part, limit - size)
        size += len(data)
        if part.filename is not None:
            form.files.setdefault(part.name, FormFile(part.filename, part.headers.get(hdrs.CONTENT_TYPE, ""), data))
        else:  # a text field: UTF-8 unless the part names another charset (LookupError if unknown)
            form.fields.setdefault(part.name, data.decode(part.get_charset(default="utf-8")))
    raise MalformedForm(f"more than {MAX_FORM_PARTS} parts")


async def _read_part(part: BodyPartReader, room: int) -> bytes:
    chunks, size = [], 0
    while chunk := await part.read_chunk():
        size += len(chunk)
        if size > room:
            raise http_error(PayloadTooLarge, "request body is over the limit for this form")
        chunks.append(chunk)
    return b"".join(chunks)


class FrameError(Exception):
    """A WebSocket frame that could not be used; `frame()` is the error frame answering it."""

    def __init__(self, message: str, problems: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems or []

    def frame(self, **fields: Any) -> dict[str, Any]:
        return error_frame(self.message, problems=self.problems, **fields)


def error_frame(message: str, **fields: Any) -> dict[str, Any]:
    """The one shape of an error frame on every WebSocket: {"type": "error", "message", ...}."""
    return {"type": "error", "message": message, **fields}


def parse_frame(data: str | bytes, schema: TypeAdapter[T]) -> T:
    """A WebSocket text frame validated by `schema`; FrameError if it is not JSON or not a valid frame.

    The one place frames are read, so none can take down its socket's handler: pydantic's parser
    refuses deep nesting (json.loads would raise RecursionError on 100,000 "[").
    """
    try:
        return schema.validate_json(data)
    except ValidationError as error:
        problems = _problems(error)
        malformed = any(p["type"] == "json_invalid" for p in problems)
        raise FrameError("malformed JSON" if malformed else "invalid frame", problems) from None
    except (RecursionError, ValueError, TypeError):
        raise FrameError("malformed frame") from None


def broker_and_database_checks(broker: "Broker", db: AsyncDatabase) -> dict[str, ReadinessCheck]:
    """The readiness every service reports: its broker connection is up and its database answers."""

    async def broker_ready() -> bool:
        return broker.is_connected()

    async def mongo_ready() -> bool:
        return await is_reachable(db)

    return {"broker": broker_ready, "mongo": mongo_ready}


CORS_HEADERS = ("Authorization", "Content-Type", "Idempotency-Key")
CORS_MAX_AGE = 600  # seconds a browser may keep a preflight's answer


def allow_cross_origin(app: web.Application, origins: tuple[str, ...], paths: Collection[str] | None = None) -> None:
    """Let pages on `origins` call the app's /v1 API from a browser (CORS, through aiohttp-cors).

    Call it once every route is added. Only the origins named get the CORS headers; a preflight
    from another origin, or for a method or header not allowed, is a JSON 403. No credentials:
    the pages send the API key in the Authorization header, never cookies. WebSockets need no
    CORS. No origins: nothing is added, and the API stays same-origin. `paths`: only the routes
    at these paths (as declared, e.g. "/v1/kb/search"), not the whole /v1 API.
    """
    if not origins:
        return
    options = aiohttp_cors.ResourceOptions(allow_credentials=False, allow_headers=CORS_HEADERS,
                                           expose_headers=("Content-Disposition",), max_age=CORS_MAX_AGE)
    cors = aiohttp_cors.setup(app, defaults=dict.fromkeys(origins, options))
    for route in list(app.router.routes()):
        path = route.resource.canonical if route.resource is not None else ""
        wanted = path in paths if paths is not None else path.startswith("/v1/") and not path.endswith("/ws")
        if wanted and route.method not in ("HEAD", "OPTIONS"):
            cors.add(route)


def add_ops_routes(app: web.Application, registry: CollectorRegistry, checks: dict[str, ReadinessCheck]) -> None:
    """/healthz (the process answers), /readyz (its dependencies answer), /metrics (Prometheus)."""

    async def healthz(_: web.Request) -> web.Response:
        return model_response(Health(status="ok"))

    async def readyz(_: web.Request) -> web.Response:
        results = {name: await check() for name, check in checks.items()}
        ready = all(results.values())
        return model_response(Readiness(ready=ready, checks=results), status=200 if ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


# -- the OpenAPI document ----------------------------------------------------------------------
#
# Every operation is declared once, next to its handler: its parameters (which the handler reads
# through the same Parameter objects), its request body (the model parse_body validates), its
# answers (the models the handler serializes its JSON through) and its errors. The document is
# built from those declarations, so it cannot say something the handlers do not do.


class ErrorDetail(BaseModel):
    """What went wrong: the HTTP status and a message; some errors add details (`problems`, `parameter`, `detail`)."""

    model_config = ConfigDict(extra="allow")

    status: int = Field(ge=400, le=599)
    message: str


class ErrorDocument(BaseModel):
    """The one shape of every error body."""

    model_config = ConfigDict(extra="forbid")

    error: ErrorDetail


class Health(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["ok"]


class Readiness(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ready: bool
    checks: dict[str, bool]


ParameterLocation = Literal["path", "query", "header"]


@dataclass(frozen=True)
class Parameter:
    """A path, query or header parameter as the document declares it; handlers read it through it too."""

    name: str
    location: ParameterLocation
    schema: dict[str, Any]
    description: str
    required: bool = False
    example: Any = None

    def document(self) -> dict[str, Any]:
        declared: dict[str, Any] = {"name": self.name, "in": self.location, "required": self.required,
                                    "description": self.description, "schema": self.schema}
        if self.example is not None:
            declared["example"] = self.example
        return declared

    def raw(self, request: web.Request) -> str | None:
        """The value as sent, None when absent."""
        if self.location == "path":
            return request.match_info.get(self.name)
        if self.location == "query":
            return request.query.get(self.name)
        return request.headers.get(self.name)

    def whole_number(self, request: web.Request) -> int:
        """An integer query parameter within its declared bounds; its default when absent, else a JSON 400."""
        return query_int(request, self.name, self.schema["default"], minimum=self.schema["minimum"],
                         maximum=self.schema["maximum"])

    def choice(self, request: web.Request) -> str | None:
        """One of the declared values, None when absent; else a JSON 400 naming them."""
        value = self.raw(request)
        choices = self.schema["enum"]
        if value is not None and value not in choices:
            quoted = [repr(c) for c in choices]
            raise http_error(web.HTTPBadRequest, f"{self.name} must be {', '.join(quoted[:-1])} or {quoted[-1]}",
                             parameter=self.name)
        return value


def path_parameter(name: str, description: str, *, example: Any = None, **schema: Any) -> Parameter:
    """A path parameter: a non-empty string, with any further constraints the handler enforces."""
    return Parameter(name, "path", {"type": "string", "minLength": 1, **schema}, description, True, example)


def query_parameter(name: str, description: str, *, required: bool = False, example: Any = None,
                    **schema: Any) -> Parameter:
    """A string query parameter (the handler enforces whatever `schema` adds)."""
    return Parameter(name, "query", {"type": "string", **schema}, description, required, example)


def integer_query(name: str, description: str, *, default: int, minimum: int, maximum: int) -> Parameter:
    """A whole-number query parameter, read with Parameter.whole_number."""
    schema = {"type": "integer", "minimum": minimum, "maximum": maximum, "default": default}
    return Parameter(name, "query", schema, description)


def choice_query(name: str, description: str, choices: tuple[str, ...]) -> Parameter:
    """A query parameter taking one of `choices`, read with Parameter.choice."""
    return Parameter(name, "query", {"type": "string", "enum": list(choices)}, description)


def header_parameter(name: str, description: str, *, required: bool = False, example: Any = None,
                     **schema: Any) -> Parameter:
    """A request header (the handler enforces whatever `schema` adds), or a header of an answer."""
    return Parameter(name, "header", {"type": "string", **schema}, description, required, example)


@dataclass(frozen=True)
class Answer:
    """A successful answer: its status and body (a model serialized as JSON, or another media type)."""

    status: int
    description: str
    model: type[BaseModel] | None = None
    media_type: str | None = None  # a body that is not a model: "text/xml", "text/html", "*/*"
    schema: dict[str, Any] | None = None  # that body's schema
    headers: tuple[Parameter, ...] = ()


@dataclass(frozen=True)
class Operation:
    """One route as the document declares it."""

    method: str
    path: str
    summary: str
    answers: tuple[Answer, ...]
    body: type[BaseModel] | None = None  # a JSON request body, validated by parse_body
    content: dict[str, dict[str, Any]] | None = None  # a request body that is not a model: media type -> schema
    parameters: tuple[Parameter, ...] = ()
    errors: tuple[int, ...] = ()  # the error statuses this operation answers with on purpose
    public: bool = False  # no API key: the route checks a token or signature of its own, or none
    description: str = ""


ERROR_MEANINGS = {
    400: "Malformed: JSON that does not parse, a parameter out of range, a form that does not read",
    401: "Missing or unknown credentials (an API key, a signature, a token)",
    403: "Credentials that do not match, a key of a workspace that may not do this, or an agent token where "
         "a supervisor's key is needed or the resource is not the agent's own",
    404: "No such resource, or not configured for this workspace",
    409: "The resource is not in a state that allows this",
    410: "Gone: no longer accepted (a survey answered after its window)",
    413: "The body is over the size limit",
    415: "The body is not of a media type this route takes",
    422: "Well-formed, but invalid: `problems` names each field and why",
    503: "A dependency (the message broker) is unavailable: retry later",
}


# A time in an answer, written as the API always has (datetime.isoformat(), "+00:00" for UTC) and as
# the WebSocket frames write it, so a page that holds both compares like with like.
Timestamp = Annotated[
    datetime,
    PlainSerializer(datetime.isoformat, return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}, mode="serialization"),
]


class SchemaOf:
    """Declares a field with the JSON schema of another type: the one that says what the field's validator checks."""

    def __init__(self, declared: Any) -> None:
        self.core_schema = TypeAdapter(declared).core_schema

    def __get_pydantic_json_schema__(self, _: Any, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return handler(self.core_schema)


# Free-form message metadata (shared.models.Metadata) as the document states it: keys MongoDB can
# store, integers within 64 bits. JSON Schema cannot tell 3 from 3.0, so a whole number is declared
# as such an integer (a float written 1e30 passes the check all the same). Nesting depth and total
# size are checked too (docs/limits.md), past what JSON Schema says.
MetadataKey = Annotated[str, Field(min_length=1, max_length=256, pattern=r"^[^$\x00][^\x00]*$")]
MetadataValue = TypeAliasType("MetadataValue", Union[  # noqa: UP007 (a forward reference needs Union)
    None, bool, str, Annotated[int, Field(ge=-(2**63), le=2**63 - 1)],
    Annotated[float, WithJsonSchema({"type": "number", "not": {"type": "integer"}})],
    list["MetadataValue"], dict[MetadataKey, "MetadataValue"],
])
# Annotate a Metadata field with this: `Annotated[Metadata, METADATA_SCHEMA]`.
METADATA_SCHEMA = SchemaOf(TypeAliasType("Metadata", dict[MetadataKey, MetadataValue]))


def openapi_document(title: str, operations: list[Operation], description: str = "") -> dict[str, Any]:
    """An OpenAPI 3.1 document whose schemas come from the pydantic models the handlers use."""
    wanted: set[tuple[type[BaseModel], JsonSchemaMode]] = {(ErrorDocument, "serialization")}
    for operation in operations:
        if operation.body is not None:
            wanted.add((operation.body, "validation"))
        wanted.update((answer.model, "serialization") for answer in operation.answers if answer.model is not None)
    refs, schema = models_json_schema(sorted(wanted, key=lambda pair: (pair[0].__name__, pair[1])),
                                      ref_template="#/components/schemas/{model}")
    paths: dict[str, dict[str, Any]] = {}
    for operation in operations:
        declared = _operation_document(operation, refs)
        paths.setdefault(operation.path, {})[operation.method.lower()] = declared
    schemas = schema.get("$defs", {})
    document = {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1", "description": description},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {
                "type": "http", "scheme": "bearer",
                "description": "A workspace's API key (SWITCHYARD_API_KEYS: a supervisor's, or an external "
                               "system's), or an agent token (POST /v1/agents/{agent_id}/token on the agents "
                               "service), which reaches only the operations that say so and only the agent's own "
                               "presence and conversations (else a 403). Browsers, which cannot set headers on "
                               "a WebSocket or a download link, may pass it as ?token= instead.",
            }},
        },
    }
    return _closed_pattern_maps(document)


def _operation_document(operation: Operation, refs: dict) -> dict[str, Any]:
    declared: dict[str, Any] = {
        "operationId": _operation_id(operation),
        "summary": operation.summary,
        "responses": {},
    }
    if operation.description:
        declared["description"] = operation.description
    if operation.parameters:
        declared["parameters"] = [p.document() for p in operation.parameters]
    content: dict[str, Any] = {}
    if operation.body is not None:
        content["application/json"] = {"schema": refs[(operation.body, "validation")]}
    for media_type, schema in (operation.content or {}).items():
        content[media_type] = {"schema": schema}
    if content:
        declared["requestBody"] = {"required": True, "content": content}
    for answer in operation.answers:
        response: dict[str, Any] = {"description": answer.description}
        if answer.model is not None:
            response["content"] = {"application/json": {"schema": refs[(answer.model, "serialization")]}}
        elif answer.media_type is not None:
            response["content"] = {answer.media_type: {"schema": answer.schema or {"type": "string"}}}
        if answer.headers:
            response["headers"] = {h.name: {"description": h.description, "required": h.required, "schema": h.schema}
                                   for h in answer.headers}
        declared["responses"][str(answer.status)] = response
    error_schema = refs[(ErrorDocument, "serialization")]
    errors = set(operation.errors) | ({401} if not operation.public else set())
    for status in sorted(errors):
        declared["responses"][str(status)] = {"description": ERROR_MEANINGS[status],
                                              "content": {"application/json": {"schema": error_schema}}}
    # Whatever else goes wrong on the client's side (405 for a method the path does not take) is the same document.
    declared["responses"]["4XX"] = {"description": "Any other client error",
                                    "content": {"application/json": {"schema": error_schema}}}
    declared["security"] = [] if operation.public else [{"bearer": []}]
    return declared


def _operation_id(operation: Operation) -> str:
    words = re.findall(r"[A-Za-z0-9]+", operation.path.replace("{", "by_").replace("}", ""))
    return "_".join([operation.method.lower(), *words])


def _closed_pattern_maps(node: Any) -> Any:
    """Close every map whose keys pydantic checks against a pattern: `dict[Skill, int]` refuses other keys.

    pydantic declares such a dict with `patternProperties` alone, which in JSON Schema lets any
    other key through with any value; the model refuses them.
    """
    if isinstance(node, dict):
        if "patternProperties" in node and "properties" not in node:
            node.setdefault("additionalProperties", False)
        for value in node.values():
            _closed_pattern_maps(value)
    elif isinstance(node, list):
        for value in node:
            _closed_pattern_maps(value)
    return node


OPS_OPERATIONS: tuple[Operation, ...] = (
    Operation("GET", "/healthz", "The process answers", (Answer(200, "Alive", Health),), public=True),
    Operation("GET", "/readyz", "Its dependencies (broker, database) answer", (
        Answer(200, "Ready", Readiness),
        Answer(503, "Not ready: `checks` says which dependency does not answer", Readiness),
    ), public=True),
    Operation("GET", "/metrics", "Prometheus metrics", (
        Answer(200, "The text exposition format", media_type="text/plain"),
    ), public=True),
    Operation("GET", "/openapi.json", "This document", (
        Answer(200, "The OpenAPI 3.1 document", media_type="application/json", schema={"type": "object"}),
    ), public=True),
)


def model_response(model: BaseModel, status: int = 200, *, exclude_none: bool = False) -> web.Response:
    """A JSON answer serialized through its declared model."""
    return web.Response(body=model.model_dump_json(exclude_none=exclude_none), status=status,
                        content_type="application/json")


def add_openapi_route(app: web.Application, title: str, operations: list[Operation], description: str = "") -> None:
    """Serve the document at /openapi.json; the ops routes and the document's own route are declared with it."""
    document = openapi_document(title, [*OPS_OPERATIONS, *operations], description)
    body = json.dumps(document).encode()

    async def openapi(_: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json")

    app.router.add_get("/openapi.json", openapi)
