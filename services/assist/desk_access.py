"""What the agent desk needs of assist: it searches the knowledge base from the browser, on the agents
service's origin (docs/desk.md "Suggested articles"), and links to the public help center.

CORS is opened to the desk's origins (ASSIST_CORS_ORIGINS) on its two calls only; every other /v1 route
stays same-origin.
"""

from aiohttp import web

from services.assist.settings import AssistSettings
from shared.web import allow_cross_origin

# The desk's calls: the search and where the help center is (for an article's public link).
DESK_PATHS = ("/v1/kb/search", "/v1/kb/help")
PUBLIC_URL = web.AppKey("assist_public_url", str)


def serve_the_desk(app: web.Application, settings: AssistSettings) -> None:
    """Call once every route is added: the help center's public address, and CORS for the desk's origins."""
    app[PUBLIC_URL] = settings.public_url.rstrip("/")
    allow_cross_origin(app, settings.cors_origins, DESK_PATHS)
