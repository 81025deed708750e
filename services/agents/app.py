"""The agents service's aiohttp app: agents, conversations, replies, the desk WebSocket and page."""

from collections.abc import AsyncIterator
from datetime import timedelta

import structlog
from aiohttp import WSMsgType, web
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, TypeAdapter, ValidationError

from services.agents import csat
from services.agents.canned import CannedStore
from services.agents.canned_api import AGENTS_STORE, CANNED, CANNED_OPERATIONS, add_canned_routes
from services.agents.desk import DESK_INPUT, DeskConnection, DeskHub
from services.agents.files import UPLOAD_FORM, attachments_named, check_channel_carries_files, store_upload
from services.agents.frames import frames_schema
from services.agents.models import (
    AGENT_ID_PATTERN,
    HELD_STATUSES,
    MAX_CONTACT_ATTRIBUTES,
    AgentId,
    AgentList,
    AgentOut,
    AgentProfile,
    AgentStatusChange,
    AgentToken,
    ContactOut,
    ContactPatch,
    ConversationList,
    ConversationOut,
    ConversationWithMessages,
    CsatAnswered,
    CsatAnswerIn,
    LabelsIn,
    MessageOut,
    NoteIn,
    OfferAnswered,
    OfferAnswerIn,
    QueueList,
    SessionOut,
    StateIn,
    TransferIn,
    reply_model,
)
from services.agents.pages import PAGE_OPERATIONS, add_desk_routes
from services.agents.service import AgentsMetrics, AgentsService, Conflict, NotFound
from services.agents.settings import AgentsSettings
from services.agents.store import AgentsStore
from shared import tracing
from shared.attachments import AttachmentStore, content_disposition
from shared.broker import Broker
from shared.models import Attachment, StateRequest, TransferRequest, utcnow
from shared.mongo import create_client
from shared.partitions import agree_on_partitions
from shared.relay import RELAY_UNAVAILABLE
from shared.tokens import issue_agent_token
from shared.web import (
    TOKEN_SECRET,
    WORKSPACE,
    Answer,
    FrameError,
    Operation,
    add_openapi_route,
    add_ops_routes,
    allow_cross_origin,
    broker_and_database_checks,
    calling_agent,
    choice_query,
    configure_auth,
    error_frame,
    header_parameter,
    http_error,
    integer_query,
    model_response,
    open_to_agents,
    parse_body,
    parse_frame,
    path_parameter,
    query_parameter,
    require_own,
    service_middlewares,
)

log = structlog.get_logger(__name__)
SERVICE = web.AppKey("agents_service", AgentsService)
SETTINGS = web.AppKey("agents_settings", AgentsSettings)
ATTACHMENTS = web.AppKey("attachments", AttachmentStore)
agent_id_adapter: TypeAdapter[str] = TypeAdapter(AgentId)


REPLY_MODEL = web.AppKey("reply_model", type)

# -- parameters: declared once, read by the handlers through the same objects --------------------

AGENT_ID = path_parameter("agent_id", "The agent's id, unique in the workspace", pattern=AGENT_ID_PATTERN,
                          example="ann")
CONVERSATION_ID = path_parameter("conversation_id", "The conversation's id")
MESSAGE_ID = path_parameter("message_id", "A message's id (see the conversation's `messages`)")
CONTACT_ID = path_parameter("contact_id", "The contact's id (see a conversation's `contact_id`)")
ATTACHMENT_ID = path_parameter("attachment_id", "The file's id (see a message's `attachments`)")
MAX_LIST_LIMIT = 1000
LIMIT = integer_query("limit", "How many conversations, latest activity first", default=100, minimum=1, maximum=MAX_LIST_LIMIT)
STATUS = choice_query("status", "Only conversations in this state", ("assigned", "pending", "snoozed", "waiting", "resolved"))
AGENT_STATUS = choice_query("status", "Only agents in this presence", ("online", "away", "offline"))
# Equality filters; an empty value is no filter.
FILTERS = tuple(query_parameter(name, f"Only conversations whose {name} is this") for name in (
    "assignee_id", "channel", "thread_id", "contact_id", "queue"))
LABEL = query_parameter("label", "Only conversations with this contact reason")
SEARCH = query_parameter("q", "Only conversations whose messages or contact hold every word (prefixes of 3 "
                         "characters or more match: 'parc' finds 'parcel'; any language)", maxLength=200)


