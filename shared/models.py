"""The one message model and the events that cross service boundaries.

Every model here travels over AMQP as JSON; each carries a `workspace_id`. Channel names are
plain strings so that adding a channel touches neither the router nor the agents service.
"""

import json
import math
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, TypeAdapter, model_validator

from shared import events

DEFAULT_WORKSPACE = "default"
ChannelName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
Skill = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")]
# A contact reason on a conversation ("billing", "delivery late"): free text a supervisor reads,
# one line, no surrounding spaces; a conversation holds at most MAX_LABELS of them.
# Explicit classes, not \s/\S: Python's and JSON Schema's regexes disagree on which are spaces (U+0085).
_LABEL_EDGE = r"[^\x00-\x20\x7f-\x9f\u2028\u2029]"
_LABEL_INSIDE = r"[^\x00-\x1f\x7f-\x9f\u2028\u2029]"
Label = Annotated[str, Field(min_length=1, max_length=64, pattern=f"^{_LABEL_EDGE}(?:{_LABEL_INSIDE}*{_LABEL_EDGE})?$")]
MAX_LABELS = 20
# A quick reply's id: what a press of its button brings back as InboundMessage.action (docs/channels/README.md).
QUICK_REPLY_ID = r"^[A-Za-z0-9_.:-]{1,48}$"
MAX_QUICK_REPLIES = 3  # WhatsApp's limit on reply buttons
MAX_QUICK_REPLY_TITLE = 20  # WhatsApp's limit on a reply button's title
Priority = Annotated[int, Field(ge=0, le=10)]
AgentStatus = Literal["online", "away", "offline"]

# The limits of the whole path, checked once where a message enters (docs/limits.md). What
# passes them can be published, routed, stored in MongoDB and shown on a desk.
MAX_SKILLS = 20
MAX_TEXT_CHARS = 100_000
MAX_METADATA_BYTES = 256 * 1024  # as JSON
MAX_METADATA_DEPTH = 32  # MongoDB refuses documents nested deeper than 100 levels; ours wrap metadata in up to 4
MAX_METADATA_KEY_CHARS = 256
INT64 = (-(2**63), 2**63 - 1)


def _check_metadata_value(value: Any, depth: int, path: str) -> None:
    """Raise ValueError naming the first part of `value` that BSON or our JSON hops cannot carry as is."""
    if depth > MAX_METADATA_DEPTH:
        raise ValueError(f"metadata is nested deeper than {MAX_METADATA_DEPTH} levels at {path}")
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return
    if isinstance(value, int):
        if not INT64[0] <= value <= INT64[1]:
            raise ValueError(f"metadata{path}: integer outside the 64-bit range MongoDB stores")
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"metadata{path}: NaN and infinity cannot travel as JSON")
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_metadata_key(key, path)
            _check_metadata_value(item, depth + 1, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _check_metadata_value(item, depth + 1, f"{path}[{index}]")
    else:
        raise ValueError(f"metadata{path}: unsupported type {type(value).__name__}")  # noqa: TRY004 (pydantic wants ValueError)


def _check_metadata_key(key: Any, path: str) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError(f"metadata{path}: keys must be non-empty strings")
    if len(key) > MAX_METADATA_KEY_CHARS:
        raise ValueError(f"metadata{path}: a key is longer than {MAX_METADATA_KEY_CHARS} characters")
    if "\x00" in key:
        raise ValueError(f"metadata{path}: a key holds a NUL character, which MongoDB field names cannot")
    if key.startswith("$"):
        raise ValueError(f"metadata{path}: a key starts with '$', which MongoDB reserves for operators")


def _storable_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    _check_metadata_value(metadata, 1, "")
    size = len(json.dumps(metadata, ensure_ascii=False).encode())
    if size > MAX_METADATA_BYTES:
        raise ValueError(f"metadata is {size} bytes as JSON, over the {MAX_METADATA_BYTES} byte limit")
    return metadata


# Free-form facts that travel with a message: JSON that BSON can store and every hop can carry.
Metadata = Annotated[dict[str, Any], AfterValidator(_storable_metadata)]


# The author of automatic replies (a max-wait auto-reply): an outbound message no agent wrote.
SYSTEM_AGENT = "switchyard"


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class Wire(BaseModel):
    """Base of every model that crosses a service boundary: unknown fields are an error."""

    model_config = ConfigDict(extra="forbid")


class Contact(Wire):
    """The customer as the channel knows them; `id` is unique within the channel."""

    id: str = Field(min_length=1, max_length=256)
    name: str | None = Field(None, max_length=256)
    email: str | None = Field(None, max_length=320)
    phone: str | None = Field(None, max_length=32)


class Attachment(Wire):
    """A file that came with a message: stored in the attachment store, or held by the provider.

    `attachment_id` is set when intake stored the bytes (downloadable from the agents service);
    `url` is the provider's own reference (a Twilio MediaUrl, a Telegram file id as
    `telegram:file/<file_id>`, a WhatsApp media id as `whatsapp:media/<id>`, a Meta CDN URL),
    kept after intake fetched and stored the file. `error` says why a provider's file could not
    be fetched ("provider answered 404", "over the 10485760 byte limit"): then only `url` refers to it.
    """

    attachment_id: str | None = None
    filename: str | None = Field(None, max_length=256)
    content_type: str = Field("application/octet-stream", max_length=128)
    size: int | None = Field(None, ge=0)
    url: str | None = Field(None, max_length=2048)
    error: str | None = Field(None, max_length=300)


class QuickReply(Wire):
    """A button under an outbound message; pressing it comes back as an inbound message whose `action` is `id`
    and whose text is `title` (so a transcript shows what the customer chose)."""

    id: str = Field(pattern=QUICK_REPLY_ID)
    title: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_QUICK_REPLY_TITLE)]


