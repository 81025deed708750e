"""What intake's handlers and channel modules share: settings, broker, HTTP client, stores."""

import asyncio
from collections.abc import Sequence
from functools import partial
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, ValidationError
from pymongo.errors import PyMongoError

from services.intake.channels.base import ChannelPlugin, FetchedMedia, MediaFetcher, MediaFetchError, over_limit
from services.intake.channels.webchat import ChatHub, tell_left
from services.intake.settings import IntakeSettings
from shared import events
from shared.attachments import AttachmentStore, attachment_id_for
from shared.broker import Broker
from shared.models import Attachment, DeliveryStatus, InboundMessage, RejectedInput
from shared.web import PayloadTooLarge, http_error

log = structlog.get_logger(__name__)


class IntakeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages_in = Counter("intake_messages_in_total", "Inbound messages published", ["channel"], registry=registry)
        self.messages_out = Counter("intake_messages_out_total", "Replies sent out, by outcome", ["channel", "status"], registry=registry)
        self.publish_errors = Counter("intake_publish_errors_total", "Messages and receipts the broker did not confirm", registry=registry)
        self.csat_answers = Counter("intake_csat_answers_total", "CSAT survey answers handed to the agents service, by channel and verdict (recorded, or the refusal's reason)", ["channel", "outcome"], registry=registry)
        self.rejected = Counter("intake_webhooks_rejected_total", "Webhook calls refused, and malformed items of accepted calls set aside, by channel and reason", ["channel", "reason"], registry=registry)


def validate_channel_configs(settings: IntakeSettings, plugins: list[ChannelPlugin]) -> dict[tuple[str, str], BaseModel]:
    """Every workspace's channel credentials, checked at start: a typo fails fast, not at the first call."""
    models = {plugin.name: plugin.config for plugin in plugins if plugin.config is not None}
    configs: dict[tuple[str, str], BaseModel] = {}
    for workspace_id, channels in settings.channels.items():
        for channel, raw in channels.items():
            if channel not in models:
                raise ValueError(f"workspace {workspace_id!r}: unknown channel {channel!r} (known: {sorted(models)})")
            try:
                configs[(channel, workspace_id)] = models[channel].model_validate(raw)
            except ValidationError as error:
                raise ValueError(f"workspace {workspace_id!r}, channel {channel!r}: {error}") from None
    return configs


def media_fetchers() -> dict[str, MediaFetcher]:
    """channel -> its fetch_media, for the channels whose provider keeps customers' files."""
    # Imported here, not at the top: the channels package imports this module while it loads.
    from services.intake.channels import PLUGINS

    return {plugin.name: plugin.fetch_media for plugin in PLUGINS if plugin.fetch_media is not None}


OCTET_STREAM = "application/octet-stream"


