"""The agents service's collections, written by this service only: `agents`, `conversations`,
`messages` (both directions), `contacts` and `contact_identities` (see contacts.py), and
`pending_receipts` (provider receipts that arrived before the send outcome they belong to)."""

import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pymongo import ASCENDING, ReturnDocument, UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from services.agents.contacts import ContactBook, Identities
from services.agents.models import AgentProfile
from shared.models import (
    AgentSnapshot,
    ConversationAssigned,
    ConversationMessage,
    DeliveryStatus,
    InboundMessage,
    OutboundMessage,
    ReplyContext,
    new_id,
    utcnow,
)
from shared.mongo import duplicate_indexes, non_duplicate_errors

# A status never goes back: a late "sent" must not overwrite "delivered".
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


class AgentsStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.agents = db["agents"]
        self.conversations = db["conversations"]
        self.messages = db["messages"]
        self.contact_book = ContactBook(db["contacts"], db["contact_identities"])
        self.pending_receipts = db["pending_receipts"]
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
        await self.messages.create_index([("conversation_id", ASCENDING), ("seq", ASCENDING)])
        # Receipts name our reply by the provider's id for it.
        await self.messages.create_index(
            [("workspace_id", ASCENDING), ("channel", ASCENDING), ("channel_message_id", ASCENDING)]
        )

    # -- agents ------------------------------------------------------------------------------

    async def put_agent(self, workspace_id: str, agent_id: str, profile: AgentProfile) -> dict:
        return await self.agents.find_one_and_update(
            {"workspace_id": workspace_id, "agent_id": agent_id},
            {
                "$set": profile.model_dump(),
                "$inc": {"version": 1},
                "$setOnInsert": {"status": "offline", "created_at": utcnow()},
            },
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )

    async def set_agent_status(self, workspace_id: str, agent_id: str, status: str) -> dict | None:
        return await self.agents.find_one_and_update(
            {"workspace_id": workspace_id, "agent_id": agent_id},
            {"$set": {"status": status, "status_at": utcnow()}, "$inc": {"version": 1}},
            return_document=ReturnDocument.AFTER,
        )

    async def get_agent(self, workspace_id: str, agent_id: str) -> dict | None:
        return await self.agents.find_one({"workspace_id": workspace_id, "agent_id": agent_id})

    async def all_agents(self) -> list[dict]:
        return await self.agents.find({}, {"workspace_id": 1, "agent_id": 1}).to_list()

    # -- deliveries from the router -------------------------------------------------------------

    async def apply_deliveries(self, deliveries: list[ConversationAssigned | ConversationMessage]) -> list[ForDesk]:
        """Store conversations and messages; redelivered ones change nothing and are not returned."""
        conversation_ops: list[UpdateOne] = []
        pending: list[tuple[str, dict | None, list[dict]]] = []
        assignments = [d for d in deliveries if isinstance(d, ConversationAssigned)]
        contact_ids = dict(zip(
            (a.conversation.conversation_id for a in assignments),
            await self.contact_book.resolve([_identities(a) for a in assignments]),
            strict=True,
        ))
        for delivery in deliveries:
            if isinstance(delivery, ConversationAssigned):
                conversation = _conversation_doc(delivery, contact_ids[delivery.conversation.conversation_id])
                conversation_ops.append(UpdateOne({"_id": conversation["_id"]}, {"$setOnInsert": conversation}, upsert=True))
                docs = [self._inbound_doc(conversation["_id"], m) for m in delivery.messages]
                pending.append((delivery.conversation.assignee_id, conversation, docs))
            else:
                docs = [self._inbound_doc(delivery.conversation_id, delivery.message)]
                pending.append((delivery.assignee_id, None, docs))
        new_conversations: set[str] = set()
        if conversation_ops:
            result = await self.conversations.bulk_write(conversation_ops, ordered=False)
            new_conversations = {str(i) for i in result.upserted_ids.values()}
        # The same message twice in one batch (a provider's retry, published twice) is one message.
        pending = _without_repeats(pending)
        all_docs = [doc for _, _, docs in pending for doc in docs]
        inserted = await self._insert_new(all_docs)
        await self._touch_conversations([d for d in all_docs if d["_id"] in inserted])
        for_desk = []
        for agent_id, conversation, docs in pending:
            if conversation is not None and conversation["_id"] not in new_conversations:
                conversation = None
            fresh = [d for d in docs if d["_id"] in inserted]
            if conversation is not None or fresh:
                for_desk.append(ForDesk(agent_id, conversation, fresh))
        return for_desk

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
        latest: dict[str, datetime] = {}
        for doc in docs:
            latest[doc["conversation_id"]] = max(doc["created_at"], latest.get(doc["conversation_id"], doc["created_at"]))
        if latest:
            await self.conversations.bulk_write(
                [UpdateOne({"_id": c}, {"$max": {"last_message_at": at}}) for c, at in latest.items()],
                ordered=False,
            )

    # -- conversations --------------------------------------------------------------------------

    async def find_conversations(self, workspace_id: str, filters: dict[str, str], status: str | None, limit: int) -> list[dict]:
        query: dict[str, Any] = {"workspace_id": workspace_id, **filters}
        if status:
            query["status"] = status
        return await self.conversations.find(query).sort("created_at", -1).limit(limit).to_list()

    async def get_conversation(self, workspace_id: str, conversation_id: str) -> dict | None:
        return await self.conversations.find_one({"_id": conversation_id, "workspace_id": workspace_id})

    async def messages_of(self, conversation_ids: list[str]) -> list[dict]:
        return await self.messages.find({"conversation_id": {"$in": conversation_ids}}).sort("seq", 1).to_list()

    async def open_conversations_of(self, workspace_id: str, agent_id: str) -> list[dict]:
        return await self.conversations.find(
            {"workspace_id": workspace_id, "assignee_id": agent_id, "status": "assigned"}
        ).sort("created_at", 1).to_list()

    async def add_reply(self, conversation: dict, agent_id: str, text: str) -> OutboundMessage:
        """Store an agent's reply as queued, and stamp the conversation's first response."""
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
            reply_to=_reply_context(latest),
            created_at=now,
        )
        await self.messages.insert_one({
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
        })
        await self.conversations.update_one(
            {"_id": conversation["_id"], "first_response_at": None},
            {"$set": {"first_response_at": now}},
        )
        return reply

    async def resolve(self, conversation: dict) -> None:
        """The explicit transition assigned -> resolved (a repeat changes nothing)."""
        await self.conversations.update_one(
            {"_id": conversation["_id"], "status": {"$ne": "resolved"}},
            {"$set": {"status": "resolved", "resolved_at": utcnow()}},
        )

    async def apply_statuses(self, statuses: list[DeliveryStatus]) -> list[dict]:
        """Record delivery outcomes and receipts; the messages whose status changed (to tell their agents)."""
        changed = []
        for status in statuses:
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


def agent_snapshot(doc: dict) -> AgentSnapshot:
    return AgentSnapshot(
        workspace_id=doc["workspace_id"],
        agent_id=doc["agent_id"],
        version=doc["version"],
        skills=doc.get("skills", {}),
        max_conversations=doc.get("max_conversations", 0),
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
        "first_response_at": None,
        "resolved_at": None,
        "last_message_at": None,
    }
