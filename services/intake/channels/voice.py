"""Twilio voice: a call is a conversation of its own on the `voice` channel; a voicemail is a message.

1. Twilio POSTs its incoming-call form (https://www.twilio.com/docs/voice/twiml#request-parameters)
   to `/v1/webhooks/voice/<workspace>`. Intake publishes the call as an InboundMessage (thread and
   provider id = CallSid) and answers TwiML that holds the caller: <Say>, then looped music or a
   pause that redirects to `/hold`.
2. The router gives the call to an agent with voice capacity and publishes
   `conversation.routed.voice`. Intake consumes it and updates the live call through the Calls
   API (`Calls/{CallSid}.json`, `Twiml=<Dial>` the agent's target, action `/dialed`).
3. The call's status callback (`/status`: completed, busy, no-answer, failed, canceled) and the
   Dial action (`/dialed`, when the bridged call ends) publish `thread.closed`: the router frees
   the agent and the agents service marks the conversation resolved.
4. `conversation.max_wait_reached` with action `callback` sends a waiting caller to voicemail
   (<Record transcribe>). The transcription callback publishes an InboundMessage on the
   `voicemail` channel, a conversation of its own. Text replies on `voice` and `voicemail` go to
   the caller as SMS through the Messages API.

Every Twilio request is signed like SMS (`read_signed_form`). PBX calls (telephony.py) reuse the
consumer below with thread ids that start with `pbx:`.
"""

import asyncio
import re
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import structlog
from aiohttp import web
from pydantic import Field, field_validator

from services.intake import context  # the module, not its names: context imports the channels package
from services.intake.channels.base import (
    Backoff,
    ChannelPlugin,
    FetchedMedia,
    SendError,
    Sent,
    message_id_for,
    webhook_path,
    with_retries,
)
from services.intake.channels.twilio import (
    E164,
    ProviderForm,
    SmsSender,
    StatusCallback,
    TwilioConfig,
    TwilioRestClient,
    api_url_of,
    delivery_status,
    fetch_with_account,
    read_signed_form,
    signed_form_operation,
    twiml_response,
    validate_form,
)
from services.intake.settings import IntakeSettings
from shared import events
from shared.broker import BatchConsumer, parse_as
from shared.models import (
    Attachment,
    Contact,
    ConversationAnswered,
    InboundMessage,
    NotAnswered,
    OutboundMessage,
    RoutingEvent,
    ThreadClosed,
)
from shared.topology import declare_consumed_queue
from shared.web import http_error, path_parameter, query_parameter

if TYPE_CHECKING:
    from services.intake.context import Intake

CHANNEL = "voice"
VOICEMAIL = "voicemail"
# Assignments of calls are published as conversation.routed.voice (type conversation.routed).
ROUTED_KEY = f"{events.CONVERSATION_ROUTED}.{CHANNEL}"
CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
# A call's final states (https://www.twilio.com/docs/voice/api/call-resource#call-status-values).
ENDED = frozenset({"completed", "busy", "no-answer", "failed", "canceled"})
DIAL_TARGET = re.compile(r"^(client:[A-Za-z0-9_.@-]{1,120}|sip:[^\s<>\"]{1,250}|\+[1-9]\d{1,14})$")
# Twilio's "call is not in a state for this operation": still ringing when our update beats our
# TwiML answer, or already over. Retried like a 5xx; the last failure closes the thread.
NOT_IN_PROGRESS = "error 21220"
HOLD_PAUSE_SECONDS = 20
HANDLED_EVENTS_KEPT = 10_000

log = structlog.get_logger(__name__)


