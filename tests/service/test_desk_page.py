"""The agent desk is served by agents as static files (the page, its styles, its ES modules, its icon),
each with its type and without a key, and everything the page loads is one of them."""

import re

from services.agents.app import create_app as create_agents
from services.agents.pages import PAGE_FILES, STATIC
from services.agents.settings import AgentsSettings
from tests.conftest import Names, serve

MODULES = STATIC / "desk"


async def test_the_desk_and_its_files_are_served_with_their_types_and_without_a_key(names: Names):
    async with serve(create_agents(names.settings(AgentsSettings))) as agents:
        page = await agents.get("/desk")
        assert page.status == 200
        assert page.content_type == "text/html"
        policy = page.headers["Content-Security-Policy"]
        # its own origin, and assist's (suggested articles: tests/service/test_desk_assist.py)
        assert "script-src 'self'" in policy and "connect-src 'self' http://127.0.0.1:8084;" in policy
        assert page.headers["Referrer-Policy"] == "no-referrer"
        for page_file in PAGE_FILES:
            response = await agents.get(page_file.path)
            assert response.status == 200, page_file.path
            assert response.content_type == page_file.media_type, page_file.path
            assert response.headers["X-Content-Type-Options"] == "nosniff"
            assert await response.read() == (STATIC / page_file.file).read_bytes()
        served = {f.path: f.media_type for f in PAGE_FILES}
        assert served["/desk.css"] == "text/css"
        assert served["/favicon.ico"] == served["/favicon.svg"] == "image/svg+xml"
        assert all(served[f"/desk/{path.name}"] == "text/javascript" for path in MODULES.glob("*.js"))
        assert (await agents.get("/desk/nothing.js")).status == 404
        # The desk's data still takes the key.
        assert (await agents.get("/v1/conversations")).status == 401


def test_everything_the_desk_loads_is_served():
    """Each file the HTML names, each module a module imports and each module on disk is a served file."""
    served = {page_file.path for page_file in PAGE_FILES}
    html = (STATIC / "desk.html").read_text()
    wanted = set(re.findall(r'(?:src|href)="(/[^"]+)"', html))
    assert {"/desk.css", "/desk/main.js", "/favicon.svg"} <= wanted
    assert "<style" not in html and "<script>" not in html  # the policy allows no inline code
    for module in MODULES.glob("*.js"):
        imports = re.findall(r'from "\./([^"]+)"', module.read_text())
        wanted |= {f"/desk/{name}" for name in imports}
    assert wanted <= served, wanted - served
    on_disk = {f"/desk/{path.name}" for path in MODULES.glob("*.js")}
    assert on_disk <= served, on_disk - served