class InboundMessage(Wire):
    """A customer's message from any channel, normalized by intake (routing key message.received)."""

    message_id: str
    workspace_id: str = DEFAULT_WORKSPACE
    channel: ChannelName
    # The provider's own id for this message; unique per channel, so a provider retry is harmless.
    channel_message_id: str | None = Field(None, max_length=1024)
    # Conversations are keyed by (workspace, channel, thread_id); the contact id when none is given.
    thread_id: str = Field(min_length=1, max_length=256)
    contact: Contact
    text: str = Field(max_length=MAX_TEXT_CHARS)
    attachments: list[Attachment] = Field(default_factory=list, max_length=100)
    skills: list[Skill] = Field(default_factory=list, max_length=MAX_SKILLS)
    priority: Priority = 0
    # Channel facts a reply needs (an email's Message-ID and subject) and hints for routing.
    metadata: Metadata = Field(default_factory=dict)
    received_at: datetime = Field(default_factory=utcnow)
    # Set when the message is a press of one of our quick replies (its id); `text` is then the button's title.
    action: str | None = Field(None, pattern=QUICK_REPLY_ID)


class ConversationInfo(Wire):
    """What the router knows of a conversation when it hands it to an agent."""

    conversation_id: str
    workspace_id: str
    channel: ChannelName
    thread_id: str
    contact: Contact
    skills: list[Skill] = Field(default_factory=list)
    priority: Priority = 0
    created_at: datetime
    waiting_since: datetime
    assignee_id: str
    assigned_at: datetime
    # Routing facts: the queue, how often it changed hands, why it went to this agent (the
    # decision record), its SLA state, and the transfers it went through with their notes.
    queue: str | None = None
    assignment_seq: int = 0
    routing: dict[str, Any] | None = None
    sla: dict[str, Any] = Field(default_factory=dict)
    transfers: list[dict[str, Any]] = Field(default_factory=list)
    labels: list[Label] = Field(default_factory=list)  # set by label rules so far


class ConversationAssigned(Wire):
    """Router -> agent queue: the conversation is now this agent's, with every message so far."""

    type: Literal["conversation.assigned"] = events.CONVERSATION_ASSIGNED
    conversation: ConversationInfo
    messages: list[InboundMessage]


class ConversationMessage(Wire):
    """Router -> agent queue: a later message of a conversation the agent already holds."""

    type: Literal["message"] = events.CONVERSATION_MESSAGE
    conversation_id: str
    workspace_id: str
    assignee_id: str
    message: InboundMessage
    labels: list[Label] = Field(default_factory=list)  # added by label rules this message matched


class ConversationOffered(Wire):
    """Router -> agent queue: an offer; the agent accepts or rejects before `expires_at`."""

    type: Literal["conversation.offered"] = events.CONVERSATION_OFFERED
    conversation: ConversationInfo
    messages: list[InboundMessage]
    expires_at: datetime


class ConversationRevoked(Wire):
    """Router -> agent queue: the conversation or offer is no longer this agent's."""

    type: Literal["conversation.revoked"] = events.CONVERSATION_REVOKED
    workspace_id: str
    conversation_id: str
    agent_id: str
    assignment_seq: int
    reason: str


class ConversationEnded(Wire):
    """Router -> agent queue: the channel ended the conversation (the caller hung up); it is resolved."""

    type: Literal["conversation.ended"] = events.CONVERSATION_ENDED
    workspace_id: str
    conversation_id: str
    agent_id: str
    reason: str
    ended_at: datetime