class VoiceConfig(TwilioConfig):
    """A workspace's Twilio account, who each agent is on the phone, and what callers hear."""

    # agent id -> what <Dial> calls: "client:ann" (Voice SDK), "sip:ann@pbx.example.com", "+15551234567".
    agents: dict[str, str] = Field(default_factory=dict)
    hold_message: str = Field("Thank you for calling. Please hold while we connect you to an agent.", max_length=1000)
    hold_music_url: str | None = Field(None, pattern=r"^https?://")
    voicemail_message: str = Field("All our agents are busy. Please leave a message after the tone.", max_length=1000)
    # Twilio transcribes recordings of up to two minutes.
    voicemail_max_seconds: int = Field(120, ge=5, le=120)
    dial_timeout_seconds: int = Field(20, ge=5, le=600)
    # Shown to the agent's phone on a "+..." target; Twilio's default is the caller's number.
    caller_id: str | None = Field(None, pattern=E164.pattern)
    # Text replies to callers go as SMS from this number or Messaging Service.
    phone_number: str | None = Field(None, pattern=E164.pattern)
    messaging_service_sid: str | None = Field(None, pattern=r"^MG[0-9a-fA-F]{32}$")

    @field_validator("agents")
    @classmethod
    def _dial_targets(cls, agents: dict[str, str]) -> dict[str, str]:
        bad = sorted(agent for agent, target in agents.items() if not DIAL_TARGET.match(target))
        if bad:
            raise ValueError(f"agents {bad}: a target is client:<identity>, sip:<uri> or an E.164 number")
        return agents

    def target(self, agent_id: str) -> str:
        return self.agents.get(agent_id, f"client:{agent_id}")


# -- TwiML -------------------------------------------------------------------------------------


def element(tag: str, text: str | None = None, **attributes: Any) -> ET.Element:
    """One TwiML verb or noun; attributes that are None are left out."""
    node = ET.Element(tag, {name: str(value) for name, value in attributes.items() if value is not None})
    node.text = text
    return node


def twiml(*verbs: ET.Element) -> str:
    response = ET.Element("Response")
    response.extend(verbs)
    return '<?xml version="1.0" encoding="UTF-8"?>' + ET.tostring(response, encoding="unicode")


def hold_loop(hold_url: str) -> list[ET.Element]:
    return [element("Pause", length=HOLD_PAUSE_SECONDS), element("Redirect", hold_url, method="POST")]


def hold_twiml(config: VoiceConfig, hold_url: str) -> str:
    """The answer to an incoming call: the hold message, then music (looped) or silence until we redirect it."""
    say = element("Say", config.hold_message)
    if config.hold_music_url:
        return twiml(say, element("Play", config.hold_music_url, loop=0))
    return twiml(say, *hold_loop(hold_url))


def dial_noun(target: str, answered_url: str | None = None) -> ET.Element:
    """The agent's leg; Twilio requests `answered_url` when the agent picks up, before the bridge."""
    hook = {"url": answered_url, "method": "POST" if answered_url else None}
    if target.startswith("client:"):
        return element("Client", target.removeprefix("client:"), **hook)
    if target.startswith("sip:"):
        return element("Sip", target, **hook)
    return element("Number", target, **hook)


def dial_twiml(config: VoiceConfig, target: str, action_url: str, answered_url: str | None = None) -> str:
    """Connect the caller to the agent; Twilio requests `action_url` when the bridged call ends."""
    dial = element("Dial", action=action_url, method="POST", timeout=config.dial_timeout_seconds,
                   callerId=config.caller_id if target.startswith("+") else None)
    dial.append(dial_noun(target, answered_url))
    return twiml(dial)


def voicemail_twiml(config: VoiceConfig, recorded_url: str, transcription_url: str) -> str:
    """Record a message with a transcription; an empty recording skips the action and falls through to goodbye."""
    record = element("Record", action=recorded_url, method="POST", maxLength=config.voicemail_max_seconds,
                     playBeep="true", transcribe="true", transcribeCallback=transcription_url)
    return twiml(element("Say", config.voicemail_message), record,
                 element("Say", "We did not get a message. Goodbye."), element("Hangup"))


GOODBYE_TWIML = twiml(element("Say", "Thank you. Goodbye."), element("Hangup"))
HANGUP_TWIML = twiml(element("Hangup"))


def callback_url(settings: IntakeSettings, workspace_id: str, suffix: str, **query: str) -> str:
    """A public URL of this channel's routes for Twilio to call (it signs it as given)."""
    path = webhook_path(CHANNEL, suffix).format(workspace=quote(workspace_id, safe=""))
    return settings.public_url.rstrip("/") + path + ("?" + urlencode(query) if query else "")


