"""Twilio: SMS/MMS in through Twilio's messaging webhook, out through the Messages REST API.

Inbound (https://www.twilio.com/docs/messaging/guides/webhook-request): Twilio POSTs a form to
`/v1/webhooks/sms/<workspace>` for each message to the workspace's number and expects TwiML back;
we answer an empty `<Response/>` (the agent answers later, through the REST API). A lone digit
while a CSAT survey is pending is its answer instead (docs/csat.md): answered in the TwiML, not
published.
Status callbacks (https://www.twilio.com/docs/messaging/guides/track-outbound-message-status):
Twilio POSTs `MessageStatus` for our replies to `/v1/webhooks/sms/<workspace>/status`, the
StatusCallback each reply names; they become DeliveryStatus receipts.

Every call carries `X-Twilio-Signature` (https://www.twilio.com/docs/usage/security#validating-requests):
base64(HMAC-SHA1(auth token, full URL + each POST parameter's name and value, sorted by name)).
The full URL is `INTAKE_PUBLIC_URL` + the path and query intake was called at, so INTAKE_PUBLIC_URL
must be exactly the scheme, host and port configured in Twilio.

The signature check and the REST client are kept apart from SMS so that voice can reuse them.
"""

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit
from xml.sax.saxutils import escape as xml_escape

import aiohttp
import structlog
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.intake import (
    context,  # the module, not its names: context imports the channels package
    csat,
)
from services.intake.channels.base import (
    TWIML_ANSWER,
    ChannelPlugin,
    FetchedMedia,
    MediaFetchError,
    SendError,
    Sent,
    download,
    fetch_config,
    form_schema,
    message_id_for,
    signature_header,
    webhook_operation,
    webhook_path,
)
from services.intake.files import file_link
from shared import csat as csat_rules
from shared import quick_replies
from shared.models import Attachment, Contact, DeliveryState, DeliveryStatus, InboundMessage, OutboundMessage
from shared.web import Operation, Parameter, http_error, read_limited

if TYPE_CHECKING:
    from services.intake.context import Intake

CHANNEL = "sms"
SIGNATURE_HEADER = "X-Twilio-Signature"
DEFAULT_BASE_URL = "https://api.twilio.com"
API_HOST = urlsplit(DEFAULT_BASE_URL).netloc  # where Twilio's MediaUrl and RecordingUrl point
API_VERSION = "2010-04-01"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
E164 = re.compile(r"^\+[1-9]\d{1,14}$")

log = structlog.get_logger(__name__)

FormParams = Mapping[str, str] | Iterable[tuple[str, str]]


# -- shared by every Twilio channel ------------------------------------------------------------


class TwilioConfig(BaseModel):
    """A workspace's Twilio account: what signs its webhooks and authenticates its REST calls."""

    account_sid: str = Field(pattern=r"^AC[0-9a-fA-F]{32}$")
    auth_token: str = Field(min_length=1)
    base_url: str = DEFAULT_BASE_URL


def compute_twilio_signature(auth_token: str, url: str, params: FormParams) -> str:
    """Twilio's signature of a request: the URL, then every parameter's name and value by name, HMAC-SHA1."""
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    # Sorted by name; a name sent twice (rare) has its values in order too, as Twilio's own libraries do.
    signed = url + "".join(name + value for name, value in sorted(pairs))
    digest = hmac.new(auth_token.encode(), signed.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_twilio_signature(auth_token: str, url: str, params: FormParams, signature: str) -> bool:
    """Whether `signature` (the X-Twilio-Signature header) is Twilio's for this URL and these parameters."""
    expected = compute_twilio_signature(auth_token, url, params)
    return hmac.compare_digest(expected.encode(), signature.encode())


def public_request_url(intake: "Intake", request: web.Request) -> str:
    """The URL Twilio called, as it signed it: our public base plus the path and query as sent."""
    return intake.settings.public_url.rstrip("/") + request.raw_path


def parse_form(body: bytes) -> list[tuple[str, str]]:
    """A form-encoded body as (name, value) pairs in order, or a JSON 400."""
    try:
        return parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=bool(body))
    except (UnicodeDecodeError, ValueError) as error:
        raise http_error(web.HTTPBadRequest, f"malformed form body: {error}") from None


