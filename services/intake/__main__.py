from aiohttp import web

from services.intake.app import create_app
from services.intake.settings import IntakeSettings
from shared.logging import configure_logging

settings = IntakeSettings()
configure_logging(settings.log_level)
web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None, shutdown_timeout=10)
