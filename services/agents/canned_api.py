"""The canned responses API (services/agents/canned.py): list (rendered for a conversation), create,
change, remove. Shared responses are a supervisor's to write; personal ones their agent's (or a
supervisor's for that agent). An agent token sees the shared ones and its own."""

import re

from aiohttp import web

from services.agents.canned import (
    CannedChange,
    CannedIn,
    CannedList,
    CannedOut,
    CannedStore,
    placeholder_values,
    render,
)
from services.agents.store import AgentsStore
from shared.web import (
    WORKSPACE,
    Answer,
    Operation,
    calling_agent,
    http_error,
    model_response,
    open_to_agents,
    parse_body,
    path_parameter,
    query_parameter,
)

CANNED = web.AppKey("canned_store", CannedStore)
AGENTS_STORE = web.AppKey("canned_agents_store", AgentsStore)  # conversations and agents, to fill placeholders
AGENT_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
BASE, ONE = "/v1/canned-responses", "/v1/canned-responses/{response_id}"
RESPONSE_ID = path_parameter("response_id", "The canned response's id")
FOR_CONVERSATION = query_parameter("conversation_id", "Fill each response's placeholders for this conversation "
                                   "(`rendered`)")
FOR_AGENT = query_parameter("agent_id", "With a supervisor's key: the shared responses and this agent's own "
                            "(an agent token: always its own)", pattern=r"^[A-Za-z0-9_-]{1,64}$")


@open_to_agents
async def list_canned(request: web.Request) -> web.Response:
    store, agents = request.app[CANNED], request.app[AGENTS_STORE]
    named = FOR_AGENT.raw(request)
    if named is not None and not AGENT_ID.fullmatch(named):
        raise http_error(web.HTTPBadRequest, "agent_id must be 1-64 letters, digits, '_' or '-'", parameter="agent_id")
    agent_id = calling_agent(request) or named or None
    docs = await store.visible_to(request[WORKSPACE], agent_id)
    conversation_id = FOR_CONVERSATION.raw(request)
    if not conversation_id:
        return model_response(CannedList(responses=[CannedOut.of(doc) for doc in docs]))
    conversation = await agents.get_conversation(request[WORKSPACE], conversation_id)
    if conversation is None:
        raise http_error(web.HTTPNotFound, "conversation does not exist", parameter="conversation_id")
    if calling_agent(request) not in (None, conversation.get("assignee_id")):
        raise http_error(web.HTTPForbidden, "an agent token may only fill responses for its own conversations")
    agent = await agents.get_agent(request[WORKSPACE], agent_id or conversation.get("assignee_id") or "")
    values = placeholder_values(conversation, agent)
    return model_response(CannedList(responses=[CannedOut.of(doc, render(doc["text"], values)) for doc in docs]))


def _owner_of_new(request: web.Request, body: CannedIn) -> str | None:
    """Who a new response belongs to (None: shared), or a 403/422 saying why it may not be made."""
    caller = calling_agent(request)
    if not body.personal:
        if caller is not None:
            raise http_error(web.HTTPForbidden, "shared responses are a supervisor's to write: make it personal")
        return None
    owner = caller or body.owner
    if owner is None:
        raise http_error(web.HTTPUnprocessableEntity, "a personal response needs its owner", parameter="owner")
    if caller is not None and body.owner not in (None, caller):
        raise http_error(web.HTTPForbidden, "an agent token writes only its own responses", parameter="owner")
    return owner


@open_to_agents
async def create_canned(request: web.Request) -> web.Response:
    body = await parse_body(request, CannedIn)
    doc = await request.app[CANNED].create(request[WORKSPACE], _owner_of_new(request, body), body)
    if doc is None:
        raise http_error(web.HTTPConflict, f"the shortcut /{body.shortcut} is taken", parameter="shortcut")
    return model_response(CannedOut.of(doc), status=201)


async def _writable(request: web.Request) -> dict:
    """The response named in the path, if the caller may change it: a 404 or 403 otherwise."""
    doc = await request.app[CANNED].get(request[WORKSPACE], RESPONSE_ID.raw(request))
    if doc is None:
        raise http_error(web.HTTPNotFound, "canned response does not exist")
    caller = calling_agent(request)
    if caller is not None and doc["owner"] != caller:
        raise http_error(web.HTTPForbidden, "an agent token changes only its own responses")
    return doc


@open_to_agents
async def replace_canned(request: web.Request) -> web.Response:
    body = await parse_body(request, CannedChange)
    doc = await _writable(request)
    changed = await request.app[CANNED].replace(doc, body)
    if changed is None:
        raise http_error(web.HTTPConflict, f"the shortcut /{body.shortcut} is taken", parameter="shortcut")
    return model_response(CannedOut.of(changed))


@open_to_agents
async def delete_canned(request: web.Request) -> web.Response:
    await request.app[CANNED].delete(await _writable(request))
    return web.Response(status=204)


def add_canned_routes(app: web.Application) -> None:
    """The routes; the app's start sets CANNED and AGENTS_STORE (they need its database client)."""
    app.router.add_get(BASE, list_canned)
    app.router.add_post(BASE, create_canned)
    app.router.add_put(ONE, replace_canned)
    app.router.add_delete(ONE, delete_canned)


CANNED_OPERATIONS = [
    Operation("GET", BASE, "Canned responses: the shared ones and the agent's own",
              (Answer(200, "The responses, by shortcut", CannedList),), parameters=(FOR_CONVERSATION, FOR_AGENT),
              errors=(400, 403, 404)),
    Operation("POST", BASE, "A canned response, shared (a supervisor's) or personal",
              (Answer(201, "The response", CannedOut),), body=CannedIn, errors=(400, 403, 409, 413, 422),
              description="Placeholders: {{contact.name}}, {{contact.first_name}}, {{contact.email}}, "
                          "{{contact.phone}}, {{agent.name}}, {{agent.first_name}}, {{agent.id}}, "
                          "{{conversation.id}}, {{conversation.channel}}, each with an optional fallback "
                          "({{contact.first_name|there}}); an unknown one is a 422. A shortcut is unique per owner."),
    Operation("PUT", ONE, "Change a canned response's words (it stays shared or personal, and its owner's)",
              (Answer(200, "The response", CannedOut),), body=CannedChange, parameters=(RESPONSE_ID,),
              errors=(400, 403, 404, 409, 413, 422)),
    Operation("DELETE", ONE, "Remove a canned response", (Answer(204, "Removed"),), parameters=(RESPONSE_ID,),
              errors=(403, 404)),
]
