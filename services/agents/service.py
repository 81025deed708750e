"""The agents service's domain operations, between the HTTP handlers, MongoDB and the broker."""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from functools import partial

import structlog
from aio_pika.abc import AbstractIncomingMessage
from prometheus_client import CollectorRegistry, Counter
from pymongo.errors import PyMongoError

from services.agents import chat_notices, csat, facts
from services.agents.desk import DeskConnection, DeskHub, jsonable
from services.agents.models import HELD_STATUSES, AgentProfile
from services.agents.outbox import PENDING_LABELS, PENDING_OUTBOUND, PENDING_RESOLVED, PENDING_SNAPSHOT, Sweeper
from services.agents.presence import PresenceWatch
from services.agents.store import AgentsStore, ForDesk, agent_snapshot, desk_gone
from shared import events
from shared.broker import ATTEMPTS, BatchConsumer, Broker, parse_as
from shared.ephemeral import (
    AGENT_TYPING_CHANNELS,
    TYPING_INTERVAL,
    RateLimiter,
    SignalConsumer,
    TypingSignal,
    publish_signal,
)
from shared.legacy import LegacyQueue, drain_legacy_queues
from shared.models import (
    AgentDeliveryType,
    Attachment,
    ConversationAnswered,
    ConversationAssigned,
    ConversationEnded,
    ConversationOffered,
    ConversationResolved,
    DeliveryStatus,
    OfferAnswer,
    OutboundMessage,
    RoutingEvent,
    StateRequest,
    TransferRequest,
    agent_delivery_adapter,
    new_id,
    utcnow,
)
from shared.partitions import consumer_priority
from shared.topology import declare_outbound_queue

log = structlog.get_logger(__name__)
NOTICE_TIMEOUT = 2.0  # seconds: a web chat notice (joined, resolved) is not worth waiting longer for


class NotFound(Exception):
    pass


class Conflict(Exception):
    pass


def parse_delivery(delivery: AbstractIncomingMessage) -> AgentDeliveryType:
    return agent_delivery_adapter.validate_json(delivery.body)


def delivery_key(delivery: AgentDeliveryType) -> str:
    """Deliveries of one conversation stay in order, also while one of them is parked."""
    if isinstance(delivery, ConversationAssigned | ConversationOffered):
        return delivery.conversation.conversation_id
    return delivery.conversation_id


def _delivery_agent(delivery: AgentDeliveryType) -> tuple[str, str]:
    """The (workspace, agent) a delivery is for."""
    if isinstance(delivery, ConversationAssigned | ConversationOffered):
        return delivery.conversation.workspace_id, delivery.conversation.assignee_id or ""
    return getattr(delivery, "workspace_id", ""), getattr(delivery, "assignee_id", None) or getattr(delivery, "agent_id", "")


def notice_key(notice: RoutingEvent) -> str:
    return notice.conversation_id or f"agent:{notice.workspace_id}:{notice.agent_id}"


class AgentsMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages_in = Counter("agents_messages_in_total", "Customer messages stored", registry=registry)
        self.messages_out = Counter("agents_messages_out_total", "Agent replies queued for sending", registry=registry)
        self.assignments = Counter("agents_assignments_total", "Conversations received by agents", registry=registry)
        self.failed_sends = Counter("agents_failed_sends_total", "Replies reported failed by intake", registry=registry)


