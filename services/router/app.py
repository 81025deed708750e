"""The router's aiohttp app: ops routes and a read-only view of the waiting queue."""

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from services.router.service import RouterMetrics, RouterService
from services.router.settings import RouterSettings
from services.router.store import RoutingStore
from shared.broker import Broker
from shared.mongo import create_client, is_reachable
from shared.topology import Topology
from shared.web import API_KEYS, WORKSPACE, add_ops_routes, auth_middleware, error_middleware

SERVICE = web.AppKey("router_service", RouterService)


def create_app(settings: RouterSettings) -> web.Application:
    app = web.Application(middlewares=[error_middleware, auth_middleware(public_prefixes=())])
    app[API_KEYS] = settings.api_keys
    registry = CollectorRegistry()
    metrics = RouterMetrics(registry)
    broker = Broker(settings.amqp_url, Topology(settings.namespace, settings.queue_type))
    mongo = create_client(settings.mongo_url)
    db = mongo[settings.mongo_db]

    async def resources(app: web.Application) -> AsyncIterator[None]:
        await broker.start()
        service = RouterService(broker, RoutingStore(db), metrics, batch_size=settings.batch_size)
        await service.start()
        app[SERVICE] = service
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
    app.router.add_get("/v1/queue", waiting_queue)
    return app


async def waiting_queue(request: web.Request) -> web.Response:
    """The workspace's waiting conversations in service order, as this replica sees them."""
    core = request.app[SERVICE].core
    if core is None:
        return web.json_response({"active": False, "waiting": []})
    workspace_id = request[WORKSPACE]
    ids = core.waiting.get(workspace_id, set())
    waiting = sorted((core.conversations[i] for i in ids), key=lambda c: c.waiting_order())
    return web.json_response({
        "active": True,
        "waiting": [
            {"conversation_id": c.conversation_id, "channel": c.first.channel, "thread_id": c.first.thread_id,
             "skills": c.skills, "priority": c.priority, "waiting_since": c.waiting_since.isoformat(),
             "messages": len(c.backlog)}
            for c in waiting
        ],
    })
