"""The supervisor page (GET /supervisor): its files, served as they are, and the little it needs to know.

The page is static (HTML, CSS, ES modules and the vendored Chart.js under static/); no build step.
It asks for the workspace's API key (or takes `?token=`) and then calls reporting's API on this
origin and the agents service's (status changes, transfers) at the address GET
/supervisor/config.json names (REPORTING_AGENTS_URL; the agents service allows this origin by
AGENTS_CORS_ORIGINS).
"""

from pathlib import Path

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from services.reporting.settings import ReportingSettings
from shared.pages import (
    CSS,
    HTML,
    JS,
    LIB_FILES,
    PageFile,
    add_lib_routes,
    add_page_routes,
    content_security_policy,
    page_operations,
    page_security_headers,
)
from shared.web import Answer, Operation, model_response

STATIC = Path(__file__).parent / "static"
AGENTS_URL = web.AppKey("agents_url", str)


PAGE_FILES = (
    PageFile("/supervisor", "supervisor.html", HTML, "The supervisor page: the wallboard and the reports"),
    PageFile("/supervisor/supervisor.css", "supervisor.css", CSS, "The supervisor page's styles"),
    *(PageFile(f"/supervisor/js/{name}.js", f"js/{name}.js", JS, f"The supervisor page's {name} module")
      for name in ("main", "api", "format", "wallboard", "reports")),
    PageFile("/supervisor/vendor/chart.umd.min.js", "vendor/chart.umd.min.js", JS,
             "Chart.js 4.6.1 (MIT), vendored: the reports' charts"),
)


class PageConfig(BaseModel):
    """What the page cannot know from its own address."""

    model_config = ConfigDict(extra="forbid")

    agents_url: str  # where the browser reaches the agents service (status changes, transfers)


def page_policy(agents_url: str) -> str:
    """The page holds an API key: it runs only its own scripts and talks only to reporting and agents."""
    return content_security_policy(connect_src=f"'self' {agents_url}")


async def get_config(request: web.Request) -> web.Response:
    return model_response(PageConfig(agents_url=request.app[AGENTS_URL]))


def add_supervisor_routes(app: web.Application, settings: ReportingSettings) -> None:
    """GET /supervisor, its files, its config and the shared /lib/ modules (public: the page asks for the key itself)."""
    app[AGENTS_URL] = settings.agents_url.rstrip("/")
    add_page_routes(app, STATIC, PAGE_FILES,
                    lambda request: page_security_headers(page_policy(request.app[AGENTS_URL])))
    app.router.add_get("/supervisor/config.json", get_config)
    add_lib_routes(app)  # /lib/: the pages' one reconnecting socket, DOM helpers and sign-in key


PAGE_OPERATIONS = [
    *page_operations((*PAGE_FILES, *LIB_FILES)),
    Operation("GET", "/supervisor/config.json", "Where the supervisor page reaches the agents service",
              (Answer(200, "The page's settings", PageConfig),), public=True),
]