ParkedState = Literal["pending", "snoozed"]


class ConversationParked(Wire):
    """Router -> agent queue: the conversation is pending or snoozed; it no longer counts against capacity."""

    type: Literal["conversation.parked"] = events.CONVERSATION_PARKED
    workspace_id: str
    conversation_id: str
    agent_id: str
    assignment_seq: int
    state: ParkedState
    until: datetime | None = None  # a snooze's end (None: until the customer writes)


class ConversationWoken(Wire):
    """Router -> agent queue: a pending or snoozed conversation is open again (the customer wrote,
    the snooze ended, or the agent opened it) and counts against the agent's capacity again."""

    type: Literal["conversation.woken"] = events.CONVERSATION_WOKEN
    workspace_id: str
    conversation_id: str
    agent_id: str
    assignment_seq: int
    reason: str


AgentDeliveryType = (ConversationAssigned | ConversationMessage | ConversationOffered | ConversationRevoked
                     | ConversationEnded | ConversationParked | ConversationWoken)
AgentDelivery = Annotated[AgentDeliveryType, Field(discriminator="type")]
agent_delivery_adapter: TypeAdapter[AgentDeliveryType] = TypeAdapter(AgentDelivery)


class AgentSnapshot(Wire):
    """Agents -> router: the agent's whole routing profile, sent on every change."""

    event_id: str = Field(default_factory=new_id)
    workspace_id: str
    agent_id: str
    # Grows with every change of the agent, so a late redelivery of an old snapshot is ignored.
    version: int = Field(ge=0)
    skills: dict[Skill, Annotated[int, Field(ge=1, le=5)]] = Field(default_factory=dict)
    max_conversations: int = Field(ge=0, le=100)
    # Limits per medium (chat, email, voice, ...); a medium not named is bounded by
    # max_conversations only, except an exclusive one (voice), which needs a limit here.
    channel_capacity: dict[str, Annotated[int, Field(ge=0, le=100)]] = Field(default_factory=dict)
    status: AgentStatus
    at: datetime = Field(default_factory=utcnow)  # when the agent's profile or presence changed


class OfferAnswer(Wire):
    """Agents -> router: the agent accepted or rejected an offer."""

    event_id: str = Field(default_factory=new_id)
    workspace_id: str
    conversation_id: str
    agent_id: str
    accepted: bool


class TransferRequest(Wire):
    """Agents -> router: move an assigned conversation (or, by a supervisor, a waiting one) to an agent or a queue."""

    event_id: str = Field(default_factory=new_id)
    workspace_id: str
    conversation_id: str
    by_agent: str | None = None
    # A supervisor (the workspace's key) may also move a conversation still waiting or offered.
    by_supervisor: bool = False
    to_agent: str | None = None
    to_queue: str | None = None
    note: str = Field("", max_length=2000)
    # An escalation is a transfer to another tier's queue; it is recorded as such.
    escalation: bool = False

    @model_validator(mode="after")
    def _one_target(self) -> "TransferRequest":
        if (self.to_agent is None) == (self.to_queue is None):
            raise ValueError("a transfer names to_agent or to_queue, not both")
        return self


class ThreadEvent(Wire):
    """Intake -> router: something the channel did to a thread, found by (workspace, channel, thread)."""

    event_id: str = Field(default_factory=new_id)
    workspace_id: str
    channel: ChannelName
    thread_id: str
    reason: str = Field(max_length=200)
    at: datetime = Field(default_factory=utcnow)


class ThreadClosed(ThreadEvent):
    """The channel ended this thread (a call hung up): free the agent or drop the wait."""


class ThreadLeft(ThreadEvent):
    """The customer left (a web chat closed and did not come back in time; `at` is when it closed):
    a wait still on is dropped as abandoned; a conversation an agent holds stays with them."""


class NotAnswered(ThreadEvent):
    """The agent the thread went to never picked up (a call rang out): route it again."""

    # The agent that was rung; a report naming someone no longer assigned is stale and ignored.
    agent_id: str | None = None


class ConversationAnswered(Wire):
    """Agents -> router: the agent sent the first reply (first response SLA met)."""

    event_id: str = Field(default_factory=new_id)
    workspace_id: str
    conversation_id: str
    agent_id: str
    at: datetime = Field(default_factory=utcnow)


