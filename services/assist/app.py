"""Assist's aiohttp app: the knowledge base (API, search, help center and editor pages)."""

from collections.abc import AsyncIterator

from aiohttp import web
from prometheus_client import CollectorRegistry

from services.assist.editor import EDITOR_OPERATIONS, add_editor_routes
from services.assist.help_center import HELP_CENTER_OPERATIONS, add_help_center_routes
from services.assist.kb import KnowledgeBase
from services.assist.kb_api import KB, KB_OPERATIONS, add_kb_routes
from services.assist.pages import ASSET_OPERATIONS, add_asset_routes
from services.assist.settings import AssistSettings
from shared.mongo import create_client, is_reachable
from shared.web import add_openapi_route, add_ops_routes, configure_auth, service_middlewares

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

    async def resources(app: web.Application) -> AsyncIterator[None]:
        await kb.ensure_indexes()
        yield
        await client.close()

    async def mongo_ready() -> bool:
        return await is_reachable(db)

    app.cleanup_ctx.append(resources)
    add_ops_routes(app, registry, {"mongodb": mongo_ready})
    add_kb_routes(app)
    add_help_center_routes(app)
    add_editor_routes(app)
    add_asset_routes(app)
    add_openapi_route(app, "Switchyard assist",
                      [*KB_OPERATIONS, *HELP_CENTER_OPERATIONS, *EDITOR_OPERATIONS, *ASSET_OPERATIONS])
    return app
