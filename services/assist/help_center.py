"""The public help center: a workspace's published articles, for anyone, as JSON and as pages.

`/v1/help/{workspace}/...` needs no key (the app's PUBLIC_PREFIXES): it shows only published articles
of a workspace that exists (one with a key), and answers a JSON 404 for anything else, so a draft,
another workspace's article and a workspace that is not there all look the same. Any origin may read
it (a site's own widget asks from the customer's page). The pages, /help/{workspace} and
/help/{workspace}/articles/{id}, are static HTML whose modules read that JSON.
"""

import re

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from services.assist.kb import LANGUAGES, Language
from services.assist.kb_api import KB, LIMIT, QUERY, SEARCH_LANGUAGE, SearchResult, search_hits
from services.assist.pages import html_response
from services.assist.rendering import excerpt, to_html
from shared.pages import HTML, content_security_policy, page_security_headers
from shared.web import API_KEYS, Answer, Operation, Timestamp, choice_query, http_error, path_parameter

# Workspace ids as the other services' ids in a path (an agent's, a canned response's owner).
WORKSPACE_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
ARTICLE_ID_PATTERN = r"^[0-9a-f]{32}$"  # shared.models.new_id()
WORKSPACE_PARAMETER = path_parameter("workspace", "The workspace whose help center it is", pattern=WORKSPACE_PATTERN,
                           example="default")
ARTICLE_ID = path_parameter("article_id", "The article's id", pattern=ARTICLE_ID_PATTERN)
LANGUAGE = choice_query("language", "Only articles in this language", LANGUAGES)
ARTICLES, ARTICLE = "/v1/help/{workspace}/articles", "/v1/help/{workspace}/articles/{article_id}"
SEARCH = "/v1/help/{workspace}/search"
LIST_PAGE, ARTICLE_PAGE = "/help/{workspace}", "/help/{workspace}/articles/{article_id}"
_WORKSPACE, _ARTICLE_ID = re.compile(WORKSPACE_PATTERN), re.compile(ARTICLE_ID_PATTERN)

# Its pages hold nothing private: any site may frame them (beside its chat widget, say).
CONTENT_SECURITY_POLICY = content_security_policy(frame_ancestors="*")


class PublicArticleSummary(BaseModel):
    """A published article as the help center lists it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    language: Language
    tags: list[str]
    excerpt: str  # the body's first words, as plain text
    updated_at: Timestamp


class PublicArticleList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    articles: list[PublicArticleSummary]


class PublicArticle(BaseModel):
    """A published article, its body rendered as HTML (raw HTML in the Markdown escaped)."""

    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    language: Language
    tags: list[str]
    html: str
    updated_at: Timestamp


def _workspace(request: web.Request) -> str:
    """The path's workspace if it is one with a key, else a JSON 404 (a malformed one too)."""
    workspace_id = WORKSPACE_PARAMETER.raw(request) or ""
    if not _WORKSPACE.fullmatch(workspace_id) or workspace_id not in request.app[API_KEYS].values():
        raise http_error(web.HTTPNotFound, "no help center here: unknown workspace", parameter=WORKSPACE_PARAMETER.name)
    return workspace_id


async def _published(request: web.Request) -> dict:
    workspace_id = _workspace(request)
    article_id = ARTICLE_ID.raw(request) or ""
    doc = await request.app[KB].get(workspace_id, article_id) if _ARTICLE_ID.fullmatch(article_id) else None
    if doc is None or doc["status"] != "published":
        raise http_error(web.HTTPNotFound, "article does not exist", parameter=ARTICLE_ID.name)
    return doc


def _public(body: BaseModel) -> web.Response:
    """JSON any origin may read; never cached without asking (an article may be unpublished at any time)."""
    return web.Response(body=body.model_dump_json(), content_type="application/json",
                        headers={"Access-Control-Allow-Origin": "*", "Cache-Control": "no-cache"})


async def list_published(request: web.Request) -> web.Response:
    language = LANGUAGE.choice(request)
    docs = await request.app[KB].find(_workspace(request), status="published", language=language)
    return _public(PublicArticleList(articles=[
        PublicArticleSummary(id=d["_id"], title=d["title"], language=d["language"], tags=d["tags"],
                             excerpt=excerpt(d["body"]), updated_at=d["updated_at"]) for d in docs]))


async def get_published(request: web.Request) -> web.Response:
    doc = await _published(request)
    return _public(PublicArticle(id=doc["_id"], title=doc["title"], language=doc["language"], tags=doc["tags"],
                                 html=to_html(doc["body"]), updated_at=doc["updated_at"]))


async def search_published(request: web.Request) -> web.Response:
    return _public(await search_hits(request, _workspace(request)))


async def list_page(request: web.Request) -> web.FileResponse:
    _workspace(request)
    return html_response("help.html", page_security_headers(CONTENT_SECURITY_POLICY))


async def article_page(request: web.Request) -> web.FileResponse:
    await _published(request)  # a link to a draft or a removed article is a 404, not an empty page
    return html_response("article.html", page_security_headers(CONTENT_SECURITY_POLICY))


def add_help_center_routes(app: web.Application) -> None:
    app.router.add_get(ARTICLES, list_published)
    app.router.add_get(ARTICLE, get_published)
    app.router.add_get(SEARCH, search_published)
    app.router.add_get(LIST_PAGE, list_page)
    app.router.add_get(ARTICLE_PAGE, article_page)


PAGE = Answer(200, "The page", media_type=HTML)
HELP_CENTER_OPERATIONS = [
    Operation("GET", ARTICLES, "A workspace's published articles, newest change first (no key)",
              (Answer(200, "The articles", PublicArticleList),), parameters=(WORKSPACE_PARAMETER, LANGUAGE),
              errors=(400, 404), public=True),
    Operation("GET", ARTICLE, "One published article, its body as HTML (no key)",
              (Answer(200, "The article", PublicArticle),), parameters=(WORKSPACE_PARAMETER, ARTICLE_ID), errors=(404,),
              public=True),
    Operation("GET", SEARCH, "The published articles that best answer a question, best first (no key)",
              (Answer(200, "The articles, each with its score", SearchResult),),
              parameters=(WORKSPACE_PARAMETER, QUERY, SEARCH_LANGUAGE, LIMIT), errors=(400, 404), public=True),
    Operation("GET", LIST_PAGE, "The help center page: the published articles, by language and tag, and a search",
              (PAGE,), parameters=(WORKSPACE_PARAMETER,), errors=(404,), public=True),
    Operation("GET", ARTICLE_PAGE, "The page of one published article (what a chat widget links to)",
              (PAGE,), parameters=(WORKSPACE_PARAMETER, ARTICLE_ID), errors=(404,), public=True),
]
