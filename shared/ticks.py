"""Timers that move with a single-active-consumer queue: every replica sends the queue a transient,
expiring tick every period, and only the replica the broker made active reads them (the router's
partitions, reporting's ingest). Whichever replica holds the queue fires the timers, in order with
the queue's other messages; while none does, the ticks expire unread."""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

import structlog

log = structlog.get_logger(__name__)


class Ticker:
    """Calls `send` every `period` seconds until stopped (`at_once`: the first call right away); a
    failed send is logged and tried next period (the other replicas' ticks may arrive meanwhile)."""

    def __init__(self, name: str, period: float, send: Callable[[], Awaitable[None]], *, at_once: bool = False) -> None:
        self.name = name
        self.period = period
        self.send = send
        self.at_once = at_once
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._forever(), name=f"ticker:{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _forever(self) -> None:
        if not self.at_once:
            await asyncio.sleep(self.period)
        while True:
            try:
                await self.send()
            except Exception as error:  # noqa: BLE001 - the next period sends again
                log.warning("ticks.not_sent", ticker=self.name, error=repr(error))
            await asyncio.sleep(self.period)
