from aiohttp import web

from services.router.app import create_app
from services.router.settings import RouterSettings
from shared import tracing
from shared.logging import configure_logging

settings = RouterSettings()
configure_logging(settings.log_level)
tracer_provider = tracing.setup(settings, "switchyard-router")
web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None, shutdown_timeout=10)
if tracer_provider is not None:  # send the spans still buffered
    tracer_provider.shutdown()
