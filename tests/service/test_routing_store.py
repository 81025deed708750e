"""The router's state against the real database: a core rebuilt from MongoDB continues exactly
where the one that wrote it stopped (offers, reservations, bullseye, SLA timers, last agents)."""

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from pymongo import AsyncMongoClient

from services.router.config import RoutingConfig
from services.router.core import RoutingCore
from services.router.model import Outcome
from services.router.store import RoutingStore
from shared import events
from shared.models import InboundMessage
from tests.unit.test_routing_acd import T0, agent, assigned, at, conversation_of, msg, offered, resolve

CONFIG = RoutingConfig.model_validate({
    "queues": [
        {"name": "default", "sla": {"first_response_seconds": 100}},
        {"name": "sales", "mode": "offer", "offer_timeout_seconds": 20},
        {"name": "tech", "skills": {"tech": 4}, "expand": [{"after_seconds": 30, "skills": {"tech": 1}}]},
    ],
    "last_agent_wait_seconds": 10,
})


@pytest.fixture
async def store(names) -> AsyncIterator[RoutingStore]:
    client = AsyncMongoClient(names.infra.mongo_url, tz_aware=True)
    store = RoutingStore(client[names.namespace], 0)
    await store.ensure_indexes()
    yield store
    await client.close()


async def load_default(store: RoutingStore) -> RoutingCore:
    """The default workspace's core, as a replica taking the partition over builds it."""
    return (await store.load(lambda workspace_id: CONFIG, T0 - timedelta(days=1)))["default"]


class Recorded:
    """A core whose every outcome is saved, as the service does."""

    def __init__(self, store: RoutingStore) -> None:
        self.core = RoutingCore(CONFIG)
        self.store = store

    async def __call__(self, outcome: Outcome) -> Outcome:
        await self.store.commit(self.core, outcome, [])
        return outcome


async def test_a_rebuilt_core_keeps_offers_reservations_bullseye_sla_and_last_agents(store):
    run = Recorded(store)
    core = run.core
    await run(core.on_agent(agent("ann", capacity=1), at(0)))
    await run(core.on_message(msg("old", "one"), at(1)))  # ann, then resolved: ann is its last agent
    await run(resolve(core, "old", at(2)))
    await run(core.on_message(msg("busy"), at(3)))  # ann full
    await run(core.on_agent(agent("junior", skills={"tech": 1}, capacity=1), at(3)))
    await run(core.on_message(msg("old", "two"), at(4)))  # reserved for ann until 14
    await run(core.on_message(msg("deal", queue="sales"), at(5)))  # offered to junior until 25
    await run(core.on_message(msg("bug", queue="tech"), at(6)))  # nobody at tech 4: waits, step 1 at 36

    rebuilt = await load_default(store)
    assert rebuilt.agents[("default", "ann")].total == 1 and rebuilt.agents[("default", "junior")].total == 1
    assert conversation_of(rebuilt, "old").pinned_to == "ann"
    assert conversation_of(rebuilt, "deal").offer.agent_id == "junior"
    assert rebuilt.last_agents[("default", "webchat", "old")][0] == "ann"

    # the timers come back with the state: offer timeout, reservation end, bullseye step, SLA
    expired = rebuilt.tick(at(25))
    assert ("junior", "offer timed out") in [(k[1], d.reason) for k, d in expired.deliveries if d.type == "conversation.revoked"]
    assert events.OFFER_EXPIRED in [e.type for e in expired.events]
    # ann never freed up: the reservation ended at 14, and junior took it when the offer expired
    assert assigned(expired) == [("junior", "old")]
    assert assigned(resolve(rebuilt, "old", at(30))) == []  # bug needs tech 4 until 36
    step = rebuilt.tick(at(36))
    assert assigned(step) == [("junior", "bug")]
    assert [e.type for e in rebuilt.tick(at(104)).events].count(events.SLA_BREACHED) >= 1
    assert offered(expired) == []  # junior declined the sales offer and ann is full: it waits


async def test_a_resolved_conversation_leaves_no_state_behind(store):
    run = Recorded(store)
    await run(run.core.on_agent(agent("ann"), at(0)))
    await run(run.core.on_message(msg("c"), at(1)))
    await run(resolve(run.core, "c", at(2)))
    rebuilt = await load_default(store)
    assert rebuilt.conversations == {} and rebuilt.agents[("default", "ann")].total == 0


BIG_TEXT = "\N{GRINNING FACE}" * 100_000  # the most text a message may have, 400,000 bytes of UTF-8


def big(n: int) -> InboundMessage:
    return msg("long", f"{n:02d}" + BIG_TEXT[2:]).model_copy(update={"message_id": f"long-{n}"})


async def test_a_backlog_past_mongodbs_document_limit_is_stored_reloaded_and_handed_over_whole(store):
    """45 maximal messages (18 MB) wait in one conversation: each is a document of its own, not one 16 MiB doc."""
    run = Recorded(store)
    core = run.core
    await run(core.on_message(big(0), at(1)))
    for n in range(1, 45):
        await run(core.on_message(big(n), at(2)))
    assert await store.backlog.count_documents({}) == 45

    rebuilt = await load_default(store)
    waiting = conversation_of(rebuilt, "long")
    assert [m.message_id for m in waiting.backlog] == [big(n).message_id for n in range(45)]
    run.core = rebuilt
    outcome = await run(rebuilt.on_agent(agent("ann"), at(3)))
    deliveries = [d for _, d in outcome.deliveries]
    assigned_first, *then = deliveries
    assert assigned_first.type == events.CONVERSATION_ASSIGNED and 1 <= len(assigned_first.messages) <= 3
    assert all(d.type == events.CONVERSATION_MESSAGE for d in then)
    handed = [*assigned_first.messages, *(d.message for d in then)]
    assert handed == [big(n) for n in range(45)]
    assert max(len(d.model_dump_json()) for d in deliveries) < 2 * 1024 * 1024
    assert await store.backlog.count_documents({}) == 0  # handed over with the assignment's commit


async def test_a_conversation_assigned_as_it_opens_writes_no_backlog(store):
    run = Recorded(store)
    await run(run.core.on_agent(agent("ann"), at(0)))
    outcome = await run(run.core.on_message(msg("quick"), at(1)))
    assert assigned(outcome) == [("ann", "quick")]
    assert await store.backlog.count_documents({}) == 0 and outcome.backlog_changes  # the add and clear cancel out
