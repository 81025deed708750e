"""The agents API's facts are never lost between the write and the publish (services/agents/outbox.py):
a broker that refuses the publish, or a process that dies after the write, leaves the fact flagged
on its document, and the sweeper publishes it, with the same id, on the real broker and database."""

from datetime import timedelta

from services.agents.app import SERVICE
from services.agents.outbox import PENDING_OUTBOUND, PENDING_RESOLVED, PENDING_SNAPSHOT
from tests.conftest import auth
from tests.service.helpers import running_apps
from tests.service.test_reporting_events import post_json, reporting_queue
from tests.service.test_routing_flow import frame_of

NOW = timedelta(0)  # sweep every flag, however young


class BrokerAway:
    """Makes the agents service's publishes fail while inside, as a broker gone away would."""

    def __init__(self, broker, monkeypatch) -> None:
        self.broker, self.monkeypatch = broker, monkeypatch

    def __enter__(self):
        async def refuse(*args, **kwargs):
            raise ConnectionError("the broker is away")
        self.monkeypatch.setattr(self.broker, "publish_raw", refuse)
        return self

    def __exit__(self, *exc) -> None:
        self.monkeypatch.undo()


async def test_a_reply_and_a_status_made_while_the_broker_is_away_go_out_when_it_is_back(names, monkeypatch):
    async with running_apps(names) as apps, reporting_queue(names) as reported:
        service = apps.agents.app[SERVICE]
        await apps.put_agent("ann")
        desk = await apps.desk("ann")
        await apps.post("cust", "hello")
        conversation_id = (await frame_of(desk, "conversation.assigned"))["conversation"]["conversation_id"]

        with BrokerAway(service.broker, monkeypatch):
            reply = await post_json(apps, f"/v1/conversations/{conversation_id}/messages", {"text": "hi!"}, 201)
            away = await apps.agents.put("/v1/agents/ann/status", json={"status": "away"}, headers=auth())
            assert away.status == 200 and (await away.json())["status"] == "away"
        assert reply["status"] == "queued"
        stored = await service.store.messages.find_one({"_id": reply["message_id"]})
        assert PENDING_OUTBOUND in stored and PENDING_SNAPSHOT in await service.store.get_agent("default", "ann")

        await service.sweep_outbox(NOW)  # (its timer may have come first: either way, the sweeper's)
        sent = await reported.of("message.created", conversation_id, direction="outbound")
        assert reply["message_id"] in sent.event_id
        answered = await reported.of("conversation.answered", conversation_id, agent_id="ann")
        assert answered.at == sent.at
        await reported.of("agent.status_changed", agent_id="ann", status="away")
        assert PENDING_OUTBOUND not in await service.store.messages.find_one({"_id": reply["message_id"]})
        assert PENDING_SNAPSHOT not in await service.store.get_agent("default", "ann")
        assert await service.sweep_outbox(NOW) == 0  # nothing left: published once


async def test_a_resolution_written_before_a_crash_is_published_by_the_sweeper(names):
    async with running_apps(names) as apps, reporting_queue(names) as reported:
        service = apps.agents.app[SERVICE]
        await apps.put_agent("ann", capacity=1)
        desk = await apps.desk("ann")
        await apps.post("cust", "hello")
        conversation_id = (await frame_of(desk, "conversation.assigned"))["conversation"]["conversation_id"]

        # The write alone, as a process that died before its publish left it.
        await service.store.resolve(await service.conversation("default", conversation_id))
        assert PENDING_RESOLVED in await service.conversation("default", conversation_id)
        await service.sweep_outbox(NOW)
        resolved = await reported.of("conversation.resolved", conversation_id, agent_id="ann")
        assert resolved.event_id == f"resolved:{conversation_id}"
        assert PENDING_RESOLVED not in await service.conversation("default", conversation_id)
        # The router heard it too: ann (room for one) has room again, so the next customer is hers.
        await apps.post("cust-2", "and me")
        assert (await frame_of(desk, "conversation.assigned"))["conversation"]["conversation_id"] != conversation_id
