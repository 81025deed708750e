"""A consumer of many queues takes their deliveries in turns, so a burst on some does not hold the others."""

from shared.broker import FairInbox


async def test_a_burst_on_one_queue_takes_one_slot_per_turn_and_each_queue_keeps_its_order():
    inbox = FairInbox()
    for n in range(6):
        inbox.put("offline-agent", f"revocation {n}")  # type: ignore[arg-type]
    inbox.put("ann", "new message 1")  # type: ignore[arg-type]
    inbox.put("ann", "new message 2")  # type: ignore[arg-type]
    inbox.put("bob", "new message 3")  # type: ignore[arg-type]
    await inbox.wait()
    first = inbox.take(4)
    assert first == [("offline-agent", "revocation 0"), ("ann", "new message 1"), ("bob", "new message 3"),
                     ("offline-agent", "revocation 1")]
    assert inbox.take(100) == [("ann", "new message 2"), *(("offline-agent", f"revocation {n}") for n in range(2, 6))]


async def test_the_queues_served_last_go_first_in_the_next_batch():
    inbox = FairInbox()
    for name in ("a", "b", "c"):
        for n in range(3):
            inbox.put(name, f"{name}{n}")  # type: ignore[arg-type]
    assert [d for _, d in inbox.take(2)] == ["a0", "b0"]
    assert [d for _, d in inbox.take(3)] == ["c0", "a1", "b1"]
    assert [d for _, d in inbox.take(10)] == ["c1", "a2", "b2", "c2"]