async def read_signed_form(request: web.Request, intake: "Intake", channel: str, auth_token: str) -> dict[str, str]:
    """The request's form parameters once its Twilio signature is checked; 401/403 before anything else."""
    body = await read_limited(request, intake.settings.max_body_bytes)
    pairs = parse_form(body)
    signature = request.headers.get(SIGNATURE_HEADER)
    if not signature:
        raise intake.reject(channel, "missing X-Twilio-Signature", web.HTTPUnauthorized)
    if not verify_twilio_signature(auth_token, public_request_url(intake, request), pairs, signature):
        raise intake.reject(channel, "invalid X-Twilio-Signature", web.HTTPForbidden)
    return dict(pairs)


def validate_form(model: type["ProviderForm"], form: dict[str, str], what: str) -> Any:
    """The form as `model`, or a JSON 400 naming the missing or invalid parameters."""
    try:
        return model.model_validate(form)
    except ValidationError as error:
        problems = error.errors(include_url=False, include_context=False, include_input=False)
        raise http_error(web.HTTPBadRequest, f"not a Twilio {what}", problems=problems) from None


def twiml_response(twiml: str = EMPTY_TWIML) -> web.Response:
    return web.Response(text=twiml, content_type="text/xml")


class TwilioRestClient:
    """Creates resources under an account (Messages now, Calls for voice), mapping failures to SendError."""

    def __init__(self, http: aiohttp.ClientSession, timeout: float) -> None:
        self.http = http
        self.timeout = aiohttp.ClientTimeout(total=timeout)

    async def create(self, config: TwilioConfig, resource: str,
                     form: dict[str, str] | list[tuple[str, str]]) -> dict[str, Any]:
        """POST a form to /2010-04-01/Accounts/{sid}/{resource}.json; Twilio's JSON answer."""
        url = f"{config.base_url.rstrip('/')}/{API_VERSION}/Accounts/{config.account_sid}/{resource}.json"
        headers = {"Authorization": basic_authorization(config.account_sid, config.auth_token)}
        try:
            async with self.http.post(url, data=form, headers=headers, timeout=self.timeout) as response:
                status = response.status
                try:
                    answer = await response.json(content_type=None)
                except ValueError:
                    answer = None
        except (aiohttp.ClientError, TimeoutError) as error:
            raise SendError(f"Twilio unreachable: {error!r}", retry=True) from None
        if status < 300 and isinstance(answer, dict):
            return answer
        raise _send_error(resource, status, answer)


def basic_authorization(account_sid: str, auth_token: str) -> str:
    """HTTP basic auth with the account SID and auth token, as the REST API expects."""
    return "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()


def _send_error(resource: str, status: int, answer: Any) -> SendError:
    """Twilio's error document as a SendError: 429 and 5xx may pass; other 4xx (bad number, auth) will not."""
    detail = f"HTTP {status}"
    if isinstance(answer, dict) and answer.get("code"):
        detail = f"HTTP {status}, error {answer['code']}: {answer.get('message', '')}".rstrip(": ")
    retry = status == 429 or status >= 500
    return SendError(f"Twilio {resource} failed ({detail})", retry=retry)


def api_url_of(config: TwilioConfig, reference: str | None) -> str | None:
    """Where to GET a MediaUrl or RecordingUrl: on the account's API (`base_url`); None if it is not Twilio's.

    Twilio's URLs name its public API host; they are fetched from `base_url` with the same path and
    query, so a workspace whose API is elsewhere (a regional edge, a test's stand-in) gets them from
    there, and the account's credentials are sent to no other host.
    """
    if not reference:
        return None
    url, base = urlsplit(reference), urlsplit(config.base_url)
    if (url.scheme, url.netloc) == (base.scheme, base.netloc):
        return reference
    if (url.scheme, url.netloc) == ("https", API_HOST):
        return urlunsplit((base.scheme, base.netloc, base.path.rstrip("/") + url.path, url.query, ""))
    return None


