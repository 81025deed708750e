from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from shared.settings import CommonSettings, parse_origins


class AssistSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="ASSIST_", extra="ignore", populate_by_name=True)

    port: int = 8084
    # A workspace's search index is rebuilt when its articles change; this many workspaces' indexes
    # are kept in memory at once (the least recently searched go first).
    cached_indexes: int = Field(200, ge=1)
    max_articles_per_workspace: int = Field(5000, ge=1)
    # Where customers reach the help center (the bot's answers link to its articles).
    public_url: str = "http://127.0.0.1:8084"
    # Surge detection (docs/incidents.md): incidents open only once this many messages were read
    # (a baseline to compare with); how often the active replica looks for incidents gone quiet.
    surge_warmup: int = Field(1000, ge=0)
    surge_min_conversations: int = Field(4, ge=2)
    surge_tick_seconds: float = Field(15, gt=0)
    # Origins whose pages may search the knowledge base from a browser (CORS on the desk's calls only:
    # /v1/kb/search, /v1/kb/help), comma-separated `scheme://host[:port]`: the desk on the agents
    # service's origin. Empty: none (no CORS).
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _parse_origins(cls, value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
        return parse_origins(value)
