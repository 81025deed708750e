"""HTTP plumbing every service shares: JSON errors, API-key auth, body parsing, ops routes, OpenAPI."""

import json
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

log = structlog.get_logger(__name__)
M = TypeVar("M", bound=BaseModel)
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
        return json_error(error.status, error.reason, detail=error.text)
    except Exception:
        log.exception("http.unhandled", path=request.path)
        return json_error(500, "internal error")


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
    """`raw` validated as `model`, or a JSON 400 (not JSON) / 422 (`what`) naming the problem."""
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        problems = error.errors(include_url=False, include_context=False, include_input=False)
        if any(p["type"] == "json_invalid" for p in problems):
            raise http_error(web.HTTPBadRequest, "malformed JSON", problems=problems) from None
        raise http_error(web.HTTPUnprocessableEntity, what, problems=problems) from None


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