def operations(reply_body: type[BaseModel]) -> list[Operation]:
    """Every HTTP route of the agents service as /openapi.json declares it (the WebSocket is in its description)."""
    conversation = (CONVERSATION_ID,)
    return [
        *PAGE_OPERATIONS,
        Operation("PUT", "/v1/agents/{agent_id}", "Create or update an agent", (Answer(200, "The agent", AgentOut),),
                  body=AgentProfile, parameters=(AGENT_ID,), errors=(400, 413, 422)),
        Operation("GET", "/v1/session", "Who the caller is: its workspace, its role and, for an agent token, its agent",
                  (Answer(200, "The caller", SessionOut),)),
        Operation("GET", "/v1/desk/frames.schema.json", "The JSON Schema of every desk WebSocket frame",
                  (Answer(200, "A JSON Schema: one of the frames, by `type`",
                          schema={"type": "object", "description": "A JSON Schema document"}),)),
        Operation("GET", "/v1/agents", "The workspace's agents, by id (for pickers: who is online)",
                  (Answer(200, "The agents", AgentList),), parameters=(AGENT_STATUS,), errors=(400,)),
        Operation("GET", "/v1/queues", "The queues of the routing configuration in force (for the transfer picker)",
                  (Answer(200, "The queues, by name", QueueList),)),
        Operation("GET", "/v1/agents/{agent_id}", "An agent's profile and presence",
                  (Answer(200, "The agent", AgentOut),), parameters=(AGENT_ID,), errors=(400, 404)),
        Operation("POST", "/v1/agents/{agent_id}/token",
                  "A token for one agent: its own presence and conversations only",
                  (Answer(201, "The token and when it expires", AgentToken),), parameters=(AGENT_ID,),
                  errors=(400, 403, 404),
                  description="Only with the workspace's key (a supervisor's). With the token the agent may read "
                              "itself, set its status, open its desk socket, list and read the conversations it "
                              "holds (and read one offered to it), reply, resolve, label, answer its offers, "
                              "transfer what it holds, and read the contacts of what it holds; anything else is a 403."),
        Operation("PUT", "/v1/agents/{agent_id}/status", "Set presence: online, away, offline",
                  (Answer(200, "The agent", AgentOut),), body=AgentStatusChange, parameters=(AGENT_ID,),
                  errors=(400, 404, 413, 422)),
        Operation("GET", "/v1/conversations", "Conversations, latest activity first, filtered",
                  (Answer(200, "The conversations", ConversationList),),
                  parameters=(LIMIT, STATUS, *FILTERS, LABEL, SEARCH),
                  errors=(400, 403),
                  description="With the workspace's key, `status=waiting` (or no status) also lists the waiting "
                              "conversations no agent has held yet (known to the router only; every filter applies "
                              "to them). An agent token lists only what it holds; `status=waiting` is a 403."),
        Operation("GET", "/v1/conversations/{conversation_id}", "A conversation with its messages in order",
                  (Answer(200, "The conversation", ConversationWithMessages),), parameters=conversation, errors=(404,),
                  description="With the workspace's key, also a waiting conversation no agent has held yet (the "
                              "router's, read only: the messages it holds)."),
        Operation("POST", "/v1/conversations/{conversation_id}/messages",
                  "Reply; sent out through the conversation's channel",
                  (Answer(201, "The reply, stored as queued; its status follows on the desk", MessageOut),),
                  body=reply_body, parameters=conversation, errors=(400, 404, 409, 413, 422),
                  description="`attachments` names files uploaded to this conversation "
                              "(POST .../attachments); an unknown one, or files on a channel that cannot carry "
                              "them, is a 422."),
        Operation("POST", "/v1/conversations/{conversation_id}/attachments",
                  "Upload a file to send with a reply (then name its id in the reply's `attachments`)",
                  (Answer(201, "The stored file", Attachment),), parameters=conversation,
                  content={"multipart/form-data": UPLOAD_FORM}, errors=(400, 403, 404, 413, 415, 422),
                  description="Only channels that can carry a file take one (web chat, email, Telegram, WhatsApp, "
                              "Messenger, SMS as MMS): "
                              "elsewhere a 422 names the channel. AGENTS_MAX_ATTACHMENT_BYTES bounds the size."),
        Operation("POST", "/v1/conversations/{conversation_id}/messages/{message_id}/retry",
                  "Send a failed reply again, as a new reply",
                  (Answer(201, "The new reply (queued)", MessageOut),), parameters=(CONVERSATION_ID, MESSAGE_ID),
                  errors=(403, 404, 409)),
        Operation("POST", "/v1/conversations/{conversation_id}/notes",
                  "A private note: colleagues see it, the customer never does",
                  (Answer(201, "The note, as the history shows it", MessageOut),), body=NoteIn,
                  parameters=conversation,
                  errors=(400, 403, 404, 413, 422)),
        Operation("POST", "/v1/conversations/{conversation_id}/resolve", "Resolve; frees the agent's capacity",
                  (Answer(200, "The conversation, resolved", ConversationOut),), parameters=conversation,
                  errors=(404,)),
        Operation("PUT", "/v1/conversations/{conversation_id}/labels",
                  "Set the conversation's contact reasons (the whole set; reports group by them)",
                  (Answer(200, "The conversation with its labels", ConversationOut),),
                  body=LabelsIn, parameters=conversation, errors=(400, 404, 413, 422)),
        Operation("POST", "/v1/conversations/{conversation_id}/offer", "Accept or reject an offer (offer-mode queues)",
                  (Answer(202, "Passed to the router; the assignment or the next offer follows", OfferAnswered),),
                  body=OfferAnswerIn, parameters=conversation, errors=(400, 404, 413, 422)),
        Operation("POST", "/v1/conversations/{conversation_id}/state",
                  "Set it pending (waiting on the customer), snoozed for a while, or open again",
                  (Answer(202, "Passed to the router; the desk hears the new state (conversation.state)",
                          StateRequest),),
                  body=StateIn, parameters=conversation, errors=(400, 403, 404, 409, 413, 422),
                  description="Pending and snoozed conversations stay the agent's but free its capacity slot; "
                              "the customer's next message (or the snooze's end) opens them again, at once if "
                              "the agent has room, else reserved for that agent (docs/routing.md, \"Lifecycle\")."),
        Operation("POST", "/v1/conversations/{conversation_id}/transfer",
                  "Transfer or escalate to an agent or a queue, with a note",
                  (Answer(202, "Accepted for routing: the conversation moves when the router has done it",
                          TransferRequest),),
                  body=TransferIn, parameters=conversation, errors=(400, 404, 409, 413, 422)),
        Operation("POST", "/v1/csat/answers",
                  "A customer's answer to a CSAT survey (intake posts what channels bring; see docs/csat.md)",
                  (Answer(200, "Kept (recorded), or the kept answer repeated (already_recorded)", CsatAnswered),),
                  body=CsatAnswerIn, errors=(400, 403, 404, 409, 410, 413, 422)),
        Operation("GET", "/v1/contacts/{contact_id}",
                  "A contact, its identities on every channel, and its history across them",
                  (Answer(200, "The contact", ContactOut),), parameters=(CONTACT_ID,), errors=(404,)),
        Operation("PATCH", "/v1/contacts/{contact_id}", "Edit a contact: name, attributes, labels",
                  (Answer(200, "The contact", ContactOut),), body=ContactPatch, parameters=(CONTACT_ID,),
                  errors=(400, 403, 404, 413, 422),
                  description="An attribute set to null is removed; `labels` is the whole set; a field left out "
                              "stays. At most 50 attributes (a 422 beyond)."),
        Operation("GET", "/v1/attachments/{attachment_id}", "Download a file a customer sent", (
            Answer(200, "The file, with the type it was stored with", media_type="*/*",
                   schema={"description": "The file's bytes"},
                   headers=(header_parameter("Content-Disposition", "attachment, with the file's name",
                                             required=True),)),
        ), parameters=(ATTACHMENT_ID,), errors=(404,)),
    ]


