from aiohttp import web

from services.agents.app import create_app
from services.agents.settings import AgentsSettings
from shared.logging import configure_logging

settings = AgentsSettings()
configure_logging(settings.log_level)
web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None, shutdown_timeout=10)
