"""The live view read from the store, and its WebSocket feed: at most one frame a second per socket.

One task per (workspace, time zone) being watched builds the view once a period and sends it to
every socket watching, only when it changed; a socket that does not take a frame within
SEND_TIMEOUT is closed, so one stalled screen never holds the others back. The view is read from
the database each time, so every reporting replica serves it the same, whoever ingested the events.
"""

import asyncio
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import structlog
from aiohttp import web

from services.reporting.intervals import interval_start, zone
from services.reporting.live import LiveView, build_live_view
from services.reporting.metrics import summary
from services.reporting.store import ReportStore

log = structlog.get_logger(__name__)
SEND_TIMEOUT = 5.0  # seconds a screen may take to accept one frame
WEEK = timedelta(days=7)


async def read_live_view(store: ReportStore, workspace_id: str, tz: str, now: datetime | None = None) -> LiveView:
    """The workspace now: open conversations, agents, active incidents, and today's rollups in the zone `tz`."""
    now = now or datetime.now(UTC)
    day_start = interval_start(now, "day", zone(tz))
    local_day_start = day_start.astimezone(zone(tz))
    # The same local hours a week before (a DST change between keeps local midnight, not UTC).
    week_before = (local_day_start.replace(tzinfo=None) - WEEK).replace(tzinfo=zone(tz)).astimezone(UTC)
    elapsed = now - day_start

    async def today(grouping: str, start: datetime, end: datetime) -> list[dict]:
        rollups = await store.bucket_rollups(workspace_id, start, end, grouping, "day", tz)
        return summary(rollups, start, end, "day", tz, grouping) if end > start else []

    conversations, agents, config, queues, agent_rows, reasons, reasons_before, incidents = await asyncio.gather(
        store.open_conversations(workspace_id), store.agents_now(workspace_id), store.routing_config(workspace_id),
        today("queue", day_start, now), today("agent", day_start, now), today("label", day_start, now),
        today("label", week_before, week_before + elapsed), store.active_incidents(workspace_id))
    return build_live_view(
        now=now, day_start=local_day_start, open_conversations=conversations, agents=agents, queues_today=queues,
        agents_today=agent_rows, reasons_today=reasons, reasons_last_week=reasons_before,
        configured_queues=[queue.name for queue in config.queues], media_of=config.media_of, incidents=incidents)


class LiveFeed:
    """Sockets watching a workspace's live view, fed by one task per (workspace, zone)."""

    def __init__(self, read: Callable, period: float = 1.0) -> None:
        self.read = read  # async (workspace_id, tz) -> LiveView
        self.period = period
        self.sockets: dict[tuple[str, str], set[web.WebSocketResponse]] = {}
        self.tasks: dict[tuple[str, str], asyncio.Task] = {}

    def watch(self, workspace_id: str, tz: str, ws: web.WebSocketResponse) -> None:
        key = (workspace_id, tz)
        self.sockets.setdefault(key, set()).add(ws)
        if key not in self.tasks or self.tasks[key].done():
            self.tasks[key] = asyncio.create_task(self._feed(key), name=f"live-feed-{workspace_id}")

    def unwatch(self, workspace_id: str, tz: str, ws: web.WebSocketResponse) -> None:
        watching = self.sockets.get((workspace_id, tz))
        if watching is not None:
            watching.discard(ws)

    async def close(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        for task in self.tasks.values():
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sockets in self.sockets.values():
            for ws in list(sockets):
                await ws.close()

    async def _feed(self, key: tuple[str, str]) -> None:
        last, sent_to = None, set()
        while self.sockets.get(key):
            try:
                frame = (await self.read(*key)).model_dump_json()
            except Exception:  # a database hiccup: the screens keep the last frame, the next period tries again
                log.exception("live view read failed", workspace_id=key[0])
                frame = None
            if frame is not None:
                watching = set(self.sockets[key])
                # A new screen gets the frame even when nothing changed since the last one went out.
                targets = watching if frame != last else watching - sent_to
                await asyncio.gather(*(self._send(key, ws, frame) for ws in targets))
                last, sent_to = frame, watching
            await asyncio.sleep(self.period)
        self.sockets.pop(key, None)

    async def _send(self, key: tuple[str, str], ws: web.WebSocketResponse, frame: str) -> None:
        try:
            await asyncio.wait_for(ws.send_str(frame), SEND_TIMEOUT)
        except (TimeoutError, ConnectionError, RuntimeError):
            self.unwatch(*key, ws)
            await ws.close()
