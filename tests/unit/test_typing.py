"""Typing signals: the senders' rate limiter and the frames that carry them."""

from services.agents.desk import typing_conversation
from services.intake.channels.webchat import is_typing
from shared.ephemeral import RateLimiter


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_one_signal_per_key_per_interval():
    clock = Clock()
    limiter = RateLimiter(2.0, clock=clock)
    assert limiter.allow("c1")
    assert not limiter.allow("c1")
    assert limiter.allow("c2")  # each conversation has its own allowance
    clock.now += 1.9
    assert not limiter.allow("c1")
    clock.now += 0.1
    assert limiter.allow("c1")
    assert not limiter.allow("c1")


def test_a_refused_signal_does_not_push_the_next_one_back():
    """Keystrokes every 0.5 s send one signal every 2 s, not none while the typing goes on."""
    clock = Clock()
    limiter = RateLimiter(2.0, clock=clock)
    allowed = []
    for step in range(9):
        clock.now = 100.0 + step * 0.5
        allowed.append(limiter.allow("c1"))
    assert allowed == [True, False, False, False, True, False, False, False, True]


def test_quiet_keys_are_forgotten_when_the_table_is_full():
    clock = Clock()
    limiter = RateLimiter(2.0, clock=clock, max_keys=3)
    for key in ("a", "b", "c"):
        assert limiter.allow(key)
    clock.now += 5
    assert limiter.allow("d")
    assert len(limiter) == 1
    assert not limiter.allow("d")


def test_the_chat_page_typing_frame():
    assert is_typing('{"type": "typing"}')
    assert not is_typing('{"type": "message", "text": "hi", "client_id": "c1"}')
    assert not is_typing("not json")
    assert not is_typing('["typing"]')


def test_the_desk_typing_frame():
    assert typing_conversation('{"type": "typing", "conversation_id": "abc"}') == "abc"
    for bad in ("{nope", "[]", "null", '"typing"', '{"type": "typing"}', '{"type": "typing", "conversation_id": 5}',
                '{"type": "typing", "conversation_id": ""}', '{"type": "other", "conversation_id": "abc"}',
                '{"type": "typing", "conversation_id": "' + "x" * 201 + '"}'):
        assert typing_conversation(bad) is None, bad