# -- Twilio's requests -------------------------------------------------------------------------


class CallForm(ProviderForm):
    call_sid: str = Field(alias="CallSid", pattern=CALL_SID.pattern)
    call_status: str = Field("", alias="CallStatus", max_length=32)


class IncomingCall(CallForm):
    """The parameters of Twilio's incoming-call request that we use."""

    from_: str = Field(alias="From", min_length=1, max_length=64)
    to: str = Field(alias="To", min_length=1, max_length=64)
    caller_name: str | None = Field(None, alias="CallerName")


class CallStatusForm(CallForm):
    call_status: str = Field(alias="CallStatus", min_length=1, max_length=32)


class DialEnded(CallForm):
    dial_call_status: str = Field("", alias="DialCallStatus", max_length=32)


class TranscriptionForm(CallForm):
    """Twilio's transcribeCallback request: the text, or a failed status, and the recording."""

    transcription_text: str = Field("", alias="TranscriptionText")
    transcription_status: str = Field("", alias="TranscriptionStatus")
    recording_url: str | None = Field(None, alias="RecordingUrl", max_length=2048)
    from_: str | None = Field(None, alias="From", max_length=64)


def caller_contact(caller: str, name: str | None = None) -> Contact:
    """The caller as a contact: their number is the id, and the phone when it is E.164."""
    return Contact(id=caller, name=name[:256] if name else None, phone=caller if E164.match(caller) else None)


def call_message(workspace_id: str, thread_id: str, caller: str, *, name: str | None = None,
                 metadata: dict[str, Any]) -> InboundMessage:
    """A call as the first message of its conversation: one per call, so a repeated webhook is the same message."""
    return InboundMessage(
        message_id=message_id_for(workspace_id, CHANNEL, thread_id),
        workspace_id=workspace_id, channel=CHANNEL, channel_message_id=thread_id, thread_id=thread_id,
        contact=caller_contact(caller, name), text=f"Incoming call from {caller}",
        metadata={"kind": "call", **metadata},
    )


def normalize_call(call: IncomingCall, workspace_id: str) -> InboundMessage:
    return call_message(workspace_id, call.call_sid, call.from_, name=call.caller_name,
                        metadata={"call_sid": call.call_sid, "to": call.to})


def voicemail_message(workspace_id: str, thread_id: str, caller: str, transcription: str | None,
                      recording_url: str | None, metadata: dict[str, Any]) -> InboundMessage:
    """A voicemail as a message on `voicemail`: its own conversation, keyed by the call."""
    attachments = [Attachment(url=recording_url, content_type="audio/wav")] if recording_url else []
    return InboundMessage(
        message_id=message_id_for(workspace_id, VOICEMAIL, thread_id),
        workspace_id=workspace_id, channel=VOICEMAIL, channel_message_id=thread_id, thread_id=thread_id,
        contact=caller_contact(caller), text=(transcription or "").strip() or "(voicemail, no transcription)",
        attachments=attachments, metadata={"kind": "voicemail", **metadata},
    )


async def close_call(intake: "Intake", workspace_id: str, thread_id: str, reason: str) -> None:
    """Tell the router the call is over (thread.closed): its agent is freed or its wait dropped; 503 if no broker."""
    closed = ThreadClosed(workspace_id=workspace_id, channel=CHANNEL, thread_id=thread_id, reason=reason[:200])
    await intake.publish(closed, events.THREAD_CLOSED, closed.event_id, workspace_id)
    log.info("voice.call_closed", workspace_id=workspace_id, thread_id=thread_id, reason=closed.reason)



async def signed_call_form(request: web.Request) -> tuple["Intake", str, VoiceConfig, dict[str, str]]:
    """The workspace's voice config and the request's form, once Twilio's signature is checked."""
    intake = request.app[context.INTAKE]
    workspace_id = request.match_info["workspace"]
    config: VoiceConfig = intake.channel_config(CHANNEL, workspace_id)
    form = await read_signed_form(request, intake, CHANNEL, config.auth_token)
    return intake, workspace_id, config, form


