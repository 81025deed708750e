"""Reports of the pre-routing bot on the real broker and database: the router's events for a conversation the
bot resolves, one it hands over (then an agent's), one the customer leaves while the bot has it and one without
the bot reach the summary by queue and by channel; the bot-resolved one leaves every human metric as it was.
A subscription to the bot's events gets them, signed, from the same router events.

By hand (a past day, so the figures are one row per key; the default target is 20 s):
    R  support  webchat   with the bot 10:00:00, resolved by it 10:01:00
    H  support  telegram  with the bot 10:02:00, handed over 10:03:00, ann 10:03:05 (a 5 s wait), resolved 10:10
    A  support  webchat   with the bot 10:04:00, the customer left 10:05:00
    N  sales    webchat   no bot: queued 10:06:00, bob 10:06:30 (30 s), resolved 10:20
"""

from datetime import UTC, datetime, timedelta

from shared import events
from shared.models import ConversationResolved, RoutingEvent
from tests.conftest import Names
from tests.service.helpers import Apps, running_apps
from tests.service.test_reporting_service import get_summary, publish, until
from tests.service.test_subscriptions import Receiver, receiving, reporting_app, subscribe

DAY = datetime(2026, 3, 2, tzinfo=UTC)
RANGE = {"from": DAY.isoformat(), "to": (DAY + timedelta(days=1)).isoformat(), "interval": "day", "tz": "UTC"}
HANDED_OVER = "handed over by the bot"
BOT_METRICS = {"bot_conversations", "bot_resolved", "bot_handed_over", "abandoned_with_bot", "deflection_rate",
               "bot_time_mean", "bot_time_p50", "bot_time_p90"}


def at(hms: str) -> datetime:
    return datetime.combine(DAY.date(), datetime.strptime(hms, "%H:%M:%S").time(), tzinfo=UTC)


class RouterEvents:
    """One conversation's router events as the router makes them: `<conversation>:<n>:<type>` ids, its channel."""

    def __init__(self, conversation: str, queue: str, channel: str) -> None:
        self.conversation, self.queue, self.channel, self.n = conversation, queue, channel, 0
        self.items: list[tuple[str, bytes, str]] = []

    def add(self, type_: str, hms: str, agent_id: str | None = None, **details) -> "RouterEvents":
        self.n += 1
        event = RoutingEvent(event_id=f"{self.conversation}:{self.n:06d}:{type_}", type=type_, workspace_id="default",
                             conversation_id=self.conversation, agent_id=agent_id, queue=self.queue, at=at(hms),
                             details={"channel": self.channel, "thread_id": f"t-{self.conversation}", **details})
        key = f"{type_}.{self.channel}" if type_ == events.CONVERSATION_ROUTED else type_
        self.items.append((key, event.model_dump_json().encode(), event.event_id))
        return self

    def opened(self, hms: str, bot: bool) -> "RouterEvents":
        return self.add(events.CONVERSATION_OPENED, hms, priority=0, skills=[], **({"bot": True} if bot else {}))

    def resolved_by(self, agent_id: str, hms: str) -> "RouterEvents":
        """The agents service's resolution (not a RoutingEvent)."""
        body = ConversationResolved(event_id=f"resolved:{self.conversation}", workspace_id="default",
                                    conversation_id=self.conversation, agent_id=agent_id, resolved_at=at(hms))
        self.items.append((events.CONVERSATION_RESOLVED, body.model_dump_json().encode(), body.event_id))
        return self


def bot_resolved() -> RouterEvents:
    return (RouterEvents("R", "support", "webchat").opened("10:00:00", bot=True)
            .add(events.BOT_RESOLVED, "10:01:00", duration_seconds=60.0))


def handed_over() -> RouterEvents:
    return (RouterEvents("H", "support", "telegram").opened("10:02:00", bot=True)
            .add(events.BOT_HANDED_OVER, "10:03:00", reason="the customer asked for a person")
            .add(events.CONVERSATION_QUEUED, "10:03:00", reason=HANDED_OVER)
            .add(events.CONVERSATION_ROUTED, "10:03:05", agent_id="ann")
            .resolved_by("ann", "10:10:00"))


def left_the_bot() -> RouterEvents:
    return (RouterEvents("A", "support", "webchat").opened("10:04:00", bot=True)
            .add(events.CONVERSATION_ABANDONED, "10:05:00", reason="the customer left", waited_seconds=60.0))


def without_bot() -> RouterEvents:
    return (RouterEvents("N", "sales", "webchat").opened("10:06:00", bot=False)
            .add(events.CONVERSATION_QUEUED, "10:06:00", reason="opened")
            .add(events.CONVERSATION_ROUTED, "10:06:30", agent_id="bob")
            .resolved_by("bob", "10:20:00"))


async def publish_all(names: Names, *conversations: RouterEvents) -> None:
    for conversation in conversations:
        for item in conversation.items:
            await publish(names, *item)


