"""The reporting store on the real database: the scripted day of tests/unit/test_reporting_day.py,
recorded in batches in any order, repeated, or cut short by a failure midway, leaves exactly the
rollups the pure engine computes from the whole day at once."""

import json
import random

import pytest

from services.reporting.agent_time import fold_agent_buckets
from services.reporting.facts import fold_conversation
from services.reporting.rollup import bucket_rollup, buckets_touched
from services.reporting.store import AGENT_TIME_EVENTS, ReportStore
from shared.mongo import create_client
from tests.conftest import Names
from tests.fixtures.reporting import DAY, Conversation, clock, status
from tests.unit.test_reporting_day import AGENTS, END, SETTINGS, day_events


@pytest.fixture
async def store(names: Names):
    client = create_client(names.infra.mongo_url)
    store = ReportStore(client[names.namespace], SETTINGS)
    await store.ensure_indexes()
    yield store
    await client.close()


def engine_rollups(events: list, until=END) -> dict:
    """The pure engine over the whole day at once: each conversation folded from all its events,
    each agent from its own events (the store folds no others: a span split at another agent's
    event would round its weighted milliseconds differently, by up to 1 ms)."""
    conversations = {e.conversation_id for e in events if e.conversation_id}
    facts = [fold_conversation([e for e in events if e.conversation_id == c], SETTINGS) for c in conversations]
    times = [t for agent in AGENTS for t in fold_agent_buckets(
        agent, [e for e in events if e.agent_id == agent and e.type in AGENT_TIME_EVENTS], DAY, until)]
    buckets = set().union(*(buckets_touched(f) for f in facts)) | {t.start for t in times if t.online_ms}
    return {b: bucket_rollup([f for f in facts if b in buckets_touched(f)], [t for t in times if t.start == b], b)
            for b in sorted(buckets)}


async def stored_rollups(store: ReportStore) -> dict:
    """Every stored bucket rollup as plain data, empty ones left out (as the engine leaves them out)."""
    found = {}
    async for document in store.rollups.find({"workspace_id": "default"}):
        rollup = {grouping: json.loads(raw) for grouping, raw in document["groups"].items()}
        if rollup:
            found[document["bucket"]] = rollup
    return found


async def everything(store: ReportStore) -> dict:
    """Every reporting collection's documents, to compare two runs for identity."""
    return {name: sorted([json.dumps(d, default=str, sort_keys=True) async for d in store.db[name].find({})])
            for name in ("report_events", "report_conversations", "report_agent_time", "report_rollups")}


async def record_in_batches(store: ReportStore, events: list, size: int) -> None:
    for start in range(0, len(events), size):
        await store.record(events[start:start + size])


async def test_the_day_in_shuffled_batches_gives_the_engines_rollups(store):
    events = day_events()
    random.Random(11).shuffle(events)
    await record_in_batches(store, events, 7)
    assert await stored_rollups(store) == engine_rollups(day_events())


async def test_replayed_and_reordered_events_change_nothing(store):
    events = day_events()
    await record_in_batches(store, events, 10)
    first = await everything(store)
    await record_in_batches(store, events, 10)  # redelivered: the same events again
    await record_in_batches(store, list(reversed(events)), 3)  # replayed, out of order
    assert await everything(store) == first
    assert await stored_rollups(store) == engine_rollups(day_events())


def reopened_conversation() -> tuple[list, list]:
    """Resolved at 10:20 (alone in the 10:15 bucket), then reopened and resolved again at 11:00."""
    c = (Conversation("X", "webchat")
         .at("10:00:00", "conversation.opened").at("10:00:00", "conversation.queued", queue="billing")
         .at("10:01:00", "conversation.assigned", agent="ann", queue="billing").reply("10:02:00", "ann")
         .at("10:20:00", "conversation.resolved", agent="ann")
         .at("10:40:00", "conversation.reopened").inbound("10:40:00")
         .at("11:00:00", "conversation.resolved", agent="ann"))
    return c.events[:5], c.events[5:]


async def test_a_batch_that_fails_midway_is_made_good_by_its_redelivery(store, monkeypatch):
    """The buckets to recompute are written down before anything changes. A batch that failed after
    the conversation was refolded finds it unchanged when it comes again, so the bucket only its
    old facts touched (10:15, the first resolution) is recomputed from what was written down."""
    first, reopen = reopened_conversation()
    await store.record(first)
    recompute = store.recompute_buckets

    async def fail(_refs):
        raise ConnectionError("the database went away (test)")

    monkeypatch.setattr(store, "recompute_buckets", fail)
    with pytest.raises(ConnectionError):
        await store.record(reopen)
    assert await store.pending.count_documents({}) > 0
    monkeypatch.setattr(store, "recompute_buckets", recompute)
    await store.record(reopen)  # the redelivery: every event stored already, the fold unchanged
    rollups = await stored_rollups(store)
    assert rollups == engine_rollups(first + reopen)
    assert clock("10:15:00") not in rollups  # the first resolution no longer counts anywhere
    assert await store.pending.count_documents({}) == 0


async def test_an_online_agent_with_no_events_has_its_time_carried_to_now(store):
    online = [status("ann", "08:00:00", "online", 2)]
    await store.record(online)
    assert await store.extend_online_agents(clock("10:05:00"))
    await store.recompute_pending()  # the service's rollup timer
    assert await stored_rollups(store) == engine_rollups(online, until=clock("10:15:00"))
    assert len(await stored_rollups(store)) == 9  # 08:00 to 10:00, each with 15 minutes online
    assert not await store.extend_online_agents(clock("10:10:00"))  # nothing new to carry

    away = [status("ann", "09:20:00", "away")]  # late: the quiet buckets after it are corrected
    await store.record(away)
    assert await stored_rollups(store) == engine_rollups(online + away, until=clock("10:15:00"))
    assert not await store.extend_online_agents(clock("11:00:00"))  # away: nothing to carry