async def receive_call(request: web.Request) -> web.Response:
    """POST /v1/webhooks/voice/{workspace}: a call to the workspace's number; it waits on hold for an agent."""
    intake, workspace_id, config, form = await signed_call_form(request)
    call = validate_form(IncomingCall, form, "incoming call webhook")
    await intake.publish_inbound(normalize_call(call, workspace_id))
    return twiml_response(hold_twiml(config, callback_url(intake.settings, workspace_id, "/hold")))


async def keep_holding(request: web.Request) -> web.Response:
    """POST .../hold: the hold loop's redirect; silence until an agent is connected."""
    intake, workspace_id, _, form = await signed_call_form(request)
    validate_form(CallForm, form, "call request")
    return twiml_response(twiml(*hold_loop(callback_url(intake.settings, workspace_id, "/hold"))))


async def call_status(request: web.Request) -> web.Response:
    """POST .../status: the call's status callback; a final state ends the call's conversation."""
    intake, workspace_id, _, form = await signed_call_form(request)
    status = validate_form(CallStatusForm, form, "call status callback")
    if status.call_status.lower() in ENDED:
        await close_call(intake, workspace_id, status.call_sid, f"call {status.call_status.lower()}")
    return twiml_response()


async def dial_ended(request: web.Request) -> web.Response:
    """POST .../dialed: the <Dial> to the agent ended; after a talk, hang up; if the agent never
    answered, the caller holds again while the router tries the next agent."""
    intake, workspace_id, config, form = await signed_call_form(request)
    dialed = validate_form(DialEnded, form, "Dial action request")
    outcome = dialed.dial_call_status.lower() or "unknown"
    if dialed.call_status.lower() in ENDED:  # the caller hung up: nothing more to say to them
        await close_call(intake, workspace_id, dialed.call_sid, f"call {dialed.call_status.lower()}")
        return twiml_response(HANGUP_TWIML)
    if outcome in ("completed", "answered"):
        await close_call(intake, workspace_id, dialed.call_sid, "call completed")
        return twiml_response(HANGUP_TWIML)
    # Redirect on no answer: if nobody else can take the call, it waits in its queue (whose max
    # wait may send the caller to voicemail).
    await report_not_answered(intake, workspace_id, dialed.call_sid, request.query.get("agent"), f"agent {outcome}")
    return twiml_response(hold_twiml(config, callback_url(intake.settings, workspace_id, "/hold")))


async def agent_answered(request: web.Request) -> web.Response:
    """POST .../answered: the agent picked up (the Dial noun's url): the router counts the call answered."""
    intake, workspace_id, _, form = await signed_call_form(request)
    validate_form(CallForm, form, "agent answered request")
    agent_id, conversation_id = request.query.get("agent"), request.query.get("conversation")
    if not agent_id or not conversation_id:
        raise http_error(web.HTTPBadRequest, "the URL names no agent or conversation: ?agent=&conversation= are needed")
    # One pick-up per agent and conversation: Twilio's retry of this request is the same event.
    answered = ConversationAnswered(workspace_id=workspace_id, conversation_id=conversation_id, agent_id=agent_id,
                                    event_id=f"answered:{conversation_id}:{agent_id}")
    await intake.publish(answered, events.CONVERSATION_ANSWERED, answered.event_id, workspace_id)
    return twiml_response()  # nothing to play to the agent: the bridge goes ahead


async def report_not_answered(intake: "Intake", workspace_id: str, call_sid: str, agent_id: str | None, reason: str) -> None:
    """Tell the router the agent never picked up (thread.not_answered), so it routes the call again; 503 if no broker."""
    missed = NotAnswered(workspace_id=workspace_id, channel=CHANNEL, thread_id=call_sid, agent_id=agent_id or None,
                         reason=reason[:200])
    await intake.publish(missed, events.THREAD_NOT_ANSWERED, missed.event_id, workspace_id)
    log.info("voice.agent_did_not_answer", workspace_id=workspace_id, thread_id=call_sid, agent_id=agent_id, reason=reason)


