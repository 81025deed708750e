"""The agents API's bodies: requests (validated once, at the edge) and answers (every JSON answer is
serialized through one of these, and /openapi.json is generated from them)."""

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, model_validator

from shared.models import MAX_LABELS, AgentStatus, Attachment, Contact, Label, Skill, Wire
from shared.web import Timestamp

AGENT_ID_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
AgentId = Annotated[str, Field(pattern=AGENT_ID_PATTERN)]


class AgentProfile(Wire):
    name: str = Field(min_length=1, max_length=200)
    skills: dict[Skill, Annotated[int, Field(ge=1, le=5)]] = Field(default_factory=dict)
    max_conversations: int = Field(3, ge=0, le=100)
    # Per medium (chat, email, voice): e.g. {"voice": 1, "chat": 3, "email": 5}. See docs/routing.md.
    channel_capacity: dict[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")], Annotated[int, Field(ge=0, le=100)]] = Field(default_factory=dict)


class OfferAnswerIn(Wire):
    agent_id: AgentId
    accept: bool


class LabelsIn(Wire):
    """The conversation's whole set of contact reasons after the change (repeats count once)."""

    labels: list[Label] = Field(max_length=MAX_LABELS)


class TransferIn(Wire):
    """Name exactly one target: `to_agent` or `to_queue` (the other absent or null)."""

    # The rule the handler enforces (a 422 otherwise), declared for the document too.
    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["to_agent"], "properties": {"to_agent": {"type": "string"}, "to_queue": {"type": "null"}}},
        {"required": ["to_queue"], "properties": {"to_queue": {"type": "string"}, "to_agent": {"type": "null"}}},
    ]})

    to_agent: AgentId | None = None
    to_queue: str | None = Field(None, min_length=1, max_length=64)
    note: str = Field("", max_length=2000)
    escalation: bool = False
    by_agent: AgentId | None = None


MAX_SNOOZE_SECONDS = 90 * 24 * 3600


class StateIn(Wire):
    """Set the conversation pending (waiting on the customer), snoozed for `seconds`, or open again.

    A snooze is a duration, not a time, so that every schema-valid request is one the service can
    carry out (a time in the past could not be)."""

    # The rule the handler enforces (a 422 otherwise), declared for the document too.
    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["state", "seconds"], "properties": {"state": {"const": "snoozed"}, "seconds": {"type": "integer"}}},
        {"required": ["state"], "properties": {"state": {"enum": ["open", "pending"]}, "seconds": {"type": "null"}}},
    ]})

    state: Literal["open", "pending", "snoozed"]
    seconds: int | None = Field(None, ge=1, le=MAX_SNOOZE_SECONDS)  # snoozed only: it wakes by itself after this


class CsatAnswerIn(Wire):
    """A customer's answer to a CSAT survey, as intake read it from the channel (or an API caller).

    `survey_id` names the survey (a button's payload, a signed link); without it (a digit by SMS)
    the survey pending on `channel` + `thread_id` is answered. With both, the thread must be the
    survey's: another contact's survey is refused (403). The score is checked once the survey is
    found (1 to 5, else 422), so a digit out of range on a thread with no survey is a 404, which
    intake takes as "route it as a normal message"."""

    survey_id: str | None = Field(None, min_length=1, max_length=64)
    channel: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    thread_id: str | None = Field(None, min_length=1, max_length=256)
    score: int = Field(ge=0, le=100)
    comment: str | None = Field(None, max_length=1000)
    # The provider's id of the answering message (an SMS's MessageSid): a provider's retry of it,
    # after the survey is no longer pending, still finds the survey it answered.
    answer_ref: str | None = Field(None, min_length=1, max_length=256)


class AgentStatusChange(Wire):
    status: AgentStatus