DESCRIPTION = (
    "Agents, conversations, replies and contacts. The agent's live feed is a WebSocket at "
    "`GET /v1/agents/{agent_id}/ws?token=<API key>` (frames: see services/agents/desk.py); "
    "OpenAPI does not describe WebSockets, so it is not listed under paths."
)


def create_app(settings: AgentsSettings) -> web.Application:
    app = web.Application(middlewares=service_middlewares(public_prefixes=()), client_max_size=256 * 1024)
    configure_auth(app, settings)
    app[SETTINGS] = settings
    app[REPLY_MODEL] = reply_model(settings.max_reply_chars)
    registry = CollectorRegistry()
    broker = Broker(settings.amqp_url, settings.topology())
    mongo = create_client(settings.mongo_url)
    db = mongo[settings.mongo_db]

    async def resources(app: web.Application) -> AsyncIterator[None]:
        await agree_on_partitions(db, settings.partitions)  # before declaring any partition queue
        await broker.start()
        store = AgentsStore(db)
        app[CANNED], app[AGENTS_STORE] = CannedStore(db), store
        await app[CANNED].ensure_indexes()  # before the service starts: its start begins the desks' grace
        app[ATTACHMENTS] = AttachmentStore(db)
        service = AgentsService(
            broker, store, DeskHub(broker), AgentsMetrics(registry),
            batch_size=settings.batch_size, presence_grace_seconds=settings.presence_grace_seconds,
        )
        await service.start()
        app[SERVICE] = service
        yield
        await service.stop()
        await broker.close()
        await mongo.close()

    app.cleanup_ctx.append(resources)
    add_ops_routes(app, registry, broker_and_database_checks(broker, db))
    add_desk_routes(app, settings.assist_url)
    app.router.add_put("/v1/agents/{agent_id}", put_agent)
    app.router.add_get("/v1/agents", list_agents)
    app.router.add_get("/v1/session", get_session)
    app.router.add_get("/v1/queues", list_queues)
    app.router.add_get("/v1/desk/frames.schema.json", desk_frames_schema)
    app.router.add_get("/v1/agents/{agent_id}", get_agent)
    app.router.add_put("/v1/agents/{agent_id}/status", put_status)
    app.router.add_get("/v1/agents/{agent_id}/ws", desk_socket)
    app.router.add_post("/v1/agents/{agent_id}/token", post_agent_token)
    app.router.add_get("/v1/conversations", list_conversations)
    app.router.add_get("/v1/conversations/{conversation_id}", get_conversation)
    app.router.add_post("/v1/conversations/{conversation_id}/messages", post_reply)
    app.router.add_post("/v1/conversations/{conversation_id}/notes", post_note)
    app.router.add_post("/v1/conversations/{conversation_id}/attachments", upload_attachment)
    app.router.add_post("/v1/conversations/{conversation_id}/messages/{message_id}/retry", retry_reply)
    app.router.add_post("/v1/conversations/{conversation_id}/resolve", resolve)
    app.router.add_put("/v1/conversations/{conversation_id}/labels", put_labels)
    app.router.add_post("/v1/conversations/{conversation_id}/offer", answer_offer)
    app.router.add_post("/v1/conversations/{conversation_id}/transfer", transfer)
    app.router.add_post("/v1/conversations/{conversation_id}/state", change_state)
    app.router.add_post("/v1/csat/answers", answer_survey)
    app.router.add_get("/v1/contacts/{contact_id}", get_contact)
    app.router.add_patch("/v1/contacts/{contact_id}", patch_contact)
    app.router.add_get("/v1/attachments/{attachment_id}", download_attachment)
    add_canned_routes(app)
    add_openapi_route(app, "Switchyard agents", [*operations(app[REPLY_MODEL]), *CANNED_OPERATIONS], DESCRIPTION)
    allow_cross_origin(app, settings.cors_origins)  # the supervisor page, on reporting's origin
    return app


