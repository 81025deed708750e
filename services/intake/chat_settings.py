"""The web chat's per-workspace settings (shared/webchat.py) as intake serves them to the chat page and widget.

Intake keeps no database on its hot path: the settings are read from the router's stored routing
configuration (its `webchat` section) at most once per `INTAKE_WEBCHAT_SETTINGS_SECONDS` per process,
and only by GET /v1/chat/settings, which a page asks once when it opens. A change made with PUT
/v1/routing/config shows within that time. An invalid or unreadable section gives the defaults (logged).
"""

import time
from datetime import datetime
from urllib.parse import quote

import structlog
from pydantic import TypeAdapter, ValidationError
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from shared.models import Wire, utcnow
from shared.routing_config import find_config
from shared.webchat import OpeningHours, WebchatSettings

log = structlog.get_logger(__name__)
_section: TypeAdapter[dict[str, WebchatSettings]] = TypeAdapter(dict[str, WebchatSettings])


class ChatSettingsOut(Wire):
    """What the chat page and the widget are told about a workspace's chat (GET /v1/chat/settings)."""

    workspace_id: str
    title: str | None
    greeting: str | None
    language: str | None
    accent_color: str | None
    open: bool  # within the opening hours now (always, without hours)
    hours: OpeningHours | None
    help_center_url: str | None = None  # the workspace's help center, when the deployment has one


class ChatSettingsCache:
    """Per workspace, its `webchat` settings as last read, for at most `seconds`."""

    def __init__(self, db: AsyncDatabase, seconds: float, clock=time.monotonic) -> None:
        self.db = db
        self.seconds = seconds
        self.clock = clock
        self._read: dict[str, tuple[float, WebchatSettings]] = {}

    async def get(self, workspace_id: str) -> WebchatSettings:
        cached = self._read.get(workspace_id)
        if cached is None or self.clock() - cached[0] >= self.seconds:
            cached = self._read[workspace_id] = (self.clock(), await self._read_section(workspace_id))
        return cached[1]

    async def _read_section(self, workspace_id: str) -> WebchatSettings:
        try:
            stored = await find_config(self.db, workspace_id, {"config.webchat": 1})
            section = _section.validate_python(((stored or {}).get("config") or {}).get("webchat") or {})
            return section.get(workspace_id) or WebchatSettings()
        except (PyMongoError, ValidationError) as error:
            log.error("webchat.settings_unreadable", error=str(error)[:500])
            return WebchatSettings()


def settings_answer(workspace_id: str, settings: WebchatSettings, now: datetime | None = None,
                    help_center_url: str | None = None) -> ChatSettingsOut:
    help_center = f"{help_center_url.rstrip('/')}/help/{quote(workspace_id, safe='')}" if help_center_url else None
    return ChatSettingsOut(workspace_id=workspace_id, title=settings.title, greeting=settings.greeting,
                           language=settings.language, accent_color=settings.accent_color,
                           open=settings.is_open(now or utcnow()), hours=settings.hours, help_center_url=help_center)