class RoutingEvent(Wire):
    """A domain event on the events exchange in one uniform shape, `type` its routing key: what
    routing did or noticed (SLA, queueing, offers, transfers, set away), and the agents service's
    facts that no other model carries (message.created, conversation.reopened)."""

    event_id: str
    type: str
    workspace_id: str
    conversation_id: str | None = None
    agent_id: str | None = None
    queue: str | None = None
    at: datetime
    details: dict[str, Any] = Field(default_factory=dict)


BotDecisionKind = Literal["answered", "resolved", "handover"]
# Why a conversation went from the bot to a person, for the reports (docs/bot.md): no article was good
# enough, the customer said no or asked for a person, wrote something else, the bot was late, the
# customer did not reply to the bot.
HANDOVER_CODES = ("no_match", "declined", "other_question", "bot_late", "no_reply")
HandoverCode = Literal["no_match", "declined", "other_question", "bot_late", "no_reply"]


class BotDecision(Wire):
    """Assist -> router: what the bot did with a conversation it was given (docs/bot.md).

    `answered`: the articles went to the customer, who is now asked whether they helped;
    `resolved`: the customer said they did; `handover`: to human routing now (`reason`)."""

    event_id: str = Field(default_factory=new_id)
    workspace_id: str
    conversation_id: str
    # The bot session the router opened (`bot.requested` details.session): a decision about an
    # older session (the router already handed it over, say) changes nothing.
    session: int = Field(ge=0)
    decision: BotDecisionKind
    reason: str = Field("", max_length=200)
    code: HandoverCode | None = None  # a handover's, for the reports
    articles: list[str] = Field(default_factory=list, max_length=10)
    at: datetime = Field(default_factory=utcnow)


class IncidentLinked(Wire):
    """Assist -> router: a conversation was linked to an open incident (docs/incidents.md)."""

    event_id: str = Field(default_factory=new_id)
    workspace_id: str
    conversation_id: str
    incident_id: str = Field(min_length=1, max_length=300)
    at: datetime = Field(default_factory=utcnow)


class IncidentClosing(Wire):
    """Assist -> router: an incident resolved by a supervisor, with one reply for every conversation
    linked to it, and whether the conversations agents hold are resolved too (docs/incidents.md)."""

    event_id: str = Field(default_factory=new_id)
    workspace_id: str
    incident_id: str = Field(min_length=1, max_length=300)
    reply: str | None = Field(None, min_length=1, max_length=2000)
    resolve: bool = False
    conversation_ids: list[str] = Field(default_factory=list, max_length=10_000)
    at: datetime = Field(default_factory=utcnow)


class StateRequest(Wire):
    """Agents -> router: the assignee sets its conversation pending, snoozed (until a time, or the
    customer's next message) or open again. The router decides; the agent queue hears the outcome."""

    event_id: str = Field(default_factory=new_id)
    workspace_id: str
    conversation_id: str
    agent_id: str
    assignment_seq: int
    state: Literal["open", "pending", "snoozed"]
    until: datetime | None = None  # snoozed only: when it wakes by itself
    at: datetime = Field(default_factory=utcnow)


class ConversationResolved(Wire):
    """Agents -> router: the conversation is closed; its agent has room again."""

    event_id: str = Field(default_factory=new_id)
    workspace_id: str
    conversation_id: str
    agent_id: str | None = None
    resolved_at: datetime = Field(default_factory=utcnow)
    reason: str | None = Field(None, max_length=200)  # set when the channel ended it (a call hung up), not an agent
    surveyed: bool = False  # a CSAT survey went out with this resolution (reporting's response-rate denominator)


class ReplyContext(Wire):
    """The customer message a reply answers: what a channel needs to thread it (email headers)."""

    channel_message_id: str | None = None
    metadata: Metadata = Field(default_factory=dict)


class SurveyRequest(Wire):
    """What an outbound message carries when it is a CSAT survey: each channel renders it its own way
    (buttons whose payload is `csat:<survey_id>:<score>`, a digit by SMS, a signed link by email)."""

    survey_id: str = Field(pattern=r"^[0-9a-f]{16}$")
    question: str = Field(min_length=1, max_length=500)
    language: str = Field("en", max_length=3)
    expires_at: datetime  # answers after this are refused as late


class ChatNotice(Wire):
    """What an outbound message carries when it is a line for a web chat customer that is nobody's
    message (docs/webchat.md): where they stand in the queue, an agent who joined, the conversation
    resolved. Not stored and not answered by a delivery status: a lost one is corrected by the next."""

    kind: Literal["queue", "joined", "resolved"]
    position: int | None = Field(None, ge=1)  # queue: 1 is next
    expected_wait_seconds: int | None = Field(None, ge=0)  # queue: None when there is no basis for one
    agent_name: str | None = Field(None, max_length=200)  # joined: who


