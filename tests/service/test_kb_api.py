"""The knowledge base's API through the real assist service and database: supervisors write articles,
agents read them, every change is checked, and workspaces never see each other's articles."""

from services.assist.app import create_app
from services.assist.settings import AssistSettings
from shared.tokens import issue_agent_token
from tests.conftest import auth, serve

BASE = "/v1/kb/articles"
ARTICLE = {"title": "Reset your password", "body": "Open **Settings**, then *Security*.", "language": "en",
           "tags": ["Account", "login"], "status": "published"}


def assist_app(names, **overrides):
    return create_app(names.settings(AssistSettings, **overrides))


async def test_a_supervisor_writes_articles_and_an_agent_reads_them(names):
    async with serve(assist_app(names)) as assist:
        created = await assist.post(BASE, json=ARTICLE, headers=auth())
        assert created.status == 201, await created.text()
        article = await created.json()
        assert article["tags"] == ["account", "login"] and article["status"] == "published"
        draft = await (await assist.post(BASE, json={**ARTICLE, "title": "Refunds", "status": "draft",
                                                     "language": "ru"}, headers=auth())).json()

        changed = await assist.put(f"{BASE}/{article['id']}", json={**ARTICLE, "title": "Reset a forgotten password"},
                                   headers=auth())
        assert changed.status == 200 and (await changed.json())["title"] == "Reset a forgotten password"

        token, _ = issue_agent_token("switchyard-dev-token-secret", "default", "ann")
        agent = {"Authorization": f"Bearer {token}"}
        listed = await (await assist.get(BASE, headers=agent)).json()
        assert [a["id"] for a in listed["articles"]] == [article["id"], draft["id"]]  # newest change first
        published = await (await assist.get(BASE, params={"status": "published"}, headers=agent)).json()
        assert [a["id"] for a in published["articles"]] == [article["id"]]
        russian = await (await assist.get(BASE, params={"language": "ru"}, headers=agent)).json()
        assert [a["id"] for a in russian["articles"]] == [draft["id"]]
        assert (await assist.post(BASE, json=ARTICLE, headers=agent)).status == 403  # writing is a supervisor's
        assert (await assist.delete(f"{BASE}/{article['id']}", headers=agent)).status == 403

        assert (await assist.delete(f"{BASE}/{article['id']}", headers=auth())).status == 204
        assert (await assist.get(f"{BASE}/{article['id']}", headers=auth())).status == 404
        assert (await assist.delete(f"{BASE}/{article['id']}", headers=auth())).status == 404


async def test_workspaces_do_not_see_each_others_articles(names):
    async with serve(assist_app(names)) as assist:
        mine = await (await assist.post(BASE, json=ARTICLE, headers=auth())).json()
        theirs = auth("other-key")
        assert (await (await assist.get(BASE, headers=theirs)).json())["articles"] == []
        assert (await assist.get(f"{BASE}/{mine['id']}", headers=theirs)).status == 404
        assert (await assist.put(f"{BASE}/{mine['id']}", json=ARTICLE, headers=theirs)).status == 404
        assert (await assist.delete(f"{BASE}/{mine['id']}", headers=theirs)).status == 404


async def test_bad_articles_are_refused_naming_the_problem(names):
    async with serve(assist_app(names, max_articles_per_workspace=1)) as assist:
        for body, field in [({**ARTICLE, "title": "   "}, "title"), ({**ARTICLE, "language": "de"}, "language"),
                            ({**ARTICLE, "tags": ["two\nlines"]}, "tags"), ({**ARTICLE, "status": "live"}, "status"),
                            ({**ARTICLE, "body": "x" * 50_001}, "body"), ({"body": "no title"}, "title")]:
            response = await assist.post(BASE, json=body, headers=auth())
            assert response.status == 422, (field, await response.text())
            assert field in await response.text()
        assert (await assist.post(BASE, data=b"\xff{", headers={**auth(), "Content-Type": "application/json"})).status == 400
        assert (await assist.post(BASE, json=ARTICLE, headers=auth())).status == 201
        full = await assist.post(BASE, json=ARTICLE, headers=auth())
        assert full.status == 409 and "at most 1" in await full.text()
        assert (await assist.get(BASE, params={"status": "gone"}, headers=auth())).status == 400
        assert (await assist.get(BASE)).status == 401


async def test_search_finds_published_articles_in_each_language_and_follows_every_change(names):
    async with serve(assist_app(names)) as assist:
        async def search(q: str, key: str = "test-key", **params) -> list[dict]:
            response = await assist.get("/v1/kb/search", params={"q": q, **params}, headers=auth(key))
            assert response.status == 200, await response.text()
            return (await response.json())["hits"]

        assert await search("password") == []  # nothing written yet
        english = await (await assist.post(BASE, json=ARTICLE, headers=auth())).json()
        delivery = await (await assist.post(BASE, json={
            "title": "Где мой заказ", "body": "Отследить **посылку** можно в разделе «Заказы».", "language": "ru",
            "tags": ["доставка"], "status": "published"}, headers=auth())).json()
        await assist.post(BASE, json={**ARTICLE, "title": "Password policy (draft)", "status": "draft"}, headers=auth())

        hits = await search("I forgot my password")
        assert [h["id"] for h in hits][:1] == [english["id"]]
        assert all(h["title"] != "Password policy (draft)" for h in hits)  # drafts are not searched
        assert hits[0]["excerpt"] == "Open Settings, then Security." and 0 <= hits[0]["score"] <= 1
        assert (await search("где посылка"))[0]["id"] == delivery["id"]

        # A change is searched at once: the index follows the workspace's version.
        await assist.put(f"{BASE}/{delivery['id']}", json={"title": "Возврат денег", "body": "Деньги вернутся за 5 дней.",
                                                           "language": "ru", "status": "published"}, headers=auth())
        assert (await search("когда вернут деньги"))[0]["id"] == delivery["id"]
        await assist.delete(f"{BASE}/{english['id']}", headers=auth())
        assert all(h["id"] != english["id"] for h in await search("I forgot my password"))

        assert await search("password", key="other-key") == []  # another workspace's articles
        token, _ = issue_agent_token("switchyard-dev-token-secret", "default", "ann")
        agent = await assist.get("/v1/kb/search", params={"q": "деньги"}, headers={"Authorization": f"Bearer {token}"})
        assert agent.status == 200  # agent assist on the desk
        for params in ({}, {"q": ""}, {"q": "   "}, {"q": "x" * 501}, {"q": "a", "limit": "0"},
                       {"q": "a", "language": "de"}):
            response = await assist.get("/v1/kb/search", params=params, headers=auth())
            assert response.status == 400, (params, await response.text())
