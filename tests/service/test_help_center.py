"""The public help center and the editor's preview through the real assist service and database: only
published articles of the workspace in the path are ever shown, a body's raw HTML comes out escaped,
anything unknown or malformed is a JSON 404 (never a 500), and the pages and their files are served."""

import pytest

from services.assist.app import create_app
from services.assist.pages import ASSET_FILES
from services.assist.settings import AssistSettings
from shared.pages import LIB_FILES
from tests.conftest import auth, serve
from tests.service.test_openapi_contract import undeclared_routes

ARTICLES = "/v1/kb/articles"
HELP = "/v1/help/default/articles"
PUBLISHED = {"title": "Reset your password", "body": "Open **Settings**.\n\n<script>alert('x')</script>\n\n"
             "[Status](https://status.example.com) and [bad](javascript:alert(1))",
             "language": "en", "tags": ["account"], "status": "published"}
DRAFT = {**PUBLISHED, "title": "Refunds (not yet)", "status": "draft", "language": "ru"}


def assist_app(names):
    return create_app(names.settings(AssistSettings))


async def write(assist, article, key="test-key"):
    response = await assist.post(ARTICLES, json=article, headers=auth(key))
    assert response.status == 201, await response.text()
    return await response.json()


async def not_found(response) -> str:
    """The JSON 404 body's message (and that it is one)."""
    assert response.status == 404, await response.text()
    assert response.content_type == "application/json"
    return (await response.json())["error"]["message"]


async def test_only_published_articles_of_the_workspace_are_public(names):
    async with serve(assist_app(names)) as assist:
        published = await write(assist, PUBLISHED)
        russian = await write(assist, {**PUBLISHED, "title": "Сброс пароля", "language": "ru",
                                       "body": "Откройте " * 80})
        draft = await write(assist, DRAFT)
        theirs = await write(assist, {**PUBLISHED, "title": "Theirs"}, key="other-key")

        listed = await assist.get(HELP)  # no key
        assert listed.status == 200 and listed.headers["Access-Control-Allow-Origin"] == "*"
        articles = (await listed.json())["articles"]
        assert [a["id"] for a in articles] == [russian["id"], published["id"]]  # newest change first
        assert set(articles[1]) == {"id", "title", "language", "tags", "excerpt", "updated_at"}
        assert articles[1]["excerpt"].startswith("Open Settings. <script>alert('x')</script> Status and")
        assert len(articles[0]["excerpt"]) <= 201 and articles[0]["excerpt"].endswith("…")
        in_russian = (await (await assist.get(HELP, params={"language": "ru"})).json())["articles"]
        assert [a["id"] for a in in_russian] == [russian["id"]]
        assert (await assist.get(HELP, params={"language": "de"})).status == 400

        one = await assist.get(f"{HELP}/{published['id']}")
        assert one.status == 200, await one.text()
        article = await one.json()
        assert article["title"] == "Reset your password" and "body" not in article
        assert "<strong>Settings</strong>" in article["html"]

        assert "does not exist" in await not_found(await assist.get(f"{HELP}/{draft['id']}"))
        assert draft["id"] not in str(articles)
        await not_found(await assist.get(f"{HELP}/{theirs['id']}"))  # another workspace's, through this one
        other = (await (await assist.get("/v1/help/other/articles")).json())["articles"]
        assert [a["id"] for a in other] == [theirs["id"]]

        # Unpublished later: gone from the help center at once.
        await assist.put(f"{ARTICLES}/{published['id']}", json={**PUBLISHED, "status": "draft"}, headers=auth())
        await not_found(await assist.get(f"{HELP}/{published['id']}"))
        await not_found(await assist.get(f"/help/default/articles/{published['id']}"))


async def test_raw_html_in_a_body_is_escaped_and_unsafe_links_are_not_links(names):
    async with serve(assist_app(names)) as assist:
        article = await (await assist.get(f"{HELP}/{(await write(assist, PUBLISHED))['id']}")).json()
        html = article["html"]
        assert "<script>" not in html and "&lt;script&gt;alert(" in html
        assert 'href="javascript' not in html and "[bad](javascript:alert(1))" in html  # left as text
        assert ('<a href="https://status.example.com" target="_blank" rel="noopener noreferrer nofollow ugc">'
                in html)


@pytest.mark.parametrize("path", [
    "/v1/help/nobody/articles",                      # no such workspace
    "/v1/help/bad%20space/articles",                 # not a workspace id
    "/v1/help/" + "w" * 65 + "/articles",             # too long to be one
    "/v1/help/default/articles/not-an-id",
    "/v1/help/default/articles/" + "0" * 32,         # well-formed, no such article
    "/v1/help/nobody/articles/" + "0" * 32,
    "/v1/help/default/articles/%00",
    "/help/nobody", "/help/b%C3%A4d", "/help/default/articles/nope", "/help/nobody/articles/" + "0" * 32,
])
async def test_unknown_or_malformed_places_are_a_json_404(names, path):
    async with serve(assist_app(names)) as assist:
        await not_found(await assist.get(path))


async def test_the_preview_renders_as_the_help_center_does_and_needs_a_supervisor(names):
    async with serve(assist_app(names)) as assist:
        answer = await assist.post("/v1/kb/preview", json={"markdown": "# Hi\n\n<b>x</b> *y*"}, headers=auth())
        assert answer.status == 200, await answer.text()
        assert await answer.json() == {"html": "<h2>Hi</h2>\n<p>&lt;b&gt;x&lt;/b&gt; <em>y</em></p>\n"}
        assert (await assist.post("/v1/kb/preview", json={"markdown": "x"})).status == 401
        too_long = await assist.post("/v1/kb/preview", json={"markdown": "x" * 50_001}, headers=auth())
        assert too_long.status == 422 and "markdown" in await too_long.text()
        assert (await assist.post("/v1/kb/preview", json={"text": "x"}, headers=auth())).status == 422
        where = await (await assist.get("/v1/kb/help", headers=auth("other-key"))).json()
        assert where == {"workspace_id": "other", "path": "/help/other", "url": "http://127.0.0.1:8084/help/other"}


async def test_the_pages_and_their_files_are_served_and_declared(names):
    async with serve(assist_app(names)) as assist:
        for path, policy in [("/help/default", "frame-ancestors *"), ("/kb", "frame-ancestors 'none'")]:
            page = await assist.get(path)
            assert page.status == 200 and page.content_type == "text/html"
            assert policy in page.headers["Content-Security-Policy"]
        article = await write(assist, PUBLISHED)
        assert (await assist.get(f"/help/default/articles/{article['id']}")).status == 200
        for page_file in (*ASSET_FILES, *LIB_FILES):
            served = await assist.get(page_file.path)
            assert served.status == 200 and served.content_type == page_file.media_type, page_file.path
        document = await (await assist.get("/openapi.json")).json()
        assert not undeclared_routes(assist.app, document), undeclared_routes(assist.app, document)
        assert document["paths"]["/v1/help/{workspace}/articles"]["get"]["security"] == []
