"""The reporting store on the real database: the scripted day of tests/unit/test_reporting_day.py,
recorded in batches in any order, repeated, or cut short by a failure midway, leaves exactly the
rollups the pure engine computes from the whole day at once."""

import json
import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.reporting.agent_time import fold_agent_buckets
from services.reporting.facts import fold_conversation
from services.reporting.intervals import SPANS, tiles_by_interval
from services.reporting.metrics import StoredRollups, summary
from services.reporting.rollup import bucket_rollup, buckets_touched
from services.reporting.store import AGENT_TIME_EVENTS, COARSER, META, ReportStore
from shared.mongo import create_client
from tests.fixtures.reporting import DAY, Conversation, clock, status
from tests.unit.test_reporting_day import AGENTS, END, SETTINGS, day_events


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


async def test_an_agent_quiet_for_hours_is_carried_from_its_last_stored_bucket(store):
    """The bucket before a late event is looked for in the last hours first, then further back: an
    agent online from 07:00 with no event until 20:00 (nothing stored between: no timer ran) is
    carried from its 07:00 bucket, so its whole 14 hours count, not only the last one."""
    agent = AGENTS[0]
    morning = [status(agent, "07:00:00", "online", 2)]
    evening = [status(agent, "20:00:00", "online", 2), status(agent, "21:00:00", "offline", 2)]
    await store.record(morning)
    await store.record(evening)
    assert await stored_rollups(store) == engine_rollups(morning + evening)
    online = [d["online_ms"] async for d in store.agent_time.find({"agent_id": agent})]
    assert sum(online) == 14 * 3600 * 1000


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


def shifted(events: list, by: timedelta, tag: str) -> list:
    """The events again `by` later, as other conversations (the agents are the same)."""
    return [e.model_copy(update={"event_id": f"{tag}{e.event_id}", "at": e.at + by,
                                 "conversation_id": e.conversation_id and f"{tag}{e.conversation_id}"})
            for e in events]


# Kyiv springs forward at 01:00 UTC on Sunday 2026-03-29: the day shifted there runs 00:00-09:05 UTC across it.
ACROSS_DST = shifted(day_events(), timedelta(days=26, hours=16), "dst-")
RANGES = [(DAY, DAY + timedelta(days=29)),  # whole UTC days
          (clock("08:40:00"), clock("09:05:00") + timedelta(days=27, seconds=7))]  # mid-hour, mid-bucket ends


async def summaries(store: ReportStore, start, end, interval: str, tz: str, grouping: str) -> tuple[list, list]:
    quarters = await store.bucket_rollups("default", start, end, grouping)
    assert isinstance(quarters, dict)
    mixed = await store.bucket_rollups("default", start, end, grouping, interval, tz)
    assert isinstance(mixed, StoredRollups)
    return summary(quarters, start, end, interval, tz, grouping), summary(mixed, start, end, interval, tz, grouping)


async def assert_mixed_spans_give_the_quarters_summary(store: ReportStore) -> None:
    for start, end in RANGES:
        for tz in ("UTC", "Europe/Kyiv", "Asia/Kolkata"):
            for interval in ("hour", "day", "week"):
                for grouping in ("none", "queue"):
                    from_quarters, from_mixed = await summaries(store, start, end, interval, tz, grouping)
                    assert from_mixed == from_quarters, (start, end, tz, interval, grouping)
                    assert from_quarters, (start, end, tz, interval, grouping)


