from aiohttp import web

from services.router.app import create_app
from services.router.settings import RouterSettings
from shared.logging import configure_logging

settings = RouterSettings()
configure_logging(settings.log_level)
web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None, shutdown_timeout=10)
