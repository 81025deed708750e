"""Queue positions for waiting web chat customers (services/router/positions.py), on the pure core."""

from services.router.core import RoutingCore
from services.router.positions import worth_telling
from shared.models import ConversationResolved
from tests.unit.test_routing_core import agent, assigned_to, at, message


def places(core: RoutingCore) -> dict[str, tuple[int, int | None]]:
    return {p.conversation.first.thread_id: (p.position, p.expected_wait_seconds) for p in core.queue_positions()}


def resolve(core: RoutingCore, thread: str, seconds: float):
    conversation_id = core.by_thread[("default", "webchat", thread)]
    return core.on_resolved(ConversationResolved(workspace_id="default", conversation_id=conversation_id,
                                                 agent_id="ann", resolved_at=at(seconds)), at(seconds))


def test_only_web_chat_customers_are_told_and_only_when_their_place_changed():
    core = RoutingCore()
    core.on_agent(agent("ann", capacity=1), at(0))
    core.on_message(message("w0", channel="webchat"), at(1))  # ann's
    core.on_message(message("api", channel="api"), at(2))  # waits first, never told
    core.on_message(message("w1", channel="webchat"), at(3))
    core.on_message(message("w2", channel="webchat"), at(4))
    assert places(core) == {"w1": (2, None), "w2": (3, None)}  # one assignment: no pace yet
    assert places(core) == {}  # nothing changed, nothing told

    # Ann frees up after 60 s: the API customer is next, the chats move up, now with the pace.
    assert assigned_to(resolve(core, "w0", 61)) == [("ann", "api")]
    assert places(core) == {"w1": (1, 60), "w2": (2, 120)}
    core.on_message(message("w3", channel="webchat"), at(70))  # joins at the end: only it is told
    assert places(core) == {"w3": (3, 180)}


def test_a_customer_who_leaves_the_queue_is_forgotten():
    core = RoutingCore()
    core.on_message(message("w1", channel="webchat"), at(1))
    assert places(core) == {"w1": (1, None)}
    core.on_agent(agent("ann"), at(2))  # takes it
    assert places(core) == {}
    assert core.positions.told == {}


def test_five_thousand_waiting_are_told_once_and_a_quiet_queue_is_not_walked():
    core = RoutingCore()
    core.on_agent(agent("ann", capacity=1), at(0))
    core.on_message(message("first", channel="webchat"), at(0))  # ann's
    for n in range(5000):
        core.on_message(message(f"w{n}", channel="webchat"), at(1 + n / 1000))
    told = places(core)
    assert len(told) == 5000 and told["w0"] == (1, None) and told["w4999"] == (5000, None)

    # The customer with ann writes again: no waiting list changes, nothing is walked or told.
    core.on_message(message("first", "more", channel="webchat"), at(10))
    assert core.waiting.take_changed() == []

    # Ann frees up: the head is hers; everyone close to the front is told at once, one place up; further
    # back, a place is told again only once it has moved by a tenth (no flood of notices per assignment).
    resolve(core, "first", 70)
    moved = places(core)
    assert moved["w1"][0] == 1 and moved["w20"][0] == 20
    assert set(moved) == {f"w{n}" for n in range(1, 21)}  # w21, now 21st, moved by less than a tenth
    assert places(core) == {}


def test_far_back_a_place_is_told_again_when_it_moved_by_a_tenth():
    assert worth_telling(None, 3000) and worth_telling(5, 4) and not worth_telling(4, 4)
    assert not worth_telling(1000, 901) and worth_telling(1000, 900)
    assert worth_telling(25, 20)  # close to the front: every step
    assert worth_telling(22, 21) is False and worth_telling(21, 20)
