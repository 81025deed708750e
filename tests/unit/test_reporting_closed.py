"""A conversation the router closed with no agent (an incident resolved with its conversations:
docs/incidents.md): counted as closed without an agent, never as abandoned, answered or resolved by
anyone, and gone from the live view's waiting ones."""

from services.reporting.facts import FoldSettings, fold_conversation
from services.reporting.metrics import metrics
from services.reporting.rollup import rollup_between
from services.reporting.store import OPEN_STATES, live_part
from tests.fixtures.reporting import Conversation, clock

SETTINGS = FoldSettings(service_level_seconds={"support": 20})


def closed_by_incident() -> Conversation:
    return (Conversation("I1", "api")
            .at("10:00:00", "conversation.opened", queue="support", priority=0, skills=[])
            .at("10:00:00", "conversation.queued", queue="support", reason="opened")
            .inbound("10:00:00")
            .at("10:30:00", "conversation.closed", queue="support", reason="the incident was resolved",
                incident_id="default:m1"))


def test_a_conversation_closed_by_the_router_is_neither_abandoned_nor_answered():
    facts = fold_conversation(closed_by_incident().events, SETTINGS)
    assert (facts.closed_at, facts.closed_reason) == (clock("10:30:00"), "the incident was resolved")
    assert facts.abandoned_at is facts.answered_at is facts.resolved_at is None
    assert facts.state == "closed" and live_part(facts)["state"] not in OPEN_STATES
    row = metrics(rollup_between([facts], [], clock("10:00:00"), clock("11:00:00"))["none"]["all"])
    assert (row["closed_without_agent"], row["abandoned"], row["answered"], row["queued"]) == (1, 0, 0, 1)


def test_a_close_after_an_agent_answered_counts_nothing():
    answered = (closed_by_incident().events[:3]
                + Conversation("I1", "api").at("10:00:10", "conversation.assigned", agent="ann", queue="support").events)
    facts = fold_conversation([*answered, *closed_by_incident().events[3:]], SETTINGS)
    assert facts.closed_at is None and facts.answered_at == clock("10:00:10")
