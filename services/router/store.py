"""The router's own collections, written by the router only: `routing_conversations` (open
conversations with their whole routing state), `routing_agents` (the router's view of each agent)
and `routing_last_agents` (who last served each thread, for last-agent routing). A standby that
takes over rebuilds the core from them."""

from datetime import datetime

from pymongo import DeleteOne, ReplaceOne, UpdateMany
from pymongo.asynchronous.database import AsyncDatabase

from services.router.config import RoutingConfig
from services.router.core import RoutingCore
from services.router.model import Agent, Conversation, Offer, Outcome
from shared.models import InboundMessage


class RoutingStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.conversations = db["routing_conversations"]
        self.agents = db["routing_agents"]
        self.last_agents = db["routing_last_agents"]

    async def ensure_indexes(self) -> None:
        await self.conversations.create_index(
            [("workspace_id", 1), ("channel", 1), ("thread_id", 1)], unique=True
        )

    async def load(self, config: RoutingConfig, since: datetime) -> RoutingCore:
        """A core holding every agent, open conversation and recent last agent; loads recomputed."""
        core = RoutingCore(config)
        agents = [_agent_from_doc(doc) async for doc in self.agents.find({})]
        conversations = [_conversation_from_doc(doc) async for doc in self.conversations.find({})]
        last_agents = {
            (doc["workspace_id"], doc["channel"], doc["thread_id"]): (doc["agent_id"], doc["resolved_at"])
            async for doc in self.last_agents.find({"resolved_at": {"$gte": since}})
        }
        core.load_state(agents, conversations, last_agents)
        return core

    async def save(self, core: RoutingCore, outcome: Outcome) -> None:
        """Write what the outcome changed, in one bulk write per collection."""
        conversation_ops: list = [DeleteOne({"_id": i}) for i in outcome.closed_conversations]
        for conversation_id in outcome.changed_conversations - outcome.closed_conversations:
            conversation = core.conversations.get(conversation_id)
            if conversation is not None:
                conversation_ops.append(
                    ReplaceOne({"_id": conversation_id}, _conversation_to_doc(conversation), upsert=True)
                )
        agent_ops = [
            ReplaceOne({"_id": _agent_id(*key)}, _agent_to_doc(core.agents[key]), upsert=True)
            for key in outcome.changed_agents
            if key in core.agents
        ]
        thread_ops = [
            ReplaceOne({"_id": ":".join(key)}, {"workspace_id": key[0], "channel": key[1], "thread_id": key[2],
                                                "agent_id": core.last_agents[key][0],
                                                "resolved_at": core.last_agents[key][1]}, upsert=True)
            for key in outcome.changed_threads
            if key in core.last_agents
        ]
        if conversation_ops:
            await self.conversations.bulk_write(conversation_ops, ordered=True)
        if agent_ops:
            await self.agents.bulk_write(agent_ops, ordered=False)
        if thread_ops:
            await self.last_agents.bulk_write(thread_ops, ordered=False)

    async def mark_announced(self, conversation_ids: set[str]) -> None:
        if conversation_ids:
            await self.conversations.bulk_write(
                [UpdateMany({"_id": {"$in": list(conversation_ids)}, "assignee_id": {"$ne": None}},
                            {"$set": {"announced": True, "backlog": []}})]
            )


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
                       "pinned_until", "pin_serial", "max_wait_done", "left_queue", "declined_at", "announced", "sla", "decision", "transfers")


def _conversation_to_doc(conversation: Conversation) -> dict:
    first = conversation.first
    offer = conversation.offer
    return {
        "workspace_id": first.workspace_id,
        "channel": first.channel,
        "thread_id": first.thread_id,
        "first": first.model_dump(mode="json"),
        "backlog": [m.model_dump(mode="json") for m in conversation.backlog],
        "declined": sorted(conversation.declined),
        "offer": None if offer is None else {"agent_id": offer.agent_id, "expires_at": offer.expires_at, "serial": offer.serial},
        **{name: getattr(conversation, name) for name in CONVERSATION_FIELDS},
    }


def _conversation_from_doc(doc: dict) -> Conversation:
    return Conversation(
        conversation_id=doc["_id"],
        first=InboundMessage.model_validate(doc["first"]),
        backlog=[InboundMessage.model_validate(m) for m in doc.get("backlog", [])],
        declined=set(doc.get("declined", [])),
        offer=Offer(**doc["offer"]) if doc.get("offer") else None,
        **{name: doc[name] for name in CONVERSATION_FIELDS if name in doc},
    )