def voicemail_for(settings: IntakeSettings, config: VoiceConfig, workspace_id: str, caller: str) -> str:
    # The caller rides in the transcription URL (signed with it), so the voicemail knows who to answer.
    return voicemail_twiml(config, callback_url(settings, workspace_id, "/voicemail/recorded"),
                           callback_url(settings, workspace_id, "/voicemail/transcription", **{"from": caller}))


async def voicemail_recorded(request: web.Request) -> web.Response:
    """POST .../voicemail/recorded: the <Record> action; the caller is done, so is the call."""
    intake, workspace_id, _, form = await signed_call_form(request)
    recorded = validate_form(CallForm, form, "Record action request")
    await close_call(intake, workspace_id, recorded.call_sid, "sent to voicemail")
    return twiml_response(GOODBYE_TWIML)


async def voicemail_transcribed(request: web.Request) -> web.Response:
    """POST .../voicemail/transcription: the voicemail's text (or its failure) becomes a voicemail message."""
    intake, workspace_id, _, form = await signed_call_form(request)
    done = validate_form(TranscriptionForm, form, "transcription callback")
    caller = request.query.get("from") or done.from_
    if not caller:
        raise http_error(web.HTTPBadRequest, "the caller is unknown: neither ?from= nor From is given")
    text = done.transcription_text if done.transcription_status.lower() in ("", "completed") else ""
    await intake.publish_inbound(voicemail_message(workspace_id, done.call_sid, caller, text, done.recording_url,
                                                   {"call_sid": done.call_sid}))
    return twiml_response()


async def reply_status(request: web.Request) -> web.Response:
    """POST .../replies/{channel}/status: what became of an SMS we sent a caller."""
    channel = request.match_info["channel"]
    if channel not in (CHANNEL, VOICEMAIL):
        raise http_error(web.HTTPNotFound, f"no replies are sent on channel {channel!r}")
    intake, workspace_id, _, form = await signed_call_form(request)
    status = delivery_status(validate_form(StatusCallback, form, "status callback"), workspace_id)
    if status is not None:
        await intake.publish_status(status.model_copy(update={"channel": channel}))
    return twiml_response()


# -- replies: SMS to the caller -----------------------------------------------------------------


class CallerSmsSender(SmsSender):
    """Sends agents' text replies on a call or a voicemail to the caller's number as SMS."""

    def __init__(self, intake: "Intake", channel: str) -> None:
        super().__init__(intake)
        self.channel = channel

    async def send(self, message: OutboundMessage) -> Sent:
        config = self.intake.configs.get((CHANNEL, message.workspace_id))
        if config is None:
            raise SendError(f"voice is not configured for workspace {message.workspace_id!r}", retry=False)
        assert isinstance(config, VoiceConfig)
        if config.phone_number is None and config.messaging_service_sid is None:
            raise SendError("replies to callers go by SMS: set phone_number or messaging_service_sid in the voice "
                            "config", retry=False)
        number = message.contact.phone or message.contact.id
        if not E164.match(number):
            raise SendError(f"the caller's number {number!r} cannot take an SMS", retry=False)
        # The thread is the call; the SMS goes to the caller's number.
        form = self.message_form(config, message.model_copy(update={"thread_id": number}))  # type: ignore[arg-type]
        status_path = f"/replies/{self.channel}/status"
        form["StatusCallback"] = callback_url(self.intake.settings, message.workspace_id, status_path)
        answer = await self.client.create(config, "Messages", form)
        return Sent("sent", channel_message_id=answer.get("sid"))


# -- routing events: connect the agent, or voicemail ---------------------------------------------


