"""Intake's aiohttp app: the REST API, web chat and every channel's webhooks, and the outbound senders."""

import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from urllib.parse import quote

import aiohttp
import structlog
from aiohttp import WSMsgType, web
from prometheus_client import CollectorRegistry

from services.intake import csat, files
from services.intake.channels import PLUGINS, api, webchat
from services.intake.chat_settings import ChatSettingsCache, ChatSettingsOut, settings_answer
from services.intake.context import INTAKE, Intake, IntakeMetrics, validate_channel_configs
from services.intake.outbound import OutboundWorker
from services.intake.pages import PAGE_OPERATIONS, add_chat_routes
from services.intake.settings import IntakeSettings
from shared import tracing
from shared.attachments import AttachmentStore
from shared.broker import Broker
from shared.mongo import create_client
from shared.partitions import agree_on_partitions
from shared.relay import RELAY_UNAVAILABLE
from shared.web import (
    WORKSPACE,
    Answer,
    FrameError,
    Operation,
    add_openapi_route,
    add_ops_routes,
    broker_and_database_checks,
    configure_auth,
    error_frame,
    header_parameter,
    http_error,
    model_response,
    parse_body,
    parse_frame,
    query_parameter,
    read_form,
    service_middlewares,
)

log = structlog.get_logger(__name__)
CHAT_SETTINGS = web.AppKey("chat_settings", ChatSettingsCache)
OUTBOUND_WORKERS = web.AppKey("outbound_workers", list)  # one per channel that sends: its queue's consumer


def create_app(settings: IntakeSettings) -> web.Application:
    configs = validate_channel_configs(settings, PLUGINS)
    app = web.Application(
        middlewares=service_middlewares(public_prefixes=("/v1/chat/", "/v1/webhooks/", "/v1/files/")),
        # Webhooks that carry files need room; JSON endpoints apply max_body_bytes themselves.
        client_max_size=settings.body_limit_for_files,
    )
    configure_auth(app, settings)
    registry = CollectorRegistry()
    metrics = IntakeMetrics(registry)
    broker = Broker(settings.amqp_url, settings.topology())
    mongo = create_client(settings.mongo_url)
    db = mongo[settings.mongo_db]
    app[CHAT_SETTINGS] = ChatSettingsCache(db, settings.webchat_settings_seconds)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        await agree_on_partitions(db, settings.partitions)  # before declaring any partition queue
        await broker.start()
        async with aiohttp.ClientSession() as http:
            intake = Intake(settings, broker, http, metrics, AttachmentStore(db), configs)
            app[INTAKE] = intake
            assert intake.chat.relay is not None
            await intake.chat.relay.start()  # before the senders: a reply for a chat on another replica reaches it
            workers = [
                OutboundWorker(broker, plugin.sender(intake), metrics.messages_out, max_attempts=settings.send_max_attempts,
                               retry_delay=settings.send_retry_delay, max_retry_delay=settings.send_max_retry_delay)
                for plugin in PLUGINS if plugin.sender is not None
            ]
            for worker in workers:
                await worker.start()
            app[OUTBOUND_WORKERS] = workers
            async with AsyncExitStack() as backgrounds:
                for plugin in PLUGINS:
                    if plugin.background is not None:
                        await backgrounds.enter_async_context(plugin.background(intake))
                yield
            for worker in workers:
                await worker.stop()
            await intake.chat.close_all()
            await intake.chat.relay.stop()
        await broker.close()
        await mongo.close()

    app.cleanup_ctx.append(resources)
    add_ops_routes(app, registry, broker_and_database_checks(broker, db))
    app.router.add_post("/v1/messages", post_message)
    add_chat_routes(app)
    app.router.add_get("/v1/chat/ws", chat_socket)
    app.router.add_post("/v1/chat/messages", chat_upload)
    app.router.add_get(files.PATH, file_download)
    app.router.add_get("/v1/chat/settings", chat_settings)
    app.router.add_get(csat.PAGE_PATH, csat.survey_page)
    app.router.add_post(csat.PAGE_PATH, csat.survey_answer)
    for plugin in PLUGINS:
        app.router.add_routes(plugin.routes)
    add_openapi_route(app, "Switchyard intake", [*OPERATIONS, *PAGE_OPERATIONS, *csat.OPERATIONS, *files.OPERATIONS, *(op for plugin in PLUGINS for op in plugin.operations)],
                      DESCRIPTION)
    return app


