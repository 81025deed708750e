"""The live view, pure: where each conversation stands after its events, and the tiles, agents,
breaches and reasons built from that, against numbers worked out by hand."""

from datetime import timedelta

from services.reporting.facts import fold_conversation
from services.reporting.live import build_live_view
from services.reporting.store import live_part
from services.router.config import RoutingConfig
from tests.fixtures.reporting import Conversation, clock


def state_of(conversation: Conversation) -> tuple:
    facts = fold_conversation(conversation.events)
    return facts.state, facts.state_since, facts.state_agent, facts.entered_queue_at


def test_a_conversation_is_waiting_offered_assigned_then_resolved():
    c = Conversation("c1", "webchat").at("09:00:00", "conversation.opened", queue="billing", priority=3)
    assert state_of(c) == ("waiting", clock("09:00:00"), None, clock("09:00:00"))
    c.at("09:00:01", "conversation.queued", queue="billing")
    assert state_of(c) == ("waiting", clock("09:00:00"), None, clock("09:00:01"))  # still waiting: since unchanged
    c.at("09:00:05", "conversation.offered", agent="ann", queue="billing")
    assert state_of(c) == ("offered", clock("09:00:05"), "ann", clock("09:00:01"))
    c.at("09:00:09", "conversation.assigned", agent="ann", queue="billing")
    assert state_of(c) == ("assigned", clock("09:00:09"), "ann", clock("09:00:01"))
    assert fold_conversation(c.events).priority == 3
    c.at("09:03:00", "conversation.resolved", agent="ann")
    assert state_of(c)[:2] == ("resolved", clock("09:03:00"))


def test_a_conversation_taken_back_waits_again_from_then():
    c = (Conversation("c1", "webchat").at("09:00:00", "conversation.opened", queue="q")
         .at("09:00:00", "conversation.queued", queue="q").at("09:00:02", "conversation.assigned", agent="ann")
         .at("09:10:00", "conversation.queued", agent="ann", queue="q", reason="rerouted"))
    assert state_of(c) == ("waiting", clock("09:10:00"), None, clock("09:10:00"))


def test_an_abandon_closes_it():
    c = Conversation("c1", "voice").at("09:00:00", "conversation.opened", queue="q").at(
        "09:00:30", "conversation.abandoned", reason="hung up")
    assert state_of(c)[:2] == ("abandoned", clock("09:00:30"))


def open_part(conversation_id: str, channel: str, queue: str, *steps: tuple[str, str, str | None], breach: bool = False):
    c = Conversation(conversation_id, channel).at(steps[0][0], "conversation.opened", queue=queue)
    for when, type_, agent in steps[1:]:
        c.at(when, type_, agent=agent, queue=queue)
    if breach:
        c.at(steps[-1][0], "sla.breached", target="first_response")
    return live_part(fold_conversation(c.events))


def agent(agent_id: str, status: str, since: str, capacity: int = 3) -> dict:
    return {"agent_id": agent_id, "status": status, "since": clock(since), "max_conversations": capacity}


def row(grouping: str, key: str, **metrics) -> dict:
    return {"key": {grouping: key}, "interval_start": clock("00:00:00"), "metrics": metrics}


def test_tiles_agents_breaches_and_reasons_by_hand():
    now = clock("10:00:00")
    conversations = [
        open_part("w1", "webchat", "billing", ("09:58:00", "", None), ("09:58:00", "conversation.queued", None)),
        open_part("w2", "email", "billing", ("09:50:00", "", None), ("09:50:00", "conversation.queued", None),
                  ("09:59:00", "conversation.offered", "bob"), breach=True),
        open_part("a1", "webchat", "billing", ("09:00:00", "", None), ("09:00:00", "conversation.queued", None),
                  ("09:01:00", "conversation.assigned", "ann")),
        open_part("a2", "voice", "sales", ("09:30:00", "", None), ("09:30:00", "conversation.queued", None),
                  ("09:31:00", "conversation.assigned", "ann")),
    ]
    view = build_live_view(
        now=now, day_start=clock("00:00:00"), open_conversations=conversations,
        agents=[agent("bob", "away", "09:40:00"), agent("ann", "online", "08:00:00"), agent("cy", "offline", "07:00:00")],
        queues_today=[row("queue", "billing", opened=10, answered=8, abandoned=1, service_level=0.75,
                          abandonment_rate=0.1, csat_mean=4.5, csat_responses=2)],
        agents_today=[row("agent", "ann", occupancy=0.5)],
        reasons_today=[row("label", "refund", opened=4), row("label", "login", opened=6), row("label", "idle", opened=0)],
        reasons_last_week=[row("label", "refund", opened=1)],
        configured_queues=["billing", "support"], media_of=RoutingConfig().media_of)

    tiles = {t.queue: t for t in view.queues}
    assert list(tiles) == ["billing", "sales", "support"]  # configured, or with work today, sorted
    billing = tiles["billing"]
    assert (billing.waiting, billing.offers_out, billing.assigned, billing.sla_breaches_open) == (1, 1, 1, 1)
    assert billing.longest_wait_seconds == 600  # w2 entered at 09:50; its offer does not restart its wait
    assert billing.oldest_waiting_since == clock("09:50:00")
    assert (billing.opened_today, billing.answered_today, billing.abandoned_today) == (10, 8, 1)
    assert (billing.service_level_today, billing.abandonment_rate_today) == (0.75, 0.1)
    assert (billing.csat_mean_today, billing.csat_responses_today) == (4.5, 2)
    assert (tiles["support"].waiting, tiles["support"].longest_wait_seconds, tiles["support"].service_level_today) \
        == (0, None, None)

    assert [a.agent_id for a in view.agents] == ["ann", "bob", "cy"]  # online, away, offline
    ann, bob, _ = view.agents
    assert (ann.load, ann.held, ann.offers_out, ann.occupancy_today) == ({"chat": 1, "voice": 1}, 2, 0, 0.5)
    assert ann.seconds_in_status == timedelta(hours=2).total_seconds()
    assert (bob.load, bob.offers_out, bob.seconds_in_status) == ({}, 1, 1200)

    assert [(b.conversation_id, b.state, b.agent_id) for b in view.breaches] == [("w2", "offered", "bob")]
    assert [(r.label, r.today, r.same_time_last_week) for r in view.reasons] == [("login", 6, 0), ("refund", 4, 1)]
