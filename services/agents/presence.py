"""Presence follows the desk connection: an agent whose desks have all been gone a grace period is offline.

The state is in MongoDB, not in a process, so that it outlives the replica that held the desk
(any replica may hold an agent's desk: shared/relay.py). On the agent's document:

- `desk`: presence follows a desk for this agent (set when one opens, cleared when the grace runs out);
- `desk_seen_at`: when a replica last saw a desk of the agent open.

Every replica, every `interval` (a third of the grace, between 0.05 and 5 s): stamps `desk_seen_at`
of the agents it holds a desk of (one update_many), then sweeps: an agent with `desk` true, not
offline, last seen more than the grace (`AGENTS_PRESENCE_GRACE_SECONDS`) ago is set offline through
`AgentsService.desk_gone`, the same write and announcement as `set_status` (reason `desk_closed`).
That write is conditional on the agent still being gone, so one replica wins and the others find
nothing to do; it clears `desk` and flags the snapshot for the router in the same update, so a crash
right after it still announces it (services/agents/outbox.py). A replica's last desk of an agent
closing stamps `desk_seen_at` too, so the grace counts from the close; a replica that dies stops
stamping, so the grace counts from its last stamp. An agent goes offline between the grace and
the grace plus one interval after its last desk was seen, whichever replica sees that.

A desk connecting does not change presence: an offline agent stays offline until it chooses
online or away (`PUT /v1/agents/{id}/status`), so opening the page never routes work to someone
who is not ready for it.

A restart is not the agent leaving: a starting replica gives every agent whose desk was followed
and is not offline the grace to reconnect (its `desk_seen_at` moved to now). Agents driven through
the API alone, that never opened a desk, keep their presence as set.
"""

import asyncio
import contextlib
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog

from services.agents.desk import AgentKey
from shared.models import utcnow

if TYPE_CHECKING:
    from services.agents.service import AgentsService

log = structlog.get_logger(__name__)

MIN_INTERVAL, MAX_INTERVAL = 0.05, 5.0  # seconds between a replica's stamps and sweeps


def presence_interval(grace_seconds: float) -> float:
    """How often a replica stamps its desks and sweeps: several stamps fit in a grace."""
    return min(max(grace_seconds / 3, MIN_INTERVAL), MAX_INTERVAL)


class PresenceWatch:
    """This replica's part of presence: stamps the desks it holds, sweeps the agents whose desks are gone."""

    def __init__(self, service: "AgentsService", grace_seconds: float) -> None:
        self.service = service
        self.grace_seconds = grace_seconds
        self.interval = presence_interval(grace_seconds)
        self._task: asyncio.Task | None = None
        self._stopping = asyncio.Event()

    async def start(self) -> None:
        """Desks open before a restart get the grace to reconnect (to any replica), then the rounds begin."""
        await self.service.store.give_desks_grace(utcnow())
        self._task = asyncio.create_task(self._forever(), name="presence")

    async def desk_opened(self, key: AgentKey) -> None:
        """Presence follows this agent's desk from now on (the desk does not change the status)."""
        await self.service.store.desks_seen([key], utcnow(), opened=True)

    async def desk_closed(self, key: AgentKey) -> None:
        """This replica's last desk of the agent closed: the grace counts from now, unless a desk
        (here or on another replica) is seen again before it ends."""
        if self.service.hub.connected(key):
            return
        try:
            await self.service.store.desks_seen([key], utcnow())
        except Exception as error:  # noqa: BLE001 - the grace then counts from this replica's last stamp
            log.warning("presence.close_not_stamped", workspace_id=key[0], agent_id=key[1], error=repr(error))

    async def stamp(self) -> None:
        """Tell the other replicas this one still holds its agents' desks."""
        keys = self.service.hub.agents()
        if keys:
            await self.service.store.desks_seen(keys, utcnow())

    async def sweep(self) -> int:
        """Set offline every agent whose desks were last seen longer ago than the grace; how many this replica did."""
        seen_before = utcnow() - timedelta(seconds=self.grace_seconds)
        done = 0
        for agent in await self.service.store.desks_gone(seen_before):
            workspace_id, agent_id = agent["workspace_id"], agent["agent_id"]
            if await self.service.desk_gone(workspace_id, agent_id, seen_before):
                log.info("presence.offline", workspace_id=workspace_id, agent_id=agent_id,
                         grace_seconds=self.grace_seconds)
                done += 1
        return done

    async def _forever(self) -> None:
        while not self._stopping.is_set():
            try:
                await self.stamp()
                await self.sweep()
            except Exception as error:  # noqa: BLE001 - the database or the broker away: the next round tries again
                log.warning("presence.round_failed", error=repr(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval)

    async def stop(self) -> None:
        """No more rounds; a write already under way finishes. Nothing is handed off: the other
        replicas (or the next start) see the desks as last stamped."""
        self._stopping.set()
        if self._task is not None:
            await self._task