def _agent_id(request: web.Request) -> str:
    raw = AGENT_ID.raw(request)
    try:
        return agent_id_adapter.validate_python(raw)
    except ValidationError:
        raise http_error(web.HTTPBadRequest, "agent id must be 1-64 letters, digits, '_' or '-'") from None


async def _check_own_conversation(request: web.Request, *, offers_too: bool = False) -> None:
    """An agent token reaches a conversation it holds (or, to read it, one offered to it); a
    supervisor's key every one. Unknown ids are left to the handler's own 404."""
    agent_id = calling_agent(request)
    if agent_id is None:
        return
    service = request.app[SERVICE]
    doc = await service.store.get_conversation(request[WORKSPACE], CONVERSATION_ID.raw(request))
    if doc is None or doc.get("assignee_id") == agent_id:
        return
    if offers_too and await service.store.offers.find_one(
            {"workspace_id": request[WORKSPACE], "conversation_id": doc["_id"], "agent_id": agent_id}):
        return
    raise http_error(web.HTTPForbidden, "an agent token may only see and act on its own conversations")


def _domain_errors(error: Exception) -> web.HTTPException:
    if isinstance(error, NotFound):
        return http_error(web.HTTPNotFound, str(error))
    return http_error(web.HTTPConflict, str(error))


