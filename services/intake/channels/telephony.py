"""A generic telephony webhook: a PBX (Asterisk, FreeSWITCH) drives the same call flow as Twilio voice.

In: `POST /v1/webhooks/telephony/<workspace>`, JSON
`{"event": "call.incoming" | "call.ended" | "call.not_answered" | "voicemail", "call_id", "from",
"to", "status", "transcription", "recording_url", "caller_name", "agent_id"}` (`call.not_answered`:
the agent the PBX rang never picked up; the call goes to the next agent while the PBX holds it), signed like the API channel's callbacks:
`X-Switchyard-Timestamp: <unix seconds>` and `X-Switchyard-Signature: sha256=<hex HMAC-SHA256 of
"<timestamp>.<body>">` with the workspace's secret; a timestamp more than `max_skew_seconds` away
is refused (a replay).

Out: on assignment the PBX gets a signed POST to its `connect_url`
`{"action": "connect", "call_id", "agent_id", "target", ...}` and bridges the call itself; on max
wait (action `callback`) `{"action": "voicemail", "call_id", ...}`. Calls are conversations on
the `voice` channel with thread id `pbx:<call_id>`; voicemails are on `voicemail`, as with Twilio.
See docs/channels/voice.md for Asterisk and FreeSWITCH sketches.
"""

import hmac
import json
import time
from typing import Any, Literal

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.intake import context  # the module, not its names: context imports the channels package
from services.intake.channels import api, voice
from services.intake.channels.base import ChannelPlugin, SendError, signature_header, webhook_operation, webhook_path
from shared.models import RoutingEvent
from shared.web import Answer, model_response, read_limited, validate_json, whole_number

PLUGIN_NAME = "telephony"
THREAD_PREFIX = "pbx:"
TIMESTAMP_HEADER = "X-Switchyard-Timestamp"
SIGNATURE_HEADER = "X-Switchyard-Signature"


class TelephonyConfig(BaseModel):
    """A workspace's PBX: the shared secret both directions are signed with, and where assignments go."""

    secret: str = Field(min_length=16)
    connect_url: str = Field(pattern=r"^https?://")
    # agent id -> what the PBX dials for that agent ("PJSIP/ann", "user/ann@example.com"); default: the agent id.
    agents: dict[str, str] = Field(default_factory=dict)
    max_skew_seconds: int = Field(300, ge=1)

    def target(self, agent_id: str) -> str:
        return self.agents.get(agent_id, agent_id)


class TelephonyEvent(BaseModel):
    """One event from the PBX."""

    model_config = ConfigDict(extra="forbid")

    event: Literal["call.incoming", "call.ended", "call.not_answered", "voicemail"]
    call_id: str = Field(pattern=r"^[A-Za-z0-9._:@+-]{1,128}$")
    from_: str | None = Field(None, alias="from", min_length=1, max_length=64)
    to: str | None = Field(None, max_length=64)
    status: str | None = Field(None, max_length=64)
    transcription: str | None = Field(None, max_length=20_000)
    recording_url: str | None = Field(None, max_length=2048)
    caller_name: str | None = Field(None, max_length=256)
    agent_id: str | None = Field(None, min_length=1, max_length=256)  # call.not_answered: who was rung

    @model_validator(mode="after")
    def _caller_when_needed(self) -> "TelephonyEvent":
        if self.event in ("call.incoming", "voicemail") and self.from_ is None:
            raise ValueError(f"{self.event} needs 'from', the caller's number")
        if self.event == "call.not_answered" and self.agent_id is None:
            # Without it a repeated report would take the call from the next agent too.
            raise ValueError("call.not_answered needs 'agent_id', the agent the PBX rang")
        return self

    @property
    def thread_id(self) -> str:
        return THREAD_PREFIX + self.call_id


Refusal = tuple[type[web.HTTPException], str]


def check_signature(config: TelephonyConfig, headers: Any, body: bytes, now: float) -> Refusal | None:
    """None when the request is signed with the workspace's secret and fresh; else the error to answer."""
    timestamp, signature = headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
    if not timestamp or not signature:
        return web.HTTPUnauthorized, f"missing {TIMESTAMP_HEADER} or {SIGNATURE_HEADER}"
    # whole_number, not isdigit() and int(): "²" is a digit to isdigit() and no number to int().
    sent_at = whole_number(timestamp)
    if sent_at is None or abs(now - sent_at) > config.max_skew_seconds:
        return web.HTTPForbidden, f"stale or invalid {TIMESTAMP_HEADER}"
    if not hmac.compare_digest(api.sign(config.secret, timestamp, body).encode(), signature.encode()):
        return web.HTTPForbidden, f"invalid {SIGNATURE_HEADER}"
    return None


def parse_event(body: bytes) -> TelephonyEvent:
    """The body as a TelephonyEvent, or a JSON 400 (not JSON) / 422 (not an event) naming the problem."""
    return validate_json(body, TelephonyEvent, "not a telephony event")