class Reply(Wire):
    # The validator's rule, declared for the document too: some text, or a file.
    model_config = ConfigDict(json_schema_extra={"anyOf": [
        {"required": ["text"], "properties": {"text": {"pattern": r"\S"}}},
        {"required": ["attachments"], "properties": {"attachments": {"minItems": 1}}},
    ]})

    text: str = Field("", description="The reply's text; may be empty when it carries files")
    attachments: list[str] = Field(default_factory=list, max_length=10,
                                   description="Files uploaded with POST /v1/conversations/{id}/attachments, by id")

    @model_validator(mode="after")
    def _says_something(self) -> "Reply":
        if not self.text.strip() and not self.attachments:
            raise ValueError("a reply needs text or at least one attachment")
        return self


def reply_model(max_chars: int) -> type[Reply]:
    """The reply body with the deployment's length limit (AGENTS_MAX_REPLY_CHARS), so the document states it."""
    return create_model("Reply", __base__=Reply, __doc__="An agent's reply.",
                        text=(str, Field("", max_length=max_chars)))


# -- answers -----------------------------------------------------------------------------------


class Out(BaseModel):
    """Base of the answers: unknown fields refused (the document says additionalProperties: false), every field
    declared required (model_dump writes every one, null where there is no value)."""

    model_config = ConfigDict(extra="forbid", json_schema_serialization_defaults_required=True)

    @classmethod
    def from_doc(cls, doc: dict[str, Any], id_field: str | None = None, **extra: Any) -> Self:
        """The stored document as this answer: `_id` as `id_field`, fields the answer does not show left out."""
        values = {key: value for key, value in doc.items() if key in cls.model_fields}
        if id_field is not None:
            values[id_field] = doc["_id"]
        try:
            return cls.model_validate({**values, **extra})
        except ValidationError as error:
            # Stored data the declared answer cannot carry is our fault (a 500, logged), not the caller's 422.
            raise AnswerError(f"{cls.__name__} cannot carry the stored document: {error}") from None


class AnswerError(RuntimeError):
    """A stored document that does not fit the answer the API declares."""


class AgentOut(Out):
    agent_id: str
    workspace_id: str
    name: str = ""
    skills: dict[str, int] = Field(default_factory=dict)
    max_conversations: int = 0
    channel_capacity: dict[str, int] = Field(default_factory=dict)
    status: AgentStatus
    version: int


class AgentToken(Out):
    """Sign the agent's desk in with this: as a Bearer token, or `?token=` on its WebSocket."""

    agent_id: str
    token: str
    expires_at: Timestamp


class SessionOut(Out):
    """Who the caller is: the desk shows a supervisor's list views (Unassigned, All) only to a supervisor."""

    workspace_id: str
    role: Literal["supervisor", "agent"]  # the workspace's key is a supervisor's; an agent token an agent's
    agent_id: str | None = None  # the token's agent; null for the workspace's key


MessageDirection = Literal["inbound", "outbound", "note"]
# received: a customer's; queued -> sent -> delivered -> read, or failed: a reply's; note: an internal note.
MessageStatus = Literal["received", "queued", "sent", "delivered", "read", "failed", "note"]


class MessageOut(Out):
    message_id: str
    workspace_id: str
    conversation_id: str
    direction: MessageDirection
    channel: str
    text: str
    status: MessageStatus
    created_at: Timestamp
    channel_message_id: str | None = None  # the provider's id for it
    agent_id: str | None = None  # a reply's or a note's author
    contact_id: str | None = None  # a customer message's sender, as the channel knows them
    attachments: list[Attachment] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    status_reason: str | None = None  # why a reply failed
    retried_by: str | None = None  # a failed reply sent again: the new reply's id
    status_at: Timestamp | None = None
    sent_at: Timestamp | None = None


# "assigned" is open with its agent; "pending" (waiting on the customer) and "snoozed" are still the
# agent's but free its capacity slot (docs/routing.md, "Lifecycle"); "waiting" is back in a queue.
ConversationStatus = Literal["assigned", "pending", "snoozed", "waiting", "resolved"]
HELD_STATUSES = ("assigned", "pending", "snoozed")  # the agent holds it: replies, transfers and resolves go


