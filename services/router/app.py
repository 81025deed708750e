"""The router's aiohttp app: ops routes, the routing configuration API and the waiting queue."""

import hashlib
from collections.abc import AsyncIterator

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict
from pymongo.asynchronous.database import AsyncDatabase

from services.router.config import RoutingConfig, load_config
from services.router.model import Conversation
from services.router.service import Router, RouterMetrics, load_configs, valid_config
from services.router.settings import RouterSettings
from shared import events
from shared.broker import Broker
from shared.models import DEFAULT_WORKSPACE, RoutingConfigChanged
from shared.mongo import create_client
from shared.partitions import agree_on_partitions
from shared.routing_config import COLLECTION as CONFIG_COLLECTION
from shared.routing_config import DEFAULT_ID, config_id, find_config
from shared.topology import PARTITION_HEADER
from shared.web import (
    WORKSPACE,
    Answer,
    Operation,
    Timestamp,
    add_openapi_route,
    add_ops_routes,
    broker_and_database_checks,
    configure_auth,
    model_response,
    parse_body,
    service_middlewares,
)

log = structlog.get_logger(__name__)
SERVICE = web.AppKey("router", Router)
DB = web.AppKey("router_db", AsyncDatabase)


def create_app(settings: RouterSettings) -> web.Application:
    app = web.Application(middlewares=service_middlewares(public_prefixes=()))
    configure_auth(app, settings)
    registry = CollectorRegistry()
    metrics = RouterMetrics(registry)
    broker = Broker(settings.amqp_url, settings.topology())
    mongo = create_client(settings.mongo_url)
    db = mongo[settings.mongo_db]
    app[DB] = db

    async def resources(app: web.Application) -> AsyncIterator[None]:
        await agree_on_partitions(db, settings.partitions)  # before declaring any partition queue
        await broker.start()
        await apply_queues_file(db, settings)
        router = Router(broker, db, metrics, await load_configs(db), batch_size=settings.batch_size,
                        tick_seconds=settings.tick_seconds, queue_notice_seconds=settings.queue_notice_seconds)
        await router.start()
        app[SERVICE] = router
        yield
        await router.stop()
        await broker.close()
        await mongo.close()

    app.cleanup_ctx.append(resources)
    add_ops_routes(app, registry, broker_and_database_checks(broker, db))
    app.router.add_get("/v1/queue", waiting_queue)
    app.router.add_get("/v1/routing/config", get_config)
    app.router.add_put("/v1/routing/config", put_config)
    add_openapi_route(app, "Switchyard router", OPERATIONS)
    return app


async def apply_queues_file(db: AsyncDatabase, settings: RouterSettings) -> None:
    """The YAML file becomes the default configuration when it changed since it was last applied."""
    if settings.queues_file is None:
        return
    stored = await db[CONFIG_COLLECTION].find_one({"_id": DEFAULT_ID}, {"file_sha256": 1})
    digest = hashlib.sha256(settings.queues_file.read_bytes()).hexdigest()
    if stored is None or stored.get("file_sha256") != digest:
        await _save_config(db, DEFAULT_WORKSPACE, load_config(settings.queues_file), file_sha256=digest)


async def _save_config(db: AsyncDatabase, workspace_id: str, config: RoutingConfig, **extra: str) -> None:
    await db[CONFIG_COLLECTION].update_one(
        {"_id": config_id(workspace_id)}, {"$set": {"config": config.model_dump(mode="json"), **extra}}, upsert=True
    )


async def get_config(request: web.Request) -> web.Response:
    """The configuration the workspace's conversations are routed by: as applied, where this replica
    holds the workspace's partition; else as stored (its own, else the default), which the replica
    taking the partition applies."""
    service = request.app[SERVICE].for_workspace(request[WORKSPACE])
    if service.cores is not None:
        return model_response(service.configs.of(request[WORKSPACE]))
    stored = await find_config(request.app[DB], request[WORKSPACE])
    return model_response((valid_config(stored) if stored else None) or RoutingConfig())


