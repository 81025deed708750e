"""The supervisors' incidents page (GET /incidents): the active incidents, one's linked conversations and
count over time, and confirming, dismissing, merging and resolving it through the incidents API.

Like the article editor it asks for the workspace's key (or takes `?token=`), keeps it in the browser's
localStorage and sends it as `Authorization: Bearer` to this origin only; its files are listed in pages.py.
"""

from aiohttp import web

from services.assist.pages import html_response
from shared.pages import HTML, content_security_policy, page_security_headers
from shared.web import Answer, Operation

PAGE = "/incidents"
# The page holds the workspace's key: only its own scripts, only its own origin, framed by nobody.
CONTENT_SECURITY_POLICY = content_security_policy()


async def incidents_page(_: web.Request) -> web.FileResponse:
    return html_response("incidents.html", page_security_headers(CONTENT_SECURITY_POLICY))


def add_incident_page_routes(app: web.Application) -> None:
    app.router.add_get(PAGE, incidents_page)


INCIDENT_PAGE_OPERATIONS = [
    Operation("GET", PAGE, "The supervisors' incidents page (it asks for the workspace's key itself)",
              (Answer(200, "The page", media_type=HTML),), public=True),
]