async def put_agent(request: web.Request) -> web.Response:
    agent_id = _agent_id(request)
    profile = await parse_body(request, AgentProfile)
    doc = await request.app[SERVICE].put_agent(request[WORKSPACE], agent_id, profile)
    return model_response(AgentOut.from_doc(doc))


@open_to_agents
async def get_session(request: web.Request) -> web.Response:
    """The caller: the desk decides from it which list views to show (the API enforces them anyway)."""
    agent_id = calling_agent(request)
    return model_response(SessionOut(workspace_id=request[WORKSPACE], role="supervisor" if agent_id is None else "agent",
                                     agent_id=agent_id))


@open_to_agents
async def desk_frames_schema(_: web.Request) -> web.Response:
    """The JSON Schema of every frame the desk's WebSocket sends (services/agents/frames.py)."""
    return web.json_response(frames_schema())


@open_to_agents
async def list_agents(request: web.Request) -> web.Response:
    """Colleagues by presence: agents see them too (to pick a transfer target)."""
    docs = await request.app[SERVICE].store.list_agents(request[WORKSPACE], AGENT_STATUS.choice(request))
    return model_response(AgentList(agents=[AgentOut.from_doc(doc) for doc in docs]))


@open_to_agents
async def list_queues(request: web.Request) -> web.Response:
    """The queues a conversation may be transferred to: those of the workspace's routing configuration."""
    return model_response(QueueList.model_validate({"queues": await request.app[SERVICE].store.configured_queues(request[WORKSPACE])}))


@open_to_agents
async def get_agent(request: web.Request) -> web.Response:
    require_own(request, _agent_id(request), "profile")
    doc = await request.app[SERVICE].store.get_agent(request[WORKSPACE], _agent_id(request))
    if doc is None:
        raise http_error(web.HTTPNotFound, "agent does not exist")
    return model_response(AgentOut.from_doc(doc))


async def post_agent_token(request: web.Request) -> web.Response:
    """A signed token for one agent (a supervisor's key asks): it sees and does only what is its own."""
    agent_id = _agent_id(request)
    if await request.app[SERVICE].store.get_agent(request[WORKSPACE], agent_id) is None:
        raise http_error(web.HTTPNotFound, "agent does not exist")
    ttl = timedelta(hours=request.app[SETTINGS].agent_token_hours)
    token, expires_at = issue_agent_token(request.app[TOKEN_SECRET], request[WORKSPACE], agent_id, ttl)
    return model_response(AgentToken(agent_id=agent_id, token=token, expires_at=expires_at), status=201)


@open_to_agents
async def put_status(request: web.Request) -> web.Response:
    agent_id = _agent_id(request)
    require_own(request, agent_id, "status")
    change = await parse_body(request, AgentStatusChange)
    try:
        doc = await request.app[SERVICE].set_status(request[WORKSPACE], agent_id, change.status)
    except NotFound as error:
        raise _domain_errors(error) from None
    return model_response(AgentOut.from_doc(doc))


@open_to_agents
async def list_conversations(request: web.Request) -> web.Response:
    status = STATUS.choice(request)
    limit = LIMIT.whole_number(request)
    filters = {p.name: value for p in FILTERS if (value := p.raw(request))}
    if label := LABEL.raw(request):
        filters["labels"] = label  # one of the conversation's labels
    search = SEARCH.raw(request)
    if search is not None and len(search) > 200:
        raise http_error(web.HTTPBadRequest, "q is at most 200 characters", parameter="q")
    store = request.app[SERVICE].store
    if (agent_id := calling_agent(request)) is not None:
        require_own(request, filters.get("assignee_id", agent_id), "conversations")
        if status == "waiting":  # a waiting conversation is nobody's: the Unassigned view is a supervisor's
            raise http_error(web.HTTPForbidden, "waiting conversations are a supervisor's to list", parameter="status")
        filters["assignee_id"] = agent_id  # an agent lists what it holds
        docs = await store.find_conversations(request[WORKSPACE], filters, status, limit, search)
    else:
        docs = await store.find_listed(request[WORKSPACE], filters, status, limit, search)
    conversations = [ConversationOut.from_doc(d, "conversation_id") for d in docs]
    return model_response(ConversationList(conversations=conversations))


