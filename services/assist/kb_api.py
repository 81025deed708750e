"""The knowledge base's API: supervisors write articles (`/v1/kb/articles`); agents may read and
search them (`/v1/kb/search`: agent assist on the desk)."""

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from services.assist.kb import LANGUAGES, ArticleIn, ArticleList, ArticleOut, KnowledgeBase, TooManyArticles
from services.assist.library import KnowledgeLibrary
from services.assist.rendering import excerpt
from shared.web import (
    WORKSPACE,
    Answer,
    Operation,
    choice_query,
    http_error,
    integer_query,
    model_response,
    open_to_agents,
    parse_body,
    path_parameter,
    query_parameter,
)

KB = web.AppKey("knowledge_base", KnowledgeBase)
LIBRARY = web.AppKey("knowledge_library", KnowledgeLibrary)
# A query travels in the URL: 500 characters of any script stay within the 8 KB request line servers take.
MAX_QUERY_CHARS = 500
BASE, ONE = "/v1/kb/articles", "/v1/kb/articles/{article_id}"
ARTICLE_ID = path_parameter("article_id", "The article's id")
STATUS = choice_query("status", "Only published articles, or only drafts (default: both)", ("published", "draft"))
LANGUAGE = choice_query("language", "Only articles in this language", LANGUAGES)


@open_to_agents
async def list_articles(request: web.Request) -> web.Response:
    docs = await request.app[KB].find(request[WORKSPACE], status=STATUS.choice(request),
                                      language=LANGUAGE.choice(request))
    return model_response(ArticleList(articles=[ArticleOut.of(doc) for doc in docs]))


@open_to_agents
async def get_article(request: web.Request) -> web.Response:
    return model_response(ArticleOut.of(await _existing(request)))


async def create_article(request: web.Request) -> web.Response:
    body = await parse_body(request, ArticleIn)
    try:
        doc = await request.app[KB].create(request[WORKSPACE], body)
    except TooManyArticles as error:
        raise http_error(web.HTTPConflict, str(error)) from None
    return model_response(ArticleOut.of(doc), status=201)


async def replace_article(request: web.Request) -> web.Response:
    body = await parse_body(request, ArticleIn)
    doc = await request.app[KB].replace(request[WORKSPACE], ARTICLE_ID.raw(request), body)
    if doc is None:
        raise http_error(web.HTTPNotFound, "article does not exist")
    return model_response(ArticleOut.of(doc))


async def delete_article(request: web.Request) -> web.Response:
    if not await request.app[KB].delete(request[WORKSPACE], ARTICLE_ID.raw(request)):
        raise http_error(web.HTTPNotFound, "article does not exist")
    return web.Response(status=204)


async def _existing(request: web.Request) -> dict:
    doc = await request.app[KB].get(request[WORKSPACE], ARTICLE_ID.raw(request))
    if doc is None:
        raise http_error(web.HTTPNotFound, "article does not exist")
    return doc


class SearchHit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    title: str
    language: str
    tags: list[str]
    excerpt: str
    score: float  # 0..1: the estimated probability that the article answers the query
    lexical: float
    semantic: float


class SearchResult(BaseModel):
    model_config = ConfigDict(extra="forbid")

    hits: list[SearchHit]


QUERY = query_parameter("q", "What to look for (a customer's question, a conversation's last messages)",
                        required=True, minLength=1, maxLength=MAX_QUERY_CHARS)
LIMIT = integer_query("limit", "At most this many articles", default=3, minimum=1, maximum=10)
SEARCH_LANGUAGE = choice_query("language", "The query's language (default: guessed from its letters)", LANGUAGES)


async def search_hits(request: web.Request, workspace_id: str) -> SearchResult:
    """The published articles best matching the request's `q`, or a JSON 400 naming the parameter."""
    query = QUERY.raw(request)
    if query is None or not query.strip() or len(query) > MAX_QUERY_CHARS:
        raise http_error(web.HTTPBadRequest, f"q must be 1 to {MAX_QUERY_CHARS} characters", parameter="q")
    limit = LIMIT.whole_number(request)
    found = await request.app[LIBRARY].search(workspace_id, query, SEARCH_LANGUAGE.choice(request), limit)
    return SearchResult(hits=[SearchHit(id=hit.article_id, title=doc["title"], language=doc["language"], tags=doc["tags"],
                                        excerpt=excerpt(doc["body"]), score=hit.score, lexical=hit.lexical,
                                        semantic=hit.semantic) for hit, doc in found])


@open_to_agents
async def search_articles(request: web.Request) -> web.Response:
    return model_response(await search_hits(request, request[WORKSPACE]))


def add_kb_routes(app: web.Application) -> None:
    app.router.add_get(BASE, list_articles)
    app.router.add_post(BASE, create_article)
    app.router.add_get(ONE, get_article)
    app.router.add_put(ONE, replace_article)
    app.router.add_delete(ONE, delete_article)
    app.router.add_get("/v1/kb/search", search_articles)


KB_OPERATIONS = [
    Operation("GET", BASE, "The workspace's articles, newest change first", (Answer(200, "The articles", ArticleList),),
              parameters=(STATUS, LANGUAGE), errors=(400,)),
    Operation("POST", BASE, "A new article (a supervisor's)", (Answer(201, "The article", ArticleOut),),
              body=ArticleIn, errors=(400, 403, 409, 413, 422)),
    Operation("GET", ONE, "One article", (Answer(200, "The article", ArticleOut),), parameters=(ARTICLE_ID,),
              errors=(404,)),
    Operation("PUT", ONE, "Change an article (a supervisor's)", (Answer(200, "The article", ArticleOut),),
              body=ArticleIn, parameters=(ARTICLE_ID,), errors=(400, 403, 404, 413, 422)),
    Operation("DELETE", ONE, "Remove an article (a supervisor's)", (Answer(204, "Removed"),),
              parameters=(ARTICLE_ID,), errors=(403, 404)),
    Operation("GET", "/v1/kb/search", "The published articles that best answer a question, best first",
              (Answer(200, "The articles, each with its score", SearchResult),),
              parameters=(QUERY, SEARCH_LANGUAGE, LIMIT), errors=(400,),
              description="Lexical (BM25 over stems and lemmas) and semantic (embeddings) search, combined; "
                          "`score` estimates the probability that the article answers the query "
                          "(docs/knowledge-base.md)."),
]
