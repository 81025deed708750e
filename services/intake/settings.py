from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, model_validator
from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings

# workspace -> channel -> that channel's credentials (validated by the channel's own model).
ChannelConfigs = dict[str, dict[str, dict[str, Any]]]


class CallbackTarget(BaseModel):
    """Where an external system's workspace receives agent replies, and the HMAC secret to sign them."""

    url: str
    secret: str = Field(min_length=8)


class IntakeSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="INTAKE_", extra="ignore", populate_by_name=True)

    port: int = 8080
    # JSON bodies (the REST API, chat frames); webhooks that carry files use max_attachment_bytes.
    max_body_bytes: int = 64 * 1024
    # Largest file a customer can send (email, web chat upload); larger gets a 413 or is left out.
    max_attachment_bytes: int = 10 * 1024 * 1024
    # The address providers reach intake at (Twilio signs the full URL it called).
    public_url: str = "http://127.0.0.1:8080"
    # Where customers reach the help center (assist's public address, docs/knowledge-base.md): the chat
    # links to `<this>/help/<workspace>`; unset, no link.
    help_center_url: str | None = None
    # Signs web chat session tokens; set it in production, or reloaded chats cannot resume after a restart.
    chat_secret: str = "switchyard-dev-chat-secret"
    # Signs the email CSAT survey links (HMAC-SHA256, with their expiry); set it in production.
    csat_secret: str = "switchyard-dev-csat-secret"
    # Where intake reads a returning web chat customer's history and hands CSAT answers to.
    agents_url: str = "http://127.0.0.1:8082"
    # {"workspace": {"url": "https://...", "secret": "..."}} as JSON in INTAKE_CALLBACKS.
    callbacks: dict[str, CallbackTarget] = Field(default_factory=dict)
    # Channel credentials per workspace, as JSON in INTAKE_CHANNELS or a YAML file in
    # INTAKE_CHANNELS_FILE (same shape: {workspace: {channel: {...}}}); the file is read first.
    channels: ChannelConfigs = Field(default_factory=dict)
    channels_file: Path | None = None
    # How long a signed link to a file an agent sent stays valid (the chat page, WhatsApp/Messenger/MMS fetches).
    file_link_hours: float = Field(24 * 7, gt=0)
    send_max_attempts: int = 6
    send_retry_delay: float = 0.5
    send_max_retry_delay: float = 30.0
    send_timeout: float = 10.0
    # A web chat whose page closed and is not back within this long is left: a wait still on is
    # dropped as abandoned (the page reconnects after a network blip within 15 s).
    webchat_abandon_seconds: float = Field(60, gt=0)
    # How long the web chat's per-workspace settings (the routing configuration's `webchat` section)
    # are kept before intake reads them again: a change shows within this long.
    webchat_settings_seconds: float = Field(30, gt=0)
    # The email channel's SMTP listener; it starts only when some workspace configures email.
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525

    @model_validator(mode="after")
    def _read_channels_file(self) -> "IntakeSettings":
        if self.channels_file is not None:
            from_file = yaml.safe_load(self.channels_file.read_text()) or {}
            for workspace, channels in from_file.items():
                self.channels[workspace] = {**channels, **self.channels.get(workspace, {})}
        return self

    @property
    def body_limit_for_files(self) -> int:
        """The request size a webhook with files may have: the files plus room for the form."""
        return self.max_attachment_bytes + 256 * 1024
