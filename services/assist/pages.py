"""The files of assist's pages (the public help center, the supervisors' article editor and incidents page),
served as they are.

No build step: HTML, CSS and ES modules under static/, the help center's strings one JSON file per
language under static/locales/ (tests/unit/test_help_locales.py keeps their keys in step), and the
shared /lib/ modules (translations). The supervisors' pages share their sign-in and API calls
(static/session.js, static/api.js). The HTML of the help center is served by help_center.py (its
paths hold the workspace); the editor's by editor.py, the incidents page's by incidents/page.py.
"""

from pathlib import Path

from aiohttp import web

from shared.pages import (
    CSS,
    HTML,
    JS,
    LIB_FILES,
    PageFile,
    add_lib_routes,
    add_page_routes,
    locale_files,
    page_operations,
)
from shared.web import Operation

STATIC = Path(__file__).parent / "static"
LANGUAGES = ("en", "ru", "uk")  # the help center's locale files; static/help/language.js offers the same
HELP_MODULES = ("api", "language", "list", "search", "article", "main")
KB_MODULES = ("api", "list", "form", "main")
INCIDENT_MODULES = ("api", "list", "detail", "dialogs", "main")
ASSET_FILES = (
    PageFile("/assist/dom.js", "dom.js", JS, "The pages' DOM helpers"),
    PageFile("/assist/api.js", "api.js", JS, "The supervisors' pages' calls to the service"),
    PageFile("/assist/session.js", "session.js", JS, "The supervisors' pages' sign-in with the workspace key"),
    PageFile("/assist/help.css", "help.css", CSS, "The help center's styles"),
    *(PageFile(f"/assist/help/{name}.js", f"help/{name}.js", JS, f"The help center's {name} module")
      for name in HELP_MODULES),
    *locale_files(LANGUAGES, "The help center's"),
    PageFile("/assist/kb.css", "kb.css", CSS, "The article editor's styles"),
    *(PageFile(f"/assist/kb/{name}.js", f"kb/{name}.js", JS, f"The article editor's {name} module")
      for name in KB_MODULES),
    PageFile("/assist/incidents.css", "incidents.css", CSS, "The incidents page's styles"),
    *(PageFile(f"/assist/incidents/{name}.js", f"incidents/{name}.js", JS, f"The incidents page's {name} module")
      for name in INCIDENT_MODULES),
)


def html_response(file: str, security_headers: dict[str, str]) -> web.FileResponse:
    """One of the pages' HTML files, with the headers every page gets and its own security headers."""
    headers = {"Content-Type": f"{HTML}; charset=utf-8", "Cache-Control": "no-cache",
               "X-Content-Type-Options": "nosniff", **security_headers}
    return web.FileResponse(STATIC / file, headers=headers)


def add_asset_routes(app: web.Application) -> None:
    """GET the pages' scripts, styles and strings, and the shared /lib/ modules (scripts: no page headers)."""
    add_page_routes(app, STATIC, ASSET_FILES, lambda _: {})
    add_lib_routes(app)


ASSET_OPERATIONS: list[Operation] = page_operations((*ASSET_FILES, *LIB_FILES))
