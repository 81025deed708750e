"""Every fact reporting records reaches `<ns>.reporting.ingest` through the real services, broker and
database, and normalizes into a ReportEvent with the right conversation, agent, queue, channel,
a plausible time and an id of its own."""

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from services.agents.app import SERVICE
from services.reporting.model import ReportEvent
from services.reporting.normalize import NormalizeError, normalize
from shared import events
from shared.models import ConversationEnded, utcnow
from tests.conftest import Names, auth
from tests.service.helpers import Apps, running_apps


class Reported:
    """What reaches reporting's queue, normalized as it arrives; what does not normalize is kept apart."""

    def __init__(self) -> None:
        self.events: list[ReportEvent] = []
        self.unreadable: list[str] = []
        self._arrived = asyncio.Event()

    async def take(self, message: AbstractIncomingMessage) -> None:
        async with message.process():
            try:
                self.events += normalize(message.routing_key or "", message.body)
            except NormalizeError as error:
                self.unreadable.append(str(error))
            self._arrived.set()

    async def first(self, wanted: Callable[[ReportEvent], bool], timeout: float = 20) -> ReportEvent:
        """The first event so far that is `wanted`, else the first to arrive."""
        async with asyncio.timeout(timeout):
            while True:
                self._arrived.clear()
                found = next((event for event in self.events if wanted(event)), None)
                if found is not None:
                    return found
                await self._arrived.wait()

    async def of(self, kind: str, conversation_id: str | None = None, **fields) -> ReportEvent:
        """The first `kind` event about this conversation whose fields (agent_id, data values) match."""
        def wanted(event: ReportEvent) -> bool:
            if event.type != kind or (conversation_id and event.conversation_id != conversation_id):
                return False
            return all(getattr(event, name, event.data.get(name)) == value for name, value in fields.items())
        return await self.first(wanted)


@asynccontextmanager
async def reporting_queue(names: Names) -> AsyncIterator[Reported]:
    """Consume reporting's queue (declared by every service when it starts) as reporting would."""
    reported = Reported()
    connection = await aio_pika.connect(names.infra.amqp_url)
    try:
        channel = await connection.channel()
        queue = await channel.declare_queue(names.topology.reporting_queue, passive=True)
        await queue.consume(reported.take)
        yield reported
    finally:
        await connection.close()


async def post_json(apps: Apps, path: str, body: dict | None = None, expected: int = 200) -> dict:
    response = await apps.agents.post(path, json=body, headers=auth())
    assert response.status == expected, await response.text()
    return await response.json()


async def set_status(apps: Apps, agent_id: str, status: str) -> None:
    response = await apps.agents.put(f"/v1/agents/{agent_id}/status", json={"status": status}, headers=auth())
    assert response.status == 200, await response.text()


async def chat_and_leave(apps: Apps, text: str) -> None:
    """A web chat customer writes, then closes the page."""
    ws = await apps.intake.ws_connect("/v1/chat/ws?workspace=default")
    assert json.loads((await ws.receive()).data)["type"] == "session"
    assert json.loads((await ws.receive()).data)["type"] == "history"
    await ws.send_json({"type": "message", "text": text, "client_id": "m1"})
    assert json.loads((await asyncio.wait_for(ws.receive(), 15)).data)["type"] == "ack"
    await ws.close()


async def test_a_conversations_life_reaches_reporting_as_normalized_events(names):
    started = utcnow()
    async with running_apps(names, webchat_abandon_seconds=0.3) as apps, reporting_queue(names) as reported:
        await apps.put_agent("ann")
        await apps.put_agent("bob", status="away")
        ann_online = await reported.of("agent.status_changed", agent_id="ann", status="online")
        assert ann_online.data["max_conversations"] == 3

        # Opened, queued, assigned to ann; her reply answers it; the customer writes again.
        await apps.post("cust", "hello")
        assigned = await reported.of("conversation.assigned", agent_id="ann")
        first = assigned.conversation_id
        opened = await reported.of("conversation.opened", first)
        queued = await reported.of("conversation.queued", first, reason="opened")
        assert (opened.channel, opened.queue, queued.channel, queued.queue, assigned.channel, assigned.queue) == (
            "api", "default", "api", "default", "api", "default")
        assert opened.at <= queued.at <= assigned.at
        hello = await reported.of("message.created", first, direction="inbound")  # stored: open for replies
        await post_json(apps, f"/v1/conversations/{first}/messages", {"text": "hi, how can I help?"}, 201)
        reply = await reported.of("message.created", first, direction="outbound")
        answered = await reported.of("conversation.answered", first)
        assert (reply.agent_id, reply.channel, answered.agent_id) == ("ann", "api", "ann")
        assert hello.at <= reply.at and answered.at == reply.at
        await apps.post("cust", "my order is late")
        followed = await reported.first(lambda e: e.type == "message.created" and e.conversation_id == first
                                        and e.data["direction"] == "inbound" and e.event_id != hello.event_id)

        # Transferred to bob, who resolves it.
        await set_status(apps, "bob", "online")
        await reported.of("agent.status_changed", agent_id="bob", status="online")
        bob_desk = await apps.desk("bob")
        await post_json(apps, f"/v1/conversations/{first}/transfer", {"to_agent": "bob", "note": "orders"}, 202)
        transferred = await reported.of("conversation.transferred", first)
        assert (transferred.agent_id, transferred.queue, transferred.data["to_agent"]) == ("ann", "default", "bob")
        requeued = await reported.of("conversation.queued", first, reason="transferred")
        to_bob = await reported.of("conversation.assigned", first, agent_id="bob")
        assert transferred.at == requeued.at <= to_bob.at
        await bob_desk.frames_until(lambda frames: any(f["type"] == "conversation.assigned" for f in frames))
        # Bob's first reply answers it again: the router's first-response SLA restarted with the transfer.
        await post_json(apps, f"/v1/conversations/{first}/messages", {"text": "bob here, on it"}, 201)
        bob_answered = await reported.of("conversation.answered", first, agent_id="bob")
        assert bob_answered.event_id != answered.event_id and to_bob.at <= bob_answered.at
        await post_json(apps, f"/v1/conversations/{first}/resolve")
        resolved = await reported.of("conversation.resolved", first)
        assert resolved.agent_id == "bob" and resolved.data == {} and to_bob.at <= resolved.at

        # The customer comes back: a new conversation, back to bob; the first one is reopened.
        await apps.post("cust", "one more thing")
        reopened = await reported.of("conversation.reopened", first)
        second = reopened.data["new_conversation_id"]
        assert second != first and (reopened.agent_id, reopened.queue, reopened.channel) == ("bob", "default", "api")
        assert reopened.data["resolved_at"] == resolved.at.isoformat() and resolved.at <= reopened.at
        assert (await reported.of("conversation.opened", second)).at == reopened.at
        await reported.of("conversation.assigned", second, agent_id="bob")

        # Nobody online: a web chat waits, its page closes and does not come back: abandoned.
        await set_status(apps, "ann", "away")
        await set_status(apps, "bob", "away")
        await reported.of("agent.status_changed", agent_id="bob", status="away")
        await chat_and_leave(apps, "anyone there?")
        abandoned = await reported.of("conversation.abandoned")
        chat_opened = await reported.of("conversation.opened", abandoned.conversation_id)
        assert (abandoned.channel, abandoned.queue, chat_opened.channel) == ("webchat", "default", "webchat")
        assert "chat closed" in abandoned.data["reason"] and chat_opened.at <= abandoned.at

        facts = [ann_online, opened, queued, assigned, hello, reply, answered, followed, transferred, requeued, to_bob,
                 resolved, reopened, chat_opened, abandoned]
        assert len({fact.event_id for fact in facts}) == len(facts)
        everything = list(reported.events)
    assert reported.unreadable == []
    by_id: dict[str, ReportEvent] = {}
    for event in everything:
        assert by_id.setdefault(event.event_id, event) == event, f"two facts with the id {event.event_id}"
        assert started <= event.at <= utcnow(), event
        assert event.workspace_id == "default"


