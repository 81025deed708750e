"""Incidents in reporting, pure: assist's announcements (made by assist's own `incident_summary`) normalized,
the rule that says which of two announcements is newer (services/reporting/incidents.py), the live view's
incidents, the consumer's ordering key, and the announcements as public events for subscriptions."""

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from services.assist.incidents.watcher import incident_summary
from services.reporting.incidents import IncidentState, announcement_order
from services.reporting.live import build_live_view
from services.reporting.model import ReportEvent
from services.reporting.normalize import MalformedBody, normalize
from services.reporting.service import ordering_key
from services.reporting.subscriptions.events import EVENT_NAMES, public_events, wants
from services.router.config import RoutingConfig
from shared import events
from shared.models import RoutingEvent

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def minute(n: float) -> datetime:
    return T0 + timedelta(minutes=n)


def incident(status: str = "open", conversations: int = 4, last_link: float = 5, **changes) -> dict:
    """The incident as assist stores it (services/assist/incidents/store.py)."""
    return {"_id": "inc-1", "workspace_id": "default", "title": "the app crashes at checkout", "status": status,
            "conversations": conversations, "channels": {"webchat": conversations - 1, "sms": 1},
            "opened_at": minute(0), "last_link_at": minute(last_link)} | changes


def announcement(kind: str, doc: dict, event_id: str, at: datetime) -> RoutingEvent:
    """What assist publishes (watcher.publish_incident): a RoutingEvent of the kind, the incident's summary."""
    return RoutingEvent(event_id=event_id, type=kind, workspace_id=doc["workspace_id"], at=at,
                        details=incident_summary(doc))


def read(event: RoutingEvent) -> ReportEvent:
    (reported,) = normalize(event.type, event.model_dump_json().encode())
    return reported


@pytest.mark.parametrize("kind", [events.INCIDENT_DETECTED, events.INCIDENT_UPDATED, events.INCIDENT_RESOLVED])
def test_each_announcement_is_the_incident_as_it_stands_about_no_conversation(kind: str):
    reported = read(announcement(kind, incident(), "inc-1:x", minute(6)))
    assert (reported.type, reported.event_id, reported.workspace_id, reported.at) == (kind, "inc-1:x", "default",
                                                                                      minute(6))
    assert (reported.conversation_id, reported.agent_id, reported.queue, reported.channel) == (None,) * 4
    assert reported.data == {"incident_id": "inc-1", "title": "the app crashes at checkout", "status": "open",
                             "conversations": 4, "channels": {"webchat": 3, "sms": 1},
                             "opened_at": "2026-03-02T09:00:00+00:00", "last_link_at": "2026-03-02T09:05:00+00:00"}


@pytest.mark.parametrize(("details", "problem"), [
    ({"title": "t", "status": "open"}, "incident_id: Field required"),
    (incident_summary(incident()) | {"status": "reopened"}, "status: Input should be"),
    (incident_summary(incident()) | {"conversations": -1}, "conversations: Input should be greater than"),
    (incident_summary(incident()) | {"opened_at": "yesterday"}, "opened_at: Input should be a valid datetime"),
    (incident_summary(incident()) | {"channels": {"sms": "many"}}, "channels.sms: Input should be a valid integer"),
])
def test_an_announcement_without_what_the_wallboard_needs_is_refused_with_the_reason(details: dict, problem: str):
    body = RoutingEvent(event_id="e", type=events.INCIDENT_UPDATED, workspace_id="default", at=T0,
                        details=details).model_dump_json().encode()
    with pytest.raises(MalformedBody, match=problem):
        normalize(events.INCIDENT_UPDATED, body)


def test_a_body_of_another_type_under_an_incident_key_is_refused():
    body = announcement(events.INCIDENT_DETECTED, incident(), "e", T0).model_dump_json().encode()
    with pytest.raises(MalformedBody, match="not 'incident.resolved'"):
        normalize(events.INCIDENT_RESOLVED, body)


# -- the order of announcements ------------------------------------------------------------------


def order(doc: dict, at: datetime, event_id: str = "e") -> str:
    return announcement_order(IncidentState.model_validate(incident_summary(doc)), at, event_id)


def test_status_progression_wins_over_the_announcements_clock():
    # A replica whose clock runs a minute behind confirms it: still newer than the open one announced before.
    assert order(incident("open"), minute(10)) < order(incident("confirmed"), minute(9))
    assert order(incident("confirmed", 9, 9), minute(10)) < order(incident("resolved", 4, 5), minute(1))
    for terminal in ("dismissed", "merged", "resolved"):
        assert order(incident("confirmed"), minute(10)) < order(incident(terminal), minute(1))


