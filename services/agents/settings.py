from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from shared.settings import CommonSettings, parse_origins

DEFAULT_ASSIST_URL = "http://127.0.0.1:8084"


class AgentsSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTS_", extra="ignore", populate_by_name=True)

    port: int = 8082
    batch_size: int = 100
    max_reply_chars: int = 4096
    # Largest file an agent can send with a reply (POST /v1/conversations/{id}/attachments): a 413 beyond.
    max_attachment_bytes: int = Field(10 * 1024 * 1024, gt=0)
    # An agent whose last desk has been disconnected this long is set offline.
    presence_grace_seconds: float = Field(30, ge=0)
    # How long an agent token (POST /v1/agents/{id}/token) is accepted.
    agent_token_hours: float = Field(12, gt=0, le=24 * 30)
    # Origins whose pages may call this API from a browser (CORS), comma-separated, each
    # `scheme://host[:port]`: the supervisor page on reporting's origin. Empty: none (no CORS).
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # Where the desk's browser reaches the assist service (suggested articles: GET /v1/kb/search with the
    # agent's token); assist must allow the desk's origin (ASSIST_CORS_ORIGINS).
    assist_url: str = DEFAULT_ASSIST_URL

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
        return parse_origins(value)

