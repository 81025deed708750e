from aiohttp import web

from services.reporting.app import create_app
from services.reporting.settings import ReportingSettings
from shared.logging import configure_logging

settings = ReportingSettings()
configure_logging(settings.log_level)
web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None, shutdown_timeout=10)
