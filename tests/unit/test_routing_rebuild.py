"""A core rebuilt in bulk from saved state (a standby taking over) is the core that saved it: the
same memberships, the same sorted indexes, the same next decisions (pure, no I/O)."""

import gc
import random
from dataclasses import replace
from datetime import timedelta

import pytest

from bench.core import build_agents, build_config, online_floor
from bench.core import fill as fill_floor
from services.router.config import RoutingConfig
from services.router.core import RoutingCore
from services.router.indexes import QueueLevels
from services.router.model import Agent, Outcome
from services.router.store import (
    _agent_from_doc,
    _agent_to_doc,
    _conversation_from_doc,
    _conversation_to_doc,
    collector_paused,
)
from shared.models import ConversationAssigned, ConversationResolved


def every_level_of_every_queue(config: RoutingConfig, agent: Agent) -> dict[str, int]:
    """Memberships the plain way: each queue in order, its lowest level whose criteria the agent meets."""
    memberships = {}
    for queue in config.queues:
        for level, criteria in enumerate(queue.criteria()):
            if agent.qualifies(criteria):
                memberships[queue.name] = level
                break
    return memberships


def test_queue_levels_find_the_memberships_checking_every_level_of_every_queue_finds():
    rng = random.Random(7)
    config = build_config(60, rng)
    # A queue anyone serves, and one whose second bullseye step lets anyone in.
    extra = RoutingConfig.model_validate({"default_queue": "anyone", "queues": [
        {"name": "anyone"},
        {"name": "wide", "skills": {"s01": 5}, "expand": [{"after_seconds": 5, "skills": {"s02": 4}},
                                                          {"after_seconds": 10, "skills": {}}]},
    ]})
    config = RoutingConfig(default_queue=config.default_queue, queues=[*config.queues, *extra.queues])
    levels = QueueLevels(config.queues)
    agents = [Agent(s.workspace_id, s.agent_id, 1, dict(s.skills), 3, "online") for s, _ in build_agents(500, config, rng)]
    agents.append(Agent("default", "no-skills", 1, {}, 3, "online"))
    for agent in agents:
        expected = every_level_of_every_queue(config, agent)
        assert list(levels.memberships(agent).items()) == list(expected.items())  # the order too
    assert any(len(every_level_of_every_queue(config, a)) > 3 for a in agents)  # not a trivially empty floor


def saved(core: RoutingCore) -> tuple[list, list, dict]:
    """The core's state as the store's documents give it back."""
    agents = [_agent_from_doc(_agent_to_doc(a)) for a in core.agents.values()]
    conversations = [_conversation_from_doc({**_conversation_to_doc(c), "_id": c.conversation_id})
                     for c in core.conversations.values()]
    return agents, conversations, dict(core.last_agents)


def lists(index) -> dict:
    """An index's sorted lists, without the empty ones an incremental index keeps."""
    return {key: list(entries) for key, entries in index._lists.items() if entries}


def decisions(outcome: Outcome) -> list[tuple[str, str]]:
    return [(key[1], d.conversation.thread_id) for key, d in outcome.deliveries if isinstance(d, ConversationAssigned)]


def busy_floor() -> tuple[RoutingCore, random.Random]:
    """bench.core's floor, small: every agent full by the real rules, then conversations waiting."""
    floor, rng, roster = online_floor(300, 20, seed=3)
    fill_floor(floor, rng, roster, waiting=120)
    return floor.core, rng


def test_a_core_rebuilt_in_bulk_has_the_indexes_and_makes_the_decisions_of_the_core_that_saved_it():
    core, rng = busy_floor()
    rebuilt = RoutingCore.rebuilt(core.config, *saved(core))

    assert {k: a.memberships for k, a in rebuilt.agents.items()} == {k: a.memberships for k, a in core.agents.items()}
    assert {k: a.total for k, a in rebuilt.agents.items()} == {k: a.total for k, a in core.agents.items()}
    assert lists(rebuilt.agent_index) == lists(core.agent_index)
    assert lists(rebuilt.waiting) == lists(core.waiting) and len(lists(core.waiting)) > 5
    assert rebuilt.held == core.held

    # The same inputs from here: every resolve frees an agent, who takes the same waiting conversation.
    now = max(c.queued_at for c in core.conversations.values()) + timedelta(seconds=1)
    took = 0
    picks = rng.sample(sorted(c.conversation_id for c in core.conversations.values() if c.assignee_id), 40)
    for n, conversation_id in enumerate(picks):
        resolved = ConversationResolved(event_id=f"r{n}", workspace_id="default", conversation_id=conversation_id,
                                        resolved_at=now)
        taken = decisions(core.on_resolved(resolved, now))
        assert decisions(rebuilt.on_resolved(resolved, now)) == taken
        took += len(taken)
        now += timedelta(seconds=1)
    assert lists(rebuilt.waiting) == lists(core.waiting) and took > 10


def test_route_waiting_gives_what_serving_every_agent_in_turn_gives():
    """It skips agents nothing waits for: the outcome is that of trying every agent."""
    core, _ = busy_floor()
    agents, conversations, last_agents = saved(core)
    more_room = [replace(a, max_conversations=a.max_conversations + 1) for a in agents]  # room for what waits
    now = max(c.queued_at for c in conversations) + timedelta(seconds=1)

    routed = RoutingCore.rebuilt(core.config, more_room, conversations, last_agents).route_waiting(now)
    agents, conversations, last_agents = saved(core)
    reference = RoutingCore.rebuilt(core.config, [replace(a, max_conversations=a.max_conversations + 1) for a in agents],
                                    conversations, last_agents)
    every = Outcome()
    for agent in list(reference.agents.values()):
        every.merge(reference._serve(agent, now))
    assert decisions(routed) == decisions(every) and len(decisions(routed)) > 10


def test_the_garbage_collector_is_paused_for_a_load_and_back_after_it_even_one_that_failed():
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("the database went away")
    assert gc.isenabled()
