"""Facts the agents API writes, published from the document that holds them: none is lost to a crash.

A write that makes a fact (a reply to send, a status or profile change, a resolution, new labels)
flags it on the same document in the same update (`pending_*`: since when), so the write
and the promise to publish are one atomic change. The request then publishes the fact (confirmed)
and clears the flag if the document is still the one it published. Should the process die in
between, or the broker be away, the flag stays: the sweeper below publishes every flag older
than GRACE_SECONDS, with the fact's own deterministic id, so the router, intake and reporting take
it once. The request answers as soon as the write is done: a reply is `queued` until it is sent.
"""

from collections.abc import Awaitable, Callable
from datetime import timedelta

import structlog

from shared.models import utcnow
from shared.ticks import Ticker

log = structlog.get_logger(__name__)

SWEEP_SECONDS = 5.0  # how often flags left behind are looked for
GRACE_SECONDS = 5.0  # a flag younger than this belongs to a request still publishing it

PENDING_OUTBOUND = "pending_outbound"  # on a message: the reply (its `outbound` JSON) for intake
PENDING_SNAPSHOT = "pending_snapshot"  # on an agent: its snapshot (status, profile) for the router and reporting
PENDING_RESOLVED = "pending_resolved"  # on a conversation: its resolution
PENDING_LABELS = "pending_labels"  # on a conversation: its labels after an agent's edit
FLAGS = {"agents": (PENDING_SNAPSHOT,), "conversations": (PENDING_RESOLVED, PENDING_LABELS),
         "messages": (PENDING_OUTBOUND,)}


def pending(flag: str) -> dict:
    """The `$set` part that flags a fact in the write that makes it: the flag holds since when."""
    return {flag: utcnow()}


class Sweeper:
    """Publishes, every SWEEP_SECONDS, the facts whose flags a crash or a broker outage left behind."""

    def __init__(self, sweep: Callable[[timedelta], Awaitable[int]], period: float = SWEEP_SECONDS,
                 grace: float = GRACE_SECONDS) -> None:
        self.sweep = sweep  # publishes the flags older than the grace; returns how many
        self.grace = timedelta(seconds=grace)
        # The first round at once: it publishes what a crash before this start left flagged. A failed
        # round (the broker or the database away) is logged; its flags wait for the next.
        self._rounds = Ticker("agents-outbox-sweeper", period, self._round, at_once=True)

    def start(self) -> None:
        self._rounds.start()

    async def stop(self) -> None:
        await self._rounds.stop()

    async def _round(self) -> None:
        published = await self.sweep(self.grace)
        if published:
            log.info("outbox.published_left_behind", facts=published)
