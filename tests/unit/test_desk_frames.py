"""The desk's frame contract (services/agents/frames.py): the frames the service sends pass, and a
frame that drifts from it (an unknown type, a field too many, a status the page does not know) fails."""

import pytest
from pydantic import ValidationError

from services.agents.frames import DESK_FRAME, frames_schema

GOOD = [
    {"type": "presence", "status": "away", "reason": "missed_offers", "at": "2026-12-04T10:00:00+00:00"},
    {"type": "message.status", "conversation_id": "c", "message_id": "m", "status": "failed", "reason": "no route"},
    {"type": "conversation.revoked", "workspace_id": "w", "conversation_id": "c", "reason": "transferred"},
    {"type": "conversation.assigned", "conversation": {"conversation_id": "c"}, "messages": [], "history": "fetch"},
    {"type": "error", "message": "binary frames are not accepted", "problems": []},
]
BAD = [
    {"type": "presence", "status": "busy", "reason": "request", "at": "x"},
    {"type": "message.status", "conversation_id": "c", "message_id": "m", "status": "lost", "reason": None},
    {"type": "sla", "conversation_id": "c", "target": "first_response", "state": "warning", "extra": 1},
    {"type": "conversation.moved", "conversation_id": "c"},
]


@pytest.mark.parametrize("frame", GOOD)
def test_frames_the_service_sends_are_in_the_contract(frame):
    assert DESK_FRAME.validate_python(frame).type == frame["type"]


@pytest.mark.parametrize("frame", BAD)
def test_a_frame_that_drifts_fails(frame):
    with pytest.raises(ValidationError):
        DESK_FRAME.validate_python(frame)


def test_the_schema_names_every_frame_type():
    schema = frames_schema()
    assert set(schema["discriminator"]["mapping"]) == {
        "snapshot", "conversation.assigned", "conversation.offered", "conversation.revoked", "conversation.ended",
        "conversation.state", "message", "message.status", "sla", "transfer.rejected", "typing", "presence", "error"}
