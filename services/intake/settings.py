from pydantic import BaseModel, Field
from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings


class CallbackTarget(BaseModel):
    """Where an external system's workspace receives agent replies, and the HMAC secret to sign them."""

    url: str
    secret: str = Field(min_length=8)


class IntakeSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="INTAKE_", extra="ignore", populate_by_name=True)

    port: int = 8080
    max_body_bytes: int = 64 * 1024
    # Signs web chat session tokens; set it in production, or reloaded chats cannot resume after a restart.
    chat_secret: str = "switchyard-dev-chat-secret"
    # Where intake reads a returning web chat customer's history.
    agents_url: str = "http://127.0.0.1:8082"
    # {"workspace": {"url": "https://...", "secret": "..."}} as JSON in INTAKE_CALLBACKS.
    callbacks: dict[str, CallbackTarget] = Field(default_factory=dict)
    send_max_attempts: int = 6
    send_retry_delay: float = 0.5
    send_max_retry_delay: float = 30.0
    send_timeout: float = 10.0