async def by_key(apps: Apps, group_by: str) -> dict[str, dict]:
    """Each key's metrics on the day (one row per key)."""
    rows = (await get_summary(apps, group_by=group_by, **RANGE))["rows"]
    return {row["key"][group_by]: row["metrics"] for row in rows}


async def test_the_bots_conversations_per_queue_and_channel_and_the_human_metrics_left_alone(names):
    async with running_apps(names, reporting={}) as apps:
        await publish_all(names, handed_over(), left_the_bot(), without_bot())
        # The queue is consumed in order: with N's resolution counted, everything before it is in.
        before = await until(lambda: rows_once(apps, "queue", {("sales", "resolved"): 1, ("support", "resolved"): 1}))
        await publish_all(names, bot_resolved())
        queues = await until(lambda: rows_once(apps, "queue", {("support", "bot_resolved"): 1}))

        support, sales = queues["support"], queues["sales"]
        assert (support["bot_conversations"], support["bot_resolved"], support["bot_handed_over"],
                support["abandoned_with_bot"], support["deflection_rate"]) == (3, 1, 1, 1, 1 / 3)
        assert support["bot_time_mean"] == (60 + 60 + 60) / 3  # R, H and A each had the bot for a minute
        # Humans: only H was queued (at the handover), answered after 5 s and resolved; A is no queue abandon.
        assert (support["opened"], support["queued"], support["answered"], support["resolved"]) == (3, 1, 1, 1)
        assert (support["abandoned"], support["abandonment_rate"], support["service_level"]) == (0, 0, 1)
        assert support["wait_time_mean"] == 5
        assert (sales["bot_conversations"], sales["deflection_rate"], sales["queued"], sales["answered"]) == (
            0, None, 1, 1)
        assert sales["wait_time_mean"] == 30 and sales["service_level"] == 0  # 30 s > 20 s

        # The bot-resolved conversation added an opened conversation and the bot's figures, nothing else.
        changed = {name for name in support if support[name] != before["support"][name]}
        assert changed - BOT_METRICS == {"opened"}, changed
        assert queues["sales"] == before["sales"]

        channels = await by_key(apps, "channel")
        webchat, telegram = channels["webchat"], channels["telegram"]
        assert (webchat["bot_conversations"], webchat["bot_resolved"], webchat["bot_handed_over"],
                webchat["abandoned_with_bot"], webchat["deflection_rate"]) == (2, 1, 0, 1, 1 / 2)
        assert (webchat["opened"], webchat["queued"], webchat["answered"], webchat["abandoned"]) == (3, 1, 1, 0)
        assert (telegram["bot_conversations"], telegram["bot_handed_over"], telegram["deflection_rate"]) == (1, 1, 0)
        assert (telegram["queued"], telegram["answered"], telegram["wait_time_mean"]) == (1, 1, 5)

        agents = await by_key(apps, "agent")
        assert set(agents) == {"ann", "bob"} and agents["ann"]["bot_conversations"] is None


async def rows_once(apps: Apps, group_by: str, wanted: dict[tuple[str, str], object]) -> dict[str, dict] | None:
    """Each key's metrics once every (key, metric) of `wanted` has its value, else None (for `until`)."""
    found = await by_key(apps, group_by)
    ready = all(key in found and found[key][name] == value for (key, name), value in wanted.items())
    return found if ready else None


async def test_a_subscription_gets_the_bots_events(names):
    async with receiving(Receiver()) as receiver, reporting_app(names) as client:
        await subscribe(client, receiver.url, ["bot.resolved", "bot.handed_over", "conversation.status_changed"])
        await publish_all(names, handed_over(), bot_resolved())

        async def all_in():
            return len(receiver.delivered()) >= 6 or None
        await until(all_in)
        sent = [(body["event"], body["data"]["conversation_id"]) for body in receiver.delivered()]
        # H: handed over, queued, assigned, resolved by ann; R: resolved by the bot (two names)
        assert sorted(sent) == sorted([("bot.handed_over", "H"), ("conversation.status_changed", "H"),
                                       ("conversation.status_changed", "H"), ("conversation.status_changed", "H"),
                                       ("bot.resolved", "R"), ("conversation.status_changed", "R")])
        (over,) = receiver.delivered(conversation_id="H", reason="the customer asked for a person")
        assert over["event"] == "bot.handed_over" and over["data"]["queue"] == "support"
        (queued,) = receiver.delivered(conversation_id="H", status="queued")
        assert queued["data"]["reason"] == HANDED_OVER
        by_bot = receiver.delivered(conversation_id="R", duration_seconds=60.0)
        assert sorted(body["event"] for body in by_bot) == ["bot.resolved", "conversation.status_changed"]
        (status,) = [body for body in by_bot if body["event"] == "conversation.status_changed"]
        assert (status["data"]["status"], status["data"]["by_bot"], status["data"]["agent_id"]) == (
            "resolved", True, None)
