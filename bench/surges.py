"""Surge detection: its figures over seeded simulated days, and what a message costs it.

Run from the repo root: `python -m bench.surges [--seeds 11 12 13 14 15] [--days 1] [--busy 60000]`.
It prints figures; it asserts nothing about time.

- figures: services/assist/surges/evaluate.py over one generated day per seed (after a 12-hour
  lead-in of background) for each language mix: precision and recall of linked conversations,
  bursts detected, incidents per burst, delay from a burst's first message to its alert (median,
  max), false alerts per simulated day (and of them, the "where is my order" morning rush); with
  the default parameters and with the sensitive profile (`tolerance` 1).
- cost: a busy workspace (--busy conversations a day, about 1.6 inbound messages each) is fed from
  07:00 to 08:00 untimed, then 08:00-09:00 is timed: the detector's observe() per message with
  the vectors given (the detector alone), observe() embedding each text itself (the whole cost),
  and a bare `embed([text])` of the same texts one at a time, in the same run; each per message
  embedded (greetings and thanks, skipped before embedding, are in the loops but not the count)
  and as a ratio to the bare embed. The sliding window's size (messages) is printed beside: the matrix products
  grow with the clusters (at most `max_clusters`), the window only costs its expiry.
"""

import argparse
import statistics
import time
from datetime import timedelta

from services.assist.search.embedding import embed
from services.assist.surges.detector import SurgeDetector, SurgeParams, substantive
from services.assist.surges.evaluate import MIXES, evaluate, vectors_of
from services.assist.surges.streams import DAY_START, generate

PROFILES = {"default (tolerance 2)": SurgeParams(), "sensitive (tolerance 1)": SurgeParams(tolerance=1.0)}


def figures(seeds: list[int], days: int) -> None:
    for profile, params in PROFILES.items():
        print(f"figures, {profile}, over seeds {seeds}, {days} day(s) each after a 12-hour lead-in")
        for name, mix in MIXES.items():
            print(f"  {name:9} {evaluate(seeds, days, mix, params).line()}")


def cost(busy: float) -> None:
    stream = generate(1, days=1, per_day=busy, lead_in=timedelta(0))
    warm = [m for m in stream.messages if DAY_START + timedelta(hours=7) <= m.at < DAY_START + timedelta(hours=8)]
    timed = [m for m in stream.messages if DAY_START + timedelta(hours=8) <= m.at < DAY_START + timedelta(hours=9)]
    texts = [m.text[:300] for m in timed if substantive(m.text)]
    embed(texts[:100])  # the model loaded and warm

    started = time.perf_counter()
    for text in texts:
        embed([text])
    bare = (time.perf_counter() - started) / len(texts)

    alone, whole = SurgeDetector(), SurgeDetector()
    for message in warm:
        alone.observe(message)
        whole.observe(message)
    vectors = vectors_of(stream.__class__(timed, []))
    started = time.perf_counter()
    for message, vector in zip(timed, vectors, strict=True):
        alone.observe(message, vector)
    detector = (time.perf_counter() - started) / len(texts)
    started = time.perf_counter()
    windows = []
    for message in timed:
        whole.observe(message)
        windows.append(len(whole.workspaces["w1"].window))
    total = (time.perf_counter() - started) / len(texts)
    clusters = int(whole.workspaces["w1"].used.sum())
    print(f"cost at {busy:.0f} conversations a day: {len(timed)} messages in the timed hour, {len(texts)} embedded; "
          f"window {min(windows)}-{max(windows)} messages (median {statistics.median(windows):.0f}), "
          f"{clusters} clusters")
    print(f"  bare embed([text])        {bare * 1e3:.3f} ms per message  1.00")
    print(f"  detector, vectors given   {detector * 1e3:.3f} ms per message  {detector / bare:.2f} x the bare embed")
    print(f"  detector, embedding too   {total * 1e3:.3f} ms per message  {total / bare:.2f} x the bare embed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[11, 12, 13, 14, 15])
    parser.add_argument("--days", type=int, default=1)
    parser.add_argument("--busy", type=float, default=60_000, help="conversations a day of the cost run")
    args = parser.parse_args()
    cost(args.busy)
    figures(args.seeds, args.days)


if __name__ == "__main__":
    main()