async def test_a_fact_is_published_again_with_the_same_id_when_its_batch_comes_again(names):
    """At least once: a publish that failed after the write is made good by the batch coming again;
    a delivery handled twice tells its facts twice under one id (reporting keeps one)."""
    async with running_apps(names) as apps, reporting_queue(names) as reported:
        service = apps.agents.app[SERVICE]
        publish = service.broker.publish
        failed = asyncio.Event()

        async def fail_the_first_fact(model, routing_key: str, **kwargs) -> None:
            if routing_key == events.MESSAGE_CREATED and not failed.is_set():
                failed.set()
                raise RuntimeError("the broker refused it (test)")
            await publish(model, routing_key, **kwargs)

        service.broker.publish = fail_the_first_fact  # type: ignore[method-assign]
        await apps.put_agent("ann")
        await apps.post("cust", "hello")
        created = await reported.of("message.created", direction="inbound")
        assert failed.is_set()
        stored = await (await apps.agents.get(f"/v1/conversations/{created.conversation_id}", headers=auth())).json()
        assert [m["text"] for m in stored["messages"]] == ["hello"]  # the write is not repeated

        ended = ConversationEnded(workspace_id="default", conversation_id=created.conversation_id, agent_id="ann",
                                  reason="caller hung up", ended_at=utcnow())
        await service.handle_deliveries([ended])
        await service.handle_deliveries([ended])  # redelivered

        def resolutions() -> list[ReportEvent]:
            return [e for e in reported.events if e.type == "conversation.resolved"]
        await reported.first(lambda _: len(resolutions()) == 2)
        first, again = resolutions()
        assert first == again and first.data == {"reason": "caller hung up"} and first.at == ended.ended_at


async def test_labels_set_on_a_conversation_reach_reporting_as_the_whole_set(names):
    async with running_apps(names) as apps, reporting_queue(names) as reported:
        await apps.put_agent("ann")
        await apps.post("cust", "my parcel is late")
        # message.created comes once the agents service stored the conversation (assigned may come first).
        conversation = (await reported.of("message.created", direction="inbound")).conversation_id
        path = f"/v1/conversations/{conversation}/labels"
        response = await apps.agents.put(path, json={"labels": ["delivery late", "billing", "billing"]}, headers=auth())
        assert response.status == 200, await response.text()
        assert (await response.json())["labels"] == ["billing", "delivery late"]
        first = await reported.of("conversation.labels_changed", conversation)
        assert first.data["labels"] == ["billing", "delivery late"] and first.agent_id == "ann"
        await apps.agents.put(path, json={"labels": ["delivery late"]}, headers=auth())
        second = await reported.first(lambda e: e.type == "conversation.labels_changed" and e.event_id != first.event_id)
        assert second.data["labels"] == ["delivery late"] and first.at <= second.at
        stored = await (await apps.agents.get(f"/v1/conversations/{conversation}", headers=auth())).json()
        assert stored["labels"] == ["delivery late"]
        for bad in ({"labels": [" padded"]}, {"labels": ["x"] * 21}, {"labels": ["line\nbreak"]}, {"labels": "billing"}):
            response = await apps.agents.put(path, json=bad, headers=auth())
            assert response.status == 422 and "labels" in str(await response.json()), bad
        missing = await apps.agents.put("/v1/conversations/nope/labels", json={"labels": []}, headers=auth())
        assert missing.status == 404