class AgentsService:
    def __init__(self, broker: Broker, store: AgentsStore, hub: DeskHub, metrics: AgentsMetrics, *, batch_size: int = 100, presence_grace_seconds: float = 30) -> None:
        self.broker = broker
        self.store = store
        self.hub = hub
        self.metrics = metrics
        self.deliveries = BatchConsumer(broker, "agents.deliveries", self._parse_delivery, self.handle_deliveries,
                                        key=delivery_key, batch_size=batch_size)
        self.statuses = BatchConsumer(broker, "agents.status", parse_as(DeliveryStatus), self.handle_statuses,
                                      key=lambda status: status.names, batch_size=batch_size)
        self.notices = BatchConsumer(broker, "agents.events", parse_as(RoutingEvent), self.handle_routing_events,
                                     key=notice_key, batch_size=batch_size)
        self.typing_signals = SignalConsumer(broker, "agents", events.TYPING_CONTACT, self.contact_typing)
        self.typing_limit = RateLimiter(TYPING_INTERVAL)  # the agents' typing, per (workspace, agent, conversation)
        self.replica_id = new_id()  # ranks this replica among a partition's consumers
        self._came_again: set[tuple[str, str]] = set()  # agents of the batch's redelivered deliveries
        self._outbound_channels: set[str] = set()
        self.presence = PresenceWatch(self, presence_grace_seconds)
        self.sweeper = Sweeper(self.sweep_outbox)

    async def start(self) -> None:
        await self.store.ensure_indexes()
        await self.deliveries.start()
        await self.statuses.start()
        await self.statuses.attach(self.broker.topology.agents_status_queue)
        await self.notices.start()
        await self.notices.attach(self.broker.topology.agents_events_queue)
        await self.typing_signals.start()
        await self.hub.relay.start()  # before any frame: desks on other replicas get this one's
        for queue in self.broker.topology.delivery_queues():  # standing by for every partition
            await self.deliveries.attach(queue, priority=consumer_priority(self.replica_id, queue))
        await self._drain_legacy_queues()
        await self.presence.start()  # desks open before a restart must reconnect within the grace
        self.sweeper.start()  # its first round publishes what a crash before this start left flagged

    async def stop(self) -> None:
        await self.sweeper.stop()
        await self.presence.stop()
        await self.deliveries.stop()
        await self.statuses.stop()
        await self.notices.stop()
        await self.typing_signals.stop()
        await self.hub.close_all()
        await self.hub.relay.stop()

    async def _drain_legacy_queues(self) -> None:
        """Messages left in per-agent queues of the old layout go to their agents' partitions (shared/legacy.py).

        Once per deployment: the `deployment` collection remembers it was done, so later starts do
        not look for a queue per known agent (start-up must not grow with the floor)."""
        done = {"_id": "legacy_agent_queues_drained"}
        deployment = self.store.db["deployment"]
        if await deployment.find_one(done) is not None:
            return
        topology = self.broker.topology
        await drain_legacy_queues(self.broker, [LegacyQueue(
            topology.legacy_agent_queue(*key), ((topology.deliveries_exchange, f"{key[0]}.{key[1]}"),),
            (topology.deliveries_exchange, topology.agent_routing_key(*key)))
            for key in ((a["workspace_id"], a["agent_id"]) for a in await self.store.all_agents())])
        await deployment.update_one(done, {"$set": {"at": utcnow()}}, upsert=True)

    # -- agents --------------------------------------------------------------------------------

    async def put_agent(self, workspace_id: str, agent_id: str, profile: AgentProfile) -> dict:
        """Create or update an agent (its deliveries' partition queue exists whatever the agent)."""
        doc = await self.store.put_agent(workspace_id, agent_id, profile)
        await self._publish_now(partial(self._publish_snapshot, event=events.AGENT_UPDATED), doc)
        return doc

    async def set_status(self, workspace_id: str, agent_id: str, status: str, reason: str = "request") -> dict:
        """Set presence; the router and reporting hear it, and the agent's desks get a `presence` frame
        saying why (request: the desk or a supervisor; missed_offers: the router; desk_closed)."""
        doc = await self.store.set_agent_status(workspace_id, agent_id, status)
        if doc is None:
            raise NotFound(f"agent {agent_id!r} does not exist")
        await self._status_changed(doc, reason)
        return doc

    async def desk_gone(self, workspace_id: str, agent_id: str, seen_before: datetime) -> bool:
        """Set offline (desk_closed) an agent whose desks were last seen before `seen_before`, as set_status
        does; False if it is no longer so (a desk came back, or another replica did it first). The write
        clears `desk` with the snapshot's outbox flag: the router hears it even if this process dies now."""
        doc = await self.store.set_agent_status(workspace_id, agent_id, "offline", only_if=desk_gone(seen_before),
                                                desk=False)
        if doc is None:
            return False
        await self._status_changed(doc, "desk_closed")
        return True

    async def _status_changed(self, doc: dict, reason: str) -> None:
        await self._publish_now(self._publish_snapshot, doc)
        await self.hub.send((doc["workspace_id"], doc["agent_id"]), {
            "type": "presence", "status": doc["status"], "reason": reason, "at": doc["status_at"].isoformat()})

    async def _announce_agent(self, doc: dict, event: str) -> None:
        snapshot = agent_snapshot(doc)
        await self.broker.publish(
            snapshot, event, message_type=event, message_id=snapshot.event_id, workspace_id=snapshot.workspace_id
        )

    # -- conversations -------------------------------------------------------------------------

    async def conversation(self, workspace_id: str, conversation_id: str) -> dict:
        doc = await self.store.get_conversation(workspace_id, conversation_id)
        if doc is None:
            raise NotFound(f"conversation {conversation_id!r} does not exist")
        return doc

    async def reply(self, workspace_id: str, conversation_id: str, text: str, by_supervisor: bool = False,
                    attachments: list[Attachment] | None = None) -> dict:
        """Store the assignee's reply (with its promise to send it: services/agents/outbox.py), then hand it
        to intake for its channel; the agent's desk has it as `queued` either way. A supervisor's reply
        goes out in the assignee's name, marked `metadata.by: supervisor` in the history."""
        conversation = await self.conversation(workspace_id, conversation_id)
        if conversation["status"] not in HELD_STATUSES:  # a pending or snoozed one may be answered too
            raise Conflict(f"conversation is {conversation['status']}, not open for replies")
        metadata = {"by": "supervisor"} if by_supervisor else {}
        agent = await self.store.get_agent(workspace_id, conversation["assignee_id"])
        reply, stored = await self.store.add_reply(conversation, conversation["assignee_id"], text, metadata,
                                                   attachments or [],
                                                   agent_name=chat_notices.display_name(agent, conversation["assignee_id"]))
        await self._publish_now(self._publish_reply, stored)
        message = {
            "message_id": reply.message_id, "conversation_id": conversation_id, "direction": "outbound",
            "channel": reply.channel, "text": text, "agent_id": reply.agent_id, "status": "queued",
            "created_at": reply.created_at.isoformat(), "metadata": metadata,
            "attachments": [a.model_dump(mode="json") for a in reply.attachments],
        }
        await self.hub.send((workspace_id, reply.agent_id), {"type": "message", "conversation_id": conversation_id, "message": message})
        return message

    # -- the outbox: facts flagged in the write that made them (services/agents/outbox.py) -------

    async def _publish_now(self, publish: Callable[[dict], Awaitable[None]], document: dict) -> None:
        """Publish a flagged fact at once; if the broker is away the flag stays, for the sweeper."""
        try:
            await publish(document)
        except Exception as error:  # noqa: BLE001 - whatever failed, the flag keeps the fact
            log.warning("outbox.publish_deferred", document_id=str(document["_id"]), error=repr(error))

    async def _publish_reply(self, stored: dict) -> None:
        """A stored reply to intake, then, if it is the first of its assignment, the answer to the router."""
        reply = OutboundMessage.model_validate_json(stored["outbound"])
        await self._ensure_outbound_queue(reply.channel)
        await self.broker.publish_raw(stored["outbound"].encode(), self.broker.topology.outbound_routing_key(reply.channel),
                                      message_type=events.MESSAGE_OUTBOUND, message_id=reply.message_id,
                                      workspace_id=reply.workspace_id)
        self.metrics.messages_out.inc()
        if await self.store.answers_its_assignment(stored):  # the router's first response, per assignment
            await self._to_router(ConversationAnswered(
                workspace_id=reply.workspace_id, conversation_id=reply.conversation_id, agent_id=reply.agent_id,
                at=reply.created_at,
                event_id=f"answered:{reply.conversation_id}:{stored.get('assignment_seq', 0)}:{reply.agent_id}",
            ), events.CONVERSATION_ANSWERED)
        await self.store.published("messages", stored, PENDING_OUTBOUND)

    async def _publish_snapshot(self, doc: dict, event: str = events.AGENT_STATUS_CHANGED) -> None:
        await self._announce_agent(doc, event)
        await self.store.published("agents", doc, PENDING_SNAPSHOT, version=doc["version"])

    async def _publish_resolution(self, doc: dict) -> None:
        await self._publish_resolved(facts.resolution(doc))
        await self.store.published("conversations", doc, PENDING_RESOLVED)

    async def _publish_labels(self, doc: dict) -> None:
        event = facts.labels_changed(doc, doc.get("assignee_id"))
        await self.broker.publish(event, events.CONVERSATION_LABELS_CHANGED, message_type=event.type,
                                  message_id=event.event_id, workspace_id=doc["workspace_id"])
        await self.store.published("conversations", doc, PENDING_LABELS, labels_version=doc["labels_version"])

    async def sweep_outbox(self, grace: timedelta) -> int:
        """Publish every fact flagged longer ago than `grace` (left by a crash or an outage); how many."""
        before = utcnow() - grace
        published = 0
        for collection, flag, publish in (("messages", PENDING_OUTBOUND, self._publish_reply),
                                          ("agents", PENDING_SNAPSHOT, self._publish_snapshot),
                                          ("conversations", PENDING_RESOLVED, self._publish_resolution),
                                          ("conversations", PENDING_LABELS, self._publish_labels)):
            for document in await self.store.left_pending(collection, flag, before):
                await publish(document)
                published += 1
        return published

    async def retry_reply(self, workspace_id: str, conversation_id: str, message_id: str) -> dict:
        """Send a failed reply's text again, as a new reply (the failed one stays in the history, marked
        `retried_by`): its statuses are its own. Once per failed reply."""
        failed = await self.store.messages.find_one({"_id": message_id, "conversation_id": conversation_id,
                                                     "workspace_id": workspace_id, "direction": "outbound"})
        if failed is None:
            raise NotFound(f"no reply {message_id!r} in conversation {conversation_id!r}")
        if failed.get("status") != "failed":
            raise Conflict(f"the reply is {failed.get('status')}: only a failed one is sent again")
        if failed.get("retried_by"):
            raise Conflict(f"the reply was sent again already, as {failed['retried_by']}")
        by_supervisor = (failed.get("metadata") or {}).get("by") == "supervisor"
        files = [Attachment.model_validate(a) for a in failed.get("attachments") or []]
        message = await self.reply(workspace_id, conversation_id, failed["text"], by_supervisor, files)
        await self.store.messages.update_one({"_id": message_id}, {"$set": {"retried_by": message["message_id"]}})
        return message

    async def add_private_note(self, workspace_id: str, conversation_id: str, text: str, by: str | None) -> dict:
        """A note colleagues see in the history (never sent to the customer); the assignee's desk gets it live."""
        conversation = await self.conversation(workspace_id, conversation_id)
        note_id = f"note:{new_id()}"
        await self.store.add_note(workspace_id, conversation_id, note_id, text, by)
        note = await self.store.messages.find_one({"_id": note_id})
        if conversation.get("assignee_id"):
            await self.hub.send((workspace_id, conversation["assignee_id"]), {
                "type": "message", "conversation_id": conversation_id, "message": jsonable(note, "message_id")})
        return note

    async def request_state(self, workspace_id: str, conversation_id: str, state: str,
                            until: datetime | None) -> StateRequest:
        """Ask the router to set the assignee's conversation pending, snoozed or open; the desk hears
        the outcome (`conversation.state`), as the router decides it (it may find it stale)."""
        conversation = await self.conversation(workspace_id, conversation_id)
        if conversation["status"] not in HELD_STATUSES or not conversation.get("assignee_id"):
            raise Conflict(f"conversation is {conversation['status']}: only an agent's conversation can be "
                           "set pending, snoozed or open")
        request = StateRequest(workspace_id=workspace_id, conversation_id=conversation_id,
                               agent_id=conversation["assignee_id"], assignment_seq=conversation.get("assignment_seq", 0),
                               state=state, until=until)
        await self._to_router(request, events.CONVERSATION_STATE_REQUESTED)
        return request

    async def _to_router(self, event: ConversationAnswered | OfferAnswer | TransferRequest | StateRequest,
                         name: str) -> None:
        await self.broker.publish(event, name, message_type=name, message_id=event.event_id, workspace_id=event.workspace_id)

    async def answer_offer(self, workspace_id: str, conversation_id: str, agent_id: str, accepted: bool) -> None:
        """Pass the agent's answer to the router; the assignment (or the next offer) follows from it."""
        if not await self.store.offers.find_one({"conversation_id": conversation_id, "agent_id": agent_id,
                                                 "workspace_id": workspace_id}):
            raise NotFound(f"no open offer of conversation {conversation_id!r} to agent {agent_id!r}")
        await self._to_router(OfferAnswer(workspace_id=workspace_id, conversation_id=conversation_id,
                                          agent_id=agent_id, accepted=accepted), events.OFFER_ANSWERED)

    async def transfer(self, request: TransferRequest) -> None:
        """Ask the router to move an assigned conversation (a supervisor: a waiting one too) to an agent or a queue."""
        try:
            conversation = await self.conversation(request.workspace_id, request.conversation_id)
        except NotFound:
            # A conversation no agent has held yet is known only to the router (read here, never
            # written), which decides: a refused move comes back as conversation.transferred `rejected`.
            if not request.by_supervisor or not await self.store.routed_conversation_exists(
                    request.workspace_id, request.conversation_id):
                raise
            conversation = {"status": "waiting"}
        movable = (*HELD_STATUSES, "waiting") if request.by_supervisor else HELD_STATUSES
        if conversation["status"] not in movable:
            raise Conflict(f"conversation is {conversation['status']}, only {' or '.join(movable)} ones can be transferred")
        if request.to_agent is not None:
            target = await self.store.get_agent(request.workspace_id, request.to_agent)
            if target is None:
                raise NotFound(f"agent {request.to_agent!r} does not exist")
            if target["status"] != "online":
                raise Conflict(f"agent {request.to_agent!r} is {target['status']}")
        await self._to_router(request, events.TRANSFER_REQUESTED)

    async def _ensure_outbound_queue(self, channel: str) -> None:
        """Declare the channel's outbound queue, so a reply waits there even if intake is down."""
        if channel not in self._outbound_channels:
            await declare_outbound_queue(self.broker.channel, self.broker.topology, channel)
            self._outbound_channels.add(channel)

    async def set_labels(self, workspace_id: str, conversation_id: str, labels: list[str]) -> dict:
        """Replace the contact reasons; reporting hears the whole set (flagged in the write, then published)."""
        conversation = await self.conversation(workspace_id, conversation_id)
        changed = await self.store.set_labels(conversation, labels)
        await self._publish_now(self._publish_labels, changed)
        return changed

    async def resolve(self, workspace_id: str, conversation_id: str) -> dict:
        conversation = await self.conversation(workspace_id, conversation_id)
        survey = None
        transitioned = await self.store.resolve(conversation)
        if transitioned:
            # Only the resolve that made the transition starts a survey: a repeated resolve (or one
            # of a conversation resolved before surveys were on) must not send one days later.
            survey = await self._start_survey(conversation)
        resolved = await self.conversation(workspace_id, conversation_id)
        # Published even on a repeated resolve, with the same id and time (the stored ones): the
        # router and reporting ignore repeats. The flag set with the write covers a crash in between.
        # `surveyed` comes from the stored survey, so a repeat says the same.
        await self._publish_now(self._publish_resolution, resolved)
        if transitioned:
            await self._tell_customer(chat_notices.resolved(resolved))  # before the survey: it explains it
        if survey is not None:
            try:
                await self._send_out(survey)
            except Exception as error:  # noqa: BLE001 - a survey not sent never holds up the resolution
                log.warning("csat.survey_not_sent", conversation_id=conversation_id, error=repr(error))
        return resolved

    async def _start_survey(self, conversation: dict) -> OutboundMessage | None:
        """The CSAT survey message for a conversation just resolved, if its workspace surveys its channel.

        A database error here costs the survey, not the resolution: the resolve is written, and its
        event must still free the agent's capacity."""
        try:
            return await self._survey_for(conversation)
        except PyMongoError as error:
            log.error("csat.survey_not_started", conversation_id=conversation["_id"], error=repr(error))
            return None

    async def _survey_for(self, conversation: dict) -> OutboundMessage | None:
        settings = await csat.settings_of(self.store.db, conversation["workspace_id"])
        if settings is None or not settings.surveys(conversation["channel"]):
            return None
        language = await self.store.contact_language(conversation["_id"])
        survey = csat.new_survey(conversation, settings, language, utcnow())
        return await self.store.start_survey(conversation, survey)

    async def _send_out(self, message: OutboundMessage) -> None:
        """An outbound message to intake's queue for its channel (confirmed)."""
        await self._ensure_outbound_queue(message.channel)
        await self.broker.publish(message, self.broker.topology.outbound_routing_key(message.channel),
                                  message_type=events.MESSAGE_OUTBOUND, message_id=message.message_id,
                                  workspace_id=message.workspace_id)

    async def answer_survey(self, workspace_id: str, answer: csat.Answer) -> tuple[dict, bool]:
        """Keep a survey answer (the first valid one) and tell reporting; the conversation after it,
        and whether this answer was new (False: a repeat of the one kept).

        CsatRefused says why an answer is not kept; NotFound that it names no survey. An accepted
        answer never touches the conversation's status: it is not a customer message, so nothing
        is routed and nothing reopens. A repeat of the kept answer publishes its event again (same
        id and time): that heals an answer whose publish failed after the write."""
        conversation = await self.store.survey_conversation(workspace_id, answer.survey_id, answer.channel,
                                                            answer.thread_id, answer.answer_ref)
        if conversation is None:
            what = f"survey {answer.survey_id!r}" if answer.survey_id else "a survey pending on this thread"
            raise NotFound(f"no {what} in this workspace")
        new = csat.judge(conversation, answer, utcnow())
        if new:
            kept = await self.store.record_answer(conversation["_id"], conversation["csat"]["survey_id"],
                                                  answer.score, answer.comment, answer.answer_ref)
            if kept is None:  # another answer was kept meanwhile: judged against it
                kept = await self.conversation(workspace_id, conversation["_id"])
                new = csat.judge(kept, answer, utcnow())
            conversation = kept
        event = csat.received(conversation)
        await self.broker.publish(event, events.CSAT_RECEIVED, message_type=events.CSAT_RECEIVED,
                                  message_id=event.event_id, workspace_id=workspace_id)
        return conversation, new

    async def _publish_resolved(self, event: ConversationResolved) -> None:
        """To the router (frees the agent's capacity) and reporting."""
        await self.broker.publish(event, events.CONVERSATION_RESOLVED, message_type=events.CONVERSATION_RESOLVED,
                                  message_id=event.event_id, workspace_id=event.workspace_id)

    # -- consumers -----------------------------------------------------------------------------

    def _parse_delivery(self, delivery: AbstractIncomingMessage) -> AgentDeliveryType:
        """Parse, and remember whose delivery comes again (redelivered after a replica died, or retried
        after a failure): what it stored then, its frames may never have reached the desks."""
        model = parse_delivery(delivery)
        if delivery.redelivered or (delivery.headers or {}).get(ATTEMPTS):
            self._came_again.add(_delivery_agent(model))
        return model

    async def handle_deliveries(self, deliveries: list[AgentDeliveryType]) -> None:
        came_again, self._came_again = self._came_again, set()
        for item in await self.store.apply_deliveries(deliveries):
            if item.resync is None:
                await self._push(item)
            elif (item.resync, item.agent_id) in came_again:
                await self.hub.resync_agent((item.resync, item.agent_id))
        await self._report(deliveries)
        for delivery in deliveries:
            if isinstance(delivery, ConversationAssigned) and delivery.conversation.channel in chat_notices.NOTICE_CHANNELS:
                info = delivery.conversation
                agent = await self.store.get_agent(info.workspace_id, info.assignee_id)
                await self._tell_customer(chat_notices.joined(info, chat_notices.display_name(agent, info.assignee_id)))

    async def _tell_customer(self, notice: OutboundMessage) -> None:
        """A web chat notice (services/agents/chat_notices.py) to intake, best effort: never holds up the work."""
        if notice.channel not in chat_notices.NOTICE_CHANNELS:
            return
        try:
            async with asyncio.timeout(NOTICE_TIMEOUT):  # a broker slow to confirm never holds up deliveries long
                await self._send_out(notice)
        except Exception as error:  # noqa: BLE001 - a lost notice costs a line on the page, nothing else
            log.warning("chat.notice_not_sent", conversation_id=notice.conversation_id, error=repr(error))

    async def _report(self, deliveries: list[AgentDeliveryType]) -> None:
        """Publish the facts the batch stored: every customer message, every conversation the channel
        ended (resolved), every thread a customer came back to (reopened).

        For every delivery of the batch, new or redelivered, before the batch is acked: should the
        process die after the write, the batch comes again and they are published then (their ids
        are the same, so reporting stores each once)."""
        infos = [d.conversation for d in deliveries if isinstance(d, ConversationAssigned)]
        made: list[RoutingEvent | ConversationResolved] = facts.messages_created(deliveries)
        made += [facts.reopened(info, previous) for info, previous in await self.store.came_back(infos)]
        made += [facts.ending(d) for d in deliveries if isinstance(d, ConversationEnded)]
        outcomes = await asyncio.gather(*(self._publish_fact(fact) for fact in made), return_exceptions=True)
        failed = next((outcome for outcome in outcomes if isinstance(outcome, BaseException)), None)
        if failed is not None:
            raise failed

    async def _publish_fact(self, fact: RoutingEvent | ConversationResolved) -> None:
        if isinstance(fact, ConversationResolved):
            await self._publish_resolved(fact)
            return
        await self.broker.publish(fact, fact.type, message_type=fact.type, message_id=fact.event_id,
                                  workspace_id=fact.workspace_id)

    async def _push(self, item: ForDesk) -> None:
        if item.frame is not None:
            await self.hub.send((item.frame["workspace_id"], item.agent_id), item.frame)  # every notice frame names it
            return
        messages = [jsonable(m, "message_id") for m in item.messages]
        workspace_id = (item.conversation or item.messages[0])["workspace_id"]
        key = (workspace_id, item.agent_id)
        if item.conversation is not None:
            self.metrics.assignments.inc()
            self.metrics.messages_in.inc(len(messages))
            frame = {
                "type": events.CONVERSATION_ASSIGNED,
                "conversation": jsonable(item.conversation, "conversation_id"),
                "messages": messages,
            }
            if item.conversation.get("assignment_seq", 0) > 1:
                # Taken over (rerouted, transferred): the desk fetches the history it needs. A shift
                # change reroutes hundreds of long conversations at once; reading and pushing every
                # message again would hold every other agent's deliveries behind it.
                frame["history"] = "fetch"
            await self.hub.send(key, frame)
            return
        for message in messages:
            self.metrics.messages_in.inc()
            await self.hub.send(key, {"type": "message", "conversation_id": message["conversation_id"], "message": message})

    async def handle_statuses(self, statuses: list[DeliveryStatus]) -> None:
        for doc in await self.store.apply_statuses(statuses):
            if doc["status"] == "failed":
                self.metrics.failed_sends.inc()
            await self.hub.send((doc["workspace_id"], doc.get("agent_id", "")), {
                "type": "message.status",
                "conversation_id": doc["conversation_id"],
                "message_id": doc["_id"],
                "status": doc["status"],
                "reason": doc.get("status_reason"),
            })

    async def handle_routing_events(self, notices: list[RoutingEvent]) -> None:
        for notice in notices:
            await self._apply_routing_event(notice)

    async def _apply_routing_event(self, notice: RoutingEvent) -> None:
        """SLA state onto the conversation, set away, auto-replies out, transfer notes into the history."""
        workspace_id, details = notice.workspace_id, notice.details
        if notice.type in (events.SLA_WARNING, events.SLA_BREACHED) and notice.conversation_id:
            state = "warning" if notice.type == events.SLA_WARNING else "breached"
            doc = await self.store.set_sla_state(notice.conversation_id, details["target"], state)
            if doc is not None and doc.get("assignee_id"):
                await self.hub.send((workspace_id, doc["assignee_id"]), {
                    "type": "sla", "conversation_id": notice.conversation_id, "target": details["target"], "state": state,
                })
        elif notice.type == events.AGENT_SET_AWAY and notice.agent_id:
            agent = await self.store.get_agent(workspace_id, notice.agent_id)
            if agent is not None and agent["status"] == "online":
                await self.set_status(workspace_id, notice.agent_id, "away", reason="missed_offers")
        elif notice.type in (events.CONVERSATION_AUTO_REPLY, events.BOT_REPLY) and notice.conversation_id:
            # The bot's messages (docs/bot.md) are stored and sent like the router's auto-replies: the
            # transcript an agent gets on a handover holds them.
            reply = await self.store.add_system_reply(notice.event_id, workspace_id, notice.conversation_id, details,
                                                      bot=notice.type == events.BOT_REPLY)
            if reply is not None:
                await self._ensure_outbound_queue(reply.channel)
                await self.broker.publish(reply, self.broker.topology.outbound_routing_key(reply.channel),
                                          message_type=events.MESSAGE_OUTBOUND, message_id=reply.message_id,
                                          workspace_id=workspace_id)
        elif notice.type == events.CONVERSATION_TRANSFERRED and notice.conversation_id:
            await self._note_transfer(notice)

    async def _note_transfer(self, notice: RoutingEvent) -> None:
        details = notice.details
        if details.get("rejected"):
            if notice.agent_id:
                await self.hub.send((notice.workspace_id, notice.agent_id), {
                    "type": "transfer.rejected", "conversation_id": notice.conversation_id, "reason": details["rejected"],
                })
            return
        target = f"agent {details['to_agent']}" if details.get("to_agent") else f"queue {details['to_queue']}"
        kind = "Escalated" if details.get("escalation") else "Transferred"
        text = f"{kind} to {target}" + (f": {details['note']}" if details.get("note") else "")
        await self.store.add_note(notice.workspace_id, notice.conversation_id, f"transfer:{notice.event_id}", text, details.get("by"))

    # -- typing (ephemeral: lost signals are harmless) ----------------------------------------

    async def contact_typing(self, signal: TypingSignal) -> None:
        """Show the assignee's desk that the customer is typing; nothing while the conversation waits."""
        query = {"workspace_id": signal.workspace_id, "channel": signal.channel, "thread_id": signal.thread_id}
        doc = await self.store.conversations.find_one({**query, "status": {"$in": list(HELD_STATUSES)}},
                                                      sort=[("created_at", -1)])
        if doc is not None and doc.get("assignee_id"):
            # Every replica gets every signal (a queue of its own): each shows it on the desks it holds.
            await self.hub.send_local((signal.workspace_id, doc["assignee_id"]),
                                      {"type": "typing", "conversation_id": doc["_id"], "who": "contact"})

    async def agent_typing(self, workspace_id: str, agent_id: str, conversation_id: str) -> None:
        """Tell a web chat customer their agent is typing; ignored unless the open conversation is this agent's."""
        if not self.typing_limit.allow((workspace_id, agent_id, conversation_id)):
            return
        try:
            doc = await self.store.get_conversation(workspace_id, conversation_id)
        except Exception as error:  # a desk frame must never take the desk down
            log.warning("typing.lookup_failed", error=repr(error))
            return
        if (doc is None or doc["status"] not in HELD_STATUSES or doc.get("assignee_id") != agent_id
                or doc["channel"] not in AGENT_TYPING_CHANNELS):
            return
        signal = TypingSignal(workspace_id=workspace_id, channel=doc["channel"], thread_id=doc["thread_id"],
                              agent_id=agent_id)
        await publish_signal(self.broker, signal, events.TYPING_AGENT)

    # -- desks ---------------------------------------------------------------------------------

    async def open_desk(self, workspace_id: str, agent_id: str, connection: DeskConnection) -> None:
        """Register a desk, then send its snapshot; frames that arrive meanwhile follow it."""
        await self.hub.add((workspace_id, agent_id), connection)
        conversations = await self.store.open_conversations_of(workspace_id, agent_id)
        messages = await self.store.messages_of([c["_id"] for c in conversations])
        by_conversation: dict[str, list[dict]] = {}
        for message in messages:
            by_conversation.setdefault(message["conversation_id"], []).append(jsonable(message, "message_id"))
        await connection.open_with({
            "type": "snapshot",
            "agent_id": agent_id,
            "status": (await self.store.get_agent(workspace_id, agent_id) or {}).get("status", "offline"),
            "offers": await self.store.pending_offers(workspace_id, agent_id),
            "conversations": [
                {"conversation": jsonable(c, "conversation_id"), "messages": by_conversation.get(c["_id"], [])}
                for c in conversations
            ],
        })
