"""The supervisor page is served by reporting (its files, with their types and no key), and the agents API
answers the page's cross-origin calls (CORS) for the configured origins only."""

import re

import pytest

from services.agents.app import create_app as create_agents
from services.agents.settings import AgentsSettings
from services.reporting.app import create_app as create_reporting
from services.reporting.pages import PAGE_FILES, STATIC
from services.reporting.settings import ReportingSettings
from tests.conftest import Names, auth, serve

AGENTS_URL = "http://agents.example:8082"
PAGE_ORIGIN = "http://supervisor.example:8083"


async def test_the_page_and_its_files_are_served_with_their_types_and_without_a_key(names: Names):
    async with serve(create_reporting(names.settings(ReportingSettings, agents_url=AGENTS_URL + "/"))) as reporting:
        page = await reporting.get("/supervisor")
        assert page.status == 200
        assert page.content_type == "text/html"
        assert AGENTS_URL in page.headers["Content-Security-Policy"]  # the page may call agents, nothing else
        assert "script-src 'self'" in page.headers["Content-Security-Policy"]
        for page_file in PAGE_FILES:
            response = await reporting.get(page_file.path)
            assert response.status == 200, page_file.path
            assert response.content_type == page_file.media_type, page_file.path
            assert await response.read() == (STATIC / page_file.file).read_bytes()
        config = await reporting.get("/supervisor/config.json")
        assert (config.status, await config.json()) == (200, {"agents_url": AGENTS_URL})
        assert (await reporting.get("/supervisor/nothing.js")).status == 404
        # The page's data still takes the key.
        assert (await reporting.get("/v1/reports/live")).status == 401
        assert (await reporting.get("/v1/reports/live", headers=auth())).status == 200


def test_everything_the_page_loads_is_served():
    """Each file the HTML names and each module a module imports is one of the served files."""
    served = {page_file.path for page_file in PAGE_FILES}
    html = (STATIC / "supervisor.html").read_text()
    wanted = set(re.findall(r'(?:src|href)="(/supervisor/[^"]+)"', html))
    for module in (STATIC / "js").glob("*.js"):
        wanted |= {f"/supervisor/js/{name}" for name in re.findall(r'from "\./([^"]+)"', module.read_text())}
    assert wanted and wanted <= served, wanted - served
    on_disk = {f"/supervisor/js/{path.name}" for path in (STATIC / "js").glob("*.js")}
    assert on_disk <= served, on_disk - served


def preflight(origin: str, method: str = "PUT", headers: str = "authorization,content-type") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}


async def test_the_agents_api_answers_cors_for_the_configured_origins_only(names: Names):
    settings = names.settings(AgentsSettings, cors_origins=f"{PAGE_ORIGIN},http://localhost:8083")
    async with serve(create_agents(settings)) as agents:
        allowed = await agents.options("/v1/agents/ann/status", headers=preflight(PAGE_ORIGIN))
        assert allowed.status == 200
        assert allowed.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN
        assert "Access-Control-Allow-Credentials" not in allowed.headers
        assert {h.strip().lower() for h in allowed.headers["Access-Control-Allow-Headers"].split(",")} >= {
            "authorization", "content-type"}
        assert "PUT" in allowed.headers["Access-Control-Allow-Methods"]
        transfer = await agents.options("/v1/conversations/c1/transfer", headers=preflight(PAGE_ORIGIN, "POST"))
        assert transfer.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN

        for refused in (preflight("http://evil.example"), preflight(PAGE_ORIGIN, "DELETE"),
                        preflight(PAGE_ORIGIN, headers="x-secret")):
            response = await agents.options("/v1/agents/ann/status", headers=refused)
            assert response.status == 403, refused
            assert "Access-Control-Allow-Origin" not in response.headers
            assert (await response.json())["error"]["status"] == 403

        # The calls themselves: an allowed origin can read the answer, errors included (the page shows
        # the service's message); another origin gets no CORS header, so its browser reads nothing.
        await agents.put("/v1/agents/ann", json={"name": "Ann", "skills": {}, "max_conversations": 2}, headers=auth())
        ok = await agents.put("/v1/agents/ann/status", json={"status": "away"},
                              headers={**auth(), "Origin": PAGE_ORIGIN})
        assert ok.status == 200 and ok.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN
        missing = await agents.post("/v1/conversations/nope/transfer", json={"to_queue": "billing"},
                                    headers={**auth(), "Origin": PAGE_ORIGIN})
        assert missing.status == 404 and missing.headers["Access-Control-Allow-Origin"] == PAGE_ORIGIN
        assert (await missing.json())["error"]["message"]
        other = await agents.get("/v1/agents/ann", headers={**auth(), "Origin": "http://evil.example"})
        assert other.status == 200 and "Access-Control-Allow-Origin" not in other.headers


async def test_without_configured_origins_the_agents_api_has_no_cors(names: Names):
    async with serve(create_agents(names.settings(AgentsSettings))) as agents:
        response = await agents.options("/v1/agents/ann/status", headers=preflight(PAGE_ORIGIN))
        assert response.status == 405
        assert "Access-Control-Allow-Origin" not in response.headers


def test_a_wildcard_or_a_path_is_not_an_origin():
    for bad in ("*", "http://x.example/path", "x.example", "http://*.example"):
        with pytest.raises(ValueError):
            AgentsSettings(cors_origins=bad)
    assert AgentsSettings(cors_origins=" http://a.example:1/ ,http://b.example").cors_origins == (
        "http://a.example:1", "http://b.example")
