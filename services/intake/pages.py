"""The customer chat page (GET /chat) and its files, served as they are (no build step).

The page is static: chat.html, chat.css, ES modules under static/chat/ over the shared /lib/ modules
(the reconnecting socket and translations), and one JSON file of strings per language under
static/locales/ (a translator edits those; tests/unit/test_chat_locales.py keeps their keys in step).
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
    content_security_policy,
    locale_files,
    page_operations,
    page_security_headers,
)

STATIC = Path(__file__).parent / "static"
CHAT_MODULES = ("main", "state", "view", "connection", "frames", "survey", "choices", "composer", "offline")
LANGUAGES = ("en", "ru", "uk")
PAGE_FILES = (
    PageFile("/chat", "chat.html", HTML, "The web chat page"),
    PageFile("/chat.css", "chat.css", CSS, "The web chat's styles"),
    *(PageFile(f"/chat/{name}.js", f"chat/{name}.js", JS, f"The web chat's {name} module") for name in CHAT_MODULES),
    *locale_files(LANGUAGES, "The web chat's"),
    PageFile("/widget.js", "widget.js", JS, "The embeddable chat: a launcher button and the chat, for any site"),
)

# The page runs only its own scripts and talks only to its own origin. Any site may frame it: that
# is how the embeddable widget shows it (the page holds nothing but the customer's own chat).
CONTENT_SECURITY_POLICY = content_security_policy(frame_ancestors="*")


def add_chat_routes(app: web.Application) -> None:
    """GET /chat, its files and the shared /lib/ modules (public: a customer has no key)."""
    add_page_routes(app, STATIC, PAGE_FILES, lambda _: page_security_headers(CONTENT_SECURITY_POLICY))
    add_lib_routes(app)


PAGE_OPERATIONS = page_operations((*PAGE_FILES, *LIB_FILES))
