"""The router's own collections, written by the router only: `routing_conversations` (open
conversations with their whole routing state), `routing_backlog` (the messages a waiting
conversation holds, one document each), `routing_agents` (the router's view of each agent),
`routing_last_agents` (who last served each thread, for last-agent routing) and `routing_outbox`.
A standby that takes over rebuilds the core from them."""

import contextlib
import gc
from collections import ChainMap, defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from typing import TypeVar

import bson
import structlog
from bson import ObjectId
from pydantic import ValidationError
from pymongo import DeleteMany, DeleteOne, ReplaceOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.router.config import RoutingConfig
from services.router.core import RoutingCore
from services.router.model import Agent, Conversation, Offer, Outcome
from shared.models import InboundMessage

log = structlog.get_logger(__name__)
T = TypeVar("T")


class StateView:
    """The agents, conversations and last agents of several cores (a partition's workspaces) as one."""

    def __init__(self, cores: Iterable[RoutingCore]) -> None:
        cores = list(cores)
        self.conversations = ChainMap(*(c.conversations for c in cores))
        self.agents = ChainMap(*(c.agents for c in cores))
        self.last_agents = ChainMap(*(c.last_agents for c in cores))


class StaleRoutingState(Exception):
    """Another replica wrote this partition's state since this one loaded it: reload before going on."""


