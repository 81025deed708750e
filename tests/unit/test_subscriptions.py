"""Event subscriptions' pure parts: ReportEvents as public events, matching, delivery ids, signatures
(checked as a receiver would), the backoff schedule and what each answer means, receiver URLs."""

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta

import pytest

from services.reporting.model import ReportEvent
from services.reporting.subscriptions.events import (
    EVENT_NAMES,
    delivery_id,
    public_event_id,
    public_events,
    wants,
)
from services.reporting.subscriptions.policy import RetryPolicy, retry_after_seconds, verdict
from services.reporting.subscriptions.signing import signature, verify
from services.reporting.subscriptions.store import deliveries_of
from services.reporting.subscriptions.urls import host_problem, is_public, url_problem

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def event(type_: str, event_id: str = "e1", at: datetime = T0, **fields) -> ReportEvent:
    base = {"workspace_id": "default", "conversation_id": "c1", "queue": "billing", "channel": "api"}
    return ReportEvent(event_id=event_id, type=type_, at=at, **(base | fields))


def names(report_event: ReportEvent) -> list[str]:
    return [p.name for p in public_events(report_event)]


def test_each_report_event_maps_to_its_public_events():
    assert names(event("conversation.opened", data={"priority": 0, "skills": []})) == ["conversation.created"]
    assert names(event("conversation.assigned", agent_id="ann")) == ["conversation.assigned",
                                                                    "conversation.status_changed"]
    for type_, status in [("conversation.queued", "queued"), ("conversation.offered", "offered"),
                          ("conversation.resolved", "resolved"), ("conversation.abandoned", "abandoned"),
                          ("conversation.reopened", "reopened")]:
        (public,) = public_events(event(type_, agent_id="ann", data={"reason": "x"}))
        assert (public.name, public.data["status"]) == ("conversation.status_changed", status)
    for same in ("conversation.transferred", "conversation.labels_changed", "message.created", "sla.warning",
                 "sla.breached", "csat.received"):
        assert names(event(same)) == [same]
    assert names(event("conversation.answered", agent_id="ann")) == []  # not offered to subscribers
    assert set(EVENT_NAMES) >= {n for t in ("conversation.opened", "conversation.assigned") for n in names(event(t))}


def test_bodies_carry_the_ids_and_the_facts():
    (created,) = public_events(event("conversation.opened", data={"priority": 2, "skills": ["billing"]}))
    assert created.data == {"conversation_id": "c1", "agent_id": None, "queue": "billing", "channel": "api",
                            "priority": 2, "skills": ["billing"]}
    (message,) = public_events(event("message.created", "message.created:m-9", data={"direction": "inbound"}))
    assert message.data["message_id"] == "m-9" and message.data["direction"] == "inbound"
    (status,) = public_events(event("agent.status_changed", "agent:default:ann:3", conversation_id=None,
                                    agent_id="ann", data={"status": "online", "max_conversations": 3}))
    assert status.data == {"agent_id": "ann", "status": "online", "max_conversations": 3}
    assert status.chain == "agent:ann"


def test_the_bots_events_are_public_and_a_bot_resolution_is_a_status_change_too():
    over = public_events(event("bot.handed_over", data={"reason": "the customer asked for a person"}))
    assert [p.name for p in over] == ["bot.handed_over"]
    assert over[0].data == {"conversation_id": "c1", "agent_id": None, "queue": "billing", "channel": "api",
                            "reason": "the customer asked for a person"}
    resolved = public_events(event("bot.resolved", data={"duration_seconds": 42.5}))
    assert [p.name for p in resolved] == ["bot.resolved", "conversation.status_changed"]
    assert resolved[0].data["duration_seconds"] == 42.5
    assert resolved[1].data == {
        "conversation_id": "c1", "agent_id": None, "queue": "billing", "channel": "api", "duration_seconds": 42.5,
        "by_bot": True, "status": "resolved"}
    assert {"bot.resolved", "bot.handed_over"} <= set(EVENT_NAMES)
    assert wants(["bot.resolved"], "bot.resolved") and not wants(["bot.resolved"], "bot.handed_over")
    (created,) = public_events(event("conversation.opened", data={"priority": 0, "skills": [], "bot": True}))
    assert created.data["bot"] is True  # the bot answers it first: no status until handed over or resolved


def test_ids_are_stable_and_order_follows_time_then_id():
    first = public_events(event("conversation.assigned", "a", agent_id="ann"))
    again = public_events(event("conversation.assigned", "a", agent_id="ann"))
    assert [p.event_id for p in first] == [p.event_id for p in again]
    assert first[0].event_id != first[1].event_id  # the two public events of one fact differ
    assert public_event_id("message.created", "x") != public_event_id("message.created", "y")
    assert first[0].order < first[1].order  # assigned, then its status change
    later = public_events(event("conversation.resolved", "0-earlier-id", at=T0 + timedelta(microseconds=1)))
    assert first[1].order < later[0].order  # time first, whatever the ids
    assert {p.chain for p in first + later} == {"conversation:c1"}
    assert delivery_id("sub_1", "evt") == delivery_id("sub_1", "evt")
    assert len({delivery_id("sub_1", "evt"), delivery_id("sub_2", "evt"), delivery_id("sub_1", "evt", "rpl")}) == 3


