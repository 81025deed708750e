"""Where each waiting web chat customer stands in their queue, and how long they may wait (pure, no I/O).

The router's shell asks `sweep()` every few seconds (RouterSettings.queue_notice_seconds): only the
waiting lists whose order changed since the last sweep are walked (the waiting index marks them), and
a customer is told only when their place changed (far back in a long line, only when it changed by a
tenth: `worth_telling`), so a notice per conversation is at most one per sweep, and a quiet queue
costs nothing. At 5,000 waiting in one list, a sweep after an assignment walks
those 5,000 entries once (a few milliseconds), not every queue on every message.

The place is the rank in the conversation's waiting list (its queue, medium and bullseye step, in
aged-priority order: docs/routing.md); 1 is next. The expected wait is that place times the recent
average time between assignments from the queue (a moving average, gaps capped at an hour): the pace
at which the line moves. Until the queue has had two assignments there is no basis, and it is None.
"""

from dataclasses import dataclass
from datetime import datetime

from services.router.indexes import WaitingIndex
from services.router.model import Conversation

NOTICE_CHANNELS = frozenset({"webchat"})  # channels whose customers see their place
# Every place up to here is told as it changes; further back, a customer is told again only when the
# place moved by at least RETELL_SHARE of the place last told. One assignment moves every place of a
# list by one: telling all 5,000 of a long line would put 5,000 notices ahead of the agents' replies
# on web chat's outbound queue each sweep; this way one assignment tells about CLOSE + 1/RETELL_SHARE
# x ln(length) of them (about 100 for 5,000), and nobody's shown place is off by more than a tenth.
CLOSE = 20
RETELL_SHARE = 0.1
MAX_GAP_SECONDS = 3600.0  # a night without assignments is not the pace of the morning
WEIGHT = 0.3  # of the newest gap in the moving average


def worth_telling(told: int | None, position: int) -> bool:
    """Whether a customer last told `told` (None: never) should hear of `position`."""
    if told is None or position <= CLOSE:
        return told != position
    return abs(told - position) >= told * RETELL_SHARE


@dataclass(frozen=True)
class QueuePosition:
    conversation: Conversation
    position: int
    expected_wait_seconds: int | None


class QueuePositions:
    def __init__(self) -> None:
        self.told: dict[str, int] = {}  # conversation -> the place last told
        self._pace: dict[tuple[str, str], tuple[datetime, float | None]] = {}  # (workspace, queue) -> last, average gap

    def note_assignment(self, workspace_id: str, queue: str, now: datetime) -> None:
        key = (workspace_id, queue)
        last, average = self._pace.get(key, (None, None))
        if last is not None:
            gap = min(max((now - last).total_seconds(), 0.0), MAX_GAP_SECONDS)
            average = gap if average is None else (1 - WEIGHT) * average + WEIGHT * gap
        self._pace[key] = (now, average)

    def expected_wait(self, conversation: Conversation, position: int) -> int | None:
        average = self._pace.get((conversation.workspace_id, conversation.queue), (None, None))[1]
        return None if average is None else round(average * position)

    def sweep(self, waiting: WaitingIndex, conversations: dict[str, Conversation]) -> list[QueuePosition]:
        """The web chat conversations whose place changed since they were last told (or never were)."""
        changed = waiting.take_changed()
        if not changed:
            return []
        found = []
        for conversation_ids in changed:
            for position, conversation_id in enumerate(conversation_ids, start=1):
                conversation = conversations.get(conversation_id)
                if conversation is None or conversation.first.channel not in NOTICE_CHANNELS:
                    continue
                if worth_telling(self.told.get(conversation_id), position):
                    self.told[conversation_id] = position
                    found.append(QueuePosition(conversation, position, self.expected_wait(conversation, position)))
        self.told = {cid: place for cid, place in self.told.items() if cid in waiting}  # forget those gone
        return found
