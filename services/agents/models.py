"""Request bodies of the agents API (validated once, at the edge)."""

from typing import Annotated

from pydantic import Field

from shared.models import AgentStatus, Skill, Wire

AgentId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class AgentProfile(Wire):
    name: str = Field(min_length=1, max_length=200)
    skills: dict[Skill, Annotated[int, Field(ge=1, le=5)]] = Field(default_factory=dict)
    max_conversations: int = Field(3, ge=0, le=100)
    # Per medium (chat, email, voice): e.g. {"voice": 1, "chat": 3, "email": 5}. See docs/routing.md.
    channel_capacity: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")], Annotated[int, Field(ge=0, le=100)]] = Field(default_factory=dict)


class OfferAnswerIn(Wire):
    agent_id: AgentId
    accept: bool


class TransferIn(Wire):
    to_agent: AgentId | None = None
    to_queue: str | None = Field(None, min_length=1, max_length=64)
    note: str = Field("", max_length=2000)
    escalation: bool = False
    by_agent: AgentId | None = None


class AgentStatusChange(Wire):
    status: AgentStatus


class Reply(Wire):
    text: str = Field(min_length=1)


class AgentOut(Wire):
    agent_id: str
    workspace_id: str
    name: str
    skills: dict[str, int]
    max_conversations: int
    channel_capacity: dict[str, int] = Field(default_factory=dict)
    status: AgentStatus
    version: int


class MessageOut(Wire):
    message_id: str
    conversation_id: str
    direction: str
    channel: str
    text: str
    status: str
    created_at: str
    agent_id: str | None = None


class ConversationOut(Wire):
    conversation_id: str
    workspace_id: str
    channel: str
    thread_id: str
    status: str
    assignee_id: str | None
    priority: int
    skills: list[str]
    created_at: str
    messages: list[MessageOut] | None = None