async def put_config(request: web.Request) -> web.Response:
    """Replace the workspace's queues and rules live (a default-workspace key: the deployment's default,
    for every workspace without its own): stored, then applied by the active replicas in input order."""
    workspace_id = request[WORKSPACE]
    config = await parse_body(request, RoutingConfig)
    await _save_config(request.app[DB], workspace_id, config)
    router = request.app[SERVICE]
    change = RoutingConfigChanged(workspace_id=workspace_id, config=config.model_dump(mode="json"))
    # The default reaches every partition; a workspace's own, the workspace's partition.
    partitions = range(len(router.partitions)) if workspace_id == DEFAULT_WORKSPACE else (
        router.broker.topology.workspace_partition(workspace_id),)
    for partition in partitions:
        await router.broker.publish(change, events.ROUTING_CONFIG_CHANGED, message_type=events.ROUTING_CONFIG_CHANGED,
                                    message_id=f"{change.event_id}:{partition}", workspace_id=workspace_id,
                                    headers={PARTITION_HEADER: str(partition)})
    return model_response(config, status=202)


class WaitingConversation(BaseModel):
    """A waiting conversation as the router sees it."""

    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)

    conversation_id: str
    queue: str
    channel: str
    thread_id: str
    skills: list[str]
    priority: int
    waiting_since: Timestamp
    bullseye_step: int  # how far the bullseye has widened the agents who may take it
    reserved_for: str | None  # an agent it waits for (its last agent, a transfer's target)
    offered_to: str | None  # the agent it is offered to now (offer-mode queues)
    messages: int  # how many messages wait with it
    sla: dict[str, str]  # target -> state (ok, warning, breached)

    @classmethod
    def of(cls, c: Conversation) -> "WaitingConversation":
        return cls(conversation_id=c.conversation_id, queue=c.queue, channel=c.first.channel,
                   thread_id=c.first.thread_id, skills=c.first.skills, priority=c.priority,
                   waiting_since=c.waiting_since, bullseye_step=c.step, reserved_for=c.pinned_to,
                   offered_to=c.offer.agent_id if c.offer else None, messages=len(c.backlog),
                   sla={k: v["state"] for k, v in c.sla.items()})


class WaitingQueue(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)

    active: bool  # whether this replica holds the workspace's partition now (else `waiting` is empty: ask the active one)
    waiting: list[WaitingConversation]


async def waiting_queue(request: web.Request) -> web.Response:
    """The workspace's waiting conversations in service order, as this replica sees them."""
    service = request.app[SERVICE].for_workspace(request[WORKSPACE])
    if service.cores is None:
        return model_response(WaitingQueue(active=False, waiting=[]))
    core = service.core_of(request[WORKSPACE])
    waiting = core.waiting_in_order(request[WORKSPACE]) if core is not None else []
    return model_response(WaitingQueue(active=True, waiting=[WaitingConversation.of(c) for c in waiting]))


OPERATIONS = [
    Operation("GET", "/v1/queue", "The workspace's waiting conversations in service order",
              (Answer(200, "The waiting conversations", WaitingQueue),)),
    Operation("GET", "/v1/routing/config", "The workspace's routing configuration in force: queues, rules, media "
              "(its own, else the deployment's default)",
              (Answer(200, "The configuration", RoutingConfig),)),
    Operation("PUT", "/v1/routing/config", "Replace the workspace's queues and rules live (a default-workspace key: "
              "the deployment's default, for every workspace without its own)",
              (Answer(202, "Stored; the active replicas apply it in input order", RoutingConfig),),
              body=RoutingConfig, errors=(400, 413, 422),
              description="Beyond the schema, a configuration must hold together, or it is refused with a 422 "
                          "naming the problem: queue names are unique and none starts with `skills:`; "
                          "`default_queue`, every rule's `queue` and every `closed_overflow` and "
                          "`max_wait.overflow_queue` name a configured queue; an `overflow` max wait names its "
                          "queue; a rule's `pattern` compiles as a regular expression; business-hours windows are "
                          "real times that end after they start (at most 24 a day) in a known time zone; "
                          "expansion steps come in strictly increasing `after_seconds`."),
]
