"""Supervisors' incidents API: list and read them, confirm, dismiss (a false alarm), merge two that
are one problem, resolve. Every change is an explicit transition that publishes its event."""

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from services.assist.incidents.store import OPEN_STATUSES, IncidentStore
from services.assist.incidents.watcher import publish_incident
from shared import events
from shared.broker import Broker
from shared.models import IncidentClosing, Wire, new_id, utcnow
from shared.web import (
    WORKSPACE,
    Answer,
    Operation,
    Timestamp,
    choice_query,
    http_error,
    model_response,
    open_to_agents,
    parse_body,
    path_parameter,
)

INCIDENTS = web.AppKey("incident_store", IncidentStore)
BROKER = web.AppKey("incident_broker", Broker)
BASE, ONE = "/v1/incidents", "/v1/incidents/{incident_id}"
INCIDENT_ID = path_parameter("incident_id", "The incident's id", maxLength=300)
STATUS = choice_query("status", "Only incidents in this state (active: open or confirmed)",
                      ("active", "open", "confirmed", "dismissed", "merged", "resolved"))
LINKS_SHOWN = 500
MAX_CLOSED = 10_000  # linked conversations one resolution replies to


class IncidentOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    title: str  # the message that opened it: a representative report
    status: str
    conversations: int
    channels: dict[str, int]
    opened_at: Timestamp
    last_link_at: Timestamp
    merged_into: str | None = None

    @classmethod
    def of(cls, doc: dict) -> "IncidentOut":
        return cls(id=doc["_id"], title=doc["title"], status=doc["status"], conversations=doc["conversations"],
                   channels=doc.get("channels", {}), opened_at=doc["opened_at"], last_link_at=doc["last_link_at"],
                   merged_into=doc.get("merged_into"))


class LinkOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation_id: str
    channel: str
    message_id: str
    text: str
    at: Timestamp


class MinuteCount(BaseModel):
    model_config = ConfigDict(extra="forbid")

    minute: str  # UTC, YYYY-MM-DDTHH:MM
    conversations: int


class IncidentDetail(IncidentOut):
    links: list[LinkOut]  # the first LINKS_SHOWN, oldest first
    timeline: list[MinuteCount]  # newly linked conversations per minute


class IncidentList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    incidents: list[IncidentOut]


class MergeRequest(Wire):
    into: str = Field(min_length=1, max_length=300, description="The incident this one is part of")


@open_to_agents
async def list_incidents(request: web.Request) -> web.Response:
    status = STATUS.choice(request)
    statuses = OPEN_STATUSES if status == "active" else (status,) if status else None
    docs = await request.app[INCIDENTS].find(request[WORKSPACE], statuses)
    return model_response(IncidentList(incidents=[IncidentOut.of(doc) for doc in docs]))


@open_to_agents
async def get_incident(request: web.Request) -> web.Response:
    doc = await _existing(request)
    links = await request.app[INCIDENTS].linked(doc["_id"], LINKS_SHOWN)
    timeline = [MinuteCount(minute=m, conversations=n) for m, n in sorted(doc.get("minutes", {}).items())]
    return model_response(IncidentDetail(**IncidentOut.of(doc).model_dump(), timeline=timeline, links=[
        LinkOut(conversation_id=link["conversation_id"], channel=link["channel"], message_id=link["message_id"],
                text=link["text"], at=link["at"]) for link in links]))


def _transition(status: str, frm: tuple[str, ...], event: str):
    async def handler(request: web.Request) -> web.Response:
        doc = await _existing(request)
        changed = await request.app[INCIDENTS].set_status(request[WORKSPACE], doc["_id"], status, frm, utcnow())
        if changed is None:
            raise http_error(web.HTTPConflict, f"the incident is {doc['status']}: only one that is "
                                               f"{' or '.join(frm)} can become {status}")
        await publish_incident(request.app[BROKER], event, changed, f"{doc['_id']}:{status}:{new_id()}")
        return model_response(IncidentOut.of(changed))
    return handler


confirm_incident = _transition("confirmed", ("open",), events.INCIDENT_UPDATED)
dismiss_incident = _transition("dismissed", OPEN_STATUSES, events.INCIDENT_UPDATED)


class ResolveRequest(Wire):
    reply: str | None = Field(None, min_length=1, max_length=2000,
                              description="Sent once to every linked conversation still open")
    resolve_conversations: bool = Field(False, description="Also resolve the linked conversations agents hold")