class RoutedCalls:
    """Acts on routing events for one plugin's calls: connect the assigned agent, or send a caller to voicemail.

    Each plugin (Twilio here, the PBX in telephony.py) binds a queue of its own, so each sees every
    event and acts on the calls it owns, told apart by thread id.
    """

    plugin = CHANNEL

    def __init__(self, intake: "Intake") -> None:
        self.intake = intake
        self.client = TwilioRestClient(intake.http, intake.settings.send_timeout)
        # A redelivered event (its batch failed elsewhere) must not dial the agent again: that would cut the call.
        self.handled: OrderedDict[str, None] = OrderedDict()

    def owns(self, thread_id: str) -> bool:
        return bool(CALL_SID.match(thread_id))

    async def connect(self, config: Any, event: RoutingEvent) -> None:
        """Bridge the caller to the agent; raise SendError if that cannot be done."""
        call_sid = event.details["thread_id"]
        # The agent rides in the action URL, so a "no answer" names who let it ring.
        action_url = callback_url(self.intake.settings, event.workspace_id, "/dialed", agent=event.agent_id or "")
        answered_url = callback_url(self.intake.settings, event.workspace_id, "/answered", agent=event.agent_id or "",
                                    conversation=event.conversation_id or "")
        dial = dial_twiml(config, config.target(event.agent_id or ""), action_url, answered_url)
        await self.client.create(config, f"Calls/{call_sid}", {"Twiml": dial})

    async def voicemail(self, config: Any, event: RoutingEvent) -> None:
        """Send the waiting caller to voicemail; raise SendError if that cannot be done."""
        contact = event.details.get("contact") or {}
        caller = contact.get("phone") or contact.get("id") or ""
        twiml_ = voicemail_for(self.intake.settings, config, event.workspace_id, caller)
        await self.client.create(config, f"Calls/{event.details['thread_id']}", {"Twiml": twiml_})

    async def handle_batch(self, batch: list[RoutingEvent]) -> None:
        await asyncio.gather(*(self.handle(event) for event in batch))

    async def handle(self, event: RoutingEvent) -> None:
        thread_id = str(event.details.get("thread_id", ""))
        if event.event_id in self.handled or event.details.get("channel") != CHANNEL or not self.owns(thread_id):
            return
        config = self.intake.configs.get((self.plugin, event.workspace_id))
        if config is None:
            log.warning("voice.routed_without_config", plugin=self.plugin, workspace_id=event.workspace_id)
            return
        to_voicemail = event.type == events.CONVERSATION_MAX_WAIT and event.details.get("action") == "callback"
        if event.type != events.CONVERSATION_ROUTED and not to_voicemail:
            return
        if to_voicemail:
            act, what = self.voicemail, "could not send the caller to voicemail"
        else:
            act, what = self.connect, "could not connect the agent"
        structlog.contextvars.bind_contextvars(workspace_id=event.workspace_id, conversation_id=event.conversation_id)
        problem = await self.with_retries(lambda: act(config, event))
        self._remember(event.event_id)
        if problem is not None:
            log.warning("voice.call_action_failed", thread_id=thread_id, event_type=event.type, reason=problem)
            # The agent must not stay held by a call we cannot reach (the caller probably hung up).
            await close_call(self.intake, event.workspace_id, thread_id, f"{what}: {problem}")
        elif to_voicemail:
            # No agent may be dialled into a recording: the waiting conversation ends now.
            await close_call(self.intake, event.workspace_id, thread_id, "sent to voicemail")
        else:
            log.info("voice.agent_connected", thread_id=thread_id, agent_id=event.agent_id)

    async def with_retries(self, attempt: Callable[[], Awaitable[None]]) -> str | None:
        """None once `attempt` worked; the last failure's reason after the bounded, backed-off tries.

        Twilio's "not in progress" is retried too: our update can beat our own TwiML answer."""
        settings = self.intake.settings
        backoff = Backoff(settings.send_max_attempts, settings.send_retry_delay, settings.send_max_retry_delay)
        tried = await with_retries(attempt, backoff, lambda error: error.retry or NOT_IN_PROGRESS in error.reason)
        return None if tried.ok else tried.reason

    def _remember(self, event_id: str) -> None:
        self.handled[event_id] = None
        if len(self.handled) > HANDLED_EVENTS_KEPT:
            self.handled.popitem(last=False)