async def fetch_with_account(intake: "Intake", config: TwilioConfig, url: str) -> FetchedMedia:
    """A file on the account's API, with HTTP basic auth (needed when the account protects its media)."""
    headers = {"Authorization": basic_authorization(config.account_sid, config.auth_token)}
    return await download(intake.http, url, intake.settings.max_attachment_bytes, headers=headers)


# -- SMS ---------------------------------------------------------------------------------------


class SmsConfig(TwilioConfig):
    """The account plus what replies are sent from: the workspace's number or a Messaging Service."""

    phone_number: str | None = Field(None, pattern=E164.pattern)
    messaging_service_sid: str | None = Field(None, pattern=r"^MG[0-9a-fA-F]{32}$")

    @model_validator(mode="after")
    def _has_a_sender(self) -> "SmsConfig":
        if self.phone_number is None and self.messaging_service_sid is None:
            raise ValueError("set phone_number or messaging_service_sid: replies need a sender")
        return self


class ProviderForm(BaseModel):
    # Twilio adds parameters over time (and signs them all): unknown ones are kept, not refused.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class IncomingSms(ProviderForm):
    """The parameters of Twilio's incoming message webhook that we use."""

    message_sid: str = Field(alias="MessageSid", min_length=1, max_length=64)
    from_: str = Field(alias="From", min_length=1, max_length=64)
    to: str = Field(alias="To", min_length=1, max_length=64)
    body: str = Field("", alias="Body")
    num_media: int = Field(0, alias="NumMedia", ge=0, le=10)
    profile_name: str | None = Field(None, alias="ProfileName")


class StatusCallback(ProviderForm):
    """Twilio's status callback for one of our messages."""

    message_sid: str = Field(alias="MessageSid", min_length=1, max_length=64)
    message_status: str = Field(alias="MessageStatus", min_length=1)
    error_code: str | None = Field(None, alias="ErrorCode")
    error_message: str | None = Field(None, alias="ErrorMessage")


# Twilio's message states as ours; the others (accepted, scheduled, queued, sending, receiving,
# received) are steps before "sent", or concern inbound messages: acknowledged, not published.
STATUS_MAP: dict[str, DeliveryState] = {
    "sent": "sent",
    "delivered": "delivered",
    "read": "read",
    "undelivered": "failed",
    "failed": "failed",
    "canceled": "failed",
}


# Twilio parameters worth keeping with the message, and their metadata keys.
KEPT_PARAMETERS = {"NumSegments": "num_segments", "FromCountry": "from_country", "MessagingServiceSid": "messaging_service_sid"}


def normalize_sms(sms: IncomingSms, form: Mapping[str, str], workspace_id: str) -> InboundMessage:
    """An incoming SMS/MMS as one inbound message; its media referenced by URL (fetched before publishing)."""
    attachments = media_attachments(sms.num_media, form)
    text = sms.body or " ".join(f"[{a.content_type}]" for a in attachments) or "[empty message]"
    metadata: dict[str, Any] = {"to": sms.to}
    for name, key in KEPT_PARAMETERS.items():
        if form.get(name):
            metadata[key] = form[name]
    return InboundMessage(
        message_id=message_id_for(workspace_id, CHANNEL, sms.message_sid),
        workspace_id=workspace_id,
        channel=CHANNEL,
        channel_message_id=sms.message_sid,
        thread_id=sms.from_,
        contact=Contact(id=sms.from_, name=sms.profile_name, phone=sms.from_ if E164.match(sms.from_) else None),
        text=text,
        attachments=attachments,
        metadata=metadata,
    )