class CsatReceived(Wire):
    """Agents -> reporting (csat.received): a customer's accepted answer to a survey, once per survey.

    `event_id` is `csat.received:<survey_id>`: the first valid answer is the one kept, so a repeat
    of it (a provider's retry, a second tap) publishes the same id and time, and reporting counts it once."""

    event_id: str
    workspace_id: str
    conversation_id: str
    survey_id: str
    channel: ChannelName
    agent_id: str | None = None  # the conversation's last assignee
    queue: str | None = None
    score: int = Field(ge=1, le=5)
    comment: str | None = Field(None, max_length=1000)
    at: datetime  # when the answer was accepted


class OutboundMessage(Wire):
    """Agents -> intake: an agent's reply, to be sent out through the conversation's channel."""

    message_id: str
    workspace_id: str
    conversation_id: str
    channel: ChannelName
    thread_id: str
    contact: Contact
    agent_id: str
    text: str
    attachments: list[Attachment] = Field(default_factory=list)
    # The latest customer message of the conversation, when there is one.
    reply_to: ReplyContext | None = None
    created_at: datetime = Field(default_factory=utcnow)
    survey: SurveyRequest | None = None  # set on a CSAT survey (agent_id is then SYSTEM_AGENT)
    notice: ChatNotice | None = None  # set on a web chat notice (text empty, agent_id SYSTEM_AGENT)
    agent_name: str | None = Field(None, max_length=200)  # a reply's author as the customer sees them
    # Buttons under the text (a bot's "Did this answer your question?"); each channel renders them its own way.
    quick_replies: list[QuickReply] = Field(default_factory=list, max_length=MAX_QUICK_REPLIES)


DeliveryState = Literal["sent", "delivered", "read", "failed"]


class DeliveryStatus(Wire):
    """Intake -> agents: what became of an outbound message.

    Either `message_id` names our message (the outcome of a send), or `channel` and
    `channel_message_id` name the provider's (a later delivery or read receipt), or `channel`,
    `thread_id` and `up_to` name every reply in the thread sent up to then (a watermark receipt:
    Messenger says "read up to <time>", not which messages).
    """

    message_id: str | None = None
    workspace_id: str
    conversation_id: str | None = None
    channel: ChannelName | None = None
    channel_message_id: str | None = None
    thread_id: str | None = Field(None, max_length=256)
    up_to: datetime | None = None
    status: DeliveryState
    reason: str | None = None
    at: datetime = Field(default_factory=utcnow)

    @model_validator(mode="after")
    def _names_a_message(self) -> "DeliveryStatus":
        if self.message_id is not None or (self.channel is not None and self.channel_message_id is not None):
            return self
        if self.channel is not None and self.thread_id is not None and self.up_to is not None:
            return self
        raise ValueError("a status names message_id, or channel and channel_message_id, or channel, thread_id and up_to")

    @property
    def is_watermark(self) -> bool:
        return self.message_id is None and self.channel_message_id is None

    @property
    def names(self) -> str:
        """What the status is about, as a key: a provider's repeat of a receipt gives the same one."""
        if self.message_id is not None:
            return self.message_id
        if self.channel_message_id is not None:
            return f"{self.channel}:{self.channel_message_id}"
        return f"{self.channel}:{self.thread_id}:{self.up_to.isoformat() if self.up_to else ''}"


class RoutingConfigChanged(Wire):
    """Router API -> router work queue: apply this configuration (a dict of RoutingConfig) in order.

    To the workspace's own partition for its own configuration; for the deployment's default (the
    default workspace's), one to every partition (shared/routing_config.py)."""

    event_id: str = Field(default_factory=new_id)
    workspace_id: str = DEFAULT_WORKSPACE
    config: dict[str, Any]


class RouterTick(Wire):
    """Router replica -> a router partition: fire due timers. Transient, expiring: the partition's
    active replica, whichever it is, gets the ticks; while none is, they expire unread."""

    at: datetime


MAX_REJECTED_ITEM_CHARS = 64 * 1024


class RejectedInput(Wire):
    """Intake -> <ns>.intake.rejected: one item of a provider's batch that could not be taken, and why.

    Kept for an operator to read (like a dead-letter queue), so a malformed item is never dropped
    silently, while the batch's other items are published and the provider is answered 2xx."""

    event_id: str = Field(default_factory=new_id)
    workspace_id: str
    channel: ChannelName
    reason: str = Field(max_length=2000)
    item: str = Field(max_length=MAX_REJECTED_ITEM_CHARS)  # the provider's item as JSON, cut to the limit
    at: datetime = Field(default_factory=utcnow)
