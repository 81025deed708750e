from aiohttp import web

from services.assist.app import create_app
from services.assist.settings import AssistSettings
from shared import tracing
from shared.logging import configure_logging

settings = AssistSettings()
configure_logging(settings.log_level)
tracer_provider = tracing.setup(settings, "switchyard-assist")
web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None, shutdown_timeout=10)
if tracer_provider is not None:  # send the spans still buffered
    tracer_provider.shutdown()
