"""The agents service's aiohttp app: agents, conversations, replies, the desk WebSocket and page."""

from collections.abc import AsyncIterator
from pathlib import Path

import structlog
from aiohttp import WSMsgType, web
from prometheus_client import CollectorRegistry
from pydantic import TypeAdapter, ValidationError

from services.agents.desk import DESK_INPUT, DeskConnection, DeskHub, jsonable
from services.agents.models import (
    AgentId,
    AgentOut,
    AgentProfile,
    AgentStatusChange,
    ConversationOut,
    OfferAnswerIn,
    Reply,
    TransferIn,
)
from services.agents.service import AgentsMetrics, AgentsService, Conflict, NotFound
from services.agents.settings import AgentsSettings
from services.agents.store import AgentsStore
from shared.attachments import AttachmentStore, content_disposition
from shared.broker import Broker
from shared.models import TransferRequest
from shared.mongo import create_client, is_reachable
from shared.topology import Topology
from shared.web import (
    API_KEYS,
    WORKSPACE,
    FrameError,
    add_openapi_route,
    add_ops_routes,
    error_frame,
    http_error,
    parse_body,
    parse_frame,
    query_int,
    service_middlewares,
)

log = structlog.get_logger(__name__)
SERVICE = web.AppKey("agents_service", AgentsService)
SETTINGS = web.AppKey("agents_settings", AgentsSettings)
ATTACHMENTS = web.AppKey("attachments", AttachmentStore)
STATIC = Path(__file__).parent / "static"
agent_id_adapter: TypeAdapter[str] = TypeAdapter(AgentId)


def create_app(settings: AgentsSettings) -> web.Application:
    app = web.Application(middlewares=service_middlewares(public_prefixes=()), client_max_size=256 * 1024)
    app[API_KEYS] = settings.api_keys
    app[SETTINGS] = settings
    registry = CollectorRegistry()
    broker = Broker(settings.amqp_url, Topology(settings.namespace, settings.queue_type))
    mongo = create_client(settings.mongo_url)
    db = mongo[settings.mongo_db]

    async def resources(app: web.Application) -> AsyncIterator[None]:
        await broker.start()
        service = AgentsService(
            broker, AgentsStore(db), DeskHub(), AgentsMetrics(registry),
            batch_size=settings.batch_size, presence_grace_seconds=settings.presence_grace_seconds,
        )
        await service.start()
        app[SERVICE] = service
        app[ATTACHMENTS] = AttachmentStore(db)
        yield
        await service.stop()
        await broker.close()
        await mongo.close()

    async def broker_ready() -> bool:
        return broker.is_connected()

    async def mongo_ready() -> bool:
        return await is_reachable(db)

    app.cleanup_ctx.append(resources)
    add_ops_routes(app, registry, {"broker": broker_ready, "mongo": mongo_ready})
    app.router.add_get("/desk", desk_page)
    app.router.add_put("/v1/agents/{agent_id}", put_agent)
    app.router.add_get("/v1/agents/{agent_id}", get_agent)
    app.router.add_put("/v1/agents/{agent_id}/status", put_status)
    app.router.add_get("/v1/agents/{agent_id}/ws", desk_socket)
    app.router.add_get("/v1/conversations", list_conversations)
    app.router.add_get("/v1/conversations/{conversation_id}", get_conversation)
    app.router.add_post("/v1/conversations/{conversation_id}/messages", post_reply)
    app.router.add_post("/v1/conversations/{conversation_id}/resolve", resolve)
    app.router.add_post("/v1/conversations/{conversation_id}/offer", answer_offer)
    app.router.add_post("/v1/conversations/{conversation_id}/transfer", transfer)
    app.router.add_get("/v1/contacts/{contact_id}", get_contact)
    app.router.add_get("/v1/attachments/{attachment_id}", download_attachment)
    add_openapi_route(app, "Switchyard agents", [
        ("PUT", "/v1/agents/{agent_id}", "Create or update an agent", AgentProfile, AgentOut),
        ("GET", "/v1/agents/{agent_id}", "An agent's profile and presence", None, AgentOut),
        ("PUT", "/v1/agents/{agent_id}/status", "Set presence: online, away, offline", AgentStatusChange, AgentOut),
        ("GET", "/v1/conversations", "Conversations, filtered by ?assignee_id= and ?status=", None, None),
        ("GET", "/v1/conversations/{conversation_id}", "A conversation with its messages in order", None, ConversationOut),
        ("POST", "/v1/conversations/{conversation_id}/messages", "Reply; sent out through the conversation's channel", Reply, None),
        ("POST", "/v1/conversations/{conversation_id}/resolve", "Resolve; frees the agent's capacity", None, ConversationOut),
        ("POST", "/v1/conversations/{conversation_id}/offer", "Accept or reject an offer (offer-mode queues)", OfferAnswerIn, None),
        ("POST", "/v1/conversations/{conversation_id}/transfer", "Transfer or escalate to an agent or a queue, with a note", TransferIn, None),
        ("GET", "/v1/contacts/{contact_id}", "A contact, its identities on every channel, and its history across them", None, None),
        ("GET", "/v1/attachments/{attachment_id}", "Download a file a customer sent", None, None),
    ])
    return app