def media_attachments(count: int, form: Mapping[str, str]) -> list[Attachment]:
    """MMS media: MediaUrl{N} and MediaContentType{N} for N below NumMedia (a 400 if one is missing)."""
    attachments = []
    for index in range(count):
        url = form.get(f"MediaUrl{index}")
        if not url:
            raise http_error(web.HTTPBadRequest, f"NumMedia is {count} but MediaUrl{index} is missing")
        content_type = form.get(f"MediaContentType{index}") or "application/octet-stream"
        attachments.append(Attachment(url=url, content_type=content_type))
    return attachments


def delivery_status(callback: StatusCallback, workspace_id: str) -> DeliveryStatus | None:
    """A status callback as a receipt for our message; None for states we do not record."""
    state = STATUS_MAP.get(callback.message_status.lower())
    if state is None:
        return None
    reason = None
    if state == "failed":
        reason = f"Twilio {callback.message_status.lower()}"
        if callback.error_code:
            reason += f", error {callback.error_code}"
        if callback.error_message:
            reason += f": {callback.error_message}"
    return DeliveryStatus(workspace_id=workspace_id, channel=CHANNEL, channel_message_id=callback.message_sid,
                          status=state, reason=reason)


async def receive_sms(request: web.Request) -> web.Response:
    """POST /v1/webhooks/sms/{workspace}: a customer's SMS or MMS to the workspace's number."""
    intake = request.app[context.INTAKE]
    workspace_id = request.match_info["workspace"]
    config: SmsConfig = intake.channel_config(CHANNEL, workspace_id)
    form = await read_signed_form(request, intake, CHANNEL, config.auth_token)
    sms = validate_form(IncomingSms, form, "incoming message webhook")
    answered = await survey_answer(intake, workspace_id, sms)
    if answered is not None:
        return answered
    await intake.publish_inbound(normalize_sms(sms, form, workspace_id))
    return twiml_response()


async def survey_answer(intake: "Intake", workspace_id: str, sms: IncomingSms) -> web.Response | None:
    """A lone digit while a survey is pending on this number is its answer: kept or refused, the
    customer is told in the TwiML answer, and it is not routed (nothing opens or reopens). None
    when it is no answer (not a lone digit, no survey pending, or the survey closed: a late digit
    is the customer writing again)."""
    digit = csat_rules.lone_digit(sms.body) if sms.num_media == 0 else None
    if digit is None:
        return None
    outcome = await csat.submit(intake, workspace_id, channel=CHANNEL, thread_id=sms.from_, score=digit,
                                answer_ref=sms.message_sid)  # Twilio's retry of it finds the survey it answered
    if outcome.reason in ("unknown_survey", "late"):
        return None
    return twiml_response(twiml_message(outcome.polite_text()))


def twiml_message(text: str) -> str:
    """TwiML that sends one SMS back to the sender."""
    return f'<?xml version="1.0" encoding="UTF-8"?><Response><Message>{xml_escape(text)}</Message></Response>'


async def receive_status(request: web.Request) -> web.Response:
    """POST /v1/webhooks/sms/{workspace}/status: what became of one of our replies."""
    intake = request.app[context.INTAKE]
    workspace_id = request.match_info["workspace"]
    config: SmsConfig = intake.channel_config(CHANNEL, workspace_id)
    form = await read_signed_form(request, intake, CHANNEL, config.auth_token)
    callback = validate_form(StatusCallback, form, "status callback")
    status = delivery_status(callback, workspace_id)
    if status is None:
        log.debug("sms.status_not_recorded", message_sid=callback.message_sid, status=callback.message_status)
    else:
        await intake.publish_status(status)
    return twiml_response()


def status_callback_url(public_url: str, workspace_id: str) -> str:
    """Where Twilio reports a reply's delivery: the status route of the reply's workspace."""
    path = webhook_path(CHANNEL, "/status").format(workspace=quote(workspace_id, safe=""))
    return public_url.rstrip("/") + path