class RoutingStore:
    """One router partition's share of the collections: every document carries its `partition`."""

    def __init__(self, db: AsyncDatabase, partition: int) -> None:
        self.db = db
        self.partition = partition
        self.conversations = db["routing_conversations"]
        self.backlog = db["routing_backlog"]
        self.agents = db["routing_agents"]
        self.last_agents = db["routing_last_agents"]
        self.outbox = db["routing_outbox"]
        self.partitions = db["routing_partitions"]  # per partition: `seq`, how many commits wrote its state
        self.seq: int | None = None  # that count as of this replica's load; None: not loaded (no fencing)

    async def ensure_indexes(self) -> None:
        await self.conversations.create_index(
            [("workspace_id", 1), ("channel", 1), ("thread_id", 1)], unique=True
        )
        await self.backlog.create_index([("conversation_id", 1), ("position", 1)])
        for collection in (self.conversations, self.backlog, self.agents, self.last_agents, self.outbox):
            await collection.create_index("partition")

    async def load(self, configs: Callable[[str], RoutingConfig], since: datetime) -> dict[str, RoutingCore]:
        """A core per workspace of the partition, holding its agents, open conversations and recent
        last agents (loads recomputed), each with its workspace's configuration.

        Each collection's share is read whole in batches (`to_list`), then parsed: a standby taking
        over reads tens of thousands of documents, and one coroutine step per document cost as much
        as the reading."""
        mine = {"partition": self.partition}
        counted = await self.partitions.find_one({"_id": self.partition})
        self.seq = counted["seq"] if counted else 0  # read first: a write after it makes this load stale
        agents = _readable(await self.agents.find(mine).to_list(), _agent_from_doc)
        conversations = _readable(await self.conversations.find(mine).to_list(), _conversation_from_doc)
        await self._load_backlogs(conversations)
        last_agents = {
            (doc["workspace_id"], doc["channel"], doc["thread_id"]): (doc["agent_id"], doc["resolved_at"])
            for doc in await self.last_agents.find({**mine, "resolved_at": {"$gte": since}}).to_list()
        }
        by_workspace: dict[str, tuple[list, list, dict]] = defaultdict(lambda: ([], [], {}))
        for agent in agents:
            by_workspace[agent.workspace_id][0].append(agent)
        for conversation in conversations:
            by_workspace[conversation.workspace_id][1].append(conversation)
        for key, value in last_agents.items():
            if key[0] in by_workspace:
                by_workspace[key[0]][2][key] = value
        return {workspace_id: RoutingCore.rebuilt(configs(workspace_id), *state)
                for workspace_id, state in sorted(by_workspace.items())}

    async def is_current(self) -> bool:
        """Whether no other replica wrote this partition's state since this one loaded it."""
        doc = await self.partitions.find_one({"_id": self.partition})
        return (doc["seq"] if doc else 0) == self.seq

    async def fence(self) -> None:
        """Count one more state write, unless another replica wrote since this one loaded (StaleRoutingState).

        Single active consumers keep two replicas from handling a partition at once; this keeps one
        that lost the partition unnoticed (a network partition, a consumer outranked) from writing
        over the state its successor wrote."""
        try:
            await self.partitions.update_one({"_id": self.partition, "seq": self.seq}, {"$inc": {"seq": 1}}, upsert=True)
        except DuplicateKeyError:
            self.seq = None
            raise StaleRoutingState(f"partition {self.partition}: state written by another replica since it was loaded") from None
        self.seq = (self.seq or 0) + 1

    async def _load_backlogs(self, conversations: list[Conversation]) -> None:
        by_id = {c.conversation_id: c for c in conversations}
        for doc in await self.backlog.find({"partition": self.partition}).sort(
                [("conversation_id", 1), ("position", 1)]).to_list():
            conversation = by_id.get(doc["conversation_id"])
            if conversation is None:
                continue  # left by a crash between closing the conversation and clearing its backlog
            try:
                conversation.backlog.append(InboundMessage.model_validate(doc["message"]))
            except ValidationError as error:
                log.error("router.state_document_unreadable", document_id=str(doc["_id"]), error=repr(error))

    async def commit(self, core: "RoutingCore | StateView", outcome: Outcome, outbox: list[dict], *,
                     log_without_writes: bool = True) -> ObjectId | None:
        """Write the outcome's state and the messages it must publish as one logged commit.

        The state writes and the outbox go to `routing_outbox` first, in parts; the last part's
        insert seals the commit (usually it is the only one: one insert). Only then is the state
        applied. A router that dies anywhere after the seal leaves a commit that the next one
        replays (state again, idempotent; then every message, in order), so no event whose state
        was saved is lost. One that dies before the seal wrote no state. With `log_without_writes`
        false, an outcome that writes no state is not logged (its caller can make it again).
        A commit with writes over a loaded state is fenced first (`fence`)."""
        writes = _state_writes(core, outcome)
        if writes and self.seq is not None:
            await self.fence()
        if not outbox or (not writes and not log_without_writes):
            await self._apply(writes)
            return None
        commit_id = ObjectId()
        entries = [*(("write", w) for w in writes), *(("publish", item) for item in outbox)]
        chunks = _chunks(entries)
        parts = [{"_id": f"{commit_id}:{n}", "commit": commit_id, "part": n, "entries": chunk, "partition": self.partition}
                 for n, chunk in enumerate(chunks)]
        parts[-1] |= {"sealed": True, "parts": len(parts)}
        if len(parts) > 1:
            await self.outbox.insert_many(parts[:-1], ordered=True)
        await self.outbox.insert_one(parts[-1])
        await self._apply(writes)
        return commit_id

    async def finish(self, commit_id: ObjectId | None) -> None:
        """The commit's messages are published: forget it."""
        if commit_id is not None:
            await self.outbox.delete_many({"commit": commit_id})

    async def unfinished_commits(self) -> list[tuple[ObjectId, list[dict]]]:
        """Sealed commits not finished, oldest first, each with its state re-applied; their outboxes to publish.

        Parts never sealed belong to a commit whose state was never applied: they are dropped."""
        sealed = [doc["commit"] async for doc in
                  self.outbox.find({"partition": self.partition, "sealed": True}, {"commit": 1}).sort("commit", 1)]
        commits = []
        for commit_id in sealed:
            entries = [e async for part in self.outbox.find({"commit": commit_id}).sort("part", 1)
                       for e in part["entries"]]
            await self._apply([value for kind, value in entries if kind == "write"])
            commits.append((commit_id, [value for kind, value in entries if kind == "publish"]))
        await self.outbox.delete_many({"partition": self.partition, "commit": {"$nin": sealed}})
        return commits

    async def _apply(self, writes: list[dict]) -> None:
        """Apply logged writes, in order per collection (each is idempotent)."""
        ops: dict[str, list] = {"conversations": [], "backlog": [], "agents": [], "last_agents": []}
        for write in writes:
            target = ops[write["collection"]]
            if write.get("delete"):
                target.append(DeleteOne({"_id": write["_id"]}))
            elif write.get("clear"):
                target.append(DeleteMany({"conversation_id": write["conversation_id"]}))
            else:
                target.append(ReplaceOne({"_id": write["_id"]}, write["doc"] | {"partition": self.partition}, upsert=True))
        for name, collection_ops in ops.items():
            if collection_ops:
                await getattr(self, name).bulk_write(collection_ops, ordered=True)