def agent_public(doc: dict) -> dict:
    return AgentOut(
        agent_id=doc["agent_id"], workspace_id=doc["workspace_id"], name=doc.get("name", ""),
        skills=doc.get("skills", {}), max_conversations=doc.get("max_conversations", 0),
        channel_capacity=doc.get("channel_capacity", {}), status=doc["status"], version=doc["version"],
    ).model_dump()


def _agent_id(request: web.Request) -> str:
    raw = request.match_info["agent_id"]
    try:
        return agent_id_adapter.validate_python(raw)
    except ValidationError:
        raise http_error(web.HTTPBadRequest, "agent id must be 1-64 letters, digits, '_' or '-'") from None


def _domain_errors(error: Exception) -> web.HTTPException:
    if isinstance(error, NotFound):
        return http_error(web.HTTPNotFound, str(error))
    return http_error(web.HTTPConflict, str(error))


async def desk_page(_: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC / "desk.html")


async def put_agent(request: web.Request) -> web.Response:
    profile = await parse_body(request, AgentProfile)
    doc = await request.app[SERVICE].put_agent(request[WORKSPACE], _agent_id(request), profile)
    return web.json_response(agent_public(doc))


async def get_agent(request: web.Request) -> web.Response:
    doc = await request.app[SERVICE].store.get_agent(request[WORKSPACE], _agent_id(request))
    if doc is None:
        raise http_error(web.HTTPNotFound, "agent does not exist")
    return web.json_response(agent_public(doc))


async def put_status(request: web.Request) -> web.Response:
    change = await parse_body(request, AgentStatusChange)
    try:
        doc = await request.app[SERVICE].set_status(request[WORKSPACE], _agent_id(request), change.status)
    except NotFound as error:
        raise _domain_errors(error) from None
    return web.json_response(agent_public(doc))


MAX_LIST_LIMIT = 1000


async def list_conversations(request: web.Request) -> web.Response:
    status = request.query.get("status")
    if status not in (None, "assigned", "waiting", "resolved"):
        raise http_error(web.HTTPBadRequest, "status must be 'assigned', 'waiting' or 'resolved'")
    limit = query_int(request, "limit", 100, minimum=1, maximum=MAX_LIST_LIMIT)
    filters = {k: request.query[k] for k in ("assignee_id", "channel", "thread_id", "contact_id") if request.query.get(k)}
    docs = await request.app[SERVICE].store.find_conversations(request[WORKSPACE], filters, status, limit)
    return web.json_response({"conversations": [jsonable(d, "conversation_id") for d in docs]})


async def get_conversation(request: web.Request) -> web.Response:
    service = request.app[SERVICE]
    try:
        doc = await service.conversation(request[WORKSPACE], request.match_info["conversation_id"])
    except NotFound as error:
        raise _domain_errors(error) from None
    messages = await service.store.messages_of([doc["_id"]])
    body = jsonable(doc, "conversation_id")
    body["messages"] = [jsonable(m, "message_id") for m in messages]
    return web.json_response(body)


async def post_reply(request: web.Request) -> web.Response:
    reply = await parse_body(request, Reply)
    limit = request.app[SETTINGS].max_reply_chars
    if len(reply.text) > limit:
        raise http_error(web.HTTPUnprocessableEntity, f"text is longer than {limit} characters")
    try:
        message = await request.app[SERVICE].reply(request[WORKSPACE], request.match_info["conversation_id"], reply.text)
    except (NotFound, Conflict) as error:
        raise _domain_errors(error) from None
    return web.json_response(message, status=201)


