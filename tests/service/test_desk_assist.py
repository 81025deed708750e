"""Suggested articles on the desk (docs/desk.md): the desk's config names assist, its policy lets the page
call it, and assist answers the desk's origin (CORS) on the desk's calls only, with an agent's token."""

from services.agents.app import create_app as create_agents
from services.agents.settings import AgentsSettings
from services.assist.app import create_app as create_assist
from services.assist.settings import AssistSettings
from shared.tokens import issue_agent_token
from tests.conftest import Names, auth, serve

ASSIST_URL = "https://help.example:8443"
DESK_ORIGIN = "http://desk.example:8082"
ARTICLE = {"title": "Reset your password", "body": "Open **Settings**, then *Security*, then *Reset password*.",
           "language": "en", "tags": ["account"], "status": "published"}


def preflight(origin: str, method: str = "GET", headers: str = "authorization") -> dict[str, str]:
    return {"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers}


def agent_token() -> dict[str, str]:
    token, _ = issue_agent_token("switchyard-dev-token-secret", "default", "ann")
    return {"Authorization": f"Bearer {token}"}


async def test_the_desk_config_names_assist_and_its_policy_lets_the_page_call_it(names: Names):
    async with serve(create_agents(names.settings(AgentsSettings, assist_url=ASSIST_URL + "/"))) as agents:
        config = await agents.get("/desk/config.json")
        assert (config.status, await config.json()) == (200, {"assist_url": ASSIST_URL})
        policy = (await agents.get("/desk")).headers["Content-Security-Policy"]
        assert f"connect-src 'self' {ASSIST_URL};" in policy
        declared = (await (await agents.get("/openapi.json")).json())["paths"]
        assert "/desk/config.json" in declared


async def test_the_default_assist_url_is_where_assist_listens(names: Names):
    async with serve(create_agents(names.settings(AgentsSettings))) as agents:
        assert await (await agents.get("/desk/config.json")).json() == {"assist_url": "http://127.0.0.1:8084"}


async def test_assist_answers_the_desks_origin_on_the_desks_calls_only(names: Names):
    settings = names.settings(AssistSettings, cors_origins=f"{DESK_ORIGIN},http://localhost:8082",
                              public_url="https://help.example/")
    async with serve(create_assist(settings)) as assist:
        article = await (await assist.post("/v1/kb/articles", json=ARTICLE, headers=auth())).json()

        for path in ("/v1/kb/search?q=password", "/v1/kb/help"):
            allowed = await assist.options(path, headers=preflight(DESK_ORIGIN))
            assert allowed.status == 200, path
            assert allowed.headers["Access-Control-Allow-Origin"] == DESK_ORIGIN
            assert "Access-Control-Allow-Credentials" not in allowed.headers
            assert "authorization" in allowed.headers["Access-Control-Allow-Headers"].lower()
            assert "GET" in allowed.headers["Access-Control-Allow-Methods"]

        for refused in (preflight("http://evil.example"), preflight(DESK_ORIGIN, "DELETE"),
                        preflight(DESK_ORIGIN, headers="x-secret")):
            response = await assist.options("/v1/kb/search?q=password", headers=refused)
            assert response.status == 403, refused
            assert "Access-Control-Allow-Origin" not in response.headers
            assert (await response.json())["error"]["status"] == 403
        # The supervisors' calls stay same-origin: no CORS answer for the desk's origin there.
        writing = await assist.options("/v1/kb/articles", headers=preflight(DESK_ORIGIN, "POST", "authorization,content-type"))
        assert "Access-Control-Allow-Origin" not in writing.headers

        # The calls themselves, with an agent's token from the desk's origin: readable there, not elsewhere.
        found = await assist.get("/v1/kb/search", params={"q": "how do I reset my password"},
                                 headers={**agent_token(), "Origin": DESK_ORIGIN})
        assert found.status == 200 and found.headers["Access-Control-Allow-Origin"] == DESK_ORIGIN
        hits = (await found.json())["hits"]
        assert hits[0]["id"] == article["id"] and hits[0]["title"] == ARTICLE["title"]
        where = await assist.get("/v1/kb/help", headers={**agent_token(), "Origin": DESK_ORIGIN})
        assert where.status == 200 and where.headers["Access-Control-Allow-Origin"] == DESK_ORIGIN
        assert await where.json() == {"workspace_id": "default", "path": "/help/default",
                                      "url": "https://help.example/help/default"}
        bad = await assist.get("/v1/kb/search", params={"q": " "}, headers={**agent_token(), "Origin": DESK_ORIGIN})
        assert bad.status == 400 and bad.headers["Access-Control-Allow-Origin"] == DESK_ORIGIN  # the desk reads why
        other = await assist.get("/v1/kb/search", params={"q": "password"},
                                 headers={**agent_token(), "Origin": "http://evil.example"})
        assert "Access-Control-Allow-Origin" not in other.headers
        # An agent's token still may not write.
        assert (await assist.post("/v1/kb/articles", json=ARTICLE, headers=agent_token())).status == 403


async def test_without_origins_assist_answers_no_cors(names: Names):
    async with serve(create_assist(names.settings(AssistSettings))) as assist:
        response = await assist.get("/v1/kb/search", params={"q": "password"},
                                    headers={**agent_token(), "Origin": DESK_ORIGIN})
        assert response.status == 200 and "Access-Control-Allow-Origin" not in response.headers
