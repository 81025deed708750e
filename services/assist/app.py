"""Assist's aiohttp app: the knowledge base (API, search, help center and editor pages), the bot, and
surge detection with its incidents."""

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from services.assist.bot import Bot
from services.assist.desk_access import serve_the_desk
from services.assist.editor import EDITOR_OPERATIONS, add_editor_routes
from services.assist.help_center import HELP_CENTER_OPERATIONS, add_help_center_routes
from services.assist.incidents.api import BROKER, INCIDENT_OPERATIONS, INCIDENTS, add_incident_routes
from services.assist.incidents.page import INCIDENT_PAGE_OPERATIONS, add_incident_page_routes
from services.assist.incidents.store import IncidentStore
from services.assist.incidents.watcher import SurgeWatcher
from services.assist.kb import KnowledgeBase
from services.assist.kb_api import KB, KB_OPERATIONS, LIBRARY, add_kb_routes
from services.assist.library import KnowledgeLibrary
from services.assist.pages import ASSET_OPERATIONS, add_asset_routes
from services.assist.settings import AssistSettings
from services.assist.surges.detector import SurgeDetector, SurgeParams
from shared.broker import Broker
from shared.mongo import create_client
from shared.partitions import agree_on_partitions
from shared.web import (
    add_openapi_route,
    add_ops_routes,
    broker_and_database_checks,
    configure_auth,
    service_middlewares,
)

SETTINGS = web.AppKey("assist_settings", AssistSettings)
# Paths under /v1 that need no key: the public help center's reads check the workspace themselves.
PUBLIC_PREFIXES = ("/v1/help/",)


def create_app(settings: AssistSettings) -> web.Application:
    app = web.Application(middlewares=service_middlewares(public_prefixes=PUBLIC_PREFIXES))
    configure_auth(app, settings)
    app[SETTINGS] = settings
    registry = CollectorRegistry()
    client = create_client(settings.mongo_url)
    db = client[settings.mongo_db]
    kb = app[KB] = KnowledgeBase(db, settings.max_articles_per_workspace)
    library = app[LIBRARY] = KnowledgeLibrary(kb, settings.cached_indexes)
    broker = Broker(settings.amqp_url, settings.topology())
    bot = Bot(broker, library, settings.public_url)
    app[BROKER] = broker
    incidents = app[INCIDENTS] = IncidentStore(db)
    detector = SurgeDetector(SurgeParams(warmup=settings.surge_warmup,
                                         min_conversations=settings.surge_min_conversations))
    watcher = SurgeWatcher(broker, incidents, settings.surge_tick_seconds, detector=detector)

    async def resources(app: web.Application) -> AsyncIterator[None]:
        await kb.ensure_indexes()
        await agree_on_partitions(db, settings.partitions)  # before declaring any partition queue
        await broker.start()
        await bot.start()
        await watcher.start()
        yield
        await watcher.stop()
        await bot.stop()
        await broker.close()
        await client.close()

    app.cleanup_ctx.append(resources)
    add_ops_routes(app, registry, broker_and_database_checks(broker, db))
    add_kb_routes(app)
    add_incident_routes(app)
    add_incident_page_routes(app)
    add_help_center_routes(app)
    add_editor_routes(app)
    add_asset_routes(app)
    add_openapi_route(app, "Switchyard assist",
                      [*KB_OPERATIONS, *HELP_CENTER_OPERATIONS, *EDITOR_OPERATIONS, *ASSET_OPERATIONS,
                       *INCIDENT_OPERATIONS, *INCIDENT_PAGE_OPERATIONS])
    serve_the_desk(app, settings)  # after every route: CORS for the desk's calls (services/assist/desk_access.py)
    return app
