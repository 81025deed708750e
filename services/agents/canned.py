"""Canned responses: texts an agent inserts with `/shortcut`, workspace-wide or an agent's own.

A text may hold placeholders filled for the conversation it is used in: `{{contact.name}}`,
`{{contact.first_name}}`, `{{contact.email}}`, `{{contact.phone}}`, `{{agent.name}}`,
`{{agent.first_name}}`, `{{agent.id}}`, `{{conversation.id}}`, `{{conversation.channel}}`, each
with an optional fallback for an empty value: `{{contact.first_name|there}}`. An unknown placeholder
is refused when the response is saved (a 422 naming it), so a typo never reaches a customer.
"""

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.models import Wire, new_id, utcnow
from shared.web import Timestamp

PLACEHOLDER = re.compile(r"\{\{\s*([a-z_]+\.[a-z_]+)\s*(?:\|([^{}]*))?\}\}")
PLACEHOLDERS = ("contact.name", "contact.first_name", "contact.email", "contact.phone", "agent.name",
                "agent.first_name", "agent.id", "conversation.id", "conversation.channel")
SHORTCUT_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,31}$"


class CannedChange(Wire):
    """A canned response's words: what a change may touch (who it belongs to stays)."""

    shortcut: str = Field(pattern=SHORTCUT_PATTERN, description="Typed after `/` in the composer")
    title: str = Field("", max_length=120)
    text: str = Field(min_length=1, max_length=4096)

    @field_validator("text")
    @classmethod
    def _known_placeholders(cls, text: str) -> str:
        unknown = sorted({match.group(1) for match in PLACEHOLDER.finditer(text)} - set(PLACEHOLDERS))
        if unknown:
            raise ValueError(f"unknown placeholder {', '.join(unknown)}: use {', '.join(PLACEHOLDERS)}")
        return text


class CannedIn(CannedChange):
    """A new canned response: shared, or `personal` to one agent (`owner`; an agent token: itself)."""

    # The rule the handler enforces, declared for the document too: a personal one names its owner.
    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"properties": {"personal": {"const": False}}},
        {"required": ["owner"], "properties": {"owner": {"type": "string"}}},
    ]})

    personal: bool = False
    owner: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$",
                              description="Whose personal response; required with personal (an agent token: itself)")


def placeholder_values(conversation: Mapping[str, Any] | None, agent: Mapping[str, Any] | None) -> dict[str, str]:
    """What each placeholder stands for in this conversation, answered by this agent ('' if unknown)."""
    contact = (conversation or {}).get("contact") or {}
    contact_name, agent_name = str(contact.get("name") or ""), str((agent or {}).get("name") or "")
    return {
        "contact.name": contact_name, "contact.first_name": contact_name.split(" ")[0] if contact_name else "",
        "contact.email": str(contact.get("email") or ""), "contact.phone": str(contact.get("phone") or ""),
        "agent.name": agent_name, "agent.first_name": agent_name.split(" ")[0] if agent_name else "",
        "agent.id": str((agent or {}).get("agent_id") or ""),
        "conversation.id": str((conversation or {}).get("_id") or ""),
        "conversation.channel": str((conversation or {}).get("channel") or ""),
    }


def render(text: str, values: Mapping[str, str]) -> str:
    """The text with each placeholder replaced by its value, or its fallback when the value is empty."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1)) or (m.group(2) or "").strip(), text)


class CannedStore:
    """`canned_responses`: one document each; a shortcut is unique per workspace and owner (None: shared)."""

    def __init__(self, db: AsyncDatabase) -> None:
        self.responses = db["canned_responses"]

    async def ensure_indexes(self) -> None:
        await self.responses.create_index([("workspace_id", ASCENDING), ("owner", ASCENDING), ("shortcut", ASCENDING)],
                                          unique=True)

    async def visible_to(self, workspace_id: str, agent_id: str | None) -> list[dict]:
        """The shared ones and, for an agent, its own; for a supervisor (None) every one."""
        query: dict[str, Any] = {"workspace_id": workspace_id}
        if agent_id is not None:
            query["owner"] = {"$in": [None, agent_id]}
        return sorted(await self.responses.find(query).to_list(), key=lambda d: (d["shortcut"], d["owner"] or ""))

    async def get(self, workspace_id: str, response_id: str) -> dict | None:
        return await self.responses.find_one({"_id": response_id, "workspace_id": workspace_id})

    async def create(self, workspace_id: str, owner: str | None, body: CannedIn) -> dict | None:
        """The new response; None if its shortcut is taken for this owner."""
        now = utcnow()
        doc = {"_id": new_id(), "workspace_id": workspace_id, "owner": owner, "shortcut": body.shortcut,
               "title": body.title, "text": body.text, "created_at": now, "updated_at": now}
        try:
            await self.responses.insert_one(doc)
        except DuplicateKeyError:
            return None
        return doc

    async def replace(self, doc: dict, body: CannedChange) -> dict | None:
        """The response changed (its owner stays); None if the new shortcut is taken."""
        changes = {"shortcut": body.shortcut, "title": body.title, "text": body.text, "updated_at": utcnow()}
        try:
            await self.responses.update_one({"_id": doc["_id"]}, {"$set": changes})
        except DuplicateKeyError:
            return None
        return {**doc, **changes}

    async def delete(self, doc: dict) -> None:
        await self.responses.delete_one({"_id": doc["_id"]})


class CannedOut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    shortcut: str
    title: str
    text: str  # as written, placeholders and all
    personal: bool
    owner: str | None
    updated_at: Timestamp
    rendered: str | None = None  # with ?conversation_id=: the text filled for that conversation

    @classmethod
    def of(cls, doc: Mapping[str, Any], rendered: str | None = None) -> "CannedOut":
        return cls(id=doc["_id"], shortcut=doc["shortcut"], title=doc["title"], text=doc["text"],
                   personal=doc["owner"] is not None, owner=doc["owner"], updated_at=doc["updated_at"],
                   rendered=rendered)


class CannedList(BaseModel):
    model_config = ConfigDict(extra="forbid")

    responses: list[CannedOut]
