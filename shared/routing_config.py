"""Where each workspace's routing configuration is stored (the router writes it; others read it).

`routing_config` holds the deployment's default under `_id: "routing"` (put with a default-workspace
key, or from the router's YAML file) and a workspace's own under `routing:<workspace>` (put with
that workspace's key). A workspace without its own routes by the default.
"""

from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from shared.models import DEFAULT_WORKSPACE

COLLECTION = "routing_config"
DEFAULT_ID = "routing"


def config_id(workspace_id: str) -> str:
    return DEFAULT_ID if workspace_id == DEFAULT_WORKSPACE else f"{DEFAULT_ID}:{workspace_id}"


def workspace_of(doc_id: str) -> str | None:
    """The workspace whose own configuration a document is; None for the default."""
    return None if doc_id == DEFAULT_ID else doc_id.removeprefix(f"{DEFAULT_ID}:")


async def find_config(db: AsyncDatabase, workspace_id: str, projection: dict[str, Any] | None = None) -> dict | None:
    """The workspace's stored configuration document, else the default's; None when neither is stored."""
    ids = list(dict.fromkeys((config_id(workspace_id), DEFAULT_ID)))
    found = {doc["_id"]: doc async for doc in db[COLLECTION].find({"_id": {"$in": ids}}, projection)}
    return next((found[i] for i in ids if i in found), None)