class CsatOut(Out):
    """The conversation's CSAT survey: pending until answered (or past `expires_at`), then its answer."""

    survey_id: str
    status: Literal["pending", "answered"]
    channel: str
    language: str
    question: str
    sent_at: Timestamp
    expires_at: Timestamp
    score: int | None = None
    comment: str | None = None
    answered_at: Timestamp | None = None
    answer_ref: str | None = None  # the provider's id of the answering message, when it has one (SMS)


class ConversationOut(Out):
    conversation_id: str
    workspace_id: str
    channel: str
    thread_id: str
    contact: Contact
    contact_id: str
    status: ConversationStatus
    assignee_id: str | None = None
    priority: int
    skills: list[str]
    queue: str | None = None
    created_at: Timestamp
    waiting_since: Timestamp | None = None
    assigned_at: Timestamp | None = None
    assignment_seq: int = 0
    first_response_at: Timestamp | None = None
    last_message_at: Timestamp | None = None
    resolved_at: Timestamp | None = None
    snoozed_until: Timestamp | None = None  # a snoozed conversation wakes by itself then (or when the customer writes)
    resolved_reason: str | None = None  # set when the channel ended it (a call hung up)
    revoked_reason: str | None = None  # why it went back to waiting
    routing: dict[str, Any] | None = None  # the routing decision: queue, rule, chosen agent
    sla: dict[str, Any] = Field(default_factory=dict)
    transfers: list[dict[str, Any]] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)  # contact reasons, sorted
    csat: CsatOut | None = None  # the survey sent when it was resolved, and its answer (docs/csat.md)


class ConversationWithMessages(ConversationOut):
    """A conversation with its messages in order."""

    messages: list[MessageOut]


class ConversationList(Out):
    conversations: list[ConversationOut]


class AgentList(Out):
    agents: list[AgentOut]


class QueueOut(Out):
    name: str
    mode: Literal["push", "offer"]


class QueueList(Out):
    """The queues of the routing configuration in force (the transfer form's picker)."""

    queues: list[QueueOut]


class NoteIn(Wire):
    """A private note on a conversation: colleagues see it in the history; the customer never does."""

    text: str = Field(min_length=1, max_length=4096)
    # Who wrote it, when a supervisor's key posts for an agent (the desk does); an agent token is its author.
    by: AgentId | None = None


class ContactIdentity(Out):
    channel: str
    address: str


class ContactOut(Out):
    """A contact, its identities on every channel, its conversations and their messages in time order."""

    contact_id: str
    workspace_id: str
    name: str | None = None
    identities: list[ContactIdentity] = Field(default_factory=list)
    emails: list[str] = Field(default_factory=list)
    phones: list[str] = Field(default_factory=list)
    created_at: Timestamp | None = None
    last_seen_at: Timestamp | None = None
    attributes: dict[str, str] = Field(default_factory=dict)  # set on the desk (plan: gold, city: Kyiv)
    labels: list[str] = Field(default_factory=list)  # about the person, not one conversation
    conversations: list[ConversationOut]
    messages: list[MessageOut]


MAX_CONTACT_ATTRIBUTES = 50
AttributeName = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,31}$")]


class ContactPatch(Wire):
    """What the desk edits on a contact; a field left out stays as it is."""

    name: str | None = Field(None, min_length=1, max_length=200)
    # Each named attribute is set, or removed with null; the others stay (at most 50 in all).
    attributes: dict[AttributeName, Annotated[str, Field(max_length=500)] | None] | None = Field(
        None, max_length=MAX_CONTACT_ATTRIBUTES)
    labels: list[Label] | None = Field(None, max_length=MAX_LABELS)  # the whole set


class CsatAnswered(Out):
    """An answer kept (`recorded`), or the kept one repeated (`already_recorded`, nothing changed)."""

    status: Literal["recorded", "already_recorded"]
    conversation_id: str
    survey_id: str
    score: int
    comment: str | None = None
    answered_at: Timestamp
    language: str  # the survey's: intake thanks the customer in it


class OfferAnswered(Out):
    accepted: bool
