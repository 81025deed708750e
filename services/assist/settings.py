from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings


class AssistSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="ASSIST_", extra="ignore", populate_by_name=True)

    port: int = 8084
    # A workspace's search index is rebuilt when its articles change; this many workspaces' indexes
    # are kept in memory at once (the least recently searched go first).
    cached_indexes: int = Field(200, ge=1)
    max_articles_per_workspace: int = Field(5000, ge=1)
    # Where customers reach the help center (the bot's answers link to its articles).
    public_url: str = "http://127.0.0.1:8084"