async def assign_partitions(db: AsyncDatabase, partition_of: Callable[[str], int]) -> None:
    """Documents written before router partitions get theirs: a no-op once every document has one.

    Every replica runs it at start (the same values, so concurrent runs agree). An outbox commit
    the single router of old left unfinished goes to the partition of the first workspace it names."""
    missing = {"partition": {"$exists": False}}
    for name in ("routing_conversations", "routing_agents", "routing_last_agents"):
        workspaces = {doc["workspace_id"] async for doc in db[name].find(missing, {"workspace_id": 1})}
        for workspace_id in workspaces:
            await db[name].update_many({**missing, "workspace_id": workspace_id},
                                       {"$set": {"partition": partition_of(workspace_id)}})
    conversations = {doc["conversation_id"] async for doc in db["routing_backlog"].find(missing, {"conversation_id": 1})}
    for conversation_id in conversations:
        owner = await db["routing_conversations"].find_one({"_id": conversation_id}, {"partition": 1})
        if owner is not None:
            await db["routing_backlog"].update_many({**missing, "conversation_id": conversation_id},
                                                    {"$set": {"partition": owner["partition"]}})
    async for part in db["routing_outbox"].find(missing, {"entries": 1}):
        named = [value.get("workspace_id") or value.get("doc", {}).get("workspace_id") for _, value in part["entries"]]
        workspace_id = next((w for w in named if w), "")
        await db["routing_outbox"].update_one({"_id": part["_id"]}, {"$set": {"partition": partition_of(workspace_id)}})


def _state_writes(core: "RoutingCore | StateView", outcome: Outcome) -> list[dict]:
    """What the outcome changed, as plain documents (they are logged in the outbox as they are)."""
    writes: list[dict] = [{"collection": "conversations", "_id": i, "delete": True} for i in outcome.closed_conversations]
    writes += _backlog_writes(outcome)
    for conversation_id in outcome.changed_conversations - outcome.closed_conversations:
        conversation = core.conversations.get(conversation_id)
        if conversation is not None:
            writes.append({"collection": "conversations", "_id": conversation_id, "doc": _conversation_to_doc(conversation)})
    writes += [
        {"collection": "agents", "_id": _agent_id(*key), "doc": _agent_to_doc(core.agents[key])}
        for key in outcome.changed_agents
        if key in core.agents
    ]
    writes += [
        {"collection": "last_agents", "_id": ":".join(key),
         "doc": {"workspace_id": key[0], "channel": key[1], "thread_id": key[2],
                 "agent_id": core.last_agents[key][0], "resolved_at": core.last_agents[key][1]}}
        for key in outcome.changed_threads
        if key in core.last_agents
    ]
    return writes


def _backlog_writes(outcome: Outcome) -> list[dict]:
    """Backlog inserts and clears in order, without those that cancel out within this commit.

    A conversation assigned in the commit that opened it (the usual case) writes no backlog at
    all: its adds started at position 0 here, so nothing of it is stored from before."""
    kept: list[tuple] = []
    for change in outcome.backlog_changes:
        if change[0] == "clear":
            mine = [c for c in kept if c[1] == change[1]]
            kept = [c for c in kept if c[1] != change[1]]
            if not any(c[0] == "add" and c[2] == 0 for c in mine):
                kept.append(change)
        else:
            kept.append(change)
    writes = [{"collection": "backlog", "conversation_id": c[1], "clear": True} if c[0] == "clear" else
              {"collection": "backlog", "_id": f"{c[1]}:{c[3].message_id}",
               "doc": {"conversation_id": c[1], "position": c[2], "message": c[3].model_dump(mode="json")}}
              for c in kept]
    return writes


