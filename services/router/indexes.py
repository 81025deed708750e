"""Sorted indexes that keep every routing decision logarithmic, never a scan of all agents.

- Agents with room, per (workspace, queue, bullseye level, medium), sorted by the queue's
  strategy: the best agent for a conversation is the head of a few lists.
- Waiting conversations, per (workspace, queue, medium, bullseye step), sorted by aged priority:
  the next conversation for an agent is the head of a few lists.
"""

from collections.abc import Callable, Iterator
from datetime import datetime

from sortedcontainers import SortedList

from services.router.config import QueueConfig
from services.router.model import Agent, Conversation

EPOCH = datetime(1970, 1, 1).timestamp()
AgentIndexKey = tuple[str, str, int, str]  # (workspace, queue, level, medium)
WaitingKey = tuple[str, str, str, int]  # (workspace, queue, medium, step)


def _ts(value: datetime | None) -> float:
    return value.timestamp() if value is not None else EPOCH


def _occupancy(agent: Agent) -> float:
    return agent.total / agent.max_conversations if agent.max_conversations else 1.0


STRATEGY_KEYS: dict[str, Callable[[QueueConfig, Agent], tuple]] = {
    "least_occupied": lambda q, a: (_occupancy(a), a.last_assigned_seq, a.agent_id),
    "longest_idle": lambda q, a: (_ts(a.last_activity_at), a.agent_id),
    "round_robin": lambda q, a: (a.last_assigned_seq, a.agent_id),
    "most_skilled": lambda q, a: (
        -sum(a.skills.get(s, 0) for s in q.skills), _occupancy(a), a.last_assigned_seq, a.agent_id
    ),
}


class QueueLevels:
    """The configured queues' bullseye levels by the skills they need: an agent's memberships are
    found from its own few skills, not by checking every level of every queue (10,000 agents x
    100 queues was a million checks when a standby built its core)."""

    def __init__(self, queues: list[QueueConfig]) -> None:
        self.for_anyone: list[tuple[int, int, dict[str, int]]] = []  # (queue order, level, criteria)
        self.by_skill: dict[str, list[tuple[int, int, dict[str, int]]]] = {}
        self.names = [queue.name for queue in queues]
        for n, queue in enumerate(queues):
            for level, criteria in enumerate(queue.criteria()):
                needed = sorted(skill for skill, minimum in criteria.items() if minimum > 0)
                # Filed under one skill it needs: an agent without that skill cannot meet it.
                target = self.by_skill.setdefault(needed[0], []) if needed else self.for_anyone
                target.append((n, level, criteria))

    def memberships(self, agent: Agent) -> dict[str, int]:
        """Each configured queue the agent may serve with the lowest level whose criteria it meets,
        in the configuration's order."""
        lowest: dict[int, int] = {}
        candidates = [*self.for_anyone, *(c for skill in agent.skills for c in self.by_skill.get(skill, ()))]
        for n, level, criteria in candidates:
            if level < lowest.get(n, level + 1) and agent.qualifies(criteria):
                lowest[n] = level
        return {self.names[n]: lowest[n] for n in sorted(lowest)}


