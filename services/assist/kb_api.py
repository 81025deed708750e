"""The knowledge base's API: supervisors write articles (`/v1/kb/articles`); agents may read them."""

from aiohttp import web

from services.assist.kb import LANGUAGES, ArticleIn, ArticleList, ArticleOut, KnowledgeBase, TooManyArticles
from shared.web import (
    WORKSPACE,
    Answer,
    Operation,
    choice_query,
    http_error,
    model_response,
    open_to_agents,
    parse_body,
    path_parameter,
)

KB = web.AppKey("knowledge_base", KnowledgeBase)
BASE, ONE = "/v1/kb/articles", "/v1/kb/articles/{article_id}"
ARTICLE_ID = path_parameter("article_id", "The article's id")
STATUS = choice_query("status", "Only published articles, or only drafts (default: both)", ("published", "draft"))
LANGUAGE = choice_query("language", "Only articles in this language", LANGUAGES)


@open_to_agents
async def list_articles(request: web.Request) -> web.Response:
    docs = await request.app[KB].list(request[WORKSPACE], status=STATUS.choice(request),
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


def add_kb_routes(app: web.Application) -> None:
    app.router.add_get(BASE, list_articles)
    app.router.add_post(BASE, create_article)
    app.router.add_get(ONE, get_article)
    app.router.add_put(ONE, replace_article)
    app.router.add_delete(ONE, delete_article)


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
]
