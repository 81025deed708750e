"""Presence follows the desk connection: an agent whose last desk has been gone a grace period is offline.

When the last desk of an agent closes, a timer starts (`AGENTS_PRESENCE_GRACE_SECONDS`); a desk
of that agent opening before it ends cancels it. When it ends, the agent is set offline through
`AgentsService.set_status`, which writes `agents` and announces `agent.status_changed` to the
router, unless it already is offline.

A desk connecting does not change presence: an offline agent stays offline until it chooses
online or away (`PUT /v1/agents/{id}/status`), so opening the page never routes work to someone
who is not ready for it.

Timers live in this process. On stop they are cancelled (a restart is not the agent leaving; its
desk reconnects to the new process). So that a desk that never comes back after a restart still
ends in offline, the agent's document remembers that a desk is following it (`desk`, set when
one opens, cleared when the grace runs out), and a starting process gives every such agent that
is not offline the grace to reconnect (`resume`). Agents driven through the API alone, that never
opened a desk, keep their presence as set.
"""

import asyncio
from typing import TYPE_CHECKING

import structlog

from services.agents.desk import AgentKey

if TYPE_CHECKING:
    from services.agents.service import AgentsService

log = structlog.get_logger(__name__)


class PresenceWatch:
    """Sets an agent offline once none of its desks has been connected for the grace period."""

    def __init__(self, service: "AgentsService", grace_seconds: float) -> None:
        self.service = service
        self.grace_seconds = grace_seconds
        self._timers: dict[AgentKey, asyncio.Task] = {}  # still in their grace: cancellable
        self._tasks: set[asyncio.Task] = set()  # every task not yet done, awaited on stop
        self._stopped = False

    def desk_opened(self, key: AgentKey) -> None:
        """A desk of the agent is back: its pending timer, if any, ends."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()

    def desk_closed(self, key: AgentKey) -> None:
        """A desk closed: start the grace timer if it was the agent's last one."""
        if self._stopped or key in self._timers or self.service.hub.connected(key):
            return
        task = asyncio.create_task(self._expire(key), name=f"presence:{key[0]}:{key[1]}")
        self._timers[key] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def resume(self, agents: list[dict]) -> None:
        """After a start: agents whose desk was following them get the grace to reconnect to this process."""
        for agent in agents:
            if agent.get("desk") and agent.get("status", "offline") != "offline":
                self.desk_closed((agent["workspace_id"], agent["agent_id"]))

    def pending(self, key: AgentKey) -> bool:
        return key in self._timers

    async def _expire(self, key: AgentKey) -> None:
        await asyncio.sleep(self.grace_seconds)
        # Past the grace the task is no longer cancellable by a reconnect: cancelling between the
        # write and the announce would leave the router with a presence the database no longer has.
        if self._timers.get(key) is asyncio.current_task():
            del self._timers[key]
        workspace_id, agent_id = key
        try:
            doc = await self.service.store.get_agent(workspace_id, agent_id)
            if doc is None or self.service.hub.connected(key):
                return
            if doc["status"] != "offline":
                await self.service.set_status(workspace_id, agent_id, "offline", reason="desk_closed")
                log.info("presence.offline", workspace_id=workspace_id, agent_id=agent_id, grace_seconds=self.grace_seconds)
            # Only once the router was told: if that failed, a restart gives the agent the grace again.
            await self.service.store.set_desk(workspace_id, agent_id, False)
        except Exception:  # a background task: say so in the log rather than lose the error
            log.exception("presence.offline_failed", workspace_id=workspace_id, agent_id=agent_id)

    async def stop(self) -> None:
        """Cancel timers still in their grace; let a write already under way finish."""
        self._stopped = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        await asyncio.gather(*self._tasks, return_exceptions=True)
