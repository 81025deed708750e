"""Waiting conversations as the supervisor's list shows them, from the router's collections.

A conversation no agent has held yet exists only in the router's `routing_conversations` (its
messages in `routing_backlog`): the agents service stores a conversation when it is first assigned.
One that waits again (rerouted, moved to a queue) is in both, and the router's document is the
current one (its queue, its wait). So the supervisor's list takes every waiting conversation from the
router, read-only (docs/architecture.md), maps each into the shape of an agents-side conversation
document, and completes it with what the agents service stored of it (contact, labels, search terms,
activity), so one answer model and one set of filters serve both.
"""

from datetime import datetime
from typing import Any

import structlog
from pydantic import ValidationError

from services.agents.search import terms_of
from shared.models import InboundMessage

log = structlog.get_logger(__name__)

# Filters that never change for a conversation, applied by the database; the others (queue, label,
# contact_id, q) are checked on the completed document, and assignee_id matches none of them.
ROUTER_FIELDS = ("channel", "thread_id")
STORED_FIELDS = {"contact_id": 1, "labels": 1, "terms": 1, "last_message_at": 1}  # what as_conversation takes
MAX_ROUTED = 2000  # waiting conversations one list reads from the router at most (the workspace's open ones)


def router_query(workspace_id: str, filters: dict[str, str]) -> dict[str, Any] | None:
    """The query on `routing_conversations` for the filters; None when no such conversation can match."""
    if filters.get("assignee_id"):
        return None  # never held: no assignee
    return {"workspace_id": workspace_id, "assignee_id": None,
            **{name: filters[name] for name in ROUTER_FIELDS if filters.get(name)}}


def first_message(doc: dict) -> InboundMessage | None:
    """The router document's opening message; None (logged) for one this code cannot read, which is
    left out of the list rather than failing it for every other conversation."""
    try:
        return InboundMessage.model_validate(doc.get("first"))
    except ValidationError as error:
        log.warning("routed.unreadable", conversation_id=doc.get("_id"), error=str(error))
        return None


def as_conversation(doc: dict, first: InboundMessage, backlog: list[dict], contact_id: str,
                    stored: dict | None = None) -> dict:
    """The router's document as an agents-side conversation document (status waiting), with its terms,
    completed with the agents service's `stored` fields (STORED_FIELDS) when it held it before."""
    texts = [first.text, *(m.get("text") for m in backlog)]
    times = [first.received_at, *(datetime.fromisoformat(m["received_at"]) for m in backlog if m.get("received_at"))]
    contact = first.contact
    stored = stored or {}
    if stored.get("last_message_at"):
        times.append(stored["last_message_at"])
    return {
        "_id": doc["_id"],
        "workspace_id": doc["workspace_id"],
        "channel": doc["channel"],
        "thread_id": doc["thread_id"],
        "contact": contact.model_dump(),
        "contact_id": stored.get("contact_id") or contact_id,
        "status": "waiting",
        "assignee_id": None,
        "priority": doc.get("priority", first.priority),
        "skills": list(first.skills),
        "queue": doc.get("queue"),
        "created_at": doc.get("created_at") or first.received_at,
        "waiting_since": doc.get("waiting_since"),
        "assignment_seq": doc.get("assignment_seq", 0),
        "last_message_at": max(times),
        "routing": doc.get("decision"),
        "sla": doc.get("sla") or {},
        "transfers": doc.get("transfers") or [],
        # The agents service's set holds the rules' labels and the agents' edits.
        "labels": sorted(stored["labels"] if "labels" in stored else doc.get("labels") or []),
        "terms": terms_of([*texts, contact.name, contact.email, contact.phone]) | set(stored.get("terms") or []),
    }


def matches(conversation: dict, filters: dict[str, str], terms: list[str]) -> bool:
    """Whether a mapped conversation passes the filters the router's query could not apply."""
    for name in ("contact_id", "queue"):
        if filters.get(name) and conversation[name] != filters[name]:
            return False
    if filters.get("labels") and filters["labels"] not in conversation["labels"]:
        return False
    return all(term in conversation["terms"] for term in terms)


def message_doc(conversation: dict, message: dict) -> dict:
    """A message of the router's backlog (an InboundMessage as JSON) as a stored message document."""
    inbound = InboundMessage.model_validate(message)
    return {
        "_id": inbound.message_id, "workspace_id": inbound.workspace_id, "conversation_id": conversation["_id"],
        "direction": "inbound", "channel": inbound.channel, "channel_message_id": inbound.channel_message_id,
        "text": inbound.text, "attachments": [a.model_dump() for a in inbound.attachments],
        "contact_id": inbound.contact.id, "metadata": inbound.metadata, "status": "received",
        "created_at": inbound.received_at, **({"action": inbound.action} if inbound.action else {}),
    }