async def test_the_summary_from_hours_and_days_is_the_summary_from_buckets(store):
    events = day_events() + ACROSS_DST
    random.Random(5).shuffle(events)
    await record_in_batches(store, events, 9)
    await assert_mixed_spans_give_the_quarters_summary(store)

    # What each reads (buckets, 1, 2, 6 hours, days): a Kyiv day across the change, 22:00 to 21:00 UTC,
    # is 2 + 3 × 6 + 2 + 1 hours; a Kolkata day from 18:30 UTC 2 buckets, 1 + 2 × 2 + 3 × 6 hours (or a
    # UTC day), 2 buckets; a Kolkata week 6 whole UTC days inside; a UTC week 7 UTC days.
    dst_day = datetime(2026, 3, 29, tzinfo=ZoneInfo("Europe/Kyiv"))
    assert planned(dst_day, dst_day + timedelta(days=1), "day", "Europe/Kyiv") == [0, 1, 2, 3, 0]
    kolkata = datetime(2026, 3, 3, tzinfo=ZoneInfo("Asia/Kolkata"))
    assert planned(kolkata, kolkata + timedelta(days=2), "day", "Asia/Kolkata") == [2 * 4, 2, 4, 6, 0]
    monday = datetime(2026, 3, 2, tzinfo=ZoneInfo("Asia/Kolkata"))
    assert planned(monday, monday + timedelta(days=7), "week", "Asia/Kolkata") == [4, 1, 2, 3, 6]
    assert planned(DAY, DAY + timedelta(days=28), "week", "UTC") == [0, 0, 0, 0, 28]
    mixed = await store.bucket_rollups("default", dst_day, dst_day + timedelta(days=1), "queue", "day", "Europe/Kyiv")
    assert [len(mixed.by_span[span]) for span in SPANS] == [0, 0, 0, 2, 0]  # those that had anything (00-09 UTC)


def planned(start, end, interval: str, tz: str) -> list[int]:
    """How many stored documents of each span a summary reads at most."""
    tiles = [span for _, spans in tiles_by_interval(start, end, interval, tz) for _, span in spans]
    return [tiles.count(span) for span in SPANS]


async def test_coarser_rollups_are_rebuilt_for_a_database_that_has_only_buckets(store):
    await record_in_batches(store, day_events() + ACROSS_DST, 20)
    built = [await everything_of(store, name) for name in COARSER.values()]
    for name in (*COARSER.values(), META):
        await store.db[name].drop()
    await store.ensure_indexes()  # at the service's start
    assert [await everything_of(store, name) for name in COARSER.values()] == built
    await assert_mixed_spans_give_the_quarters_summary(store)


async def everything_of(store: ReportStore, name: str) -> list:
    return sorted([json.dumps({k: v for k, v in d.items() if k != "_id"}, default=str, sort_keys=True)
                   async for d in store.db[name].find({})])


async def test_everything_recomputed_from_the_stored_events_is_what_recording_them_made(store):
    """After a definition or configuration change the figures are recomputed from the raw events."""
    await record_in_batches(store, day_events(), 9)
    derived = ("report_conversations", "report_agent_time", "report_rollups", *COARSER.values())
    recorded = await contents(store, derived)
    for name in derived:
        await store.db[name].delete_many({})
    assert await store.recompute_all(chunk=3) == len({e.conversation_id for e in day_events() if e.conversation_id})
    assert await contents(store, derived) == recorded
    assert await stored_rollups(store) == engine_rollups(day_events())


async def contents(store: ReportStore, names: tuple[str, ...]) -> dict:
    """The collections' documents without their generated `_id`s (a recomputed rollup is a new document)."""
    return {name: sorted([json.dumps({k: v for k, v in d.items() if k != "_id" or isinstance(v, str)},
                                     default=str, sort_keys=True) async for d in store.db[name].find({})])
            for name in names}


async def test_each_workspace_is_measured_by_its_own_routing_configuration(names):
    """A workspace with its own configuration (routing:<ws>) gets its queues' targets; others the default's."""
    client = create_client(names.infra.mongo_url)
    try:
        db = client[names.namespace]
        await db["routing_config"].insert_many([
            {"_id": "routing", "config": {"queues": [{"name": "default", "service_level_seconds": 30}]}},
            {"_id": "routing:acme", "config": {"queues": [{"name": "default", "service_level_seconds": 90}]}},
        ])
        settings = await ReportStore(db).fold_settings(["acme", "globex", "acme"])
        assert settings["acme"].target_seconds("default") == 90
        assert settings["globex"].target_seconds("default") == 30  # no own configuration: the default
        assert (await ReportStore(db).routing_config("acme")).queue("default").service_level_seconds == 90
    finally:
        await client.close()
