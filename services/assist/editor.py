"""The supervisors' article editor (GET /kb) and the two small calls it makes besides the articles' API:
the preview of a body, rendered as the help center renders it, and where the workspace's help center is.

The page asks for the workspace's key (or takes `?token=`), keeps it in the browser's localStorage, and
sends it as `Authorization: Bearer` to this origin only.
"""

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from services.assist.desk_access import PUBLIC_URL
from services.assist.help_center import LIST_PAGE
from services.assist.kb import MAX_BODY_CHARS
from services.assist.pages import html_response
from services.assist.rendering import to_html
from shared.models import Wire
from shared.pages import HTML, content_security_policy, page_security_headers
from shared.web import WORKSPACE, Answer, Operation, model_response, open_to_agents, parse_body

PAGE, PREVIEW, HELP = "/kb", "/v1/kb/preview", "/v1/kb/help"
# The page holds the workspace's key: only its own scripts, only its own origin, framed by nobody.
CONTENT_SECURITY_POLICY = content_security_policy()


class PreviewIn(Wire):
    markdown: str = Field(max_length=MAX_BODY_CHARS, description="An article's body")


class PreviewOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    html: str  # as the help center would show it


class HelpCenter(BaseModel):
    """Where the calling workspace's public help center is."""

    model_config = ConfigDict(extra="forbid")

    workspace_id: str
    path: str  # on this service: the list page; an article's page is path + "/articles/{id}"
    url: str  # the list page where customers reach it (ASSIST_PUBLIC_URL + path): what a reply links to


async def preview(request: web.Request) -> web.Response:
    body = await parse_body(request, PreviewIn)
    return model_response(PreviewOut(html=to_html(body.markdown)))


@open_to_agents
async def help_center(request: web.Request) -> web.Response:
    workspace_id = request[WORKSPACE]
    path = LIST_PAGE.format(workspace=workspace_id)
    return model_response(HelpCenter(workspace_id=workspace_id, path=path, url=request.app[PUBLIC_URL] + path))


async def editor_page(_: web.Request) -> web.FileResponse:
    return html_response("kb.html", page_security_headers(CONTENT_SECURITY_POLICY))


def add_editor_routes(app: web.Application) -> None:
    app.router.add_get(PAGE, editor_page)
    app.router.add_post(PREVIEW, preview)
    app.router.add_get(HELP, help_center)


EDITOR_OPERATIONS = [
    Operation("GET", PAGE, "The article editor page (it asks for the workspace's key itself)",
              (Answer(200, "The page", media_type=HTML),), public=True),
    Operation("POST", PREVIEW, "An article body rendered as the help center renders it (a supervisor's)",
              (Answer(200, "The HTML", PreviewOut),), body=PreviewIn, errors=(400, 403, 413, 422)),
    Operation("GET", HELP, "Where the workspace's public help center is (the editor's, and the desk's for links)",
              (Answer(200, "Its address", HelpCenter),), errors=(403,)),
]