class Intake:
    def __init__(
        self,
        settings: IntakeSettings,
        broker: Broker,
        http: aiohttp.ClientSession,
        metrics: IntakeMetrics,
        attachments: AttachmentStore,
        configs: dict[tuple[str, str], BaseModel],
    ) -> None:
        self.settings = settings
        self.broker = broker
        self.http = http
        self.metrics = metrics
        self.attachments = attachments
        self.configs = configs
        self.chat = ChatHub(settings.webchat_abandon_seconds, partial(tell_left, self), broker)
        self.media_fetchers = media_fetchers()

    async def publish_inbound(self, message: InboundMessage) -> None:
        """Fetch the provider's files it refers to, publish, and wait for the broker's confirm; a JSON 503 if it cannot be had."""
        await self.publish_all([message])

    async def publish_all(self, items: Sequence[InboundMessage | DeliveryStatus | RejectedInput]) -> None:
        """A provider's batch, in order: every message's files fetched at once (so N slow files cost
        one timeout, not N, before the provider gets its answer), then each item published (an item
        that could not be taken to the rejected-input queue, with its reason)."""
        fetching = {i: self.fetch_provider_media(item) for i, item in enumerate(items)
                    if isinstance(item, InboundMessage) and self._holds_files(item)}
        fetched = dict(zip(fetching, await asyncio.gather(*fetching.values()))) if fetching else {}
        for item in (fetched.get(i, item) for i, item in enumerate(items)):
            if isinstance(item, InboundMessage):
                structlog.contextvars.bind_contextvars(workspace_id=item.workspace_id, message_id=item.message_id)
                await self.publish(item, events.MESSAGE_RECEIVED, item.message_id, item.workspace_id)
                self.metrics.messages_in.labels(channel=item.channel).inc()
            elif isinstance(item, RejectedInput):
                await self.publish_rejected(item)
            else:
                await self.publish_status(item)

    async def fetch_provider_media(self, message: InboundMessage) -> InboundMessage:
        """The message with the files its provider keeps fetched and stored, all at once.

        A file that cannot be had (the provider's 4xx/5xx, a timeout, over the size limit) keeps
        its reference and gets `error`, the reason: the message itself always goes on.
        """
        fetch = self.media_fetchers.get(message.channel)
        if fetch is None or not self._holds_files(message):
            return message
        attachments = await asyncio.gather(*(
            self._fetch_attachment(fetch, message, index, attachment) for index, attachment in enumerate(message.attachments)
        ))
        return message.model_copy(update={"attachments": list(attachments)})

    def _holds_files(self, message: InboundMessage) -> bool:
        """A message whose channel fetches files, with a file still at the provider (most messages have none)."""
        return message.channel in self.media_fetchers and any(_held_by_provider(a) for a in message.attachments)

    async def _fetch_attachment(
        self, fetch: MediaFetcher, message: InboundMessage, index: int, attachment: Attachment
    ) -> Attachment:
        if not _held_by_provider(attachment):
            return attachment
        # The same id for the same delivery: a provider's retry finds the file stored and fetches nothing.
        attachment_id = attachment_id_for(message.message_id, index)
        try:
            stored = await self.attachments.find(message.workspace_id, attachment_id)
            if stored is None:
                fetched = await self._fetch_within_limits(fetch, message.workspace_id, attachment)
                if fetched is None:
                    return attachment  # a reference this channel does not fetch (a PBX's recording URL)
                stored = await self.attachments.put(
                    message.workspace_id, attachment_id, fetched.data,
                    filename=attachment.filename or fetched.filename, content_type=_content_type(attachment, fetched),
                )
        except MediaFetchError as error:
            return _not_fetched(message, index, attachment, error.reason)
        except PyMongoError as error:
            return _not_fetched(message, index, attachment, f"could not be stored ({type(error).__name__})")
        except Exception as error:  # a fault of ours must not cost the customer's message either
            log.exception("intake.media_fetch_crashed", channel=message.channel, attachment_index=index)
            return _not_fetched(message, index, attachment, f"could not be fetched ({type(error).__name__})")
        return attachment.model_copy(update={
            "attachment_id": stored.attachment_id, "filename": stored.filename, "content_type": stored.content_type,
            "size": stored.size, "error": None,
        })

    async def _fetch_within_limits(self, fetch: MediaFetcher, workspace_id: str, attachment: Attachment) -> FetchedMedia | None:
        """The channel's fetch, bounded in time and size; every way it can fail as a MediaFetchError."""
        # The provider awaits the webhook's answer meanwhile: bounded like a call to its API.
        timeout = self.settings.send_timeout
        try:
            async with asyncio.timeout(timeout):
                fetched = await fetch(self, workspace_id, attachment)
        except TimeoutError:
            raise MediaFetchError(f"no answer within {timeout:g} s") from None
        except aiohttp.ClientError as error:
            raise MediaFetchError(f"provider unreachable ({type(error).__name__})") from None
        if fetched is not None and len(fetched.data) > self.settings.max_attachment_bytes:
            raise over_limit(self.settings.max_attachment_bytes)
        return fetched

    async def publish_status(self, status: DeliveryStatus) -> None:
        """A provider's delivery or read receipt for one of our messages; 503 if the broker is away."""
        await self.publish(status, events.MESSAGE_STATUS, f"status:{status.names}:{status.status}", status.workspace_id)

    async def publish_rejected(self, rejected: RejectedInput) -> None:
        """Keep an item the provider sent but we cannot take, for an operator; counted and logged."""
        self.metrics.rejected.labels(channel=rejected.channel, reason="invalid item").inc()
        log.warning("intake.item_rejected", channel=rejected.channel, reason=rejected.reason[:300])
        await self.publish(rejected, events.INPUT_REJECTED, rejected.event_id, rejected.workspace_id)

    async def publish(self, model: BaseModel, event: str, message_id: str, workspace_id: str) -> None:
        """Publish under `event` and wait for the broker's confirm; a JSON 503 (counted, logged) if it cannot be had."""
        try:
            await self.broker.publish(model, event, message_type=event, message_id=message_id, workspace_id=workspace_id)
        except Exception as error:
            self.metrics.publish_errors.inc()
            log.warning("intake.publish_failed", routing_key=event, error=repr(error))
            raise http_error(web.HTTPServiceUnavailable, "message broker unavailable, retry later") from None

    def channel_config(self, channel: str, workspace_id: str) -> Any:
        """This workspace's credentials for the channel, or a JSON 404 if it has not connected it."""
        config = self.configs.get((channel, workspace_id))
        if config is None:
            raise http_error(web.HTTPNotFound, f"channel {channel!r} is not configured for workspace {workspace_id!r}")
        return config

    def reject(self, channel: str, reason: str, cls: type[web.HTTPException] = web.HTTPForbidden) -> web.HTTPException:
        """A refused webhook call (bad signature, missing token): counted, logged, a JSON 401/403."""
        self.metrics.rejected.labels(channel=channel, reason=reason).inc()
        log.warning("intake.webhook_rejected", channel=channel, reason=reason)
        return http_error(cls, reason)

    async def store_attachment(
        self, workspace_id: str, message_id: str, index: int, data: bytes, *, filename: str | None, content_type: str
    ) -> Attachment:
        """Keep a customer's file; over the size limit is a JSON 413 naming the file."""
        if len(data) > self.settings.max_attachment_bytes:
            raise http_error(
                PayloadTooLarge,
                f"attachment {filename or index!r} is {len(data)} bytes, over the {self.settings.max_attachment_bytes} byte limit",
            )
        return await self.attachments.put(
            workspace_id, attachment_id_for(message_id, index), data, filename=filename, content_type=content_type
        )

    def workspace_key(self, workspace_id: str) -> str | None:
        return next((key for key, ws in self.settings.api_keys.items() if ws == workspace_id), None)


def _held_by_provider(attachment: Attachment) -> bool:
    return attachment.url is not None and attachment.attachment_id is None


def _content_type(attachment: Attachment, fetched: FetchedMedia) -> str:
    """The webhook's type, unless it was vague ("image/*", octet-stream) and the provider's file server is precise."""
    told = fetched.content_type
    vague = attachment.content_type == OCTET_STREAM or attachment.content_type.endswith("/*")
    if vague and told and told != OCTET_STREAM:
        return told[:128]
    return attachment.content_type


def _not_fetched(message: InboundMessage, index: int, attachment: Attachment, reason: str) -> Attachment:
    log.warning("intake.media_not_fetched", channel=message.channel, attachment_index=index,
                reference=(attachment.url or "")[:200], reason=reason)
    return attachment.model_copy(update={"error": reason[:300]})


INTAKE = web.AppKey("intake", Intake)
