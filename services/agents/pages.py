"""The agent desk (GET /desk): its files, served as they are.

The page is static (HTML, CSS and ES modules under static/desk/, see static/desk/main.js); no build
step. Its strings are one JSON file per language under static/locales/ (a translator edits those;
tests/unit/test_desk_locales.py keeps their keys in step). It asks for the agent's id and key (or takes `?agent_id=&token=`) and then talks only to this
origin: the REST API and the desk WebSocket.
"""

from pathlib import Path

from aiohttp import web

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

STATIC = Path(__file__).parent / "static"

DESK_MODULES = ("main", "api", "state", "dom", "format", "banners", "presence", "frames", "render",
                "list", "offers", "transcript", "labels", "composer", "transfer", "views", "peek", "contact",
                "lifecycle", "reload", "shortcuts", "notify", "canned", "files", "i18n")
LANGUAGES = ("en", "ru", "uk")  # the desk's locale files; desk/i18n.js offers the same (the unit test checks)
PAGE_FILES = (
    PageFile("/desk", "desk.html", HTML, "The agent desk page"),
    PageFile("/desk.css", "desk.css", CSS, "The agent desk's styles"),
    *(PageFile(f"/desk/{name}.js", f"desk/{name}.js", JS, f"The agent desk's {name} module") for name in DESK_MODULES),
    *locale_files(LANGUAGES, "The agent desk's"),
    PageFile("/favicon.svg", "favicon.svg", SVG, "The desk's icon"),
    PageFile("/favicon.ico", "favicon.svg", SVG, "The desk's icon, where browsers look for it unasked"),
)

# The page holds the agent's key: it runs only its own scripts and talks only to its own origin
# (REST and the WebSocket: 'self' covers ws: and wss: on the same host).
CONTENT_SECURITY_POLICY = content_security_policy()


def add_desk_routes(app: web.Application) -> None:
    """GET /desk and its files, and the shared /lib/ modules it imports (public: the page asks for the key itself)."""
    add_page_routes(app, STATIC, PAGE_FILES, lambda _: page_security_headers(CONTENT_SECURITY_POLICY))
    add_lib_routes(app)


PAGE_OPERATIONS = page_operations((*PAGE_FILES, *LIB_FILES))