async def resolve_incident(request: web.Request) -> web.Response:
    body = await parse_body(request, ResolveRequest) if request.body_exists else ResolveRequest()
    doc = await _existing(request)
    store = request.app[INCIDENTS]
    changed = await store.set_status(request[WORKSPACE], doc["_id"], "resolved", OPEN_STATUSES, utcnow(),
                                     resolved_by="supervisor")
    if changed is None:
        raise http_error(web.HTTPConflict, f"the incident is {doc['status']}: only an open or confirmed one resolves")
    broker = request.app[BROKER]
    if body.reply or body.resolve_conversations:
        links = await store.linked(doc["_id"], limit=MAX_CLOSED)
        closing = IncidentClosing(event_id=f"{doc['_id']}:closing", workspace_id=request[WORKSPACE],
                                  incident_id=doc["_id"], reply=body.reply, resolve=body.resolve_conversations,
                                  conversation_ids=[link["conversation_id"] for link in links])
        await broker.publish(closing, events.INCIDENT_CLOSING, message_type=events.INCIDENT_CLOSING,
                             message_id=closing.event_id, workspace_id=request[WORKSPACE])
    await publish_incident(broker, events.INCIDENT_RESOLVED, changed, f"{doc['_id']}:resolved")
    return model_response(IncidentOut.of(changed))


async def merge_incident(request: web.Request) -> web.Response:
    body = await parse_body(request, MergeRequest)
    store = request.app[INCIDENTS]
    source = await _existing(request)
    target = await store.get(request[WORKSPACE], body.into)
    if target is None or target["_id"] == source["_id"]:
        raise http_error(web.HTTPUnprocessableEntity, "into must name another incident of this workspace",
                         parameter="into")
    if target["status"] not in OPEN_STATUSES:
        raise http_error(web.HTTPConflict, f"the incident to merge into is {target['status']}", parameter="into")
    merged = await store.set_status(request[WORKSPACE], source["_id"], "merged", OPEN_STATUSES, utcnow(),
                                    merged_into=target["_id"])
    if merged is None:
        raise http_error(web.HTTPConflict, f"the incident is {source['status']}: only an open or confirmed one merges")
    await store.move_links(source, target)
    target = await store.get(request[WORKSPACE], target["_id"])
    assert target is not None
    broker = request.app[BROKER]
    await publish_incident(broker, events.INCIDENT_UPDATED, merged, f"{source['_id']}:merged:{new_id()}")
    await publish_incident(broker, events.INCIDENT_UPDATED, target, f"{target['_id']}:merge:{new_id()}")
    return model_response(IncidentOut.of(target))


async def _existing(request: web.Request) -> dict:
    doc = await request.app[INCIDENTS].get(request[WORKSPACE], INCIDENT_ID.raw(request) or "")
    if doc is None:
        raise http_error(web.HTTPNotFound, "incident does not exist")
    return doc


def add_incident_routes(app: web.Application) -> None:
    app.router.add_get(BASE, list_incidents)
    app.router.add_get(ONE, get_incident)
    app.router.add_post(f"{ONE}/confirm", confirm_incident)
    app.router.add_post(f"{ONE}/dismiss", dismiss_incident)
    app.router.add_post(f"{ONE}/resolve", resolve_incident)
    app.router.add_post(f"{ONE}/merge", merge_incident)


INCIDENT_OPERATIONS = [
    Operation("GET", BASE, "The workspace's incidents, newest first", (Answer(200, "The incidents", IncidentList),),
              parameters=(STATUS,), errors=(400,)),
    Operation("GET", ONE, "One incident: its linked conversations and their count per minute",
              (Answer(200, "The incident", IncidentDetail),), parameters=(INCIDENT_ID,), errors=(404,)),
    Operation("POST", f"{ONE}/confirm", "A supervisor confirms an open incident (it then ends only when resolved)",
              (Answer(200, "The incident", IncidentOut),), parameters=(INCIDENT_ID,), errors=(403, 404, 409)),
    Operation("POST", f"{ONE}/dismiss", "A false alarm: later matches are not linked",
              (Answer(200, "The incident", IncidentOut),), parameters=(INCIDENT_ID,), errors=(403, 404, 409)),
    Operation("POST", f"{ONE}/resolve", "The problem is fixed: optionally one reply to every linked conversation, "
              "and resolving those agents hold", (Answer(200, "The incident", IncidentOut),), body=ResolveRequest,
              parameters=(INCIDENT_ID,), errors=(400, 403, 404, 409, 413, 422)),
    Operation("POST", f"{ONE}/merge", "This incident is part of another: its conversations move there",
              (Answer(200, "The incident merged into", IncidentOut),), body=MergeRequest, parameters=(INCIDENT_ID,),
              errors=(400, 403, 404, 409, 413, 422)),
]
