"""Static page files (HTML, CSS, ES modules, icons) served as they are, each its own public route.

Both pages (the agents service's desk, reporting's supervisor page) list their files as PageFile
tuples; the same tuple gives the routes and the operations /openapi.json declares, so a file
cannot be served without being declared. No build step: what is on disk is what the browser gets.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web

from shared.web import Answer, Operation

HTML, CSS, JS, SVG, JSON = "text/html", "text/css", "text/javascript", "image/svg+xml", "application/json"
# Modules more than one page uses (the reconnecting socket, translations), served at /lib/ by each
# service that serves a page, so a page imports them from its own origin under its strict CSP.
SHARED_STATIC = Path(__file__).parent / "static"


@dataclass(frozen=True)
class PageFile:
    path: str  # where it is served
    file: str  # under the page's static directory
    media_type: str
    summary: str


LIB_FILES = (
    PageFile("/lib/socket.js", "socket.js", JS, "The pages' reconnecting WebSocket module"),
    PageFile("/lib/i18n.js", "i18n.js", JS, "The pages' translation and locale formatting module"),
    PageFile("/lib/dom.js", "dom.js", JS, "The supervisor pages' DOM helpers"),
    PageFile("/lib/key.js", "key.js", JS, "The supervisor pages' sign-in key: from the address, else kept"),
)


def _file_handler(path: Path, media_type: str, security: Callable[[web.Request], dict[str, str]]):
    async def handler(request: web.Request) -> web.FileResponse:
        headers = {"Content-Type": f"{media_type}; charset=utf-8", "Cache-Control": "no-cache",
                   "X-Content-Type-Options": "nosniff"}
        if media_type == HTML:
            headers.update(security(request))
        return web.FileResponse(path, headers=headers)

    return handler


def content_security_policy(*, connect_src: str = "'self'", frame_ancestors: str = "'none'") -> str:
    """The pages' policy: only their own scripts and styles; they talk to `connect_src` and may be framed by
    `frame_ancestors` (the desk and the supervisor page by nobody, the chat by any site: the widget)."""
    return ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
            f"connect-src {connect_src}; frame-ancestors {frame_ancestors}; base-uri 'none'; form-action 'self'")


def locale_files(languages: Iterable[str], whose: str) -> tuple[PageFile, ...]:
    """A page's strings, one JSON file per language at /locales/<lang>.json (static/locales/)."""
    return tuple(PageFile(f"/locales/{lang}.json", f"locales/{lang}.json", JSON, f"{whose} strings in {lang}")
                 for lang in languages)


def page_security_headers(content_security_policy: str) -> dict[str, str]:
    """The headers of a page that holds a key: its policy, and no Referer (the key may be in the URL)."""
    return {"Content-Security-Policy": content_security_policy, "Referrer-Policy": "no-referrer"}


def add_page_routes(app: web.Application, static: Path, files: Iterable[PageFile],
                    security: Callable[[web.Request], dict[str, str]]) -> None:
    """GET each file at its path; an HTML file also gets security(request) as headers."""
    for page_file in files:
        app.router.add_get(page_file.path, _file_handler(static / page_file.file, page_file.media_type, security))


def add_lib_routes(app: web.Application) -> None:
    """GET /lib/*.js: the modules pages share (scripts, so no page headers)."""
    add_page_routes(app, SHARED_STATIC, LIB_FILES, lambda _: {})


# A locale file: keys to texts, or to plural forms of a text ({"one": ..., "other": ...}).
STRINGS_SCHEMA = {"type": "object", "additionalProperties": {
    "anyOf": [{"type": "string"}, {"type": "object", "additionalProperties": {"type": "string"}}]}}


def page_operations(files: Iterable[PageFile]) -> list[Operation]:
    return [Operation("GET", f.path, f.summary, (Answer(200, "The file", media_type=f.media_type,
                                                        schema=STRINGS_SCHEMA if f.media_type == JSON else None),),
                      public=True)
            for f in files]
