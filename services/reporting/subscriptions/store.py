"""Subscriptions and their deliveries in MongoDB: the dispatcher's whole state (it keeps none elsewhere).

`subscriptions`: one document per subscription (`_id` "sub_...", workspace_id, url, events, secret).
`subscription_deliveries`: one document per (subscription, public event[, replay]); `_id` is the
delivery id (events.delivery_id), so recording the same events again inserts nothing new. Its body
is serialized once, when it is made, so every retry sends the same bytes. A delivery is `pending`
(due at `next_at`), `delivered` or `dead` (with `dead_reason`); `attempts` and `history` say what
each try got.

Queries are equalities and `$in` on indexed fields, filtered further in Python: SecantusDB answers
`$or` by scanning the whole collection.
"""

import json
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from pymongo import ASCENDING, InsertOne, ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from services.reporting.model import ReportEvent
from services.reporting.subscriptions.events import PublicEvent, delivery_id, public_events, wants
from shared.mongo import non_duplicate_errors

SUBSCRIPTIONS, DELIVERIES = "subscriptions", "subscription_deliveries"
REPORT_EVENTS = "report_events"  # reporting's store: read to tell new events from repeats, and for replays
HISTORY_KEPT = 20  # attempts kept on a delivery (the count goes on): enough to see a pattern, bounded


def new_subscription_id() -> str:
    return f"sub_{secrets.token_hex(12)}"


def delivery_body(delivery_id_: str, event: PublicEvent) -> str:
    """The JSON body a receiver gets (and the signature covers), fixed when the delivery is made."""
    return json.dumps({
        "id": delivery_id_, "event": event.name, "event_id": event.event_id, "workspace_id": event.workspace_id,
        "occurred_at": event.occurred_at.isoformat(), "data": event.data,
    }, ensure_ascii=False, separators=(",", ":"), default=_json_value)


def _json_value(value: Any) -> str:
    """Event data read from the wire is JSON already; a time in data made in process is written as the API writes it."""
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def delivery_document(subscription: dict[str, Any], event: PublicEvent, now: datetime,
                      replay_id: str | None = None, due: datetime | None = None) -> dict[str, Any]:
    identity = delivery_id(subscription["_id"], event.event_id, replay_id)
    document = {
        "_id": identity, "subscription_id": subscription["_id"], "workspace_id": event.workspace_id,
        "event": event.name, "event_id": event.event_id, "occurred_at": event.occurred_at,
        "chain": event.chain, "order": event.order, "body": delivery_body(identity, event),
        "status": "pending", "next_at": due or now, "created_at": now, "attempts": 0, "history": [],
    }
    if replay_id is not None:
        document["replay_id"] = replay_id
    return document


def deliveries_of(events: Iterable[ReportEvent], subscriptions: list[dict[str, Any]], now: datetime,
                  replay_id: str | None = None, due: datetime | None = None) -> list[dict[str, Any]]:
    """A delivery per public event per subscription of its workspace that wants it, due at `due` (else now)."""
    by_workspace: dict[str, list[dict[str, Any]]] = {}
    for subscription in subscriptions:
        by_workspace.setdefault(subscription["workspace_id"], []).append(subscription)
    documents = []
    for event in events:
        for public in public_events(event):
            documents += [delivery_document(s, public, now, replay_id, due)
                          for s in by_workspace.get(event.workspace_id, []) if wants(s["events"], public.name)]
    return documents