@open_to_agents
async def get_conversation(request: web.Request) -> web.Response:
    await _check_own_conversation(request, offers_too=True)
    service = request.app[SERVICE]
    doc = await service.store.get_conversation(request[WORKSPACE], CONVERSATION_ID.raw(request))
    if doc is not None:
        messages = await service.store.messages_of([doc["_id"]])
    elif calling_agent(request) is None and (waiting := await service.store.waiting_one(
            request[WORKSPACE], CONVERSATION_ID.raw(request))):
        doc, messages = waiting  # no agent has held it yet: the router's, for a supervisor to read
    else:
        raise http_error(web.HTTPNotFound, f"conversation {CONVERSATION_ID.raw(request)!r} does not exist")
    return model_response(ConversationWithMessages.from_doc(
        doc, "conversation_id", messages=[MessageOut.from_doc(m, "message_id") for m in messages]))


@open_to_agents
async def post_reply(request: web.Request) -> web.Response:
    # The reply's trace: it rides the reply's publish to intake's outbound sender.
    with tracing.span("POST /v1/conversations/{conversation_id}/messages", kind=tracing.SpanKind.SERVER,
                      headers=request.headers):
        return await _post_reply(request)


async def _post_reply(request: web.Request) -> web.Response:
    reply = await parse_body(request, request.app[REPLY_MODEL])
    await _check_own_conversation(request)
    files = []
    if reply.attachments:
        check_channel_carries_files((await _conversation(request))["channel"])
        files = await attachments_named(request.app[ATTACHMENTS], request[WORKSPACE], reply.attachments)
    try:
        message = await request.app[SERVICE].reply(request[WORKSPACE], CONVERSATION_ID.raw(request), reply.text,
                                                   by_supervisor=calling_agent(request) is None, attachments=files)
    except (NotFound, Conflict) as error:
        raise _domain_errors(error) from None
    return model_response(MessageOut.from_doc(message, workspace_id=request[WORKSPACE]), status=201)


async def _conversation(request: web.Request) -> dict:
    try:
        return await request.app[SERVICE].conversation(request[WORKSPACE], CONVERSATION_ID.raw(request))
    except NotFound as error:
        raise _domain_errors(error) from None


@open_to_agents
async def upload_attachment(request: web.Request) -> web.Response:
    """A file for a reply (multipart, part `file`): stored, its id to name in the reply's `attachments`."""
    await _check_own_conversation(request)
    check_channel_carries_files((await _conversation(request))["channel"])
    stored = await store_upload(request, request.app[ATTACHMENTS], request[WORKSPACE],
                                request.app[SETTINGS].max_attachment_bytes)
    return model_response(stored, status=201)


@open_to_agents
async def retry_reply(request: web.Request) -> web.Response:
    """A failed reply sent again, as a new reply (201); 409 unless it failed and was not retried yet."""
    await _check_own_conversation(request)
    try:
        message = await request.app[SERVICE].retry_reply(request[WORKSPACE], CONVERSATION_ID.raw(request),
                                                         MESSAGE_ID.raw(request))
    except (NotFound, Conflict) as error:
        raise _domain_errors(error) from None
    return model_response(MessageOut.from_doc(message, workspace_id=request[WORKSPACE]), status=201)


@open_to_agents
async def post_note(request: web.Request) -> web.Response:
    """A private note in the history (an agent token: on what it holds, as its author)."""
    body = await parse_body(request, NoteIn)
    await _check_own_conversation(request)
    author = calling_agent(request)
    if author is not None and body.by not in (None, author):
        raise http_error(web.HTTPForbidden, "an agent token writes notes as its own agent", parameter="by")
    try:
        note = await request.app[SERVICE].add_private_note(request[WORKSPACE], CONVERSATION_ID.raw(request),
                                                           body.text, author or body.by)
    except NotFound as error:
        raise _domain_errors(error) from None
    return model_response(MessageOut.from_doc(note, "message_id"), status=201)


