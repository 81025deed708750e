"""The router's own collections: `routing_conversations` (open conversations, with the backlog of
the waiting ones) and `routing_agents` (the router's view of each agent). Only the router writes
them; a standby that takes over rebuilds the core from them."""

from pymongo import DeleteOne, ReplaceOne, UpdateMany
from pymongo.asynchronous.database import AsyncDatabase

from services.router.core import Agent, Conversation, Outcome, RoutingCore
from shared.models import InboundMessage


class RoutingStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.conversations = db["routing_conversations"]
        self.agents = db["routing_agents"]

    async def ensure_indexes(self) -> None:
        await self.conversations.create_index(
            [("workspace_id", 1), ("channel", 1), ("thread_id", 1)], unique=True
        )

    async def load(self) -> RoutingCore:
        """A core holding every agent and open conversation, loads recomputed from assignments."""
        core = RoutingCore()
        async for doc in self.agents.find({}):
            core.load_agent(_agent_from_doc(doc))
        async for doc in self.conversations.find({}):
            core.load_conversation(_conversation_from_doc(doc))
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
        if conversation_ops:
            await self.conversations.bulk_write(conversation_ops, ordered=True)
        if agent_ops:
            await self.agents.bulk_write(agent_ops, ordered=False)

    async def mark_announced(self, conversation_ids: set[str]) -> None:
        if conversation_ids:
            await self.conversations.bulk_write(
                [UpdateMany({"_id": {"$in": list(conversation_ids)}, "assignee_id": {"$ne": None}},
                            {"$set": {"announced": True, "backlog": []}})]
            )


def _agent_id(workspace_id: str, agent_id: str) -> str:
    return f"{workspace_id}:{agent_id}"


def _agent_to_doc(agent: Agent) -> dict:
    return {
        "workspace_id": agent.workspace_id,
        "agent_id": agent.agent_id,
        "version": agent.version,
        "skills": agent.skills,
        "max_conversations": agent.max_conversations,
        "status": agent.status,
        "last_assigned_at": agent.last_assigned_at,
    }


def _agent_from_doc(doc: dict) -> Agent:
    return Agent(
        workspace_id=doc["workspace_id"],
        agent_id=doc["agent_id"],
        version=doc["version"],
        skills=doc["skills"],
        max_conversations=doc["max_conversations"],
        status=doc["status"],
        last_assigned_at=doc.get("last_assigned_at"),
    )


def _conversation_to_doc(conversation: Conversation) -> dict:
    first = conversation.first
    return {
        "workspace_id": first.workspace_id,
        "channel": first.channel,
        "thread_id": first.thread_id,
        "first": first.model_dump(mode="json"),
        "created_at": conversation.created_at,
        "waiting_since": conversation.waiting_since,
        "assignee_id": conversation.assignee_id,
        "assigned_at": conversation.assigned_at,
        "backlog": [m.model_dump(mode="json") for m in conversation.backlog],
        "announced": conversation.announced,
    }


def _conversation_from_doc(doc: dict) -> Conversation:
    return Conversation(
        conversation_id=doc["_id"],
        first=InboundMessage.model_validate(doc["first"]),
        created_at=doc["created_at"],
        waiting_since=doc["waiting_since"],
        assignee_id=doc.get("assignee_id"),
        assigned_at=doc.get("assigned_at"),
        backlog=[InboundMessage.model_validate(m) for m in doc.get("backlog", [])],
        announced=doc.get("announced", False),
    )
