"""The router's aiohttp app: ops routes, the routing configuration API and the waiting queue."""

import hashlib
from collections.abc import AsyncIterator

import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry
from pydantic import BaseModel, ConfigDict, ValidationError
from pymongo.asynchronous.database import AsyncDatabase

from services.router.config import RoutingConfig, load_config
from services.router.model import Conversation
from services.router.service import RouterMetrics, RouterService
from services.router.settings import RouterSettings
from services.router.store import RoutingStore
from shared import events
from shared.broker import Broker
from shared.partitions import agree_on_partitions
from shared.models import DEFAULT_WORKSPACE, RoutingConfigChanged
from shared.mongo import create_client
from shared.web import (
    WORKSPACE,
    Answer,
    Operation,
    Timestamp,
    add_openapi_route,
    add_ops_routes,
    broker_and_database_checks,
    configure_auth,
    http_error,
    model_response,
    parse_body,
    service_middlewares,
)

log = structlog.get_logger(__name__)
SERVICE = web.AppKey("router_service", RouterService)
DB = web.AppKey("router_db", AsyncDatabase)
CONFIG_ID = "routing"


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
        config = await startup_config(db, settings)
        service = RouterService(broker, RoutingStore(db), metrics, config, batch_size=settings.batch_size,
                                tick_seconds=settings.tick_seconds, queue_notice_seconds=settings.queue_notice_seconds)
        await service.start()
        app[SERVICE] = service
        yield
        await service.stop()
        await broker.close()
        await mongo.close()

    app.cleanup_ctx.append(resources)
    add_ops_routes(app, registry, broker_and_database_checks(broker, db))
    app.router.add_get("/v1/queue", waiting_queue)
    app.router.add_get("/v1/routing/config", get_config)
    app.router.add_put("/v1/routing/config", put_config)
    add_openapi_route(app, "Switchyard router", OPERATIONS)
    return app


async def startup_config(db: AsyncDatabase, settings: RouterSettings) -> RoutingConfig:
    """The stored configuration, unless the YAML file changed since it was last applied."""
    stored = await db["routing_config"].find_one({"_id": CONFIG_ID})
    if settings.queues_file is not None:
        digest = hashlib.sha256(settings.queues_file.read_bytes()).hexdigest()
        if stored is None or stored.get("file_sha256") != digest:
            config = load_config(settings.queues_file)
            await _save_config(db, config, file_sha256=digest)
            return config
    return stored_config_or_default(stored)


def stored_config_or_default(stored: dict | None) -> RoutingConfig:
    """The stored configuration; the built-in default when it no longer validates.

    A configuration saved by an older version, with limits since tightened, must not keep the
    router from starting or make every later batch fail: it is logged, and routing goes on with
    the default until a valid one is put."""
    if stored is None:
        return RoutingConfig()
    try:
        return RoutingConfig.model_validate(stored["config"])
    except ValidationError as error:
        log.error("router.stored_config_invalid", error=str(error))
        return RoutingConfig()


async def _save_config(db: AsyncDatabase, config: RoutingConfig, **extra: str) -> None:
    await db["routing_config"].update_one(
        {"_id": CONFIG_ID}, {"$set": {"config": config.model_dump(mode="json"), **extra}}, upsert=True
    )


async def get_config(request: web.Request) -> web.Response:
    return model_response(request.app[SERVICE].config)


async def put_config(request: web.Request) -> web.Response:
    """Replace queues and rules live: stored, then applied by the active replica in input order."""
    if request[WORKSPACE] != DEFAULT_WORKSPACE:
        raise http_error(web.HTTPForbidden, "the routing configuration is deployment-wide: use a default-workspace key")
    config = await parse_body(request, RoutingConfig)
    await _save_config(request.app[DB], config)
    service = request.app[SERVICE]
    change = RoutingConfigChanged(config=config.model_dump(mode="json"))
    await service.broker.publish(change, events.ROUTING_CONFIG_CHANGED, message_type=events.ROUTING_CONFIG_CHANGED,
                                 message_id=change.event_id, workspace_id=DEFAULT_WORKSPACE)
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

    active: bool  # whether this replica holds the routing state (else `waiting` is empty: ask the active one)
    waiting: list[WaitingConversation]


async def waiting_queue(request: web.Request) -> web.Response:
    """The workspace's waiting conversations in service order, as this replica sees them."""
    core = request.app[SERVICE].core
    if core is None:
        return model_response(WaitingQueue(active=False, waiting=[]))
    waiting = core.waiting_in_order(request[WORKSPACE])
    return model_response(WaitingQueue(active=True, waiting=[WaitingConversation.of(c) for c in waiting]))


OPERATIONS = [
    Operation("GET", "/v1/queue", "The workspace's waiting conversations in service order",
              (Answer(200, "The waiting conversations", WaitingQueue),)),
    Operation("GET", "/v1/routing/config", "The routing configuration in force: queues, rules, media",
              (Answer(200, "The configuration", RoutingConfig),)),
    Operation("PUT", "/v1/routing/config", "Replace queues and rules live (deployment-wide: a default-workspace key)",
              (Answer(202, "Stored; the active replica applies it in input order", RoutingConfig),),
              body=RoutingConfig, errors=(400, 403, 413, 422),
              description="Beyond the schema, a configuration must hold together, or it is refused with a 422 "
                          "naming the problem: queue names are unique and none starts with `skills:`; "
                          "`default_queue`, every rule's `queue` and every `closed_overflow` and "
                          "`max_wait.overflow_queue` name a configured queue; an `overflow` max wait names its "
                          "queue; a rule's `pattern` compiles as a regular expression; business-hours windows are "
                          "real times that end after they start (at most 24 a day) in a known time zone; "
                          "expansion steps come in strictly increasing `after_seconds`."),
]
