"""Reporting's collections, and the recomputation that keeps them right (docs/architecture.md, "Reporting").

Crash-safe and idempotent by recomputation, never by increments:

1. every event is inserted into `report_events` under `_id = event_id` (a repeat is a no-op);
2. each conversation a batch touches is folded again from ALL its stored events; its document in
   `report_conversations` keeps the buckets its facts touch and what it adds to each (a partial
   rollup per bucket) and the row of the CSV export;
3. each agent a batch touches has its time refolded from the bucket of its earliest event in the
   batch to the last bucket stored for it, starting from the state stored at the end of the
   bucket before (`report_agent_time`, one document per agent and bucket);
4. each bucket whose inputs changed (the old or new buckets of a conversation, an agent bucket
   whose figures changed) is recomputed from the partial rollups of every conversation touching
   it plus the agents' time in it, and replaces its `report_rollups` document; then each UTC 1, 2,
   6 and 24 hours holding such a bucket is replaced by the merge of the stored rollups of the span
   below it (`recompute_coarser`), so a summary merges a few coarse documents per local interval.

A batch does 1 and 2 and marks what 3 and 4 must redo (`report_pending_agents`, `report_pending`)
before it changes anything; the service's timer does 3 and 4 once a round (`refold_pending_agents`,
`recompute_pending`), removing a mark only if no batch renewed it meanwhile: a process that dies
anywhere leaves its marks for the next round.

Rollups and partial rollups are stored as JSON strings (one per grouping): their keys are queue
names, agent ids and labels, free text that may hold `.` or `$`.
"""

import asyncio
import json
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import TYPE_CHECKING, Any

import orjson
from bson import ObjectId
from pydantic import ValidationError
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, DeleteOne, InsertOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from services.reporting.agent_time import AgentState, AgentTime, fold_agent_buckets
from services.reporting.export import csv_row
from services.reporting.facts import ConversationFacts, FoldSettings, fold_conversation
from services.reporting.incidents import ACTIVE_STATUSES, IncidentState, announcement_order
from services.reporting.intervals import BUCKET, DAY, HOUR, SPANS, bucket_start, span_start, tiles_by_interval
from services.reporting.metrics import StoredRollups
from services.reporting.model import INCIDENT_EVENTS, ReportEvent
from services.reporting.rollup import GROUPINGS, Rollup, buckets_touched, merge, rollup_between
from services.router.config import RoutingConfig
from shared.mongo import create_client, non_duplicate_errors
from shared.routing_config import find_config

if TYPE_CHECKING:
    from services.reporting.settings import ReportingSettings

EVENTS, CONVERSATIONS, AGENT_TIME = "report_events", "report_conversations", "report_agent_time"
ROLLUPS, PENDING, PENDING_AGENTS = "report_rollups", "report_pending", "report_pending_agents"
LIVE_AGENTS = "report_live_agents"  # each agent's latest presence and capacity (the live view)
INCIDENTS = "report_incidents"  # each incident's latest announced state (incidents.py; the live view)
INCIDENTS_SHOWN = 20  # active incidents the live view reads at most, the newest first
OPEN_STATES = ("waiting", "offered", "assigned")  # a conversation in one of these is on the live view
# Coarser rollups beside the 15-minute ones (UTC 1, 2, 6, 24 hours): each the merge of the stored
# rollups of the span below.
COARSER = {HOUR: "report_rollups_1h", 2 * HOUR: "report_rollups_2h", 6 * HOUR: "report_rollups_6h",
           DAY: "report_rollups_1d"}
META = "report_meta"
COARSER_VERSION = 1  # report_meta's "coarser_rollups" document: the coarser spans were built from every bucket
# Events that move an agent's time (agent_time.apply): the others naming an agent change nothing there.
AGENT_TIME_EVENTS = ("agent.status_changed", "conversation.assigned", "conversation.resolved",
                     "conversation.abandoned", "conversation.queued", "conversation.transferred")
RECENT_BUCKETS = timedelta(hours=6)  # where an agent's last bucket before an event is looked for first
# How far back the timer looks for online agents' last buckets (it runs every minute or so).
EXTEND_LOOKBACK = timedelta(days=2)  # the router's document in its `routing_config` collection


