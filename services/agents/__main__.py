from aiohttp import web

from services.agents.app import create_app
from services.agents.settings import AgentsSettings
from shared import tracing
from shared.logging import configure_logging

settings = AgentsSettings()
configure_logging(settings.log_level)
tracer_provider = tracing.setup(settings, "switchyard-agents")
web.run_app(create_app(settings), host=settings.host, port=settings.port, print=None, shutdown_timeout=10)
if tracer_provider is not None:  # send the spans still buffered
    tracer_provider.shutdown()
