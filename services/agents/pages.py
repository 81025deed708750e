"""The agent desk (GET /desk): its files, served as they are.

The page is static (HTML, CSS and ES modules under static/desk/, see static/desk/main.js); no build
step. Its strings are one JSON file per language under static/locales/ (a translator edits those;
tests/unit/test_desk_locales.py keeps their keys in step). It asks for the agent's id and key (or takes `?agent_id=&token=`) and then talks to this
origin (the REST API and the desk WebSocket) and to the assist service, for suggested articles, at the
address GET /desk/config.json names (AGENTS_ASSIST_URL; assist allows the desk's origin by ASSIST_CORS_ORIGINS).
"""

from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from services.agents.settings import DEFAULT_ASSIST_URL
from shared.pages import (
    CSS,
    HTML,
    JS,
    LIB_FILES,
    SVG,
    PageFile,
    add_lib_routes,
    add_page_routes,
    content_security_policy,
    locale_files,
    page_operations,
    page_security_headers,
)
from shared.web import Answer, Operation, model_response

STATIC = Path(__file__).parent / "static"

DESK_MODULES = ("main", "api", "state", "dom", "format", "banners", "presence", "frames", "render",
                "list", "offers", "transcript", "labels", "composer", "transfer", "views", "peek", "contact",
                "lifecycle", "reload", "shortcuts", "notify", "canned", "files", "assist", "i18n")
LANGUAGES = ("en", "ru", "uk")  # the desk's locale files; desk/i18n.js offers the same (the unit test checks)
PAGE_FILES = (
    PageFile("/desk", "desk.html", HTML, "The agent desk page"),
    PageFile("/desk.css", "desk.css", CSS, "The agent desk's styles"),
    *(PageFile(f"/desk/{name}.js", f"desk/{name}.js", JS, f"The agent desk's {name} module") for name in DESK_MODULES),
    *locale_files(LANGUAGES, "The agent desk's"),
    PageFile("/favicon.svg", "favicon.svg", SVG, "The desk's icon"),
    PageFile("/favicon.ico", "favicon.svg", SVG, "The desk's icon, where browsers look for it unasked"),
)

CONFIG_PATH = "/desk/config.json"


class DeskConfig(BaseModel):
    """What the desk cannot know from its own address."""

    model_config = ConfigDict(extra="forbid")

    assist_url: str  # where the browser reaches the assist service (the knowledge base's search)


def origin_of(url: str) -> str:
    """`scheme://host[:port]` of a URL: what a Content-Security-Policy source names (a path would narrow it)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def page_policy(assist_url: str) -> str:
    """The page holds the agent's key: it runs only its own scripts and talks only to its own origin (REST and
    the WebSocket: 'self' covers ws: and wss: on the same host) and to assist's."""
    return content_security_policy(connect_src=f"'self' {origin_of(assist_url)}")


def add_desk_routes(app: web.Application, assist_url: str = DEFAULT_ASSIST_URL) -> None:
    """GET /desk, its files, its config and the shared /lib/ modules it imports (public: the page asks for the
    key itself)."""
    config = DeskConfig(assist_url=assist_url.rstrip("/"))
    headers = page_security_headers(page_policy(config.assist_url))

    async def get_config(_: web.Request) -> web.Response:
        return model_response(config)

    add_page_routes(app, STATIC, PAGE_FILES, lambda _: headers)
    app.router.add_get(CONFIG_PATH, get_config)
    add_lib_routes(app)


PAGE_OPERATIONS = [
    *page_operations((*PAGE_FILES, *LIB_FILES)),
    Operation("GET", CONFIG_PATH, "Where the desk reaches the assist service (suggested articles)",
              (Answer(200, "The desk's settings", DeskConfig),), public=True),
]