def _json(data: Any) -> str:
    """Rollups as stored: JSON with sorted keys (orjson: a summary parses about 200 of them per request)."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS).decode()


def _key(*parts: str) -> str:
    """An unambiguous string id from free-text parts (workspace and conversation ids may hold anything)."""
    return json.dumps(parts, ensure_ascii=False)


@dataclass(frozen=True)
class BucketRef:
    workspace_id: str
    bucket: datetime

    @property
    def id(self) -> str:
        return _key(self.workspace_id, self.bucket.isoformat())


def open_clients(settings: "ReportingSettings") -> list[AsyncMongoClient]:
    """Reporting's own database client, then the one that holds the router's routing_config
    (the same client when both are one server); close them all when done."""
    mongo = create_client(settings.mongo_url)
    if settings.config_mongo_url in (None, settings.mongo_url):
        return [mongo, mongo]
    return [mongo, create_client(settings.config_mongo_url)]


def store_of(settings: "ReportingSettings", clients: list[AsyncMongoClient]) -> "ReportStore":
    mongo, config = clients
    return ReportStore(mongo[settings.mongo_db], config_db=config[settings.mongo_db])


async def close_clients(clients: list[AsyncMongoClient]) -> None:
    for client in {id(c): c for c in clients}.values():
        await client.close()


class ReportStore:
    """Reporting's collections in one database (it owns every `report_*` collection)."""

    def __init__(self, db: AsyncDatabase, settings: FoldSettings | None = None, *,
                 config_db: AsyncDatabase | None = None) -> None:
        self.db = db
        self.config_db = db if config_db is None else config_db  # where the router keeps routing_config
        self.events = db[EVENTS]
        self.conversations = db[CONVERSATIONS]
        self.agent_time = db[AGENT_TIME]
        self.rollups = db[ROLLUPS]
        # Every span's rollups, finest first (the 15-minute ones are `rollups`).
        self.span_rollups = {BUCKET: self.rollups, **{span: db[name] for span, name in COARSER.items()}}
        self.pending = db[PENDING]
        self.pending_agents = db[PENDING_AGENTS]
        self.live_agents = db[LIVE_AGENTS]
        self.incidents = db[INCIDENTS]
        self.fixed_settings = settings  # None: business hours from the router's configuration
        # Called with each batch before its events are inserted (subscriptions make their deliveries
        # of the events not stored yet there, so a crash between the two loses none: docs/events.md).
        self.before_insert: Callable[[list[ReportEvent]], Awaitable[None]] | None = None

    async def ensure_indexes(self) -> None:
        await self.events.create_index([("workspace_id", ASCENDING), ("conversation_id", ASCENDING)])
        await self.events.create_index([("workspace_id", ASCENDING), ("agent_id", ASCENDING), ("at", ASCENDING)])
        await self.conversations.create_index([("workspace_id", ASCENDING), ("buckets", ASCENDING)])
        await self.conversations.create_index([("workspace_id", ASCENDING), ("started_at", ASCENDING)])
        await self.conversations.create_index([("workspace_id", ASCENDING), ("live.state", ASCENDING)])
        await self.live_agents.create_index([("workspace_id", ASCENDING)])
        await self.incidents.create_index([("workspace_id", ASCENDING), ("status", ASCENDING),
                                           ("opened_at", DESCENDING), ("incident_id", ASCENDING)])
        await self.agent_time.create_index([("workspace_id", ASCENDING), ("agent_id", ASCENDING), ("bucket", ASCENDING)],
                                           unique=True)
        await self.agent_time.create_index([("workspace_id", ASCENDING), ("bucket", ASCENDING)])
        await self.agent_time.create_index([("bucket", ASCENDING)])  # the timer's look back over every workspace
        for collection in self.span_rollups.values():
            await collection.create_index([("workspace_id", ASCENDING), ("bucket", ASCENDING)], unique=True)
        await self.build_coarser_rollups()

    async def build_coarser_rollups(self) -> None:
        """Once per database: the coarser rollups of every stored bucket (a database from before they
        existed has only buckets). Recomputed whole, so a start that dies midway just builds them again."""
        if await self.db[META].find_one({"_id": "coarser_rollups", "version": COARSER_VERSION}):
            return
        refs = [BucketRef(d["workspace_id"], d["bucket"])
                async for d in self.rollups.find({}, {"workspace_id": 1, "bucket": 1})]
        for first in range(0, len(refs), 2000):
            await self.recompute_coarser(set(refs[first:first + 2000]))
        await self.db[META].replace_one({"_id": "coarser_rollups"}, {"version": COARSER_VERSION}, upsert=True)

    # -- the routing configuration (the router's; read, never written) ---------------------------

    async def fold_settings(self, workspaces: Iterable[str]) -> dict[str, FoldSettings]:
        """Per workspace, business hours per queue from its routing configuration (its own, else the
        default); none when it has none or it is invalid."""
        return {workspace_id: self.fixed_settings if self.fixed_settings is not None
                else FoldSettings.from_routing_config(await self.routing_config(workspace_id))
                for workspace_id in set(workspaces)}

    async def routing_config(self, workspace_id: str) -> RoutingConfig:
        """The workspace's stored routing configuration (queues, hours, media; its own, else the
        deployment's default: shared/routing_config.py); the built-in default when none or invalid."""
        stored = await find_config(self.config_db, workspace_id, {"config": 1})
        try:
            return RoutingConfig.model_validate(stored["config"]) if stored else RoutingConfig()
        except ValidationError:  # the router logs it and runs on its default; so do we
            return RoutingConfig()

    # -- ingest ---------------------------------------------------------------------------------

    async def record(self, batch: Iterable[ReportEvent], *, recompute: bool = True) -> set[BucketRef]:
        """Store the events, refold what they change and write down the buckets to recompute.

        With `recompute` the pending buckets are recomputed at once (and returned); the service
        leaves that to its rollup timer instead, so a bucket of thousands of conversations is
        recomputed once a period, not once per batch of events."""
        events = list({event.event_id: event for event in batch}.values())
        if events:
            if self.before_insert is not None:
                await self.before_insert(events)
            await self._insert_events(events)
        conversations = {(e.workspace_id, e.conversation_id) for e in events if e.conversation_id}
        agents = _agents_touched(events)
        settings = await self.fold_settings(workspace_id for workspace_id, _ in conversations)
        folded = await self._fold_conversations(conversations, settings)
        await self._mark_agents(agents)
        await self._mark_pending(_conversation_buckets(folded))
        await self._write_conversations(folded)
        await self._write_live_agents([e for e in events if e.type == "agent.status_changed" and e.agent_id])
        await self._write_incidents([e for e in events if e.type in INCIDENT_EVENTS])
        if not recompute:
            return set()
        await self.refold_pending_agents()
        return await self.recompute_pending()

    async def recompute_all(self, chunk: int = 500) -> int:
        """Everything again from the stored events, after a definition or the configuration changed.

        Every conversation is refolded (`chunk` at a time), every agent's time from its first event,
        and every bucket either touches (old facts or new) is recomputed. Run it with the service
        stopped: the rollups have one writer. Returns how many conversations were refolded."""
        conversations = await self.events.aggregate([
            {"$match": {"conversation_id": {"$ne": None}}},
            {"$group": {"_id": {"w": "$workspace_id", "c": "$conversation_id"}}}])
        keys = sorted([(d["_id"]["w"], d["_id"]["c"]) async for d in conversations])
        settings = await self.fold_settings(workspace_id for workspace_id, _ in keys)
        for start in range(0, len(keys), chunk):
            folded = await self._fold_conversations(set(keys[start:start + chunk]), settings)
            await self._mark_pending(_conversation_buckets(folded))
            await self._write_conversations(folded)
        first_events = await self.events.aggregate([
            {"$match": {"agent_id": {"$ne": None}, "type": {"$in": list(AGENT_TIME_EVENTS)}}},
            {"$group": {"_id": {"w": "$workspace_id", "a": "$agent_id"}, "earliest": {"$min": "$at"}}}])
        await self._mark_agents({(d["_id"]["w"], d["_id"]["a"]): d["earliest"] async for d in first_events})
        await self.refold_pending_agents()
        await self.recompute_pending()
        return len(keys)

    async def _mark_agents(self, agents: dict[tuple[str, str], datetime]) -> None:
        """Agents whose time to refold, from the earliest event of theirs since their last refold."""
        mark = ObjectId()
        if agents:
            await self.pending_agents.bulk_write([
                UpdateOne({"_id": _key(workspace_id, agent_id)},
                          {"$min": {"earliest": earliest},
                           "$set": {"workspace_id": workspace_id, "agent_id": agent_id, "mark": mark}}, upsert=True)
                for (workspace_id, agent_id), earliest in agents.items()], ordered=False)

    async def refold_pending_agents(self) -> set[BucketRef]:
        """Refold the time of every agent marked since the last time (a refold reads the agent's events of
        its open buckets: once a period, not once per batch); the buckets changed are marked for recompute."""
        marks = {(d["workspace_id"], d["agent_id"]): (d["earliest"], d["mark"]) async for d in self.pending_agents.find({})}
        if not marks:
            return set()
        refolded = await self._fold_agents({key: earliest for key, (earliest, _) in marks.items()})
        changed = _agent_buckets(refolded)
        await self._mark_pending(changed)
        await self._write_agent_time(refolded)
        await self.pending_agents.bulk_write([DeleteOne({"_id": _key(*key), "mark": mark})
                                              for key, (_, mark) in marks.items()], ordered=False)
        return changed

    async def recompute_pending(self) -> set[BucketRef]:
        """Recompute every bucket written down as pending; each mark goes only if no batch renewed it meanwhile."""
        marks = {BucketRef(d["workspace_id"], d["bucket"]): d.get("mark") async for d in self.pending.find({})}
        if not marks:
            return set()
        await self.recompute_buckets(set(marks))
        await self.pending.bulk_write([DeleteOne({"_id": ref.id, "mark": mark}) for ref, mark in marks.items()],
                                      ordered=False)
        return set(marks)

    async def _insert_events(self, events: list[ReportEvent]) -> None:
        documents = [InsertOne(_event_document(event)) for event in events]
        try:
            await self.events.bulk_write(documents, ordered=False)
        except BulkWriteError as error:
            if non_duplicate_errors(error.details):  # a duplicate id is an event stored before: fine
                raise

    async def _mark_pending(self, refs: set[BucketRef]) -> None:
        """Written before the facts change: a crash after this leaves the buckets to recompute, not forgotten.

        The mark is new each time, so a recomputation that began before it does not remove it."""
        mark = ObjectId()
        if refs:
            await self.pending.bulk_write([
                UpdateOne({"_id": ref.id}, {"$set": {"workspace_id": ref.workspace_id, "bucket": ref.bucket, "mark": mark}},
                          upsert=True) for ref in refs], ordered=False)

    # -- conversations --------------------------------------------------------------------------

    async def _fold_conversations(self, keys: set[tuple[str, str]], settings: dict[str, FoldSettings]
                                  ) -> list["FoldedConversation"]:
        if not keys:
            return []
        by_conversation: dict[tuple[str, str], list[ReportEvent]] = defaultdict(list)
        # $in per workspace, served by the index ($or over pairs scanned every stored event).
        for workspace_id, conversation_ids in _by_workspace(keys).items():
            query = {"workspace_id": workspace_id, "conversation_id": {"$in": conversation_ids}}
            async for document in self.events.find(query, {"event": 1}):
                event = ReportEvent.model_validate_json(document["event"])
                by_conversation[(event.workspace_id, event.conversation_id or "")].append(event)
        old = {(d["workspace_id"], d["conversation_id"]): d.get("buckets", [])
               async for d in self.conversations.find({"_id": {"$in": [_key(*k) for k in keys]}},
                                                      {"workspace_id": 1, "conversation_id": 1, "buckets": 1})}
        return [FoldedConversation(fold_conversation(events, settings[key[0]]), old.get(key, []))
                for key, events in by_conversation.items()]

    async def _write_conversations(self, folded: list["FoldedConversation"]) -> None:
        if folded:
            await self.conversations.bulk_write(
                [ReplaceOne({"_id": _key(f.facts.workspace_id, f.facts.conversation_id)}, f.document(), upsert=True)
                 for f in folded], ordered=False)

    # -- agents ---------------------------------------------------------------------------------

    async def _write_live_agents(self, snapshots: list[ReportEvent]) -> None:
        """Each agent's latest snapshot (by version, then time), and since when it has had its status.

        Read, compared and replaced here rather than by a conditional upsert: reporting has one
        consumer, and a redelivered or late snapshot must not move an agent back."""
        latest: dict[str, ReportEvent] = {}
        for snapshot in sorted(snapshots, key=_snapshot_order):
            latest[_key(snapshot.workspace_id, snapshot.agent_id or "")] = snapshot
        if not latest:
            return
        stored = {d["_id"]: d async for d in self.live_agents.find({"_id": {"$in": list(latest)}})}
        writes = []
        for key, snapshot in latest.items():
            before = stored.get(key)
            if before is not None and (before["version"], before["at"]) >= _snapshot_order(snapshot)[:2]:
                continue
            status = snapshot.data.get("status", "offline")
            since = before["since"] if before is not None and before["status"] == status else snapshot.at
            writes.append(ReplaceOne({"_id": key}, {
                "workspace_id": snapshot.workspace_id, "agent_id": snapshot.agent_id, "status": status,
                "since": since, "at": snapshot.at, "version": _snapshot_order(snapshot)[0],
                "max_conversations": snapshot.data.get("max_conversations", 0),
                "channel_capacity": snapshot.data.get("channel_capacity") or {}}, upsert=True))
        if writes:
            await self.live_agents.bulk_write(writes, ordered=False)

    # -- incidents ------------------------------------------------------------------------------

    async def _write_incidents(self, announcements: list[ReportEvent]) -> None:
        """Each incident's newest announced state (incidents.py's order): a conditional upsert, so a redelivered
        or older announcement, even from a batch that overlaps another at a handover, never replaces a newer one."""
        newest: dict[str, dict[str, Any]] = {}
        for announcement in announcements:
            document = _incident_document(announcement)
            key = _key(announcement.workspace_id, document["incident_id"])
            if key not in newest or newest[key]["order"] < document["order"]:
                newest[key] = document
        if not newest:
            return
        try:
            # A stored state as new or newer: the filter misses, the upsert's insert is a duplicate key: skipped.
            await self.incidents.bulk_write([UpdateOne({"_id": key, "order": {"$lt": document["order"]}},
                                                       {"$set": document}, upsert=True)
                                             for key, document in newest.items()], ordered=False)
        except BulkWriteError as error:
            if non_duplicate_errors(error.details):
                raise

    async def _fold_agents(self, agents: dict[tuple[str, str], datetime]) -> list["RefoldedAgent"]:
        return list(await asyncio.gather(*(self._fold_agent(workspace, agent, earliest)
                                           for (workspace, agent), earliest in agents.items())))

    async def _fold_agent(self, workspace_id: str, agent_id: str, earliest: datetime) -> "RefoldedAgent":
        """The agent's buckets from the first one not stored before `earliest` to the last one stored (or
        the bucket of its last event), from the state stored at the end of the bucket before.

        Buckets with no time and no change of state are not stored, so the last stored bucket
        before any instant holds the state at that instant; starting right after it also fills
        the online hours that came with no event (see extend_online_agents)."""
        who = {"workspace_id": workspace_id, "agent_id": agent_id}
        before = await self._last_bucket_before(who, bucket_start(earliest))
        start = before["bucket"] + BUCKET if before else bucket_start(earliest)
        state = AgentState.from_dict(before["end_state"]) if before else AgentState()
        stored = {d["bucket"]: d async for d in self.agent_time.find({**who, "bucket": {"$gte": start}})}
        # The types are filtered here, not in the query: with a `type: {$in}` beside the index's
        # range SecantusDB scanned the collection; the range alone is read by the index.
        events = [ReportEvent.model_validate_json(d["event"]) async for d in self.events.find(
            {**who, "at": {"$gte": start}}, {"event": 1, "type": 1}) if d["type"] in AGENT_TIME_EVENTS]
        last = max([bucket_start(earliest), *(bucket_start(e.at) for e in events), *stored])
        periods = fold_agent_buckets(agent_id, events, start, last + BUCKET, state)
        return RefoldedAgent(workspace_id, agent_id, state, periods, stored)

    async def _last_bucket_before(self, who: dict[str, str], bucket: datetime) -> dict[str, Any] | None:
        """The agent's last stored bucket before `bucket`: looked for in the last hours first (SecantusDB
        sorts the whole range it reads, and an agent's history grows by 96 buckets a day), then before."""
        near = {"$gte": bucket - RECENT_BUCKETS, "$lt": bucket}
        found = await self.agent_time.find_one({**who, "bucket": near}, sort=[("bucket", DESCENDING)])
        if found is None:
            found = await self.agent_time.find_one({**who, "bucket": {"$lt": near["$gte"]}},
                                                   sort=[("bucket", DESCENDING)])
        return found

    async def _write_agent_time(self, refolded: list["RefoldedAgent"]) -> None:
        writes = [ReplaceOne({"workspace_id": r.workspace_id, "agent_id": r.agent_id, "bucket": p.start},
                             _agent_time_document(r.workspace_id, p), upsert=True)
                  for r in refolded for p in r.changed()]
        if writes:
            await self.agent_time.bulk_write(writes, ordered=False)

    async def extend_online_agents(self, now: datetime) -> set[BucketRef]:
        """Carry agents whose last stored bucket is before `now`'s and ends online up to the bucket of `now`.

        Without events an online agent's time would stop at the bucket of its last event until
        its next one; this fills the buckets since, so today's occupancy counts the quiet hours.
        Only the last EXTEND_LOOKBACK of buckets is read: each run carries every online agent to
        the current bucket, so an earlier last bucket is an agent the runs already carried."""
        current = bucket_start(now)
        latest = await self.agent_time.aggregate([
            {"$match": {"bucket": {"$gte": current - EXTEND_LOOKBACK}}},
            {"$sort": {"bucket": -1}},
            {"$group": {"_id": {"w": "$workspace_id", "a": "$agent_id"}, "bucket": {"$first": "$bucket"},
                        "status": {"$first": "$end_state.status"}}},
            {"$match": {"status": "online", "bucket": {"$lt": current}}},
        ])
        agents = {(d["_id"]["w"], d["_id"]["a"]): current async for d in latest}
        refolded = await self._fold_agents(agents)
        changed = _agent_buckets(refolded)
        await self._mark_pending(changed)
        await self._write_agent_time(refolded)
        return changed

    # -- rollups --------------------------------------------------------------------------------

    async def recompute_buckets(self, refs: set[BucketRef]) -> None:
        """Replace each bucket's rollup by the sum of what its conversations and agents add to it."""
        by_workspace: dict[str, set[datetime]] = defaultdict(set)
        for ref in refs:
            by_workspace[ref.workspace_id].add(ref.bucket)
        writes = []
        for workspace_id, buckets in by_workspace.items():
            parts = await self._conversation_parts(workspace_id, buckets)
            agent_times = await self._agent_times(workspace_id, buckets)
            for bucket in buckets:
                rollup = merge([*parts[bucket], rollup_between([], agent_times[bucket], bucket, bucket + BUCKET)])
                writes.append(ReplaceOne({"workspace_id": workspace_id, "bucket": bucket},
                                         _rollup_document(workspace_id, bucket, rollup), upsert=True))
        if writes:
            await self.rollups.bulk_write(writes, ordered=False)
        await self.recompute_coarser(refs)

    async def recompute_coarser(self, refs: set[BucketRef]) -> None:
        """Replace the UTC 1, 2, 6 and 24-hour rollups holding these buckets, each by the merge of the
        stored rollups of the span below it (4 buckets, 2 hours, 3 two-hours, 4 six-hours), finest
        first; the buckets are stored already.

        Part of the same recomputation as the buckets, so its marks stay until this is done too."""
        finer = {(ref.workspace_id, _utc(ref.bucket)) for ref in refs}
        for (lower, lower_rollups), (span, collection) in pairwise(self.span_rollups.items()):
            starts = {(workspace_id, span_start(at, span)) for workspace_id, at in finer}
            writes = []
            for workspace_id, owners in _group_starts(starts).items():
                inside = [owner + i * lower for owner in owners for i in range(span // lower)]
                groups: dict[datetime, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
                for first in range(0, len(inside), 2000):
                    query = {"workspace_id": workspace_id, "bucket": {"$in": inside[first:first + 2000]}}
                    async for document in lower_rollups.find(query, {"bucket": 1, "groups": 1}):
                        for grouping, raw in document.get("groups", {}).items():
                            groups[span_start(document["bucket"], span)][grouping].append(raw)
                for owner in owners:
                    rollup = {grouping: merge(orjson.loads(raw) for raw in raws)
                              for grouping, raws in groups.get(owner, {}).items()}
                    writes.append(ReplaceOne({"workspace_id": workspace_id, "bucket": owner},
                                             _rollup_document(workspace_id, owner, rollup), upsert=True))
            if writes:
                await collection.bulk_write(writes, ordered=False)
            finer = starts

    async def _conversation_parts(self, workspace_id: str, buckets: set[datetime]) -> dict[datetime, list[Rollup]]:
        parts: dict[datetime, list[Rollup]] = defaultdict(list)
        query = {"workspace_id": workspace_id, "buckets": {"$in": sorted(buckets)}}
        async for document in self.conversations.find(query, {"parts": 1}):
            for part in document["parts"]:
                if part["bucket"] in buckets:
                    parts[part["bucket"]].append(orjson.loads(part["rollup"]))
        return parts

    async def _agent_times(self, workspace_id: str, buckets: set[datetime]) -> dict[datetime, list[AgentTime]]:
        times: dict[datetime, list[AgentTime]] = defaultdict(list)
        query = {"workspace_id": workspace_id, "bucket": {"$in": sorted(buckets)}}
        async for d in self.agent_time.find(query):
            times[d["bucket"]].append(AgentTime(d["agent_id"], d["bucket"], d["bucket"] + BUCKET, d["online_ms"],
                                                d["occupied_ms"], d["weighted_ms"], AgentState.from_dict(d["end_state"])))
        return times

    # -- reads ----------------------------------------------------------------------------------

    async def bucket_rollups(self, workspace_id: str, start: datetime, end: datetime, grouping: str,
                             interval: str | None = None, tz: str | None = None
                             ) -> dict[datetime, Rollup] | StoredRollups:
        """The stored rollups of [start, end), only the grouping asked for.

        Without interval and zone: every 15-minute bucket. With them: for each local interval the
        coarsest stored spans that tile it (`tiles_by_interval`), as `metrics.summary` merges them."""
        if interval is None or tz is None:
            query = {"workspace_id": workspace_id, "bucket": {"$gte": bucket_start(start), "$lt": end}}
            return await self._read_rollups(self.rollups, query, grouping)
        wanted: dict[timedelta, list[datetime]] = defaultdict(list)
        for _, tiles in tiles_by_interval(start, end, interval, tz, SPANS):
            for at, span in tiles:
                wanted[span].append(at)
        found = await asyncio.gather(*(self._read_rollups(self.span_rollups[span], _starts_query(
            workspace_id, starts, span), grouping) for span, starts in wanted.items()))
        sets = {span: set(starts) for span, starts in wanted.items()}
        read = {span: {at: rollup for at, rollup in rollups.items() if at in sets[span]}
                for span, rollups in zip(wanted, found, strict=True)}
        return StoredRollups({span: read.get(span, {}) for span in SPANS})

    @staticmethod
    async def _read_rollups(collection, query: dict[str, Any], grouping: str) -> dict[datetime, Rollup]:
        found = {}
        async for document in collection.find(query, {"bucket": 1, f"groups.{grouping}": 1}):
            raw = document.get("groups", {}).get(grouping)
            found[document["bucket"]] = {grouping: orjson.loads(raw)} if raw else {}
        return found

    async def open_conversations(self, workspace_id: str) -> list[dict[str, Any]]:
        """The `live` part of every conversation waiting, offered or assigned now."""
        query = {"workspace_id": workspace_id, "live.state": {"$in": list(OPEN_STATES)}}
        return [d["live"] async for d in self.conversations.find(query, {"live": 1})]

    async def active_incidents(self, workspace_id: str, limit: int = INCIDENTS_SHOWN) -> list[dict[str, Any]]:
        """The workspace's open and confirmed incidents, the newest first, ties by id (at most `limit`: one indexed
        read)."""
        query = {"workspace_id": workspace_id, "status": {"$in": list(ACTIVE_STATUSES)}}
        cursor = self.incidents.find(query, {"_id": 0, "order": 0}).sort(
            [("opened_at", DESCENDING), ("incident_id", ASCENDING)]).limit(limit)
        return [document async for document in cursor]

    async def agents_now(self, workspace_id: str) -> list[dict[str, Any]]:
        """Every agent's latest presence and capacity."""
        return [d async for d in self.live_agents.find({"workspace_id": workspace_id}, {"_id": 0})]

    def export_rows(self, workspace_id: str, start: datetime, end: datetime, batch_size: int = 500):
        """The CSV rows of the conversations that started in [start, end), oldest first (a cursor)."""
        query = {"workspace_id": workspace_id, "started_at": {"$gte": start, "$lt": end}}
        return self.conversations.find(query, {"row": 1}, batch_size=batch_size).sort(
            [("started_at", ASCENDING), ("_id", ASCENDING)])


@dataclass(frozen=True)
class FoldedConversation:
    """A conversation's facts folded again, and the buckets its previous facts touched."""

    facts: ConversationFacts
    old_buckets: list[datetime]

    @property
    def buckets(self) -> set[datetime]:
        return buckets_touched(self.facts)

    def document(self) -> dict[str, Any]:
        f = self.facts
        parts = [{"bucket": b, "rollup": _json(rollup_between([f], [], b, b + BUCKET))}
                 for b in sorted(self.buckets)]
        started = f.opened_at or f.queued_at or min((p["bucket"] for p in parts), default=None)
        return {"workspace_id": f.workspace_id, "conversation_id": f.conversation_id, "started_at": started,
                "buckets": sorted(self.buckets), "parts": parts, "row": csv_row(f), "live": live_part(f)}


@dataclass(frozen=True)
class RefoldedAgent:
    workspace_id: str
    agent_id: str
    start_state: AgentState
    periods: list[AgentTime]
    stored: dict[datetime, dict[str, Any]]  # the documents these periods replace, by bucket

    def changed(self) -> list[AgentTime]:
        """The periods to write: those that differ from their stored document, except a bucket
        never stored that holds no time and no change of state (nothing to say, nothing to chain)."""
        found, state = [], self.start_state
        for period in self.periods:
            document = self.stored.get(period.start)
            trivial = period.online_ms == 0 and period.end_state == state
            if (document is not None or not trivial) and \
                    _agent_time_document(self.workspace_id, period) != _comparable(document):
                found.append(period)
            state = period.end_state
        return found


def live_part(f: ConversationFacts) -> dict[str, Any]:
    """What the live view reads of a conversation: where it stands, since when, with whom."""
    return {"conversation_id": f.conversation_id, "state": f.state, "since": f.state_since, "agent_id": f.state_agent,
            "queue": f.queue, "channel": f.channel, "priority": f.priority, "opened_at": f.opened_at,
            "entered_queue_at": f.entered_queue_at,
            "breached": any(alert.level == "breached" for alert in f.sla_alerts)}


def _snapshot_order(snapshot: ReportEvent) -> tuple[int, datetime, str]:
    version = snapshot.data.get("version")
    return (version if isinstance(version, int) else -1, snapshot.at, snapshot.event_id)


def _comparable(document: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if document is None else {k: v for k, v in document.items() if k != "_id"}


def _by_workspace(keys: set[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = defaultdict(list)
    for workspace_id, conversation_id in sorted(keys):
        grouped[workspace_id].append(conversation_id)
    return grouped


def _event_document(event: ReportEvent) -> dict[str, Any]:
    # The event itself as JSON (its time to the microsecond, data as sent); the rest is for queries.
    return {"_id": event.event_id, "workspace_id": event.workspace_id, "conversation_id": event.conversation_id,
            "agent_id": event.agent_id, "type": event.type, "at": event.at, "event": event.model_dump_json()}


def _incident_document(announcement: ReportEvent) -> dict[str, Any]:
    """An announced state as stored: its channels as a list (channel names are free text, not field names)."""
    state = IncidentState.model_validate(announcement.data)
    return {"workspace_id": announcement.workspace_id, "incident_id": state.incident_id, "title": state.title,
            "status": state.status, "conversations": state.conversations,
            "channels": [{"channel": name, "count": count} for name, count in sorted(state.channels.items())],
            "opened_at": state.opened_at, "last_link_at": state.last_link_at, "announced_at": announcement.at,
            "event_id": announcement.event_id,
            "order": announcement_order(state, announcement.at, announcement.event_id)}


def _agent_time_document(workspace_id: str, period: AgentTime) -> dict[str, Any]:
    return {"workspace_id": workspace_id, "agent_id": period.agent_id, "bucket": period.start,
            "online_ms": period.online_ms, "occupied_ms": period.occupied_ms, "weighted_ms": period.weighted_ms,
            "end_state": period.end_state.as_dict()}


def _rollup_document(workspace_id: str, bucket: datetime, rollup: Rollup) -> dict[str, Any]:
    groups = {grouping: _json(rollup[grouping]) for grouping in GROUPINGS if rollup.get(grouping)}
    return {"workspace_id": workspace_id, "bucket": bucket, "groups": groups}


def _agents_touched(events: list[ReportEvent]) -> dict[tuple[str, str], datetime]:
    """Each agent whose time the events move, with the earliest such event."""
    earliest: dict[tuple[str, str], datetime] = {}
    for event in events:
        if event.agent_id and event.type in AGENT_TIME_EVENTS:
            key = (event.workspace_id, event.agent_id)
            earliest[key] = min(earliest.get(key, event.at), event.at)
    return earliest


def _conversation_buckets(folded: list[FoldedConversation]) -> set[BucketRef]:
    return {BucketRef(f.facts.workspace_id, _utc(b)) for f in folded for b in {*f.old_buckets, *f.buckets}}


def _agent_buckets(refolded: list[RefoldedAgent]) -> set[BucketRef]:
    return {BucketRef(r.workspace_id, p.start) for r in refolded for p in r.changed()}


def _starts_query(workspace_id: str, starts: list[datetime], span: timedelta) -> dict[str, Any]:
    """These starts of one span: a range when they are most of it (an $in of hundreds is slower to
    serve than a range scan on SecantusDB), else an $in; the caller drops the extra ones."""
    first, last = min(starts), max(starts)
    if 2 * len(starts) >= (last - first) // span + 1:
        return {"workspace_id": workspace_id, "bucket": {"$gte": first, "$lte": last}}
    return {"workspace_id": workspace_id, "bucket": {"$in": starts}}


def _group_starts(starts: set[tuple[str, datetime]]) -> dict[str, list[datetime]]:
    grouped: dict[str, list[datetime]] = defaultdict(list)
    for workspace_id, at in sorted(starts):
        grouped[workspace_id].append(at)
    return grouped


def _utc(at: datetime) -> datetime:
    return at.astimezone(UTC)

