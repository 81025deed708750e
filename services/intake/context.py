"""What intake's handlers and channel modules share: settings, broker, HTTP client, stores."""

from typing import Any

import aiohttp
import structlog
from aiohttp import web
from prometheus_client import CollectorRegistry, Counter
from pydantic import BaseModel, ValidationError

from services.intake.channels.base import ChannelPlugin
from services.intake.channels.webchat import ChatHub
from services.intake.settings import IntakeSettings
from shared import events
from shared.attachments import AttachmentStore, attachment_id_for
from shared.broker import Broker
from shared.models import Attachment, DeliveryStatus, InboundMessage
from shared.web import PayloadTooLarge, http_error

log = structlog.get_logger(__name__)


class IntakeMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages_in = Counter("intake_messages_in_total", "Inbound messages published", ["channel"], registry=registry)
        self.messages_out = Counter("intake_messages_out_total", "Replies sent out, by outcome", ["channel", "status"], registry=registry)
        self.publish_errors = Counter("intake_publish_errors_total", "Messages and receipts the broker did not confirm", registry=registry)
        self.rejected = Counter("intake_webhooks_rejected_total", "Webhook calls refused, by channel and reason", ["channel", "reason"], registry=registry)


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
        self.chat = ChatHub()

    async def publish_inbound(self, message: InboundMessage) -> None:
        """Publish and wait for the broker's confirm; a JSON 503 if it cannot be had."""
        structlog.contextvars.bind_contextvars(workspace_id=message.workspace_id, message_id=message.message_id)
        await self._publish(message, events.MESSAGE_RECEIVED, message.message_id, message.workspace_id)
        self.metrics.messages_in.labels(channel=message.channel).inc()

    async def publish_status(self, status: DeliveryStatus) -> None:
        """A provider's delivery or read receipt for one of our messages; 503 if the broker is away."""
        key = status.message_id or f"{status.channel}:{status.channel_message_id}"
        await self._publish(status, events.MESSAGE_STATUS, f"status:{key}:{status.status}", status.workspace_id)

    async def _publish(self, model: BaseModel, event: str, message_id: str, workspace_id: str) -> None:
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


INTAKE = web.AppKey("intake", Intake)
