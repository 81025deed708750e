"""The customer chat is served by intake as static files (the page, its styles, its ES modules, its
strings, the shared /lib/ modules), each with its type and without a key; everything the page loads is
one of them, and the page holds no inline code for its strict policy to refuse."""

import re

from services.intake.app import create_app as create_intake
from services.intake.pages import PAGE_FILES, STATIC
from services.intake.settings import IntakeSettings
from shared.pages import LIB_FILES, SHARED_STATIC
from tests.conftest import Names, serve

MODULES = STATIC / "chat"


async def test_the_chat_and_its_files_are_served_with_their_types_and_without_a_key(names: Names):
    async with serve(create_intake(names.settings(IntakeSettings))) as intake:
        page = await intake.get("/chat")
        assert page.status == 200 and page.content_type == "text/html"
        policy = page.headers["Content-Security-Policy"]
        assert "script-src 'self';" in policy and "style-src 'self';" in policy and "connect-src 'self';" in policy
        for page_file, root in [*((f, STATIC) for f in PAGE_FILES), *((f, SHARED_STATIC) for f in LIB_FILES)]:
            response = await intake.get(page_file.path)
            assert response.status == 200, page_file.path
            assert response.content_type == page_file.media_type, page_file.path
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert await response.read() == (root / page_file.file).read_bytes()
        assert (await intake.get("/chat/nothing.js")).status == 404
        assert (await intake.get("/locales/xx.json")).status == 404


def test_everything_the_chat_loads_is_served_and_nothing_is_inline():
    served = {page_file.path for page_file in (*PAGE_FILES, *LIB_FILES)}
    html = (STATIC / "chat.html").read_text()
    wanted = set(re.findall(r'(?:src|href)="(/[^"]+)"', html))
    assert {"/chat.css", "/chat/main.js"} <= wanted
    assert "<style" not in html and "<script>" not in html and " style=" not in html
    for module in MODULES.glob("*.js"):
        source = module.read_text()
        wanted |= {f"/chat/{name}" for name in re.findall(r'from "\./([^"]+)"', source)}
        wanted |= set(re.findall(r'from "(/lib/[^"]+)"', source))
    assert wanted <= served, wanted - served
    on_disk = {f"/chat/{path.name}" for path in MODULES.glob("*.js")}
    assert on_disk <= served, on_disk - served
    languages = {f"/locales/{path.name}" for path in (STATIC / "locales").glob("*.json")}
    assert languages <= served, languages - served