class EventAccepted(BaseModel):
    """What became of an event: a call or voicemail published (`message_id`), a call closed or rerouted."""

    model_config = ConfigDict(extra="forbid")

    thread_id: str
    message_id: str | None = None
    closed: bool | None = None
    rerouted: bool | None = None


async def receive_event(request: web.Request) -> web.Response:
    """POST /v1/webhooks/telephony/{workspace}: a call comes in, ends, or leaves a voicemail."""
    intake = request.app[context.INTAKE]
    workspace_id = request.match_info["workspace"]
    config: TelephonyConfig = intake.channel_config(PLUGIN_NAME, workspace_id)
    body = await read_limited(request, intake.settings.max_body_bytes)
    problem = check_signature(config, request.headers, body, time.time())
    if problem is not None:
        raise intake.reject(PLUGIN_NAME, problem[1], problem[0])
    event = parse_event(body)
    metadata = {"call_id": event.call_id, "pbx": True}
    if event.event == "call.ended":
        await voice.close_call(intake, workspace_id, event.thread_id, f"call {event.status or 'ended'}")
        return model_response(EventAccepted(thread_id=event.thread_id, closed=True), status=202, exclude_none=True)
    if event.event == "call.not_answered":
        await voice.report_not_answered(intake, workspace_id, event.thread_id, event.agent_id,
                                        f"agent {event.status or 'no-answer'}")
        return model_response(EventAccepted(thread_id=event.thread_id, rerouted=True), status=202, exclude_none=True)
    assert event.from_ is not None
    if event.event == "call.incoming":
        message = voice.call_message(workspace_id, event.thread_id, event.from_, name=event.caller_name,
                                     metadata={**metadata, "to": event.to})
        await intake.publish_inbound(message)
    else:
        message = voice.voicemail_message(workspace_id, event.thread_id, event.from_, event.transcription,
                                          event.recording_url, metadata)
        await intake.publish_inbound(message)
        await voice.close_call(intake, workspace_id, event.thread_id, "sent to voicemail")
    return model_response(EventAccepted(thread_id=event.thread_id, message_id=message.message_id), status=202,
                          exclude_none=True)


class PbxCalls(voice.RoutedCalls):
    """Tells the PBX to bridge an assigned call to its agent, or to take a voicemail."""

    plugin = PLUGIN_NAME

    def owns(self, thread_id: str) -> bool:
        return thread_id.startswith(THREAD_PREFIX)

    async def connect(self, config: Any, event: RoutingEvent) -> None:
        agent_id = event.agent_id or ""
        await self.post(config, event, {"action": "connect", "agent_id": agent_id, "target": config.target(agent_id)})

    async def voicemail(self, config: Any, event: RoutingEvent) -> None:
        await self.post(config, event, {"action": "voicemail"})

    async def post(self, config: TelephonyConfig, event: RoutingEvent, fields: dict[str, Any]) -> None:
        """A signed POST to the PBX; 5xx, 408, 429 and network errors may pass, other answers will not."""
        thread_id = event.details["thread_id"]
        body = json.dumps({**fields, "call_id": thread_id.removeprefix(THREAD_PREFIX),
                           "workspace_id": event.workspace_id, "conversation_id": event.conversation_id}).encode()
        timestamp = str(int(time.time()))
        headers = {"Content-Type": "application/json", TIMESTAMP_HEADER: timestamp,
                   SIGNATURE_HEADER: api.sign(config.secret, timestamp, body)}
        timeout = aiohttp.ClientTimeout(total=self.intake.settings.send_timeout)
        try:
            async with self.intake.http.post(config.connect_url, data=body, headers=headers, timeout=timeout) as answer:
                status = answer.status
        except (aiohttp.ClientError, TimeoutError) as error:
            raise SendError(f"PBX unreachable: {error!r}", retry=True) from None
        if status >= 300:
            raise SendError(f"PBX answered HTTP {status}", retry=status >= 500 or status in (408, 429))


PLUGIN = ChannelPlugin(
    name=PLUGIN_NAME,
    routes=[web.post(webhook_path(PLUGIN_NAME), receive_event)],
    operations=[webhook_operation("POST", webhook_path(PLUGIN_NAME), "A PBX: a call comes in, ends, rings out, or "
                                  "leaves a voicemail", (Answer(202, "Published", EventAccepted),), parameters=(
        signature_header(TIMESTAMP_HEADER, "Unix seconds when the PBX signed the call (within max_skew_seconds)"),
        signature_header(SIGNATURE_HEADER, 'sha256=<hex HMAC-SHA256 of "<timestamp>.<body>" with the shared secret>'),
    ), body=TelephonyEvent)],
    background=voice.routed_calls_consumer(PbxCalls),
    config=TelephonyConfig,
)
