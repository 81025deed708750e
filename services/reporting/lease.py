"""The timers' lease: at most one reporting replica runs a recompute or extend round at a time.

A document in `report_meta` (`_id: "timers"`) names its holder and until when it holds. A
replica takes it with one conditional find_one_and_update (its own, or expired; an upsert that
meets another's live lease is a duplicate key: refused), renews it at every round and gives it
back when it stops. Only the active consumer of reporting's queue asks (services/reporting/service.py);
the lease covers the moments when two replicas could both believe they are: the consumer that
stops (or loses its connection) finishing the round in hand while the broker already feeds its
successor. A holder that died leaves the lease to run out (`REPORTING_LEASE_SECONDS`), then the
successor's timers start. Times are each replica's clock: keep the pods' clocks in sync (NTP)
well within the lease.
"""

from datetime import datetime, timedelta

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.reporting.store import META

LEASE_ID = "timers"


class TimerLease:
    def __init__(self, db: AsyncDatabase, owner: str, seconds: float) -> None:
        self.meta = db[META]
        self.owner = owner
        self.duration = timedelta(seconds=seconds)

    async def hold(self, now: datetime) -> bool:
        """Take or renew the lease until `now` + its duration; False while another replica holds it."""
        try:
            held = await self.meta.find_one_and_update(
                {"_id": LEASE_ID, "$or": [{"owner": self.owner}, {"until": {"$lte": now}}]},
                {"$set": {"owner": self.owner, "until": now + self.duration}},
                upsert=True, return_document=ReturnDocument.AFTER)
        except DuplicateKeyError:  # the document exists and another replica's lease has not run out
            return False
        return held is not None and held["owner"] == self.owner

    async def release(self) -> None:
        """Give it back (a stop): the successor's timers need not wait for it to run out."""
        await self.meta.delete_one({"_id": LEASE_ID, "owner": self.owner})

    async def holder(self) -> str | None:
        doc = await self.meta.find_one({"_id": LEASE_ID})
        return None if doc is None else doc["owner"]
