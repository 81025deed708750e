"""Incidents as supervisors and external systems see them (owned by assist):

- `incidents`: one per incident, `_id` the detector's id (the workspace and the message that opened
  it): title (that message), status (open, confirmed, dismissed, merged, resolved), the linked
  conversations' count, per channel, and per minute (the count over time), first and last link.
- `incident_links`: one per linked conversation, `_id` incident:conversation, with the message that
  linked it; written once, so a replayed link counts nothing twice.
- `surge_messages`: the customer messages the detector read in the last day, so a replica taking
  over (or restarting) rebuilds its detector by replaying them."""

from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.assist.surges.detector import InboundMessage
from shared.mongo import non_duplicate_errors

OPEN_STATUSES = ("open", "confirmed")


def message_of_doc(doc: dict) -> InboundMessage:
    return InboundMessage(id=doc["_id"], workspace_id=doc["workspace_id"], conversation_id=doc["conversation_id"],
                          channel=doc["channel"], text=doc["text"], at=doc["at"])
KEEP_MESSAGES = timedelta(hours=26)  # the detector's replay reads the last day; a little more is kept


class IncidentStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.incidents = db["incidents"]
        self.links = db["incident_links"]
        self.messages = db["surge_messages"]

    async def ensure_indexes(self) -> None:
        await self.incidents.create_index([("workspace_id", ASCENDING), ("status", ASCENDING), ("opened_at", DESCENDING)])
        await self.links.create_index([("incident_id", ASCENDING), ("at", ASCENDING)])
        await self.messages.create_index([("at", ASCENDING)])

    # -- what the detector read --------------------------------------------------------------

    async def keep_messages(self, docs: list[dict]) -> None:
        """The batch's messages, for a replay; a redelivered one is there already."""
        if not docs:
            return
        try:
            await self.messages.insert_many(docs, ordered=False)
        except BulkWriteError as error:
            if non_duplicate_errors(error.details):
                raise  # only repeats are expected: they were kept the first time

    async def recent_messages(self, since: datetime, limit: int) -> list[dict]:
        return await self.messages.find({"at": {"$gte": since}}).sort([("at", ASCENDING), ("_id", ASCENDING)]) \
            .limit(limit).to_list(None)

    async def message(self, message_id: str) -> InboundMessage | None:
        doc = await self.messages.find_one({"_id": message_id})
        return None if doc is None else message_of_doc(doc)

    async def forget_messages(self, before: datetime) -> None:
        await self.messages.delete_many({"at": {"$lt": before}})

    # -- incidents ----------------------------------------------------------------------------

    async def opened(self, incident_id: str, workspace_id: str, title: str, at: datetime) -> bool:
        """True if this is the incident's first record (a replay finds it there)."""
        try:
            await self.incidents.insert_one({
                "_id": incident_id, "workspace_id": workspace_id, "title": title[:300], "status": "open",
                "opened_at": at, "updated_at": at, "last_link_at": at, "conversations": 0, "channels": {},
                "minutes": {},
            })
        except DuplicateKeyError:
            return False
        return True

    async def link(self, incident_id: str, workspace_id: str, conversation_id: str, channel: str, message_id: str,
                   text: str, at: datetime) -> bool:
        """Record a conversation's link; its counts grow only the first time (True then)."""
        try:
            await self.links.insert_one({
                "_id": f"{incident_id}:{conversation_id}", "incident_id": incident_id, "workspace_id": workspace_id,
                "conversation_id": conversation_id, "channel": channel, "message_id": message_id, "text": text[:300],
                "at": at})
        except DuplicateKeyError:
            return False
        minute = at.strftime("%Y-%m-%dT%H:%M")
        await self.incidents.update_one({"_id": incident_id}, {
            "$inc": {"conversations": 1, f"channels.{channel}": 1, f"minutes.{minute}": 1},
            "$max": {"last_link_at": at, "updated_at": at}})
        return True

    async def get(self, workspace_id: str, incident_id: str) -> dict | None:
        return await self.incidents.find_one({"_id": incident_id, "workspace_id": workspace_id})

    async def find(self, workspace_id: str, statuses: tuple[str, ...] | None = None, limit: int = 100) -> list[dict]:
        query: dict[str, Any] = {"workspace_id": workspace_id}
        if statuses:
            query["status"] = {"$in": list(statuses)}
        return await self.incidents.find(query).sort("opened_at", DESCENDING).limit(limit).to_list(None)

    async def linked(self, incident_id: str, limit: int = 500) -> list[dict]:
        return await self.links.find({"incident_id": incident_id}).sort("at", ASCENDING).limit(limit).to_list(None)

    async def set_status(self, workspace_id: str, incident_id: str, status: str, frm: tuple[str, ...],
                         at: datetime, **fields: Any) -> dict | None:
        """The explicit transition from one of `frm` to `status`; None if the incident is not in one of them."""
        return await self.incidents.find_one_and_update(
            {"_id": incident_id, "workspace_id": workspace_id, "status": {"$in": list(frm)}},
            {"$set": {"status": status, "updated_at": at, **fields}}, return_document=ReturnDocument.AFTER)

    async def move_links(self, source: dict, target: dict) -> None:
        """A merge: the source's conversations become the target's (each once) and are counted there."""
        for link in await self.links.find({"incident_id": source["_id"]}).to_list(None):
            await self.link(target["_id"], target["workspace_id"], link["conversation_id"], link["channel"],
                            link["message_id"], link["text"], link["at"])