def test_subscriptions_get_what_they_want_from_their_own_workspace():
    assert wants(["*"], "sla.breached") and wants(["sla.breached"], "sla.breached")
    assert not wants(["sla.warning"], "sla.breached")
    subscriptions = [{"_id": "s1", "workspace_id": "default", "events": ["conversation.status_changed"]},
                     {"_id": "s2", "workspace_id": "default", "events": ["*"]},
                     {"_id": "s3", "workspace_id": "other", "events": ["*"]}]
    documents = deliveries_of([event("conversation.assigned", agent_id="ann")], subscriptions, T0)
    assert sorted((d["subscription_id"], d["event"]) for d in documents) == [
        ("s1", "conversation.status_changed"), ("s2", "conversation.assigned"), ("s2", "conversation.status_changed")]
    body = json.loads(documents[0]["body"])
    assert set(body) == {"id", "event", "event_id", "workspace_id", "occurred_at", "data"}
    assert body["id"] == documents[0]["_id"] and body["occurred_at"] == "2026-03-02T09:00:00+00:00"


def test_a_receiver_verifies_the_signature():
    body, secret, timestamp = b'{"id":"dlv_1"}', "a-long-enough-secret", 1_772_442_000
    header = signature(secret, timestamp, body)
    # What a receiver writes with nothing of ours: HMAC-SHA256 of "<timestamp>.<raw body>".
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    assert header == f"sha256={expected}"
    assert verify(secret, str(timestamp), body, header, now=timestamp + 10)
    assert not verify(secret, str(timestamp), body + b" ", header, now=timestamp)  # body changed
    assert not verify("another-secret-entirely", str(timestamp), body, header, now=timestamp)
    assert not verify(secret, str(timestamp), body, header, now=timestamp + 301)  # too old: a replayed capture
    assert not verify(secret, "soon", body, header, now=timestamp)


def test_backoff_doubles_within_its_cap_with_jitter_and_honours_retry_after():
    policy = RetryPolicy(base_seconds=1, cap_seconds=60, max_attempts=5, max_age=timedelta(hours=1))
    low, high = (lambda: 0.0), (lambda: 1.0)
    assert [policy.delay(n, low) for n in range(1, 9)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert [policy.delay(n, high) for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert policy.delay(1, low, retry_after=20) == 20
    assert policy.delay(1, low, retry_after=10_000) == 60  # a Retry-After is honoured within the cap
    assert policy.exhausted(4, T0, T0) is None
    assert "5 attempts" in (policy.exhausted(5, T0, T0) or "")
    assert "3600 s" in (policy.exhausted(1, T0, T0 + timedelta(hours=1)) or "")


@pytest.mark.parametrize(("status", "meaning"), [
    (200, "delivered"), (204, "delivered"), (None, "retry"), (408, "retry"), (429, "retry"), (500, "retry"),
    (503, "retry"), (301, "final"), (400, "final"), (401, "final"), (404, "final"), (410, "final"), (422, "final"),
])
def test_what_each_answer_means(status, meaning):
    assert verdict(status) == meaning


def test_retry_after_in_seconds_or_as_a_date():
    assert retry_after_seconds("7", T0) == 7
    assert retry_after_seconds("Mon, 02 Mar 2026 09:00:30 GMT", T0) == 30
    assert retry_after_seconds("Mon, 02 Mar 2026 08:00:00 GMT", T0) == 0
    assert retry_after_seconds("soon", T0) is None and retry_after_seconds(None, T0) is None


@pytest.mark.parametrize(("url", "problem"), [
    ("https://example.com/hooks?x=1", None), ("http://127.0.0.1:8080/h", None),
    ("ftp://example.com/", "http or https"), ("https://user:pw@example.com/", "credentials"),
    ("https://example.com/#frag", "fragment"), ("https://example.com:99999/", "URL"), ("http://0/", "IPv4"),
])
def test_receiver_urls(url, problem):
    found = url_problem(url)
    assert (found is None) if problem is None else (found is not None and problem in f"URL {found}"), found


def test_private_addresses_are_told_apart():
    assert is_public("93.184.216.34") and is_public("2606:2800:220:1::1")
    for private in ("127.0.0.1", "10.1.2.3", "192.168.0.1", "169.254.169.254", "::1", "fd00::1", "100.64.0.1",
                    "::ffff:127.0.0.1", "0.0.0.0", "224.0.0.1"):
        assert not is_public(private), private
    assert host_problem("http://169.254.169.254/latest/meta-data") is not None
    assert host_problem("http://[::1]:80/") is not None and host_problem("http://localhost:80/") is not None
    assert host_problem("https://example.com/") is None