@open_to_agents
async def resolve(request: web.Request) -> web.Response:
    await _check_own_conversation(request)
    try:
        doc = await request.app[SERVICE].resolve(request[WORKSPACE], CONVERSATION_ID.raw(request))
    except NotFound as error:
        raise _domain_errors(error) from None
    return model_response(ConversationOut.from_doc(doc, "conversation_id"))


@open_to_agents
async def put_labels(request: web.Request) -> web.Response:
    body = await parse_body(request, LabelsIn)
    await _check_own_conversation(request)
    try:
        doc = await request.app[SERVICE].set_labels(request[WORKSPACE], CONVERSATION_ID.raw(request), body.labels)
    except NotFound as error:
        raise _domain_errors(error) from None
    return model_response(ConversationOut.from_doc(doc, "conversation_id"))


@open_to_agents
async def answer_offer(request: web.Request) -> web.Response:
    answer = await parse_body(request, OfferAnswerIn)
    require_own(request, answer.agent_id, "offers")
    try:
        await request.app[SERVICE].answer_offer(request[WORKSPACE], CONVERSATION_ID.raw(request), answer.agent_id,
                                                answer.accept)
    except NotFound as error:
        raise _domain_errors(error) from None
    return model_response(OfferAnswered(accepted=answer.accept), status=202)


@open_to_agents
async def transfer(request: web.Request) -> web.Response:
    """Accepted for routing: the conversation moves when the router has done it (202)."""
    body = await parse_body(request, TransferIn)
    if (body.to_agent is None) == (body.to_queue is None):
        raise http_error(web.HTTPUnprocessableEntity, "name to_agent or to_queue, not both")
    await _check_own_conversation(request)
    # The workspace's key is a supervisor's: it may move waiting conversations too. An agent's
    # transfer is recorded as by that agent, whatever the body says.
    agent_id = calling_agent(request)
    fields = body.model_dump() | ({"by_agent": agent_id} if agent_id is not None else {})
    transfer_request = TransferRequest(workspace_id=request[WORKSPACE], conversation_id=CONVERSATION_ID.raw(request),
                                       by_supervisor=agent_id is None, **fields)
    try:
        await request.app[SERVICE].transfer(transfer_request)
    except (NotFound, Conflict) as error:
        raise _domain_errors(error) from None
    return model_response(transfer_request, status=202)


@open_to_agents
async def change_state(request: web.Request) -> web.Response:
    """Accepted for routing: pending, snoozed (for `seconds`) or open again, as the router decides (202)."""
    body = await parse_body(request, StateIn)
    if (body.state == "snoozed") != (body.seconds is not None):
        raise http_error(web.HTTPUnprocessableEntity, "`seconds` goes with a snooze, and only with a snooze",
                         parameter="seconds")
    await _check_own_conversation(request)
    until = utcnow() + timedelta(seconds=body.seconds) if body.seconds is not None else None
    try:
        state_request = await request.app[SERVICE].request_state(request[WORKSPACE], CONVERSATION_ID.raw(request),
                                                                 body.state, until)
    except (NotFound, Conflict) as error:
        raise _domain_errors(error) from None
    return model_response(state_request, status=202)


CSAT_REFUSALS: dict[int, type[web.HTTPException]] = {
    403: web.HTTPForbidden, 409: web.HTTPConflict, 410: web.HTTPGone, 422: web.HTTPUnprocessableEntity,
}


async def answer_survey(request: web.Request) -> web.Response:
    """Keep the first valid answer to a survey; a JSON 4xx with `reason` (unknown_survey, forged,
    out_of_range, repeated, late) for one that is not kept."""
    body = await parse_body(request, CsatAnswerIn)
    answer = csat.Answer(survey_id=body.survey_id, channel=body.channel, thread_id=body.thread_id, score=body.score,
                         comment=body.comment or None, answer_ref=body.answer_ref)
    try:
        doc, new = await request.app[SERVICE].answer_survey(request[WORKSPACE], answer)
    except NotFound as error:
        raise http_error(web.HTTPNotFound, str(error), reason="unknown_survey") from None
    except csat.CsatRefused as error:
        raise http_error(CSAT_REFUSALS[error.status], str(error), reason=error.reason,
                         language=error.language) from None
    survey = doc["csat"]
    return model_response(CsatAnswered(
        status="recorded" if new else "already_recorded", conversation_id=doc["_id"], survey_id=survey["survey_id"],
        score=survey["score"], comment=survey["comment"], answered_at=survey["answered_at"],
        language=survey["language"]))