def test_within_a_status_more_conversations_then_a_later_link_then_a_later_announcement_is_newer():
    assert order(incident(conversations=5, last_link=4), minute(1)) < order(incident(conversations=6, last_link=4),
                                                                             minute(0))
    assert order(incident(conversations=12, last_link=4), T0) > order(incident(conversations=9, last_link=8), T0)
    assert order(incident(last_link=5), minute(9)) < order(incident(last_link=6), minute(8))
    assert order(incident(), minute(9)) < order(incident(), minute(10))
    assert order(incident(), minute(9), "a") < order(incident(), minute(9), "b")  # the same state: either is it


def test_a_count_of_ten_sorts_after_a_count_of_nine_and_zones_do_not_matter():
    assert order(incident(conversations=9), T0) < order(incident(conversations=10), T0)
    kyiv = incident(last_link_at=minute(5).astimezone(__import__("zoneinfo").ZoneInfo("Europe/Kyiv")))
    assert order(kyiv, T0) == order(incident(), T0)


def history() -> list[tuple[dict, datetime, str]]:
    """One incident's announcements in the order they happened: detected, more links, confirmed, resolved."""
    return [(incident("open", 4, 5), minute(5), "detected"), (incident("open", 8, 7), minute(7), "updated-1"),
            (incident("open", 11, 9), minute(9), "updated-2"), (incident("confirmed", 11, 9), minute(10), "confirmed"),
            (incident("confirmed", 14, 12), minute(12), "updated-3"), (incident("resolved", 14, 12), minute(20),
                                                                       "resolved")]


def test_whatever_order_they_arrive_in_and_however_often_the_newest_state_is_kept():
    announcements = history()
    newest = announcements[-1]
    for arrival in itertools.permutations(announcements):
        kept = max([*arrival, *arrival[:2]], key=lambda a: order(*a))  # with two redelivered
        assert kept == newest
    # Every prefix of the history keeps its own last state.
    for n in range(1, len(announcements) + 1):
        assert max(announcements[:n], key=lambda a: order(*a)) == announcements[n - 1]


# -- the live view, the consumer, subscriptions -------------------------------------------------


def test_the_live_view_lists_the_incidents_it_is_given_with_their_channels():
    stored = {"workspace_id": "default", "incident_id": "inc-1", "title": "no signal in Lviv", "status": "confirmed",
              "conversations": 7, "channels": [{"channel": "sms", "count": 2}, {"channel": "voice", "count": 5}],
              "opened_at": minute(0), "last_link_at": minute(3), "announced_at": minute(4), "event_id": "e"}
    view = build_live_view(now=minute(10), day_start=T0, open_conversations=[], agents=[], queues_today=[],
                           agents_today=[], reasons_today=[], reasons_last_week=[], configured_queues=[],
                           media_of=RoutingConfig().media_of, incidents=[stored])
    (shown,) = view.incidents
    assert shown.model_dump() == {"incident_id": "inc-1", "title": "no signal in Lviv", "status": "confirmed",
                                  "conversations": 7, "channels": {"sms": 2, "voice": 5}, "opened_at": minute(0),
                                  "last_link_at": minute(3)}
    assert build_live_view(now=minute(10), day_start=T0, open_conversations=[], agents=[], queues_today=[],
                           agents_today=[], reasons_today=[], reasons_last_week=[], configured_queues=[],
                           media_of=RoutingConfig().media_of).incidents == []


def test_an_incidents_announcements_are_ordered_together_and_apart_from_agents():
    first = read(announcement(events.INCIDENT_DETECTED, incident(), "a", T0))
    later = read(announcement(events.INCIDENT_RESOLVED, incident("resolved"), "b", minute(1)))
    other = read(announcement(events.INCIDENT_DETECTED, incident(_id="inc-2"), "c", T0))
    assert ordering_key([first]) == ordering_key([later]) == "incident:default:inc-1"
    assert ordering_key([other]) == "incident:default:inc-2"


@pytest.mark.parametrize("kind", [events.INCIDENT_DETECTED, events.INCIDENT_UPDATED, events.INCIDENT_RESOLVED])
def test_each_announcement_is_a_public_event_of_its_own_name_with_the_incident_as_data(kind: str):
    reported = read(announcement(kind, incident(), f"inc-1:{kind}", minute(6)))
    (public,) = public_events(reported)
    assert (public.name, public.workspace_id, public.occurred_at, public.chain) == (kind, "default", minute(6),
                                                                                    "incident:inc-1")
    assert public.data == reported.data  # no conversation, agent, queue or channel keys
    assert kind in EVENT_NAMES and wants([kind], kind) and wants(["*"], kind)
    assert not wants([events.INCIDENT_DETECTED], events.INCIDENT_RESOLVED)
    again = public_events(read(announcement(kind, incident(), f"inc-1:{kind}", minute(6))))
    assert again[0].event_id == public.event_id  # a redelivery is the same public event