class SmsSender:
    """Sends agents' replies as SMS through the Messages API."""

    channel = CHANNEL

    def __init__(self, intake: "Intake") -> None:
        self.intake = intake
        self.client = TwilioRestClient(intake.http, intake.settings.send_timeout)

    async def send(self, message: OutboundMessage) -> Sent:
        config = self.intake.configs.get((CHANNEL, message.workspace_id))
        if config is None:
            raise SendError(f"sms is not configured for workspace {message.workspace_id!r}", retry=False)
        assert isinstance(config, SmsConfig)
        form: dict[str, str] | list[tuple[str, str]] = self.message_form(config, message)
        if message.attachments:
            # MMS: each file a MediaUrl (up to 10, repeated) Twilio fetches from a signed link on our public URL.
            # https://www.twilio.com/docs/messaging/api/message-resource#create-a-message-resource
            form = [*form.items(), *(("MediaUrl", file_link(self.intake.settings, message.workspace_id, a.attachment_id,
                                                            absolute=True))
                                     for a in message.attachments if a.attachment_id)]
        answer = await self.client.create(config, "Messages", form)
        return Sent("sent", channel_message_id=answer.get("sid"))

    def message_form(self, config: SmsConfig, message: OutboundMessage) -> dict[str, str]:
        form = {
            # The conversation's thread is the customer's number (the From of their messages).
            "To": message.thread_id,
            "Body": sms_text(message),
            "StatusCallback": status_callback_url(self.intake.settings.public_url, message.workspace_id),
        }
        if config.messaging_service_sid is not None:
            form["MessagingServiceSid"] = config.messaging_service_sid
        else:
            form["From"] = config.phone_number or ""
        return form


def sms_text(message: OutboundMessage) -> str:
    """A reply as it is, its quick replies listed as numbered choices; a survey with how to answer it
    (no buttons in SMS: a digit back, read by the survey here, by the bot for quick replies)."""
    if message.survey is None:
        return quick_replies.with_choices(message)
    how = csat_rules.SMS_INSTRUCTIONS.get(message.survey.language, csat_rules.SMS_INSTRUCTIONS["en"])
    return f"{message.text} {how}"


async def fetch_media(intake: "Intake", workspace_id: str, attachment: Attachment) -> FetchedMedia:
    """An MMS medium: its MediaUrl, fetched from the account's API (Twilio redirects to its CDN)."""
    config = fetch_config(intake, CHANNEL, workspace_id, SmsConfig)
    url = api_url_of(config, attachment.url)
    if url is None:
        raise MediaFetchError("not a Twilio media URL")
    return await fetch_with_account(intake, config, url)


SIGNATURE = signature_header(SIGNATURE_HEADER, "base64 HMAC-SHA1 of the URL and the sorted parameters, "
                                                "keyed with the account's auth token")


def signed_form_operation(path: str, summary: str, form: type[BaseModel], *,
                          parameters: tuple[Parameter, ...] = ()) -> Operation:
    """A Twilio webhook: a signed form in, TwiML out."""
    return webhook_operation("POST", path, summary, (TWIML_ANSWER,), parameters=(SIGNATURE, *parameters),
                             content={"application/x-www-form-urlencoded": form_schema(form)})


SMS_PLUGIN = ChannelPlugin(
    name=CHANNEL,
    routes=[
        web.post(webhook_path(CHANNEL), receive_sms),
        web.post(webhook_path(CHANNEL, "/status"), receive_status),
    ],
    operations=[
        signed_form_operation(webhook_path(CHANNEL), "Twilio: a customer's SMS or MMS", IncomingSms),
        signed_form_operation(webhook_path(CHANNEL, "/status"), "Twilio: what became of a reply", StatusCallback),
    ],
    sender=SmsSender,
    config=SmsConfig,
    fetch_media=fetch_media,
)
PLUGIN = SMS_PLUGIN