async def resolve(request: web.Request) -> web.Response:
    try:
        doc = await request.app[SERVICE].resolve(request[WORKSPACE], request.match_info["conversation_id"])
    except NotFound as error:
        raise _domain_errors(error) from None
    return web.json_response(jsonable(doc, "conversation_id"))


async def answer_offer(request: web.Request) -> web.Response:
    answer = await parse_body(request, OfferAnswerIn)
    try:
        await request.app[SERVICE].answer_offer(request[WORKSPACE], request.match_info["conversation_id"], answer.agent_id, answer.accept)
    except NotFound as error:
        raise _domain_errors(error) from None
    return web.json_response({"accepted": answer.accept}, status=202)


async def transfer(request: web.Request) -> web.Response:
    """Accepted for routing: the conversation moves when the router has done it (202)."""
    body = await parse_body(request, TransferIn)
    if (body.to_agent is None) == (body.to_queue is None):
        raise http_error(web.HTTPUnprocessableEntity, "name to_agent or to_queue, not both")
    transfer_request = TransferRequest(workspace_id=request[WORKSPACE], conversation_id=request.match_info["conversation_id"],
                                       **body.model_dump())
    try:
        await request.app[SERVICE].transfer(transfer_request)
    except (NotFound, Conflict) as error:
        raise _domain_errors(error) from None
    return web.json_response(transfer_request.model_dump(mode="json"), status=202)


async def get_contact(request: web.Request) -> web.Response:
    """The contact with every conversation it had, on any channel, and their messages in order."""
    store = request.app[SERVICE].store
    contact = await store.contact_book.get(request[WORKSPACE], request.match_info["contact_id"])
    if contact is None:
        raise http_error(web.HTTPNotFound, "contact does not exist")
    conversations = await store.find_conversations(request[WORKSPACE], {"contact_id": contact["_id"]}, None, 100)
    messages = await store.messages_of([c["_id"] for c in conversations])
    body = jsonable(contact, "contact_id")
    body["conversations"] = [jsonable(c, "conversation_id") for c in conversations]
    body["messages"] = sorted((jsonable(m, "message_id") for m in messages), key=lambda m: m["created_at"])
    return web.json_response(body)


async def download_attachment(request: web.Request) -> web.Response:
    stored = await request.app[ATTACHMENTS].get(request[WORKSPACE], request.match_info["attachment_id"])
    if stored is None:
        raise http_error(web.HTTPNotFound, "attachment does not exist")
    # The type goes in as a header: aiohttp's content_type= refuses one with parameters ("; charset=").
    # A customer's file is never rendered on this origin (the desk's key lives here): a download,
    # not sniffed, sandboxed should a browser show it anyway.
    return web.Response(body=stored.data, headers={
        "Content-Type": stored.attachment.content_type,
        "Content-Disposition": content_disposition(stored.attachment.filename),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
    })


async def desk_socket(request: web.Request) -> web.WebSocketResponse:
    """The agent's live feed: a snapshot first, then frames as they come."""
    workspace_id, agent_id = request[WORKSPACE], _agent_id(request)
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    service = request.app[SERVICE]
    connection = DeskConnection(ws)
    structlog.contextvars.bind_contextvars(workspace_id=workspace_id, agent_id=agent_id)
    try:
        service.presence.desk_opened((workspace_id, agent_id))
        await service.store.set_desk(workspace_id, agent_id, True)
        await service.open_desk(workspace_id, agent_id, connection)
        async for frame in ws:  # the desk talks over REST; over the socket it only says it is typing
            if frame.type == WSMsgType.TEXT:
                try:
                    typing = parse_frame(frame.data, DESK_INPUT)
                except FrameError as error:  # answered, and the socket stays open
                    await connection.send(error.frame())
                    continue
                await service.agent_typing(workspace_id, agent_id, typing.conversation_id)
            elif frame.type == WSMsgType.BINARY:
                await connection.send(error_frame("binary frames are not accepted: send JSON text frames"))
            elif frame.type == WSMsgType.ERROR:
                break
    finally:
        service.hub.remove((workspace_id, agent_id), connection)
        service.presence.desk_closed((workspace_id, agent_id))  # offline after the grace, unless a desk returns
    return ws
