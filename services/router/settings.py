from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings


class RouterSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="ROUTER_", extra="ignore", populate_by_name=True)

    port: int = 8081
    batch_size: int = 100
