"""The detector run over generated streams (streams.py) and scored against their truth.

An incident corresponds to the burst that owns most of its linked conversations (at least half of
them), else it is a false alert. Figures, summed over the streams given:
- precision: linked conversations that belong to their incident's burst / all linked conversations
  (false alerts' links included);
- recall: burst conversations linked to an incident of their burst / all burst conversations;
- detected: bursts with at least one incident / bursts; incidents per detected burst (1 is best:
  more means one problem shown as several incidents, e.g. one per language);
- delay: from a burst's first message to its first incident's detection, seconds (median, max);
- false alerts per simulated day (and how many of them were the "where is my order" morning rush).

`python -m services.assist.surges.evaluate [--seeds 1 2 3] [--days 1]` prints them per language mix.
"""

import argparse
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field

import numpy as np

from services.assist.search.embedding import DIMENSIONS, embed
from services.assist.surges.detector import (
    ConversationLinked,
    IncidentDetected,
    SurgeDetector,
    SurgeParams,
    substantive,
)
from services.assist.surges.streams import Stream, generate

MIXES: dict[str, dict[str, float]] = {
    "en+ru+uk": {"en": 0.34, "ru": 0.33, "uk": 0.33},
    "en": {"en": 1.0},
    "ru": {"ru": 1.0},
    "uk": {"uk": 1.0},
    "ru+uk": {"ru": 0.5, "uk": 0.5},
}


@dataclass(slots=True)
class Figures:
    """Counts summed over streams; the ratios are properties."""
    linked: int = 0
    linked_right: int = 0
    burst_conversations: int = 0
    burst_conversations_found: int = 0
    bursts: int = 0
    bursts_detected: int = 0
    matched_incidents: int = 0
    false_alerts: int = 0
    rush_alerts: int = 0  # false alerts mostly of "where is my order": the morning rush (hard negative)
    days: float = 0.0
    delays: list[float] = field(default_factory=list)

    @property
    def precision(self) -> float:
        return self.linked_right / self.linked if self.linked else 1.0

    @property
    def recall(self) -> float:
        return self.burst_conversations_found / self.burst_conversations if self.burst_conversations else 1.0

    @property
    def false_alerts_per_day(self) -> float:
        return self.false_alerts / self.days if self.days else 0.0

    @property
    def incidents_per_burst(self) -> float:
        return self.matched_incidents / self.bursts_detected if self.bursts_detected else 0.0

    def add(self, other: "Figures") -> None:
        for name in ("linked", "linked_right", "burst_conversations", "burst_conversations_found", "bursts",
                     "bursts_detected", "matched_incidents", "false_alerts", "rush_alerts", "days"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.delays += other.delays

    def line(self) -> str:
        delays = (f"delay median {statistics.median(self.delays):.0f} s max {max(self.delays):.0f} s"
                  if self.delays else "delay -")
        return (f"precision {self.precision:.3f} recall {self.recall:.3f} "
                f"detected {self.bursts_detected}/{self.bursts} incidents/burst {self.incidents_per_burst:.2f} "
                f"{delays} false alerts/day {self.false_alerts_per_day:.2f} (rush {self.rush_alerts})")


def vectors_of(stream: Stream) -> list[np.ndarray | None]:
    """Every substantive message's embedding, in one batch (what observe() would compute one by one)."""
    wanted = [i for i, message in enumerate(stream.messages) if substantive(message.text)]
    rows = embed([stream.messages[i].text[:300] for i in wanted]) if wanted else np.zeros((0, DIMENSIONS))
    out: list[np.ndarray | None] = [None] * len(stream.messages)
    for i, row in zip(wanted, rows, strict=True):
        out[i] = row
    return out


def run(stream: Stream, params: SurgeParams | None = None,
        vectors: list[np.ndarray | None] | None = None) -> tuple[dict[str, set[str]], dict[str, float]]:
    """The detector over a stream: each incident's linked conversations, and when it was detected
    (seconds since the stream's first message)."""
    detector = SurgeDetector(params)
    vectors = vectors if vectors is not None else vectors_of(stream)
    linked: dict[str, set[str]] = defaultdict(set)
    detected: dict[str, float] = {}
    origin = stream.messages[0].at
    for message, vector in zip(stream.messages, vectors, strict=True):
        for change in detector.observe(message, vector) if vector is not None else detector.observe(message):
            if isinstance(change, IncidentDetected):
                detected[change.incident_id] = (change.at - origin).total_seconds()
            elif isinstance(change, ConversationLinked):
                linked[change.incident_id].add(change.conversation_id)
    return dict(linked), detected


def score(stream: Stream, linked: dict[str, set[str]], detected: dict[str, float]) -> Figures:
    """The figures of one run against the stream's truth."""
    figures = Figures(bursts=len(stream.bursts), days=stream.days,
                      burst_conversations=sum(len(burst.conversations) for burst in stream.bursts))
    origin = stream.messages[0].at
    found: dict[str, set[str]] = defaultdict(set)
    first_alert: dict[str, float] = {}
    for incident_id, conversations in linked.items():
        owners = Counter(stream.burst_of_conversation.get(c) for c in conversations)
        owner, count = max(((b, n) for b, n in owners.items() if b is not None), key=lambda x: x[1],
                           default=(None, 0))
        figures.linked += len(conversations)
        if owner is None or count * 2 < len(conversations):
            figures.false_alerts += 1
            topics = Counter(stream.topic_of_conversation.get(c) for c in conversations)
            figures.rush_alerts += topics["where_is_order"] * 2 >= len(conversations)
            continue
        figures.linked_right += count
        figures.matched_incidents += 1
        found[owner] |= {c for c in conversations if stream.burst_of_conversation.get(c) == owner}
        first_alert[owner] = min(first_alert.get(owner, float("inf")), detected[incident_id])
    for burst in stream.bursts:
        figures.burst_conversations_found += len(found.get(burst.id, ()))
        if burst.id in first_alert:
            figures.bursts_detected += 1
            figures.delays.append(first_alert[burst.id] - (burst.start - origin).total_seconds())
    return figures


def evaluate(seeds: list[int], days: int = 1, mix: dict[str, float] | None = None,
             params: SurgeParams | None = None, **stream_options) -> Figures:
    """The figures summed over one generated stream per seed."""
    total = Figures()
    for seed in seeds:
        stream = generate(seed, days=days, mix=mix, **stream_options)
        total.add(score(stream, *run(stream, params)))
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[101, 102, 103])
    parser.add_argument("--days", type=int, default=1)
    args = parser.parse_args()
    for name, mix in MIXES.items():
        print(f"{name:9} {evaluate(args.seeds, args.days, mix).line()}")


if __name__ == "__main__":
    main()