# MongoDB documents hold 16 MiB: a big commit (a reroute of many conversations with their
# backlogs) is logged in parts well under that.
OUTBOX_PART_BYTES = 4 * 1024 * 1024


def _chunks(entries: list[tuple[str, dict]]) -> list[list[tuple[str, dict]]]:
    chunks: list[list[tuple[str, dict]]] = [[]]
    size = 0
    for entry in entries:
        entry_size = len(bson.encode({"e": entry}))
        if chunks[-1] and size + entry_size > OUTBOX_PART_BYTES:
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += entry_size
    return chunks


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while a core is loaded.

    A load makes hundreds of thousands of long-lived objects (documents, then the core), and the
    collector would walk the growing heap again and again while they are made (a quarter of the
    parse and build at 10,000 agents); they hold no garbage cycles worth finding meanwhile."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _readable(docs: list[dict], read: Callable[[dict], T]) -> list[T]:
    """The documents `read` can make sense of; one it cannot is logged and left in place.

    One unreadable document (written by an older version, or edited by hand) must not keep the
    core from being built, or every later batch would fail with it."""
    readable = []
    for doc in docs:
        try:
            readable.append(read(doc))
        except (ValidationError, KeyError, TypeError, ValueError) as error:
            log.error("router.state_document_unreadable", document_id=str(doc.get("_id")), error=repr(error))
    return readable


def _agent_id(workspace_id: str, agent_id: str) -> str:
    return f"{workspace_id}:{agent_id}"


AGENT_FIELDS = ("workspace_id", "agent_id", "version", "skills", "max_conversations", "status", "channel_capacity",
                "last_assigned_at", "last_assigned_seq", "last_activity_at", "missed_offers")


def _agent_to_doc(agent: Agent) -> dict:
    return {name: getattr(agent, name) for name in AGENT_FIELDS}


def _agent_from_doc(doc: dict) -> Agent:
    return Agent(**{name: doc[name] for name in AGENT_FIELDS if name in doc})


CONVERSATION_FIELDS = ("created_at", "waiting_since", "queue", "priority", "media", "reason", "queued_at", "queue_gen",
                       "step", "assignee_id", "assigned_at", "assignment_seq", "answered", "pinned_to",
                       "pinned_until", "pin_serial", "max_wait_done", "left_queue", "declined_at", "sla", "decision", "transfers",
                       "event_seq", "labels", "parked", "parked_until", "park_serial",
                       "last_customer_at", "priority_parts", "bot", "bot_until", "bot_session", "incident_id")


def _conversation_to_doc(conversation: Conversation) -> dict:
    first = conversation.first
    offer = conversation.offer
    return {
        "workspace_id": first.workspace_id,
        "channel": first.channel,
        "thread_id": first.thread_id,
        "first": first.model_dump(mode="json"),
        "declined": sorted(conversation.declined),
        "offer": None if offer is None else {"agent_id": offer.agent_id, "expires_at": offer.expires_at, "serial": offer.serial},
        **{name: getattr(conversation, name) for name in CONVERSATION_FIELDS},
    }


def _conversation_from_doc(doc: dict) -> Conversation:
    return Conversation(
        conversation_id=doc["_id"],
        first=InboundMessage.model_validate(doc["first"]),
        # Documents written before backlogs had a collection of their own hold it inline.
        backlog=[InboundMessage.model_validate(m) for m in doc.get("backlog", [])],
        declined=set(doc.get("declined", [])),
        offer=Offer(**doc["offer"]) if doc.get("offer") else None,
        **{name: doc[name] for name in CONVERSATION_FIELDS if name in doc},
    )
