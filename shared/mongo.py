"""MongoDB client factory (PyMongo's async API)."""

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase


def create_client(url: str) -> AsyncMongoClient:
    """One client per service, opened in the app's cleanup context; datetimes come back UTC-aware."""
    return AsyncMongoClient(url, tz_aware=True, serverSelectionTimeoutMS=3000, connectTimeoutMS=3000)


async def is_reachable(db: AsyncDatabase) -> bool:
    try:
        await db.command("ping")
    except Exception:
        return False
    return True


def duplicate_indexes(error_details: dict) -> set[int]:
    """Indexes of the writes in an unordered bulk write that hit a unique index (code 11000)."""
    return {e["index"] for e in error_details.get("writeErrors", []) if e.get("code") == 11000}


def non_duplicate_errors(error_details: dict) -> list[dict]:
    return [e for e in error_details.get("writeErrors", []) if e.get("code") != 11000]
