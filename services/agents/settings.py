from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings


class AgentsSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="AGENTS_", extra="ignore", populate_by_name=True)

    port: int = 8082
    batch_size: int = 100
    max_reply_chars: int = 4096