async def _contact_in_reach(request: web.Request) -> tuple[dict, list[dict]]:
    """The contact named in the path and its conversations, if the caller may see it (an agent token:
    a contact of a conversation it holds now); a 404 or 403 otherwise."""
    store = request.app[SERVICE].store
    contact = await store.contact_book.get(request[WORKSPACE], CONTACT_ID.raw(request))
    if contact is None:
        raise http_error(web.HTTPNotFound, "contact does not exist")
    conversations = await store.find_conversations(request[WORKSPACE], {"contact_id": contact["_id"]}, None, 100)
    agent_id = calling_agent(request)
    if agent_id is not None and not any(c.get("assignee_id") == agent_id and c.get("status") in HELD_STATUSES
                                        for c in conversations):
        raise http_error(web.HTTPForbidden, "an agent token may only see the contacts of its own conversations")
    return contact, conversations


@open_to_agents
async def patch_contact(request: web.Request) -> web.Response:
    """Edit the contact's name, attributes (each set, or removed with null) and labels (the whole set)."""
    body = await parse_body(request, ContactPatch)
    contact, conversations = await _contact_in_reach(request)
    attributes = dict(contact.get("attributes") or {})
    for name, value in (body.attributes or {}).items():
        if value is None:
            attributes.pop(name, None)
        else:
            attributes[name] = value
    if len(attributes) > MAX_CONTACT_ATTRIBUTES:
        raise http_error(web.HTTPUnprocessableEntity, f"a contact holds at most {MAX_CONTACT_ATTRIBUTES} attributes",
                         parameter="attributes")
    edited = await request.app[SERVICE].store.contact_book.edit(contact, body.name, attributes, body.labels)
    return await _contact_answer(request, edited, conversations)


@open_to_agents
async def get_contact(request: web.Request) -> web.Response:
    """The contact with every conversation it had, on any channel, and their messages in order
    (to an agent token: a contact of a conversation it holds now)."""
    contact, conversations = await _contact_in_reach(request)
    return await _contact_answer(request, contact, conversations)


async def _contact_answer(request: web.Request, contact: dict, conversations: list[dict]) -> web.Response:
    stored = await request.app[SERVICE].store.messages_of([c["_id"] for c in conversations])
    messages = [MessageOut.from_doc(m, "message_id") for m in stored]
    return model_response(ContactOut.from_doc(
        contact, "contact_id",
        conversations=[ConversationOut.from_doc(c, "conversation_id") for c in conversations],
        messages=sorted(messages, key=lambda m: m.created_at),
    ))


async def download_attachment(request: web.Request) -> web.Response:
    stored = await request.app[ATTACHMENTS].get(request[WORKSPACE], ATTACHMENT_ID.raw(request))
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


@open_to_agents
async def desk_socket(request: web.Request) -> web.WebSocketResponse:
    """The agent's live feed: a snapshot first, then frames as they come."""
    workspace_id, agent_id = request[WORKSPACE], _agent_id(request)
    require_own(request, agent_id, "desk")
    ws = web.WebSocketResponse(heartbeat=20)
    await ws.prepare(request)
    service = request.app[SERVICE]
    connection = DeskConnection(ws)
    structlog.contextvars.bind_contextvars(workspace_id=workspace_id, agent_id=agent_id)
    try:
        await service.presence.desk_opened((workspace_id, agent_id))
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
    except RELAY_UNAVAILABLE as error:  # the broker would not bind the desk's key: it reconnects later
        log.warning("desk.relay_unavailable", error=repr(error))
        await ws.close(code=1013, message=b"try again later")
    finally:
        await service.hub.remove((workspace_id, agent_id), connection)
        await service.presence.desk_closed((workspace_id, agent_id))  # offline after the grace, unless a desk returns
    return ws
