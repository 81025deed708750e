"""The core benchmark drives the real routing rules: after its loop the floor is still consistent."""

from collections import Counter

from bench.core import CAPACITY, WORKSPACE, build_floor, run

AGENTS, QUEUES, WAITING, DECISIONS = 50, 10, 100, 200


def test_the_benchmark_loop_keeps_the_core_consistent():
    floor, rng = build_floor(AGENTS, QUEUES, WAITING, seed=7)
    core = floor.core
    assert all(agent.total == CAPACITY for agent in core.agents.values())  # the fill made every agent full
    assert floor.waiting == WAITING
    before = set(floor.assigned)

    run(floor, rng, DECISIONS)

    conversations = core.conversations.values()
    assert len(core.conversations) == AGENTS * CAPACITY + WAITING  # each resolve was matched by an open
    assert all(agent.total <= agent.max_conversations for agent in core.agents.values())
    holders = Counter(cid for held in core.held.values() for cid in held)
    assigned = {c.conversation_id for c in conversations if c.assignee_id is not None}
    assert assigned == set(floor.assigned)
    assert set(holders) == assigned and set(holders.values()) == {1}  # one agent holds each, no other
    for c in conversations:
        if c.assignee_id is not None:
            assert c.conversation_id in core.held[(WORKSPACE, c.assignee_id)]
    assert sum(agent.total for agent in core.agents.values()) == len(assigned)
    waiting = [c for c in conversations if c.waiting]
    assert len(waiting) == floor.waiting == len(core.conversations) - len(assigned)
    assert all(c.conversation_id in core.waiting for c in waiting)
    assert set(floor.assigned) - before  # the loop assigned conversations, not only resolved them
    # Nothing waits while an agent with room may take it (at its bullseye step).
    for c in waiting:
        for agent in core.agents.values():
            can_take = agent.memberships.get(c.queue, c.step + 1) <= c.step
            assert not (can_take and agent.has_room(c.media, core.exclusive)), (c.conversation_id, agent.agent_id)
