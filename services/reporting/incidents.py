"""Incidents as reporting keeps them (pure: no I/O): assist's announcements, and which of two is newer.

Assist announces an incident as it stands (`incident.detected`, `.updated`, `.resolved`: docs/incidents.md)
whenever it changes; reporting keeps each workspace's incidents' latest state (`report_incidents`,
store.py) for the wallboard. Announcements may come twice (a redelivery, a replica replaying the
day) or late (a retry after an outage), so a stored state is replaced only by a newer one, newer by
`announcement_order`:

1. status progression: open < confirmed < dismissed, merged, resolved (an incident never goes back;
   of the last three only one ever happens);
2. then the linked conversations' count (it only grows: links are added, never removed);
3. then `last_link_at` (the latest link's time: it only moves forward);
4. then the announcement's time (`at`, assist's clock), then its `event_id`, for announcements that
   say the same: any of them is the state.

The first three are the incident's own progress, whatever clock announced it, so a replica whose
clock runs behind cannot make an older state win; the announcement's time decides only between
announcements of the same progress.
"""

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, PlainSerializer

IncidentStatus = Literal["open", "confirmed", "dismissed", "merged", "resolved"]
ACTIVE_STATUSES = ("open", "confirmed")  # on the wallboard
STATUS_RANK = {"open": 0, "confirmed": 1, "dismissed": 2, "merged": 2, "resolved": 2}
_COUNT_DIGITS = 12  # the count's width in the order string, so that strings sort as numbers
# A time as assist wrote it and the API writes times (isoformat: "+00:00" for UTC, not pydantic's "Z").
Instant = Annotated[AwareDatetime, PlainSerializer(datetime.isoformat, return_type=str, when_used="json")]


class IncidentState(BaseModel):
    """An announcement's `details`: the incident as it stood (assist's `incident_summary`)."""

    model_config = ConfigDict(extra="ignore", frozen=True)  # a field assist adds later is not an error

    incident_id: str = Field(min_length=1, max_length=512)
    title: str = Field(max_length=10_000)
    status: IncidentStatus
    conversations: int = Field(ge=0, lt=10**_COUNT_DIGITS)
    channels: dict[str, int]  # linked conversations per channel
    opened_at: Instant
    last_link_at: Instant


def _instant(at: datetime) -> str:
    """A time as a fixed-width UTC string: compared as strings, ordered as times."""
    return f"{at.astimezone(UTC):%Y-%m-%dT%H:%M:%S.%f}"


def announcement_order(state: IncidentState, at: datetime, event_id: str) -> str:
    """A string that sorts announcements of one incident oldest to newest (the module's rule), so the
    store can replace a state by a newer one in one conditional write."""
    return "|".join((str(STATUS_RANK[state.status]), f"{state.conversations:0{_COUNT_DIGITS}d}",
                     _instant(state.last_link_at), _instant(at), event_id))