class SubscriptionStore:
    def __init__(self, db: AsyncDatabase) -> None:
        self.subscriptions = db[SUBSCRIPTIONS]
        self.deliveries = db[DELIVERIES]
        self.report_events = db[REPORT_EVENTS]

    async def ensure_indexes(self) -> None:
        await self.subscriptions.create_index([("workspace_id", ASCENDING)])
        # The dispatcher's scan for due deliveries, and each chain's head.
        await self.deliveries.create_index([("status", ASCENDING), ("next_at", ASCENDING)])
        await self.deliveries.create_index([("subscription_id", ASCENDING), ("chain", ASCENDING),
                                            ("status", ASCENDING), ("order", ASCENDING)])
        await self.deliveries.create_index([("subscription_id", ASCENDING), ("status", ASCENDING)])
        await self.deliveries.create_index([("status", ASCENDING), ("delivered_at", ASCENDING)])
        await self.deliveries.create_index([("status", ASCENDING), ("dead_at", ASCENDING)])
        # Replays read a workspace's stored events from a time (reporting's own indexes lead with agent or conversation).
        await self.report_events.create_index([("workspace_id", ASCENDING), ("at", ASCENDING)])

    # -- subscriptions ---------------------------------------------------------------------------

    async def create(self, workspace_id: str, url: str, events: list[str], secret: str, now: datetime
                     ) -> dict[str, Any]:
        # To the millisecond, as MongoDB keeps it: the 201 says what a GET will say.
        created_at = now.replace(microsecond=now.microsecond // 1000 * 1000)
        document = {"_id": new_subscription_id(), "workspace_id": workspace_id, "url": url, "events": events,
                    "secret": secret, "created_at": created_at}
        await self.subscriptions.insert_one(document)
        return document

    async def count(self, workspace_id: str) -> int:
        return await self.subscriptions.count_documents({"workspace_id": workspace_id})

    async def of_workspace(self, workspace_id: str) -> list[dict[str, Any]]:
        found = [d async for d in self.subscriptions.find({"workspace_id": workspace_id})]
        return sorted(found, key=lambda d: (d["created_at"], d["_id"]))

    async def get(self, workspace_id: str, subscription_id: str) -> dict[str, Any] | None:
        """Another workspace's subscription is None, as one that does not exist."""
        return await self.subscriptions.find_one({"_id": subscription_id, "workspace_id": workspace_id})

    async def by_ids(self, ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        return {d["_id"]: d async for d in self.subscriptions.find({"_id": {"$in": list(set(ids))}})}

    async def delete(self, workspace_id: str, subscription_id: str) -> bool:
        """The subscription and its deliveries (pending ones are not sent: nobody wants them now)."""
        result = await self.subscriptions.delete_one({"_id": subscription_id, "workspace_id": workspace_id})
        if result.deleted_count:
            await self.deliveries.delete_many({"subscription_id": subscription_id})
        return bool(result.deleted_count)

    async def counts(self, subscription_id: str) -> dict[str, int]:
        return {status: await self.deliveries.count_documents({"subscription_id": subscription_id, "status": status})
                for status in ("pending", "dead")}

    # -- making deliveries (the store's hook, before it inserts a batch) -------------------------

    async def add_deliveries(self, events: list[ReportEvent], now: datetime, settle: timedelta = timedelta()) -> int:
        """Deliveries for the events reporting has not stored yet, to every subscription that wants them.

        Runs before the batch's events are inserted and before it is acked: a crash after this leaves
        the events unstored, so the redelivered batch makes the same deliveries again (the same ids:
        nothing twice); a crash before it makes them then. An event already stored (a redelivery, a
        producer repeating itself) was delivered when it was first recorded. Returns how many were new.

        They are due `settle` from now: one conversation's events come from several services (the router's
        assignment, the agents service's copy of the message that opened it) and reach reporting a moment
        apart, not always in the order they happened; waiting a little lets the earlier ones arrive and go first."""
        workspaces = sorted({e.workspace_id for e in events})
        if not workspaces:
            return 0
        subscriptions = [d async for d in self.subscriptions.find({"workspace_id": {"$in": workspaces}})]
        if not subscriptions:
            return 0  # the common case costs one indexed query
        ids = [e.event_id for e in events]
        stored = {d["_id"] async for d in self.report_events.find({"_id": {"$in": ids}}, {"_id": 1})}
        new = [e for e in events if e.event_id not in stored]
        return await self.insert(deliveries_of(new, subscriptions, now, due=now + settle))

    async def insert(self, documents: list[dict[str, Any]]) -> int:
        """Insert, a duplicate id being a delivery made before; how many were new."""
        if not documents:
            return 0
        try:
            result = await self.deliveries.bulk_write([InsertOne(d) for d in documents], ordered=False)
            return result.inserted_count
        except BulkWriteError as error:
            if non_duplicate_errors(error.details):
                raise
            return error.details.get("nInserted", 0)

    # -- the dispatcher's queries ----------------------------------------------------------------

    async def due(self, now: datetime, limit: int) -> list[dict[str, Any]]:
        cursor = self.deliveries.find({"status": "pending", "next_at": {"$lte": now}},
                                      {"subscription_id": 1, "chain": 1, "order": 1, "next_at": 1})
        return [d async for d in cursor.sort("next_at", ASCENDING).limit(limit)]

    async def head(self, subscription_id: str, chain: str, order: str) -> dict[str, Any] | None:
        """The chain's first pending delivery at or before `order`: the only one of the chain that may be sent."""
        cursor = self.deliveries.find({"subscription_id": subscription_id, "chain": chain, "status": "pending",
                                       "order": {"$lte": order}})
        found = [d async for d in cursor.sort("order", ASCENDING).limit(1)]
        return found[0] if found else None

    async def hold_behind(self, head: dict[str, Any], until: datetime) -> None:
        """The chain's later deliveries wait (not due) until `until`: the head goes first, and they stay out of
        the due scan meanwhile. Its completion makes the next one due at once (`release_next`)."""
        await self.deliveries.update_many(
            {"subscription_id": head["subscription_id"], "chain": head["chain"], "status": "pending",
             "order": {"$gt": head["order"]}, "next_at": {"$lt": until}},
            {"$set": {"next_at": until}})

    async def defer(self, ids: list[str], until: datetime) -> None:
        if ids:
            await self.deliveries.update_many({"_id": {"$in": ids}, "status": "pending", "next_at": {"$lt": until}},
                                              {"$set": {"next_at": until}})

    async def claim(self, delivery: dict[str, Any], until: datetime) -> bool:
        """Out of the due scan while it is being sent; if the process dies, due again at `until`.

        Claimed only if it is still as this dispatcher read it (pending, the same `next_at`): of two
        reporting replicas that read it due at once, one claims it and the other is refused, so one sends it."""
        result = await self.deliveries.update_one(
            {"_id": delivery["_id"], "status": "pending", "next_at": delivery["next_at"]},
            {"$set": {"next_at": until}})
        return result.modified_count == 1

    async def finish(self, delivery: dict[str, Any], attempt: dict[str, Any], update: dict[str, Any]) -> None:
        """Record an attempt and the delivery's new state (a deleted subscription's delivery is gone: no-op)."""
        await self.deliveries.update_one(
            {"_id": delivery["_id"], "status": "pending"},
            {"$set": update, "$inc": {"attempts": 1},
             "$push": {"history": {"$each": [attempt], "$slice": -HISTORY_KEPT}}})

    async def release_next(self, delivery: dict[str, Any], now: datetime) -> None:
        """The chain's next pending delivery is due now (it was held behind the one that just finished)."""
        cursor = self.deliveries.find({"subscription_id": delivery["subscription_id"], "chain": delivery["chain"],
                                       "status": "pending"}, {"order": 1, "next_at": 1})
        # Sorted on the index (subscription, chain, status, order): a long backlog behind it is not read.
        found = [d async for d in cursor.sort("order", ASCENDING).limit(1)]
        if found:
            first = found[0]
            if first["next_at"] > now:
                await self.deliveries.update_one({"_id": first["_id"], "status": "pending"},
                                                 {"$set": {"next_at": now}})

    async def prune(self, delivered_before: datetime, dead_before: datetime) -> None:
        """Old deliveries go: delivered ones after a week, dead letters after a month (settings). Dropping a
        delivered one cannot make it again: only events reporting has not stored yet make deliveries."""
        await self.deliveries.delete_many({"status": "delivered", "delivered_at": {"$lt": delivered_before}})
        await self.deliveries.delete_many({"status": "dead", "dead_at": {"$lt": dead_before}})

    # -- dead letters and replays ----------------------------------------------------------------

    async def dead_letters(self, subscription_id: str, limit: int) -> list[dict[str, Any]]:
        found = [d async for d in self.deliveries.find({"subscription_id": subscription_id, "status": "dead"},
                                                       {"body": 0})]
        return sorted(found, key=lambda d: (d["dead_at"], d["_id"]), reverse=True)[:limit]

    async def resend(self, subscription_id: str, delivery_id_: str, now: datetime) -> dict[str, Any] | None:
        """A dead letter pending again, with the same id and body, attempts and age counted afresh."""
        return await self.deliveries.find_one_and_update(
            {"_id": delivery_id_, "subscription_id": subscription_id, "status": "dead"},
            {"$set": {"status": "pending", "next_at": now, "created_at": now, "attempts": 0},
             "$unset": {"dead_reason": "", "dead_at": ""}},
            return_document=ReturnDocument.AFTER)

    async def resend_all(self, subscription_id: str, now: datetime) -> int:
        """Every dead letter of the subscription pending again (each keeps its id); how many."""
        result = await self.deliveries.update_many(
            {"subscription_id": subscription_id, "status": "dead"},
            {"$set": {"status": "pending", "next_at": now, "created_at": now, "attempts": 0},
             "$unset": {"dead_reason": "", "dead_at": ""}})
        return result.modified_count

    async def stored_events(self, workspace_id: str, since: datetime, limit: int) -> list[ReportEvent]:
        """The workspace's stored events at or after `since`, in the order reporting folds them (at most `limit`)."""
        cursor = self.report_events.find({"workspace_id": workspace_id, "at": {"$gte": since}}, {"event": 1})
        documents = [d async for d in cursor.sort("at", ASCENDING).limit(limit)]
        return sorted((ReportEvent.model_validate_json(d["event"]) for d in documents), key=ReportEvent.sort_key)