MAX_IDEMPOTENCY_KEY_CHARS = 255
# Printable ASCII, no space at either end (HTTP drops it): what the Idempotency-Key draft's string allows.
IDEMPOTENCY_KEY = header_parameter(
    "Idempotency-Key", "Makes a retry safe: the same key gives the same message id, and a repeat is dropped downstream",
    minLength=1, maxLength=MAX_IDEMPOTENCY_KEY_CHARS, pattern=r"^[!-~]([ -~]*[!-~])?$", example="order-42-msg-1",
)
_IDEMPOTENCY_KEY = re.compile(IDEMPOTENCY_KEY.schema["pattern"])
SESSION = query_parameter("session", "The chat session token the page got on its WebSocket (401 without a valid one)",
                          required=True)
NAME = query_parameter("name", "The customer's name, as they typed it (cut to 200 characters)")
EMAIL = query_parameter("email", "The customer's email address, kept on the contact so an agent can answer by email",
                        maxLength=254, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_EMAIL = re.compile(EMAIL.schema["pattern"])
LANG = query_parameter("lang", "The page's language (ISO 639-1/2): a CSAT survey is asked in it when it can be",
                       pattern=r"^[a-z]{2,3}$", example="uk")
_LANG = re.compile(LANG.schema["pattern"])
CHAT_WORKSPACE = query_parameter("workspace", "The workspace whose chat it is", example="default",
                                 minLength=1, maxLength=64)

OPERATIONS = [
    Operation("POST", "/v1/messages", "Post a customer's message; 202 once the broker has it",
              (Answer(202, "Accepted: the broker has it", api.Accepted),), body=api.PostedMessage,
              parameters=(IDEMPOTENCY_KEY,), errors=(400, 413, 422, 503)),
    Operation("POST", "/v1/chat/messages", "A customer's file, with optional text, from the chat page",
              (Answer(202, "Published, the file stored", webchat.UploadAck),), parameters=(SESSION, NAME, EMAIL, LANG),
              content={"multipart/form-data": webchat.UPLOAD_FORM}, errors=(400, 401, 413, 415, 422, 503), public=True),
    Operation("GET", "/v1/chat/settings", "A workspace's chat: title, greeting, language, colour, opening hours, open now",
              (Answer(200, "The chat's settings (any origin may read them: the widget runs on customers' sites)",
                      ChatSettingsOut),), parameters=(CHAT_WORKSPACE,), errors=(400, 404), public=True),
]
DESCRIPTION = (
    "The edge: external systems post messages, customers chat, providers call webhooks. The chat page's "
    "WebSocket is `GET /v1/chat/ws?workspace=<id>` or `?session=<token>` (frames: see "
    "services/intake/channels/webchat.py); OpenAPI does not describe WebSockets, so it is not listed under paths."
)


async def post_message(request: web.Request) -> web.Response:
    # The message's trace starts here (or continues the caller's, given a traceparent header).
    with tracing.span("POST /v1/messages", kind=tracing.SpanKind.SERVER, headers=request.headers):
        return await _post_message(request)


async def _post_message(request: web.Request) -> web.Response:
    intake = request.app[INTAKE]
    key = idempotency_key(request)
    posted = await parse_body(request, api.PostedMessage, intake.settings.max_body_bytes)
    message = api.normalize(posted, request[WORKSPACE], key)
    await intake.publish_inbound(message)
    return model_response(api.Accepted(message_id=message.message_id), status=202)


def idempotency_key(request: web.Request) -> str | None:
    """The Idempotency-Key header, or None without one; a JSON 400 for an empty, overlong or not printable key.

    An empty key would give every such message the same id (each later one a silent duplicate).
    """
    key = IDEMPOTENCY_KEY.raw(request)
    if key is None:
        return None
    if len(key) > MAX_IDEMPOTENCY_KEY_CHARS or _IDEMPOTENCY_KEY.fullmatch(key) is None:
        raise http_error(web.HTTPBadRequest,
                         f"Idempotency-Key must be 1-{MAX_IDEMPOTENCY_KEY_CHARS} printable ASCII characters",
                         parameter=IDEMPOTENCY_KEY.name)
    return key


async def chat_settings(request: web.Request) -> web.Response:
    """The workspace's chat settings, readable from any origin (the widget asks from the customer's site)."""
    workspace_id = CHAT_WORKSPACE.raw(request)
    workspace_id = "default" if workspace_id is None else workspace_id  # an empty one is unknown, not the default
    if workspace_id not in request.app[INTAKE].settings.api_keys.values():
        raise http_error(web.HTTPNotFound, f"unknown workspace {workspace_id!r}", parameter="workspace")
    answer = settings_answer(workspace_id, await request.app[CHAT_SETTINGS].get(workspace_id),
                             help_center_url=request.app[INTAKE].settings.help_center_url)
    response = model_response(answer)
    response.headers["Access-Control-Allow-Origin"] = "*"
    response.headers["Cache-Control"] = "no-cache"
    return response


def chat_customer(request: web.Request) -> webchat.Customer:
    """What the page's query says of the customer: name, email, language (a JSON 400 for a bad one)."""
    language = LANG.raw(request) or None
    if language is not None and _LANG.fullmatch(language) is None:
        raise http_error(web.HTTPBadRequest, "lang must be a 2-3 letter language code", parameter=LANG.name)
    return webchat.Customer((NAME.raw(request) or "")[:200] or None, chat_email(request), language)


def chat_email(request: web.Request) -> str | None:
    """The `email` query parameter, or None; a JSON 400 for one that is not an email address."""
    email = EMAIL.raw(request)
    if not email:
        return None
    if len(email) > 254 or _EMAIL.fullmatch(email) is None:
        raise http_error(web.HTTPBadRequest, "email must be an email address (at most 254 characters)",
                         parameter=EMAIL.name)
    return email


async def chat_socket(request: web.Request) -> web.WebSocketResponse:
    """A customer's chat: a session frame, their history, then messages (and typing) both ways."""
    intake = request.app[INTAKE]
    session = _chat_session(request, intake.settings)
    customer = chat_customer(request)
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    try:
        await intake.chat.add(session, ws)
    except RELAY_UNAVAILABLE as error:  # the broker would not bind the chat's key: the page reconnects later
        log.warning("chat.relay_unavailable", error=repr(error))
        await ws.close(code=1013, message=b"try again later")
        return ws
    try:
        await ws.send_json({"type": "session", "token": webchat.issue_token(intake.settings.chat_secret, session),
                            "contact_id": session.contact_id, "thread_id": session.thread_id})
        latest = await _latest_conversation(intake, session)
        names = await _agent_names(intake, session.workspace_id, webchat.repliers(latest))
        await ws.send_json({"type": "history", "messages": webchat.history_of(latest, intake.settings, names)})
        survey = webchat.pending_survey_frame(latest)
        if survey is not None:  # a page back before answering the survey shows it again
            await ws.send_json(survey)
        place = intake.chat.places.get(session.workspace_id, session.thread_id)
        if place is not None:  # a page back while waiting shows its place at once
            await ws.send_json(place)
        async for frame in ws:
            if frame.type == WSMsgType.TEXT:
                answer = await _on_chat_frame(intake, session, customer, frame.data)
                if answer is not None:
                    await ws.send_json(answer)
            elif frame.type == WSMsgType.BINARY:
                await ws.send_json(error_frame("binary frames are not accepted: send JSON text frames", client_id=None))
            elif frame.type == WSMsgType.ERROR:
                break
    finally:
        await intake.chat.remove(session, ws)
    return ws


async def chat_upload(request: web.Request) -> web.Response:
    """A customer's file (with optional text) from the chat page: multipart, `?session=` required."""
    intake = request.app[INTAKE]
    if not SESSION.raw(request):
        raise http_error(web.HTTPUnauthorized, "a chat session token is required to send files")
    session = _chat_session(request, intake.settings)
    upload = webchat.read_upload(await read_form(request, intake.settings.body_limit_for_files))
    message = webchat.normalize_upload(upload, session, chat_customer(request))
    stored = await intake.store_attachment(
        session.workspace_id, message.message_id, 0, upload.data, filename=upload.filename, content_type=upload.content_type
    )
    message = message.model_copy(update={"attachments": [stored]})
    await intake.publish_inbound(message)
    return model_response(webchat.UploadAck(client_id=upload.client_id, message_id=message.message_id,
                                            attachment=stored), status=202)


async def file_download(request: web.Request) -> web.Response:
    """A file an agent sent, by its signed link (services/intake/files.py)."""
    intake = request.app[INTAKE]
    workspace_id, attachment_id = files.read_link(intake.settings, files.TOKEN.raw(request))
    stored = await intake.attachments.get(workspace_id, attachment_id)
    if stored is None:
        raise http_error(web.HTTPNotFound, "the file no longer exists")
    return files.serve(stored)


def _chat_session(request: web.Request, settings: IntakeSettings) -> webchat.ChatSession:
    token = request.query.get("session")
    if token:
        session = webchat.read_token(settings.chat_secret, token)
        if session is None:
            raise http_error(web.HTTPUnauthorized, "invalid chat session token")
        return session
    workspace_id = request.query.get("workspace", "default")
    if workspace_id not in settings.api_keys.values():
        raise http_error(web.HTTPNotFound, f"unknown workspace {workspace_id!r}")
    return webchat.new_session(workspace_id)


async def _on_chat_frame(intake: Intake, session: webchat.ChatSession, customer: webchat.Customer,
                         data: str) -> dict | None:
    """The answer to one frame from the page: an ack or an error; None for typing (never answered)."""
    try:
        frame = parse_frame(data, webchat.CHAT_INPUT)
    except FrameError as error:
        return error.frame(client_id=None)
    if isinstance(frame, webchat.TypingFrame):
        await webchat.contact_typing(intake, session)
        return None
    if isinstance(frame, webchat.CsatFrame):
        return await webchat.answer_survey(intake, session, frame)
    try:
        message = webchat.normalize(frame, session, customer)
        await intake.publish_inbound(message)
    except web.HTTPException:
        return {"type": "error", "client_id": frame.client_id, "message": "could not accept the message, please resend"}
    return {"type": "ack", "client_id": frame.client_id, "message_id": message.message_id}


MAX_NAMED_AGENTS = 10  # a history's replies are named for at most this many agents (one request each)


async def _agent_names(intake: Intake, workspace_id: str, agent_ids: set[str]) -> dict[str, str]:
    """Display names of the agents who replied, read from the agents service as the socket opens (off the
    hot path); an agent who cannot be read is left unnamed (the page says "Support")."""
    headers = {"Authorization": f"Bearer {intake.workspace_key(workspace_id)}"}
    base = intake.settings.agents_url.rstrip("/")
    names = {}
    for agent_id in sorted(agent_ids)[:MAX_NAMED_AGENTS]:
        try:
            async with intake.http.get(f"{base}/v1/agents/{quote(agent_id, safe='')}", headers=headers) as response:
                if response.status == 200:
                    names[agent_id] = ((await response.json()).get("name") or "").strip() or agent_id
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            log.warning("chat.agent_name_unavailable", agent_id=agent_id, error=repr(error))
    return names


async def _latest_conversation(intake: Intake, session: webchat.ChatSession) -> dict:
    """The latest conversation of this chat with its messages, read from the agents service (off the
    hot path); an empty one when there is none or the agents service cannot be reached."""
    key = intake.workspace_key(session.workspace_id)
    headers = {"Authorization": f"Bearer {key}"}
    base = intake.settings.agents_url.rstrip("/")
    params = {"channel": webchat.CHANNEL, "thread_id": session.thread_id, "limit": "1"}
    try:
        async with intake.http.get(f"{base}/v1/conversations", params=params, headers=headers) as response:
            found = (await response.json())["conversations"] if response.status == 200 else []
        if not found:
            return {"messages": []}
        async with intake.http.get(f"{base}/v1/conversations/{found[0]['conversation_id']}", headers=headers) as response:
            return await response.json() if response.status == 200 else {"messages": []}
    except (aiohttp.ClientError, TimeoutError, KeyError) as error:
        log.warning("chat.history_unavailable", error=repr(error))
        return {"messages": []}
