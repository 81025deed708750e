"""The router's waiting conversations as the supervisor's list shows them (services/agents/routed.py):
mapped to the stored conversation's shape, completed with what the agents service stored, filtered."""

from datetime import UTC, datetime, timedelta

from services.agents import routed
from shared.models import InboundMessage

OPENED = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def router_doc(**fields) -> dict:
    first = InboundMessage(message_id="m1", channel="sms", thread_id="t1", text="Parcel lost",
                           contact={"id": "+14155550123", "name": "Dana"}, received_at=OPENED, skills=["billing"])
    return {"_id": "c1", "workspace_id": "default", "channel": "sms", "thread_id": "t1",
            "first": first.model_dump(mode="json"), "queue": "default", "priority": 3, "created_at": OPENED,
            "waiting_since": OPENED, "assignee_id": None, "labels": ["rule-label"], "sla": {}, "transfers": [],
            **fields}


def test_a_never_held_conversation_maps_with_its_backlog_words_and_latest_time():
    doc = router_doc()
    later = (OPENED + timedelta(minutes=5)).isoformat()
    mapped = routed.as_conversation(doc, routed.first_message(doc), [{"text": "invoice 42", "received_at": later}],
                                    "contact-x")
    assert (mapped["status"], mapped["assignee_id"], mapped["contact_id"]) == ("waiting", None, "contact-x")
    assert mapped["last_message_at"] == OPENED + timedelta(minutes=5)
    assert mapped["skills"] == ["billing"] and mapped["labels"] == ["rule-label"] and mapped["priority"] == 3
    assert {"parcel", "invoice", "dana"} <= mapped["terms"]
    assert routed.matches(mapped, {"queue": "default", "labels": "rule-label"}, ["inv", "parc"])
    assert not routed.matches(mapped, {"queue": "tier2"}, [])
    assert not routed.matches(mapped, {"contact_id": "someone-else"}, [])
    assert not routed.matches(mapped, {}, ["refund"])


def test_one_held_before_keeps_what_the_agents_service_stored():
    doc = router_doc()
    stored = {"contact_id": "known", "labels": ["vip"], "terms": ["earlier"], "last_message_at": OPENED + timedelta(hours=1)}
    mapped = routed.as_conversation(doc, routed.first_message(doc), [], "new-id", stored)
    assert (mapped["contact_id"], mapped["labels"]) == ("known", ["vip"])
    assert "earlier" in mapped["terms"] and mapped["last_message_at"] == OPENED + timedelta(hours=1)


def test_the_query_and_an_unreadable_document():
    assert routed.router_query("w", {"assignee_id": "ann"}) is None  # never held: nobody's
    assert routed.router_query("w", {"channel": "sms", "queue": "q", "labels": "x"}) == {
        "workspace_id": "w", "assignee_id": None, "channel": "sms"}
    assert routed.first_message({"_id": "c", "first": {"text": "no channel"}}) is None
