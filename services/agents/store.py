"""The agents service's collections, written by this service only: `agents`, `conversations`,
`messages` (both directions), `contacts` and `contact_identities` (see contacts.py), and
`pending_receipts` (provider receipts that arrived before the send outcome they belong to)."""

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from services.agents import routed
from services.agents.contacts import ContactBook, Identities
from services.agents.models import HELD_STATUSES, AgentProfile
from services.agents.outbox import (
    FLAGS,
    PENDING_LABELS,
    PENDING_OUTBOUND,
    PENDING_RESOLVED,
    PENDING_SNAPSHOT,
    pending,
)
from services.agents.search import query_terms, terms_of
from shared import events
from shared.models import (
    SYSTEM_AGENT,
    AgentSnapshot,
    Attachment,
    ConversationAssigned,
    ConversationEnded,
    ConversationInfo,
    ConversationMessage,
    ConversationOffered,
    ConversationParked,
    ConversationRevoked,
    ConversationWoken,
    DeliveryStatus,
    InboundMessage,
    OutboundMessage,
    ReplyContext,
    SurveyRequest,
    new_id,
    utcnow,
)
from shared.mongo import duplicate_indexes, non_duplicate_errors
from shared.routing_config import find_config

# A status never goes back: a late "sent" must not overwrite "delivered".
LATEST_FIRST = [("last_message_at", DESCENDING)]  # the list index's last key: served in index order
MAX_MATCHES = 5000  # conversations one search term counts at most (search.py)
DESK_STAMP_CHUNK = 500  # agents per presence stamp (one update_many each)
# How the bot signs its messages to the customer (a channel that shows an author name shows this).
BOT_NAME = "Assistant"


def desk_gone(seen_before: datetime) -> dict:
    """An agent whose presence follows a desk, not offline, whose desks were last seen before `seen_before`."""
    return {"desk": True, "status": {"$ne": "offline"}, "desk_seen_at": {"$lt": seen_before}}


STATUS_RANK = {"queued": 0, "sent": 1, "delivered": 2, "read": 3, "failed": 4}


class Sequencer:
    """Monotonic sort keys (ns) for messages, so history reads back in the order stored."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last = max(time.time_ns(), self._last + 1)
        return self._last


@dataclass
class ForDesk:
    """Something a batch newly stored that an agent's desk has not seen yet."""

    agent_id: str
    conversation: dict | None  # set when this is a new assignment
    messages: list[dict] = field(default_factory=list)
    frame: dict | None = None  # an offer or a revocation, sent as is
    # Set (to the agent's workspace) when the batch found what it was to store already stored: a
    # redelivery after a replica died between storing and relaying its frames. The agent's desks, on
    # whichever replica, may have missed them: they resync (services/agents/desk.py).
    resync: str | None = None




def delivery_phases(deliveries: list) -> list[list]:
    """The batch regrouped so that each phase holds at most one segment of each conversation.

    A conversation's deliveries split into segments where their kind changes (revocation;
    assignment or message; offer or ending). Phase k holds every conversation's k-th segment, in
    batch order, so a conversation's deliveries keep their order while different conversations,
    which do not depend on each other, are applied together, kind by kind."""
    phases: list[list] = []
    last_kind: dict[str, str] = {}
    phase_of: dict[str, int] = {}
    for delivery in deliveries:
        conversation_id, kind = _conversation_and_kind(delivery)
        if conversation_id not in phase_of:
            phase_of[conversation_id] = 0
        elif last_kind[conversation_id] != kind:
            phase_of[conversation_id] += 1
        last_kind[conversation_id] = kind
        if phase_of[conversation_id] == len(phases):
            phases.append([])
        phases[phase_of[conversation_id]].append(delivery)
    return phases


def _conversation_and_kind(delivery: Any) -> tuple[str, str]:
    if isinstance(delivery, ConversationRevoked):
        return delivery.conversation_id, "revocation"
    if isinstance(delivery, ConversationAssigned):
        return delivery.conversation.conversation_id, "run"
    if isinstance(delivery, ConversationMessage):
        return delivery.conversation_id, "run"
    if isinstance(delivery, ConversationOffered):
        return delivery.conversation.conversation_id, "notice"
    return delivery.conversation_id, "notice"


def _sent_by(message: dict, up_to: datetime | None) -> bool:
    """Whether the provider took the reply by `up_to` (its writing time, for one sent before sent_at was kept)."""
    sent_at = message.get("sent_at") or message.get("created_at")
    return up_to is not None and sent_at is not None and sent_at <= up_to


def _threads_by_channel(infos: list[ConversationInfo]) -> dict[tuple[str, str], list[str]]:
    threads: dict[tuple[str, str], list[str]] = {}
    for info in infos:
        threads.setdefault((info.workspace_id, info.channel), []).append(info.thread_id)
    return threads


class AgentsStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.db = db  # also where the router keeps routing_config (read for survey settings, never written)
        self.agents = db["agents"]
        self.conversations = db["conversations"]
        self.messages = db["messages"]
        self.contact_book = ContactBook(db["contacts"], db["contact_identities"])
        self.pending_receipts = db["pending_receipts"]
        self.offers = db["offers"]
        self.sequencer = Sequencer()

    async def ensure_indexes(self) -> None:
        await self.agents.create_index([("workspace_id", ASCENDING), ("agent_id", ASCENDING)], unique=True)
        await self.conversations.create_index(
            [("workspace_id", ASCENDING), ("assignee_id", ASCENDING), ("status", ASCENDING)]
        )
        await self.conversations.create_index(
            [("workspace_id", ASCENDING), ("channel", ASCENDING), ("thread_id", ASCENDING)]
        )
        await self.conversations.create_index([("workspace_id", ASCENDING), ("contact_id", ASCENDING)])
        # The lists: by workspace and status, latest activity first (find_conversations).
        await self.conversations.create_index(
            [("workspace_id", ASCENDING), ("status", ASCENDING), ("last_message_at", DESCENDING)]
        )
        await self.conversations.create_index([("workspace_id", ASCENDING), ("terms", ASCENDING)])  # search.py
        await self.agents.create_index([("desk", ASCENDING), ("desk_seen_at", ASCENDING)])  # presence's sweeps
        # A survey answer names its survey (sparse: most conversations have none).
        await self.conversations.create_index([("csat.survey_id", ASCENDING)], sparse=True)
        await self.messages.create_index([("conversation_id", ASCENDING), ("seq", ASCENDING)])
        # The outbox sweeper's look-ups: only documents with a fact still to publish hold a flag.
        for collection, flags in FLAGS.items():
            for flag in flags:
                await self.db[collection].create_index([(flag, ASCENDING)], sparse=True)
        # Receipts name our reply by the provider's id for it.
        await self.messages.create_index(
            [("workspace_id", ASCENDING), ("channel", ASCENDING), ("channel_message_id", ASCENDING)]
        )

    # -- agents ------------------------------------------------------------------------------

    async def put_agent(self, workspace_id: str, agent_id: str, profile: AgentProfile) -> dict:
        return await self.agents.find_one_and_update(
            {"workspace_id": workspace_id, "agent_id": agent_id},
            {
                "$set": {**profile.model_dump(), "changed_at": utcnow(), **pending(PENDING_SNAPSHOT)},
                "$inc": {"version": 1},
                "$setOnInsert": {"status": "offline", "created_at": utcnow()},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )

    async def set_agent_status(self, workspace_id: str, agent_id: str, status: str, *, only_if: dict | None = None,
                               desk: bool | None = None) -> dict | None:
        """Write a presence with its promise to announce it (outbox.py); None if no agent matches (`only_if`:
        further conditions, checked in the same write; `desk`: presence follows a desk from now on, or no more)."""
        now = utcnow()
        changes = {"status": status, "status_at": now, "changed_at": now, **pending(PENDING_SNAPSHOT)}
        return await self.agents.find_one_and_update(
            {"workspace_id": workspace_id, "agent_id": agent_id, **(only_if or {})},
            {"$set": changes | ({} if desk is None else {"desk": desk}), "$inc": {"version": 1}},
            return_document=ReturnDocument.AFTER,
        )

    async def list_agents(self, workspace_id: str, status: str | None) -> list[dict]:
        """The workspace's agents (in one status, if named), by id."""
        query = {"workspace_id": workspace_id, **({"status": status} if status else {})}
        return sorted(await self.agents.find(query).to_list(), key=lambda doc: doc["agent_id"])

    async def configured_queues(self, workspace_id: str) -> list[dict]:
        """The queues of the router's stored routing configuration, by name; the router's default
        (one queue, `default`) while none is stored. A malformed entry is skipped, not an error:
        the router validates what it runs on, this only lists names for a picker."""
        stored = await find_config(self.db, workspace_id, {"config.queues": 1})
        queues = ((stored or {}).get("config") or {}).get("queues") or [{"name": "default"}]
        picked = [{"name": q["name"], "mode": "offer" if q.get("mode") == "offer" else "push"}
                  for q in queues if isinstance(q, dict) and isinstance(q.get("name"), str)]
        return sorted(picked, key=lambda q: q["name"])

    async def get_agent(self, workspace_id: str, agent_id: str) -> dict | None:
        return await self.agents.find_one({"workspace_id": workspace_id, "agent_id": agent_id})

    async def all_agents(self) -> list[dict]:
        return await self.agents.find({}, {"workspace_id": 1, "agent_id": 1, "status": 1, "desk": 1}).to_list()

    # -- presence across replicas (services/agents/presence.py) -----------------------------------

    async def desks_seen(self, keys: list[tuple[str, str]], at: datetime, *, opened: bool = False) -> None:
        """A replica saw these agents' desks open at `at` (`opened`: presence follows their desk from now on).
        `$max`: a replica whose clock is behind never moves a stamp back."""
        update: dict = {"$max": {"desk_seen_at": at}} | ({"$set": {"desk": True}} if opened else {})
        for start in range(0, len(keys), DESK_STAMP_CHUNK):
            chunk = keys[start:start + DESK_STAMP_CHUNK]
            await self.agents.update_many(
                {"$or": [{"workspace_id": workspace_id, "agent_id": agent_id} for workspace_id, agent_id in chunk]},
                update)

    async def give_desks_grace(self, at: datetime) -> None:
        """On a start: every agent whose desk was followed counts as seen now (the grace to reconnect)."""
        await self.agents.update_many({"desk": True, "status": {"$ne": "offline"}}, {"$max": {"desk_seen_at": at}})

    async def desks_gone(self, seen_before: datetime) -> list[dict]:
        """The agents whose desks were followed and have not been seen since `seen_before`."""
        return await self.agents.find(desk_gone(seen_before), {"workspace_id": 1, "agent_id": 1}).to_list()

    # -- deliveries from the router -------------------------------------------------------------

    async def apply_deliveries(self, deliveries: list) -> list[ForDesk]:
        """Apply a batch: in phases that keep each conversation's order, each phase in a few bulk writes.

        A shift change interleaves revocations and assignments of hundreds of conversations; applied
        one run after another that was a round trip per delivery, and new traffic waited behind it."""
        for_desk: list[ForDesk] = []
        # A revocation whose conversation this batch assigns again (a reroute: the old agent's
        # queue and the new one's) needs no write of its own: the assignment overwrites it.
        reassigned = {d.conversation.conversation_id: d.conversation.assignment_seq
                      for d in deliveries if isinstance(d, ConversationAssigned)}
        for phase in delivery_phases(deliveries):
            for_desk += await self._apply_revocations([d for d in phase if isinstance(d, ConversationRevoked)], reassigned)
            for_desk += await self._apply_run([d for d in phase if isinstance(d, ConversationAssigned | ConversationMessage)])
            for notice in phase:
                if isinstance(notice, ConversationOffered | ConversationEnded):
                    for_desk += await self._apply_notice(notice)
                elif isinstance(notice, ConversationParked | ConversationWoken):
                    for_desk += await self._apply_lifecycle(notice)
        return for_desk

    async def _apply_lifecycle(self, notice: ConversationParked | ConversationWoken) -> list[ForDesk]:
        """The router parked (pending, snoozed) or woke a conversation of this assignment: its status follows."""
        if isinstance(notice, ConversationParked):
            status, until, reason = notice.state, notice.until, None
        else:
            status, until, reason = "assigned", None, notice.reason
        await self.conversations.update_one(
            {"_id": notice.conversation_id, "assignee_id": notice.agent_id, "assignment_seq": notice.assignment_seq,
             "status": {"$in": list(HELD_STATUSES)}},
            {"$set": {"status": status, "snoozed_until": until}})
        frame = {"type": "conversation.state", "workspace_id": notice.workspace_id,
                 "conversation_id": notice.conversation_id, "status": status,
                 "snoozed_until": until.isoformat() if until else None, "reason": reason}
        return [ForDesk(notice.agent_id, None, frame=frame)]

    async def _apply_revocations(self, revocations: list[ConversationRevoked],
                                 reassigned: dict[str, int]) -> list[ForDesk]:
        """Revocations in bulk: a shift change takes hundreds of conversations from their agents at once."""
        if not revocations:
            return []
        to_write = [r for r in revocations
                    if reassigned.get(r.conversation_id, 0) <= r.assignment_seq]
        if to_write:
            # One delete for all (offers are few: one pass over them, not one per revocation).
            await self.offers.delete_many({"$or": [{"conversation_id": r.conversation_id, "agent_id": r.agent_id}
                                                   for r in to_write]})
            await self.conversations.bulk_write([
                UpdateOne({"_id": r.conversation_id, "assignee_id": r.agent_id,
                           "assignment_seq": {"$lt": r.assignment_seq}},
                          {"$set": {"status": "waiting", "assignee_id": None, "assignment_seq": r.assignment_seq,
                                    "revoked_reason": r.reason, "snoozed_until": None}})
                for r in to_write
            ], ordered=True)
        return [_notice_frame(r, events.CONVERSATION_REVOKED) for r in revocations]

    async def _apply_notice(self, notice: ConversationOffered | ConversationEnded) -> list[ForDesk]:
        """An offer is kept until answered (a reconnecting desk sees it); an ending resolves the conversation."""
        if isinstance(notice, ConversationOffered):
            info = notice.conversation
            offer_id = f"{info.conversation_id}:{info.assignee_id}:{notice.expires_at.isoformat()}"
            frame = {"type": events.CONVERSATION_OFFERED, "workspace_id": info.workspace_id,
                     **notice.model_dump(mode="json", exclude={"type"})}
            result = await self.offers.update_one(
                {"_id": offer_id},
                {"$setOnInsert": {"workspace_id": info.workspace_id, "agent_id": info.assignee_id,
                                  "conversation_id": info.conversation_id, "expires_at": notice.expires_at, "frame": frame}},
                upsert=True,
            )
            return [ForDesk(info.assignee_id, None, frame=frame)] if result.upserted_id is not None else []
        await self.offers.delete_many({"conversation_id": notice.conversation_id, "agent_id": notice.agent_id})
        await self.conversations.update_one(
            {"_id": notice.conversation_id, "status": {"$ne": "resolved"}},
            {"$set": {"status": "resolved", "resolved_at": notice.ended_at, "resolved_reason": notice.reason}},
        )
        return [_notice_frame(notice, events.CONVERSATION_ENDED)]

    async def pending_offers(self, workspace_id: str, agent_id: str) -> list[dict]:
        offers = await self.offers.find({"workspace_id": workspace_id, "agent_id": agent_id, "expires_at": {"$gt": utcnow()}}).to_list()
        return [offer["frame"] for offer in offers]

    async def _stored(self, assignments: list[ConversationAssigned]) -> dict[str, dict]:
        """The stored documents (assignment sequence and contact) of these assignments' conversations."""
        if not assignments:
            return {}
        ids = [a.conversation.conversation_id for a in assignments]
        return {doc["_id"]: doc async for doc in self.conversations.find(
            {"_id": {"$in": ids}}, {"assignment_seq": 1, "contact_id": 1})}

    async def _reassign(self, assignments: list[ConversationAssigned], stored: dict[str, dict]) -> set[str]:
        """Conversations that changed hands (rerouted, transferred), in bulk: the newer assignment wins.

        The ids of those this batch moved. One consumer applies deliveries, so what was read
        (`stored`) is what the conditional update meets."""
        if not assignments:
            return set()
        newer = {a.conversation.conversation_id: a for a in assignments
                 if a.conversation.assignment_seq > stored.get(a.conversation.conversation_id, {}).get("assignment_seq", 0)}
        if not newer:
            return set()
        await self.offers.delete_many({"conversation_id": {"$in": list(newer)}})
        await self.conversations.bulk_write([
            UpdateOne({"_id": info.conversation_id, "assignment_seq": {"$lt": info.assignment_seq}},
                      {"$set": {"assignee_id": info.assignee_id, "assigned_at": info.assigned_at, "status": "assigned",
                                "snoozed_until": None, "assignment_seq": info.assignment_seq, "queue": info.queue, "routing": info.routing,
                                "sla": info.sla, "transfers": info.transfers}})
            for info in (a.conversation for a in newer.values())
        ], ordered=True)
        return set(newer)

    async def _apply_run(self, deliveries: list[ConversationAssigned | ConversationMessage]) -> list[ForDesk]:
        """Store conversations and messages; redelivered ones change nothing and are not returned."""
        if not deliveries:
            return []
        conversation_ops: list[UpdateOne] = []
        pending: list[tuple[str, dict | None, list[dict]]] = []
        assignments = [d for d in deliveries if isinstance(d, ConversationAssigned)]
        # A conversation that changed hands is stored, its contact linked: it only moves (a shift
        # change moves hundreds at once, and each upsert here costs the database a write).
        stored = await self._stored([a for a in assignments if a.conversation.assignment_seq > 1])
        first_time = [a for a in assignments if a.conversation.conversation_id not in stored]
        contact_ids = dict(zip(
            (a.conversation.conversation_id for a in first_time),
            await self.contact_book.resolve([_identities(a) for a in first_time]),
            strict=True,
        ))
        contact_ids |= {i: doc.get("contact_id") for i, doc in stored.items()}
        for delivery in deliveries:
            if isinstance(delivery, ConversationAssigned):
                conversation = _conversation_doc(delivery, contact_ids[delivery.conversation.conversation_id])
                if conversation["_id"] not in stored:
                    conversation_ops.append(UpdateOne({"_id": conversation["_id"]}, {"$setOnInsert": conversation},
                                                      upsert=True))
                docs = [self._inbound_doc(conversation["_id"], m) for m in delivery.messages]
                pending.append((delivery.conversation.assignee_id, conversation, docs))
            else:
                docs = [self._inbound_doc(delivery.conversation_id, delivery.message)]
                pending.append((delivery.assignee_id, None, docs))
        new_conversations: set[str] = set()
        if conversation_ops:
            result = await self.conversations.bulk_write(conversation_ops, ordered=False)
            new_conversations = {str(i) for i in result.upserted_ids.values()}
        if new_conversations:
            await self.offers.delete_many({"conversation_id": {"$in": list(new_conversations)}})
        # A conversation that changed hands is new to its new assignee's desk.
        moving = [a for a in assignments if a.conversation.conversation_id not in new_conversations]
        new_conversations |= await self._reassign(moving, stored | await self._stored(
            [a for a in moving if a.conversation.conversation_id not in stored]))
        await self._add_rule_labels(deliveries)
        # The same message twice in one batch (a provider's retry, published twice) is one message.
        pending = _without_repeats(pending)
        all_docs = [doc for _, _, docs in pending for doc in docs]
        inserted = await self._insert_new(all_docs)
        await self._touch_conversations([d for d in all_docs if d["_id"] in inserted])
        for_desk = []
        repeated: set[tuple[str, str]] = set()
        for agent_id, conversation, docs in pending:
            if conversation is not None and conversation["_id"] not in new_conversations:
                conversation = None
            if conversation is not None:
                new_conversations.discard(conversation["_id"])  # a repeat in the same batch is not new again
            fresh = [d for d in docs if d["_id"] in inserted]
            if conversation is not None or fresh:
                for_desk.append(ForDesk(agent_id, conversation, fresh))
            elif docs:
                repeated.add((docs[0]["workspace_id"], agent_id))
        return for_desk + [ForDesk(agent_id, None, resync=workspace_id) for workspace_id, agent_id in sorted(repeated)]

    async def _add_rule_labels(self, deliveries: list[ConversationAssigned | ConversationMessage]) -> None:
        """Labels the router's label rules added, into the conversations' sets (a repeat adds nothing)."""
        adds: dict[str, set[str]] = {}
        for delivery in deliveries:
            if isinstance(delivery, ConversationAssigned):
                conversation_id, labels = delivery.conversation.conversation_id, delivery.conversation.labels
            else:
                conversation_id, labels = delivery.conversation_id, delivery.labels
            if labels:
                adds.setdefault(conversation_id, set()).update(labels)
        if adds:
            await self.conversations.bulk_write([
                UpdateOne({"_id": conversation_id}, {"$addToSet": {"labels": {"$each": sorted(labels)}}})
                for conversation_id, labels in adds.items()], ordered=False)

    def _inbound_doc(self, conversation_id: str, message: InboundMessage) -> dict:
        return {
            "_id": message.message_id,
            "workspace_id": message.workspace_id,
            "conversation_id": conversation_id,
            "direction": "inbound",
            "channel": message.channel,
            "channel_message_id": message.channel_message_id,
            "text": message.text,
            "attachments": [a.model_dump() for a in message.attachments],
            "contact_id": message.contact.id,
            "metadata": message.metadata,
            "status": "received",
            "created_at": message.received_at,
            "seq": self.sequencer.next(),
            **({"action": message.action} if message.action else {}),  # a quick reply pressed
        }

    async def _insert_new(self, docs: list[dict]) -> set[str]:
        """Insert unordered; the ids of the documents that were not already there."""
        if not docs:
            return set()
        try:
            await self.messages.insert_many(docs, ordered=False)
        except BulkWriteError as error:
            if non_duplicate_errors(error.details):
                raise
            duplicates = duplicate_indexes(error.details)
            return {doc["_id"] for i, doc in enumerate(docs) if i not in duplicates}
        return {doc["_id"] for doc in docs}

    async def _touch_conversations(self, docs: list[dict]) -> None:
        """The conversations' last activity, and their search terms (services/agents/search.py)."""
        latest: dict[str, datetime] = {}
        texts: dict[str, list[str]] = {}
        for doc in docs:
            latest[doc["conversation_id"]] = max(doc["created_at"], latest.get(doc["conversation_id"], doc["created_at"]))
            texts.setdefault(doc["conversation_id"], []).append(doc.get("text") or "")
        if latest:
            await self.conversations.bulk_write(
                [UpdateOne({"_id": c}, {"$max": {"last_message_at": at},
                                        "$addToSet": {"terms": {"$each": sorted(terms_of(texts[c]))}}})
                 for c, at in latest.items()],
                ordered=False,
            )

    # -- conversations --------------------------------------------------------------------------

    async def find_conversations(self, workspace_id: str, filters: dict[str, str], status: str | None, limit: int,
                                 search: str | None = None) -> list[dict]:
        """Latest activity first; `search`: every word of it in the conversation's messages or contact
        (prefixes too)."""
        query: dict[str, Any] = {"workspace_id": workspace_id, **filters}
        if status:
            query["status"] = status
        if search:
            matching = await self._matching(workspace_id, query_terms(search))
            if not matching:
                return []
            query["_id"] = {"$in": sorted(matching)}
        # A sorted find reads and sorts the whole matched range: the workspace's (and status's) index
        # prefix keeps it to what the filters name (ensure_indexes).
        return await self.conversations.find(query).sort(LATEST_FIRST).limit(limit).to_list()

    async def find_listed(self, workspace_id: str, filters: dict[str, str], status: str | None, limit: int,
                          search: str | None = None) -> list[dict]:
        """A supervisor's list, latest activity first: what the agents service stores, but the waiting
        conversations (status waiting, or any status) from the router, which alone knows them all
        (routed.py)."""
        if status not in (None, "waiting"):
            return await self.find_conversations(workspace_id, filters, status, limit, search)
        waiting = await self.waiting_in_router(workspace_id, filters, search)
        others = [] if status == "waiting" else [
            doc for doc in await self.find_conversations(workspace_id, filters, None, limit, search)
            if doc["status"] != "waiting"]
        return sorted([*others, *waiting], key=_activity, reverse=True)[:limit]

    async def waiting_in_router(self, workspace_id: str, filters: dict[str, str], search: str | None) -> list[dict]:
        """The router's waiting conversations (its collections, read only), as conversation documents
        completed with what this service stored of them, filtered (routed.py)."""
        query = routed.router_query(workspace_id, filters)
        if query is None:
            return []
        docs = await self.db["routing_conversations"].find(query).limit(routed.MAX_ROUTED).to_list()
        backlog = {"conversation_id": 1, "message.text": 1, "message.received_at": 1}
        terms = query_terms(search) if search else []
        return [doc for doc, _ in await self._as_conversations(docs, backlog) if routed.matches(doc, filters, terms)]

    async def waiting_one(self, workspace_id: str, conversation_id: str) -> tuple[dict, list[dict]] | None:
        """A waiting conversation no agent has held yet, from the router (read only), and its messages."""
        doc = await self.db["routing_conversations"].find_one(
            {"_id": conversation_id, "workspace_id": workspace_id, "assignee_id": None})
        if doc is None:
            return None
        found = await self._as_conversations([doc], None)
        if not found:
            return None
        [(conversation, backlog)] = found
        return conversation, [routed.message_doc(conversation, m) for m in backlog]

    async def _as_conversations(self, docs: list[dict], projection: dict | None) -> list[tuple[dict, list[dict]]]:
        """Router documents as conversation documents, each with its backlog's messages (fields as projected)."""
        firsts = {doc["_id"]: first for doc in docs if (first := routed.first_message(doc)) is not None}
        docs = [doc for doc in docs if doc["_id"] in firsts]
        if not docs:
            return []
        backlogs: dict[str, list[dict]] = {}
        async for entry in self.db["routing_backlog"].find({"conversation_id": {"$in": list(firsts)}}, projection).sort(
                [("conversation_id", ASCENDING), ("position", ASCENDING)]):
            backlogs.setdefault(entry["conversation_id"], []).append(entry.get("message") or {})
        stored = {doc["_id"]: doc for doc in await self.conversations.find(
            {"_id": {"$in": list(firsts)}}, routed.STORED_FIELDS).to_list()}
        contact_ids = await self.contact_book.known_ids(
            [Identities(doc["workspace_id"], doc["channel"], firsts[doc["_id"]].contact) for doc in docs])
        return [(routed.as_conversation(doc, firsts[doc["_id"]], backlogs.get(doc["_id"], []), contact_id,
                                        stored.get(doc["_id"])), backlogs.get(doc["_id"], []))
                for doc, contact_id in zip(docs, contact_ids, strict=True)]

    async def _matching(self, workspace_id: str, terms: list[str]) -> set[str]:
        """Conversations holding every term: one indexed look-up per term, intersected here (SecantusDB
        scans for `$all`). A term matching more than MAX_MATCHES conversations counts its first ones only."""
        found: set[str] | None = None
        for term in terms:
            ids = {d["_id"] for d in await self.conversations.find(
                {"workspace_id": workspace_id, "terms": term}, {"_id": 1}).limit(MAX_MATCHES).to_list()}
            found = ids if found is None else found & ids
            if not found:
                return set()
        return found or set()

    async def came_back(self, assignments: list[ConversationInfo]) -> list[tuple[ConversationInfo, dict]]:
        """New conversations whose thread's latest earlier one was resolved (the customer came back
        to it), each with that one's document; one query for the batch.

        A new conversation is one's first assignment (the router numbers assignments from 1)."""
        first = [info for info in assignments if info.assignment_seq == 1]
        if not first:
            return []
        fields = ("workspace_id", "channel", "thread_id", "status", "created_at", "resolved_at", "assignee_id", "queue")
        by_thread: dict[tuple[str, str, str], list[dict]] = {}
        # One $in per workspace and channel: the thread index serves it ($or over threads, sorted,
        # scanned the whole collection: each batch grew slower with every conversation stored).
        for (workspace_id, channel), thread_ids in _threads_by_channel(first).items():
            query = {"workspace_id": workspace_id, "channel": channel, "thread_id": {"$in": thread_ids}}
            async for doc in self.conversations.find(query, dict.fromkeys(fields, 1)):
                by_thread.setdefault((workspace_id, channel, doc["thread_id"]), []).append(doc)
        for docs in by_thread.values():
            docs.sort(key=lambda doc: doc["created_at"], reverse=True)
        found = []
        for info in first:
            before = [doc for doc in by_thread.get((info.workspace_id, info.channel, info.thread_id), [])
                      if doc["_id"] != info.conversation_id and doc["created_at"] < info.created_at]
            if before and before[0]["status"] == "resolved":  # newest first
                found.append((info, before[0]))
        return found

    async def get_conversation(self, workspace_id: str, conversation_id: str) -> dict | None:
        return await self.conversations.find_one({"_id": conversation_id, "workspace_id": workspace_id})

    async def messages_of(self, conversation_ids: list[str]) -> list[dict]:
        # By time, then storage order: a waiting conversation's messages are stored at assignment,
        # after an auto-reply that answered them.
        return await self.messages.find({"conversation_id": {"$in": conversation_ids}}).sort([("created_at", 1), ("seq", 1)]).to_list()

    async def open_conversations_of(self, workspace_id: str, agent_id: str) -> list[dict]:
        """What the agent holds: open, pending and snoozed conversations."""
        return await self.conversations.find(
            {"workspace_id": workspace_id, "assignee_id": agent_id, "status": {"$in": list(HELD_STATUSES)}}
        ).sort("created_at", 1).to_list()

    async def add_reply(self, conversation: dict, agent_id: str, text: str, metadata: dict | None = None,
                        attachments: list[Attachment] | None = None,
                        agent_name: str | None = None) -> tuple[OutboundMessage, dict]:
        """Store an agent's reply as queued, flagged for the outbox, and stamp the first response; the
        reply and its stored document (what the outbox publishes). `metadata` is for the history only
        (a supervisor's reply says so), never sent."""
        now = utcnow()
        latest = await self.messages.find_one(
            {"conversation_id": conversation["_id"], "direction": "inbound"}, sort=[("seq", -1)]
        )
        reply = OutboundMessage(
            message_id=new_id(),
            workspace_id=conversation["workspace_id"],
            conversation_id=conversation["_id"],
            channel=conversation["channel"],
            thread_id=conversation["thread_id"],
            contact=conversation["contact"],
            agent_id=agent_id,
            text=text,
            attachments=attachments or [],
            agent_name=agent_name,
            reply_to=_reply_context(latest),
            created_at=now,
        )
        stored = {
            "_id": reply.message_id,
            "workspace_id": reply.workspace_id,
            "conversation_id": reply.conversation_id,
            "direction": "outbound",
            "channel": reply.channel,
            "text": text,
            "agent_id": agent_id,
            "status": "queued",
            "created_at": now,
            "seq": self.sequencer.next(),
            # Which assignment it answers: the first reply of each answers the conversation (first response).
            "assignment_seq": conversation.get("assignment_seq", 0),
            "outbound": reply.model_dump_json(),
            **({"metadata": metadata} if metadata else {}),
            **({"attachments": [a.model_dump() for a in reply.attachments]} if reply.attachments else {}),
            **pending(PENDING_OUTBOUND),
        }
        await self.messages.insert_one(stored)
        await self.conversations.update_one({"_id": conversation["_id"], "first_response_at": None},
                                            {"$set": {"first_response_at": now}})
        await self.conversations.update_one({"_id": conversation["_id"]},
                                            {"$addToSet": {"terms": {"$each": sorted(terms_of([text]))}}})
        return reply, stored

    async def routed_conversation_exists(self, workspace_id: str, conversation_id: str) -> bool:
        """Whether the router holds this conversation (its `routing_conversations`, read only): a waiting
        one no agent has held yet exists only there."""
        found = await self.db["routing_conversations"].find_one({"_id": conversation_id}, {"workspace_id": 1})
        return found is not None and found.get("workspace_id") == workspace_id

    async def answers_its_assignment(self, reply: dict) -> bool:
        """Whether a stored reply is the first of its conversation's assignment (computed from the stored
        replies, so a republished reply gives the same answer)."""
        first = await self.messages.find_one(
            {"conversation_id": reply["conversation_id"], "direction": "outbound",
             "assignment_seq": reply.get("assignment_seq")}, {"_id": 1}, sort=[("seq", 1)])
        return first is not None and first["_id"] == reply["_id"]

    async def left_pending(self, collection: str, flag: str, before: datetime) -> list[dict]:
        """Documents whose fact `flag` has waited since before `before` (a crash, a broker outage)."""
        return await self.db[collection].find({flag: {"$lt": before}}).to_list()

    async def published(self, collection: str, document: dict, flag: str, **unchanged: object) -> None:
        """Clear a fact's flag once it is published, if the document is still the one published."""
        await self.db[collection].update_one({"_id": document["_id"], flag: {"$exists": True}, **unchanged},
                                             {"$unset": {flag: ""}})

    async def add_system_reply(self, event_id: str, workspace_id: str, conversation_id: str, details: dict, *,
                               bot: bool = False) -> OutboundMessage | None:
        """The router's auto-reply to a waiting customer, or the bot's message (with its quick replies),
        stored like an agent's reply; None if a repeat."""
        reply = OutboundMessage(
            message_id=f"{'bot' if bot else 'auto'}:{event_id}", workspace_id=workspace_id,
            conversation_id=conversation_id, channel=details["channel"], thread_id=details["thread_id"],
            contact=details["contact"], agent_id=SYSTEM_AGENT, text=details["text"],
            quick_replies=details.get("quick_replies") or [], agent_name=BOT_NAME if bot else None,
        )
        inserted = await self._insert_new([{
            "_id": reply.message_id, "workspace_id": workspace_id, "conversation_id": conversation_id,
            "direction": "outbound", "channel": reply.channel, "text": reply.text, "agent_id": SYSTEM_AGENT,
            "status": "queued", "created_at": reply.created_at, "seq": self.sequencer.next(),
            **({"metadata": {"bot": True}, "quick_replies": [q.model_dump() for q in reply.quick_replies]} if bot else {}),
        }])
        return reply if inserted else None

    async def add_note(self, workspace_id: str, conversation_id: str, note_id: str, text: str, by: str | None) -> bool:
        """An internal note in the history (a transfer's note); False if it was already there."""
        inserted = await self._insert_new([{
            "_id": note_id, "workspace_id": workspace_id, "conversation_id": conversation_id, "direction": "note",
            "channel": "internal", "text": text, "agent_id": by, "status": "note", "created_at": utcnow(),
            "seq": self.sequencer.next(),
        }])
        return bool(inserted)

    async def set_sla_state(self, conversation_id: str, target: str, state: str) -> dict | None:
        return await self.conversations.find_one_and_update(
            {"_id": conversation_id}, {"$set": {f"sla.{target}.state": state}}, return_document=ReturnDocument.AFTER
        )

    async def set_labels(self, conversation: dict, labels: list[str]) -> dict:
        """Replace the conversation's labels; `labels_version` grows with each change, naming its event."""
        return await self.conversations.find_one_and_update(
            {"_id": conversation["_id"]},
            {"$set": {"labels": sorted(set(labels)), "labels_at": utcnow(), **pending(PENDING_LABELS)},
             "$inc": {"labels_version": 1}},
            return_document=ReturnDocument.AFTER,
        )

    async def resolve(self, conversation: dict) -> bool:
        """The explicit transition assigned -> resolved (a repeat changes nothing); True if this call made it."""
        result = await self.conversations.update_one(
            {"_id": conversation["_id"], "status": {"$ne": "resolved"}},
            {"$set": {"status": "resolved", "resolved_at": utcnow(), **pending(PENDING_RESOLVED)}},
        )
        return result.modified_count == 1

    # -- CSAT surveys (services/agents/csat.py decides; this keeps) ---------------------------------

    async def contact_language(self, conversation_id: str) -> str | None:
        """The language the customer's latest message said it was in (metadata.language), if any."""
        latest = await self.messages.find_one(
            {"conversation_id": conversation_id, "direction": "inbound", "metadata.language": {"$exists": True}},
            {"metadata.language": 1}, sort=[("seq", -1)])
        return (latest or {}).get("metadata", {}).get("language")

    async def start_survey(self, conversation: dict, survey: dict) -> OutboundMessage | None:
        """Put the survey on the conversation, unless it has one, and store its message; the message
        to send, or None when the conversation already had a survey (one per conversation)."""
        started = await self.conversations.update_one(
            {"_id": conversation["_id"], "csat": {"$exists": False}}, {"$set": {"csat": survey}})
        if started.modified_count != 1:
            return None
        latest = await self.messages.find_one(
            {"conversation_id": conversation["_id"], "direction": "inbound"}, sort=[("seq", -1)])
        message = OutboundMessage(
            message_id=f"survey-{survey['survey_id']}", workspace_id=conversation["workspace_id"],
            conversation_id=conversation["_id"], channel=conversation["channel"], thread_id=conversation["thread_id"],
            contact=conversation["contact"], agent_id=SYSTEM_AGENT, text=survey["question"],
            reply_to=_reply_context(latest), created_at=survey["sent_at"],
            survey=SurveyRequest(survey_id=survey["survey_id"], question=survey["question"],
                                 language=survey["language"], expires_at=survey["expires_at"]),
        )
        await self._insert_new([{
            "_id": message.message_id, "workspace_id": message.workspace_id, "conversation_id": message.conversation_id,
            "direction": "outbound", "channel": message.channel, "text": message.text, "agent_id": SYSTEM_AGENT,
            "status": "queued", "created_at": message.created_at, "seq": self.sequencer.next(),
            "metadata": {"survey_id": survey["survey_id"]},
        }])
        return message

    async def survey_conversation(self, workspace_id: str, survey_id: str | None, channel: str,
                                  thread_id: str | None, answer_ref: str | None = None) -> dict | None:
        """The conversation a survey answer is for: by its survey id, or (an SMS digit names none)
        the survey this very message already answered (a provider's retry), else the thread's
        latest conversation if its survey is still pending. Only the latest: a customer who wrote
        again after the survey is in a newer conversation, where "3" is an answer to the agent."""
        if survey_id is not None:
            return await self.conversations.find_one({"workspace_id": workspace_id, "csat.survey_id": survey_id})
        thread = {"workspace_id": workspace_id, "channel": channel, "thread_id": thread_id}
        if answer_ref is not None:
            answered = await self.conversations.find_one({**thread, "csat.answer_ref": answer_ref})
            if answered is not None:
                return answered
        latest = await self.conversations.find_one(thread, sort=[("created_at", -1)])
        return latest if latest is not None and (latest.get("csat") or {}).get("status") == "pending" else None

    async def record_answer(self, conversation_id: str, survey_id: str, score: int, comment: str | None,
                            answer_ref: str | None = None) -> dict | None:
        """Keep the answer if the survey is still pending (one write decides between racing answers);
        the conversation after it, or None when another answer got there first."""
        return await self.conversations.find_one_and_update(
            {"_id": conversation_id, "csat.survey_id": survey_id, "csat.status": "pending"},
            {"$set": {"csat.status": "answered", "csat.score": score, "csat.comment": comment,
                      "csat.answered_at": utcnow(), "csat.answer_ref": answer_ref}},
            return_document=ReturnDocument.AFTER)

    async def apply_statuses(self, statuses: list[DeliveryStatus]) -> list[dict]:
        """Record delivery outcomes and receipts; the messages whose status changed (to tell their agents)."""
        changed = []
        for status in statuses:
            if status.is_watermark:
                changed += await self._apply_watermark(status)
                continue
            doc = await self._apply_status(status)
            if doc is None and status.message_id is None:
                await self._keep_receipt(status)  # the send outcome naming this id may still be on its way
            elif doc is not None and status.message_id is not None and status.channel_message_id:
                doc = await self._apply_kept_receipts(doc) or doc
            if doc is not None:
                changed.append(doc)
        return changed

    async def _apply_status(self, status: DeliveryStatus) -> dict | None:
        if status.message_id is not None:
            query: dict[str, Any] = {"_id": status.message_id}
        else:
            query = {"workspace_id": status.workspace_id, "channel": status.channel,
                     "channel_message_id": status.channel_message_id, "direction": "outbound"}
        update: dict[str, Any] = {"status": status.status, "status_reason": status.reason, "status_at": status.at}
        if status.message_id is not None and status.status == "sent":
            update["sent_at"] = status.at  # when the provider took it: what a watermark is compared with
        names_provider_id = status.message_id is not None and status.channel_message_id
        if names_provider_id:
            update["channel_message_id"] = status.channel_message_id
        doc = await self.messages.find_one_and_update(
            {**query, "status": {"$in": _ranked_below(status.status)}},
            {"$set": update},
            return_document=ReturnDocument.AFTER,
        )
        if doc is None and names_provider_id:
            # A stale outcome still tells the provider's id, so that receipts find the reply.
            await self.messages.update_one(query, {"$set": {"channel_message_id": status.channel_message_id}})
        return doc

    async def _apply_watermark(self, status: DeliveryStatus) -> list[dict]:
        """A receipt for every reply in the thread sent up to `up_to` that has not got this far yet."""
        conversations = await self.conversations.find(
            {"workspace_id": status.workspace_id, "channel": status.channel, "thread_id": status.thread_id}, {"_id": 1}
        ).to_list()
        # Only replies the provider took: a queued or failed one cannot have been delivered or read.
        behind = [s for s in _ranked_below(status.status) if s not in ("queued", "failed")]
        query = {"conversation_id": {"$in": [c["_id"] for c in conversations]}, "direction": "outbound",
                 "status": {"$in": behind}}
        # Sent up to the watermark: the provider's taking it, not the agent's writing it, is what
        # counts. Checked here, not with an $or in the query: SecantusDB answers that by scanning
        # every message (250 ms at 16,000), the $in on the conversation index alone takes 1.5 ms.
        covered = [doc async for doc in self.messages.find(query) if _sent_by(doc, status.up_to)]
        if not covered:
            return []
        update = {"status": status.status, "status_reason": None, "status_at": status.at}
        await self.messages.update_many({"_id": {"$in": [d["_id"] for d in covered]}, "status": {"$in": behind}},
                                        {"$set": update})
        return [{**doc, **update} for doc in covered]

    async def _keep_receipt(self, status: DeliveryStatus) -> None:
        await self.pending_receipts.update_one(
            {"_id": f"{status.workspace_id}:{status.channel}:{status.channel_message_id}:{status.status}"},
            {"$setOnInsert": {**status.model_dump(), "kept_at": utcnow()}},
            upsert=True,
        )

    async def _apply_kept_receipts(self, doc: dict) -> dict | None:
        """Receipts that came before the send outcome, applied now that the reply has its provider id."""
        kept = await self.pending_receipts.find(
            {"workspace_id": doc["workspace_id"], "channel": doc["channel"], "channel_message_id": doc["channel_message_id"]}
        ).to_list()
        latest = None
        for receipt in sorted(kept, key=lambda r: STATUS_RANK[r["status"]]):
            receipt.pop("_id"), receipt.pop("kept_at")
            latest = await self._apply_status(DeliveryStatus.model_validate(receipt)) or latest
        if kept:
            await self.pending_receipts.delete_many({"_id": {"$in": [
                f"{doc['workspace_id']}:{doc['channel']}:{doc['channel_message_id']}:{r['status']}" for r in kept
            ]}})
        return latest


def _without_repeats(pending: list[tuple[str, dict | None, list[dict]]]) -> list[tuple[str, dict | None, list[dict]]]:
    seen: set[str] = set()
    out = []
    for agent_id, conversation, docs in pending:
        fresh = [d for d in docs if d["_id"] not in seen]
        seen.update(d["_id"] for d in fresh)
        out.append((agent_id, conversation, fresh))
    return out


def _ranked_below(status: str) -> list[str]:
    return [s for s, rank in STATUS_RANK.items() if rank < STATUS_RANK[status]]


def _reply_context(latest_inbound: dict | None) -> ReplyContext | None:
    if latest_inbound is None:
        return None
    return ReplyContext(channel_message_id=latest_inbound.get("channel_message_id"), metadata=latest_inbound.get("metadata") or {})


def _notice_frame(notice: ConversationRevoked | ConversationEnded, frame_type: str) -> ForDesk:
    """The desk frame that takes a conversation off the agent's desk, with the reason."""
    return ForDesk(notice.agent_id, None, frame={"type": frame_type, "workspace_id": notice.workspace_id,
                                                 "conversation_id": notice.conversation_id, "reason": notice.reason})


def _activity(doc: dict) -> datetime:
    """When a conversation last saw a message (its creation before its first is stored)."""
    return doc.get("last_message_at") or doc["created_at"]


def agent_snapshot(doc: dict) -> AgentSnapshot:
    """The agent as its document says after a change; the version makes the id (one per change)."""
    return AgentSnapshot(
        event_id=f"agent:{doc['workspace_id']}:{doc['agent_id']}:{doc['version']}",
        at=doc.get("changed_at") or utcnow(),  # documents written before changes were timed
        workspace_id=doc["workspace_id"],
        agent_id=doc["agent_id"],
        version=doc["version"],
        skills=doc.get("skills", {}),
        max_conversations=doc.get("max_conversations", 0),
        channel_capacity=doc.get("channel_capacity", {}),
        status=doc["status"],
    )


def _identities(delivery: ConversationAssigned) -> Identities:
    info = delivery.conversation
    return Identities(info.workspace_id, info.channel, info.contact)


def _conversation_doc(delivery: ConversationAssigned, contact_id: str) -> dict:
    info = delivery.conversation
    return {
        "_id": info.conversation_id,
        "workspace_id": info.workspace_id,
        "channel": info.channel,
        "thread_id": info.thread_id,
        "contact": info.contact.model_dump(),
        "contact_id": contact_id,
        "skills": info.skills,
        "priority": info.priority,
        "created_at": info.created_at,
        "waiting_since": info.waiting_since,
        "assignee_id": info.assignee_id,
        "assigned_at": info.assigned_at,
        "status": "assigned",
        "queue": info.queue,
        "assignment_seq": info.assignment_seq,
        "routing": info.routing,
        "sla": info.sla,
        "transfers": info.transfers,
        "labels": sorted(info.labels),
        "terms": sorted(terms_of([info.contact.name, info.contact.email, info.contact.phone])),
        "first_response_at": None,
        "resolved_at": None,
        "last_message_at": None,
    }