class AgentIndex:
    """Agents that have room, by queue, level and medium, in the queue's strategy order."""

    def __init__(self) -> None:
        self._lists: dict[AgentIndexKey, SortedList] = {}
        self._entries: dict[tuple[str, str], dict[AgentIndexKey, tuple]] = {}

    def update(self, agent: Agent, wanted: dict[AgentIndexKey, tuple]) -> None:
        """Make the agent's entries exactly `wanted` (index key -> sort key)."""
        current = self._entries.setdefault(agent.key, {})
        for key, entry in list(current.items()):
            if wanted.get(key) != entry:
                self._lists[key].remove(entry)
                del current[key]
        for key, entry in wanted.items():
            if key not in current:
                self._lists.setdefault(key, SortedList()).add(entry)
                current[key] = entry

    def fill(self, wanted_by_agent: dict[tuple[str, str], dict[AgentIndexKey, tuple]]) -> None:
        """Put many agents into an empty index at once (a rebuild): one sort per list, not an insert per entry."""
        assert not self._entries, "fill() builds an empty index"
        by_key: dict[AgentIndexKey, list[tuple]] = {}
        for agent_key, wanted in wanted_by_agent.items():
            self._entries[agent_key] = dict(wanted)
            for key, entry in wanted.items():
                by_key.setdefault(key, []).append(entry)
        self._lists = {key: SortedList(entries) for key, entries in by_key.items()}

    def best(self, key: AgentIndexKey, excluded: set[str]) -> tuple | None:
        """The first entry whose agent is not excluded (sort keys end with the agent id)."""
        for entry in self._lists.get(key, ()):
            if entry[-1] not in excluded:
                return entry
        return None

    def head(self, key: AgentIndexKey, n: int) -> list[tuple]:
        entries = self._lists.get(key)
        return list(entries.islice(0, n)) if entries else []

    def size(self, key: AgentIndexKey) -> int:
        return len(self._lists.get(key, ()))


class WaitingIndex:
    """Waiting conversations by queue, medium and bullseye step, in aged-priority order."""

    def __init__(self) -> None:
        self._lists: dict[WaitingKey, SortedList] = {}
        self._where: dict[str, tuple[WaitingKey, tuple]] = {}
        self._changed: set[WaitingKey] = set()  # lists whose order changed since take_changed()

    def add(self, conversation: Conversation, score: float) -> None:
        self.discard(conversation.conversation_id)
        key = (conversation.workspace_id, conversation.queue, conversation.media, conversation.step)
        entry = (score, conversation.conversation_id)
        self._lists.setdefault(key, SortedList()).add(entry)
        self._where[conversation.conversation_id] = (key, entry)
        self._changed.add(key)

    def fill(self, scored: list[tuple[Conversation, float]]) -> None:
        """Put many conversations into an empty index at once (a rebuild): one sort per list."""
        assert not self._where, "fill() builds an empty index"
        by_key: dict[WaitingKey, list[tuple]] = {}
        for conversation, score in scored:
            key = (conversation.workspace_id, conversation.queue, conversation.media, conversation.step)
            entry = (score, conversation.conversation_id)
            by_key.setdefault(key, []).append(entry)
            self._where[conversation.conversation_id] = (key, entry)
        self._lists = {key: SortedList(entries) for key, entries in by_key.items()}
        self._changed |= set(by_key)

    def discard(self, conversation_id: str) -> None:
        found = self._where.pop(conversation_id, None)
        if found is not None:
            self._lists[found[0]].remove(found[1])
            self._changed.add(found[0])

    def take_changed(self) -> list[list[str]]:
        """The conversation ids, in order, of each list changed since the last call (queue positions)."""
        changed = [[cid for _, cid in self._lists.get(key, ())] for key in self._changed]
        self._changed.clear()
        return changed

    def __contains__(self, conversation_id: str) -> bool:
        return conversation_id in self._where

    def queues(self) -> set[tuple[str, str]]:
        """(workspace, queue) of every list that holds a conversation."""
        return {key[:2] for key, entries in self._lists.items() if entries}

    def first(self, key: WaitingKey, skip: Callable[[str], bool]) -> tuple | None:
        for entry in self._lists.get(key, ()):
            if not skip(entry[1]):
                return entry
        return None

    def in_order(self, workspace_id: str) -> Iterator[tuple]:
        """Every waiting entry of a workspace, best first (for the queue view, not the hot path)."""
        entries = [e for key, lst in self._lists.items() if key[0] == workspace_id for e in lst]
        return iter(sorted(entries))

    def position(self, conversation_id: str) -> int:
        found = self._where.get(conversation_id)
        return 0 if found is None else self._lists[found[0]].index(found[1])