def routed_calls_consumer(handler: type[RoutedCalls]) -> Callable[["Intake"], AbstractAsyncContextManager[None]]:
    """A call plugin's background part: its own queue of call assignments and max waits, consumed while intake runs.

    Declared only when some workspace configures the plugin, so intakes without it bind nothing.
    """

    @asynccontextmanager
    async def consume(intake: "Intake") -> AsyncIterator[None]:
        if not any(plugin == handler.plugin for plugin, _ in intake.configs):
            yield
            return
        broker = intake.broker
        name = broker.topology.plugin_queue(handler.plugin)
        queue = await declare_consumed_queue(broker.channel, broker.topology, name)
        for routing_key in (ROUTED_KEY, events.CONVERSATION_MAX_WAIT):
            await queue.bind(broker.topology.events_exchange, routing_key)
        consumer = BatchConsumer(broker, name, parse_as(RoutingEvent), handler(intake).handle_batch,
                                 key=lambda event: event.conversation_id or event.event_id)
        await consumer.start()
        await consumer.attach(name)
        try:
            yield
        finally:
            await consumer.stop()

    return consume


PLUGIN = ChannelPlugin(
    name=CHANNEL,
    routes=[
        web.post(webhook_path(CHANNEL), receive_call),
        web.post(webhook_path(CHANNEL, "/hold"), keep_holding),
        web.post(webhook_path(CHANNEL, "/status"), call_status),
        web.post(webhook_path(CHANNEL, "/dialed"), dial_ended),
        web.post(webhook_path(CHANNEL, "/answered"), agent_answered),
        web.post(webhook_path(CHANNEL, "/voicemail/recorded"), voicemail_recorded),
        web.post(webhook_path(CHANNEL, "/voicemail/transcription"), voicemail_transcribed),
        web.post(webhook_path(CHANNEL, "/replies/{channel}/status"), reply_status),
    ],
    sender=lambda intake: CallerSmsSender(intake, CHANNEL),
    background=routed_calls_consumer(RoutedCalls),
    config=VoiceConfig,
    operations=[
        signed_form_operation(webhook_path(CHANNEL), "Twilio: a call to the workspace's number; it waits on hold",
                              IncomingCall),
        signed_form_operation(webhook_path(CHANNEL, "/hold"), "Twilio: the hold loop", CallForm),
        signed_form_operation(webhook_path(CHANNEL, "/status"), "Twilio: the call's status; a final one ends it",
                              CallStatusForm),
        signed_form_operation(webhook_path(CHANNEL, "/dialed"), "Twilio: the Dial to an agent ended",
                              DialEnded, parameters=(query_parameter("agent", "The agent that was dialed"),)),
        signed_form_operation(webhook_path(CHANNEL, "/answered"), "Twilio: the agent picked up", CallForm,
                              parameters=(query_parameter("agent", "The agent (400 without it)"),
                                          query_parameter("conversation", "The conversation (400 without it)"))),
        signed_form_operation(webhook_path(CHANNEL, "/voicemail/recorded"), "Twilio: the voicemail is recorded",
                              CallForm),
        signed_form_operation(webhook_path(CHANNEL, "/voicemail/transcription"),
                              "Twilio: the voicemail's transcription", TranscriptionForm,
                              parameters=(query_parameter("from", "The caller (else the form's From)"),)),
        signed_form_operation(webhook_path(CHANNEL, "/replies/{channel}/status"),
                              "Twilio: what became of an SMS sent to a caller", StatusCallback,
                              parameters=(path_parameter("channel", "The reply's channel",
                                                         enum=[CHANNEL, VOICEMAIL]),)),
    ],
)
async def fetch_recording(intake: "Intake", workspace_id: str, attachment: Attachment) -> FetchedMedia | None:
    """A Twilio voicemail's recording (its RecordingUrl, WAV); None for a PBX's recording URL, kept as it is."""
    config = intake.configs.get((CHANNEL, workspace_id))
    url = api_url_of(config, attachment.url) if isinstance(config, VoiceConfig) else None
    if url is None:
        return None
    return await fetch_with_account(intake, config, url)


# Voicemails arrive through the voice routes; this plugin sends their replies (SMS) and fetches their recordings.
VOICEMAIL_PLUGIN = ChannelPlugin(name=VOICEMAIL, sender=lambda intake: CallerSmsSender(intake, VOICEMAIL),
                                 fetch_media=fetch_recording)
