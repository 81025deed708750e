"""HTTP plumbing every service shares: JSON errors, API-key auth, body parsing, ops routes, OpenAPI."""

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import parse_qsl, unquote_to_bytes

import structlog
from aiohttp import BodyPartReader, MultipartReader, hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.json_schema import models_json_schema

log = structlog.get_logger(__name__)
M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
ReadinessCheck = Callable[[], Awaitable[bool]]

API_KEYS = web.AppKey("api_keys", dict)  # key -> workspace
WORKSPACE = web.RequestKey("workspace_id", str)


def error_document(status: int, message: str, **details: Any) -> dict[str, Any]:
    """The one shape of every error body: {"error": {"status", "message", ...details}}."""
    return {"error": {"status": status, "message": message, **details}}


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


def authenticate(request: web.Request) -> str:
    """The workspace the request's API key belongs to, or a JSON 401."""
    token = bearer_token(request)
    workspace = request.app[API_KEYS].get(token or "")
    if workspace is None:
        raise http_error(web.HTTPUnauthorized, "missing or unknown API key")
    return workspace


def auth_middleware(public_prefixes: tuple[str, ...]) -> Callable:
    """Require a workspace API key on /v1 paths except the public ones."""

    @web.middleware
    async def middleware(request: web.Request, handler: Callable) -> web.StreamResponse:
        if request.path.startswith("/v1/") and not request.path.startswith(public_prefixes):
            request[WORKSPACE] = authenticate(request)
        return await handler(request)

    return middleware


async def parse_body(request: web.Request, model: type[M], limit: int | None = None) -> M:
    """The request body validated as `model`, or a JSON 400/413/422 naming the problem."""
    # Without a limit, the app's client_max_size applies (its 413 is made JSON by error_middleware).
    raw = await request.read() if limit is None else await read_limited(request, limit)
    return validate_json(raw, model)


def validate_json(raw: bytes, model: type[M], what: str = "invalid request body") -> M:
    """`raw` validated as `model`, or a JSON 400 (not JSON) / 422 (`what`) naming the problem.

    pydantic's parser refuses nesting past ~200 levels ("recursion limit exceeded", a 400) and
    lone surrogate escapes, so neither a deep body nor a "\\ud800" reaches a handler.
    """
    try:
        return model.model_validate_json(raw)
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


def add_ops_routes(app: web.Application, registry: CollectorRegistry, checks: dict[str, ReadinessCheck]) -> None:
    """/healthz (the process answers), /readyz (its dependencies answer), /metrics (Prometheus)."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def readyz(_: web.Request) -> web.Response:
        results = {name: await check() for name, check in checks.items()}
        ready = all(results.values())
        return web.json_response({"ready": ready, "checks": results}, status=200 if ready else 503)

    async def metrics(_: web.Request) -> web.Response:
        response = web.Response(body=generate_latest(registry))
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


Operation = tuple[str, str, str, type[BaseModel] | None, type[BaseModel] | None]


def openapi_document(title: str, operations: list[Operation]) -> dict[str, Any]:
    """An OpenAPI 3.1 document whose schemas come from the pydantic models themselves.

    Each operation is (method, path, summary, request model, response model).
    """
    models = {m for _, _, _, req, resp in operations for m in (req, resp) if m is not None}
    refs, schema = models_json_schema(
        [(m, "validation") for m in sorted(models, key=lambda m: m.__name__)],
        ref_template="#/components/schemas/{model}",
    )
    paths: dict[str, dict] = {}
    for method, path, summary, request_model, response_model in operations:
        operation: dict[str, Any] = {"summary": summary, "responses": {}}
        if request_model is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": refs[(request_model, "validation")]}},
            }
        ok: dict[str, Any] = {"description": "success"}
        if response_model is not None:
            ok["content"] = {"application/json": {"schema": refs[(response_model, "validation")]}}
        operation["responses"]["2XX"] = ok
        operation["responses"]["4XX"] = {"description": "JSON error: {\"error\": {\"status\", \"message\"}}"}
        if path.startswith("/v1/"):
            operation["security"] = [{"bearer": []}]
        paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schema.get("$defs", {}),
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def add_openapi_route(app: web.Application, title: str, operations: list[Operation]) -> None:
    document = openapi_document(title, operations)

    async def openapi(_: web.Request) -> web.Response:
        return web.json_response(document)

    app.router.add_get("/openapi.json", openapi)
