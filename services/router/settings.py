from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings


class RouterSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="ROUTER_", extra="ignore", populate_by_name=True)

    port: int = 8081
    batch_size: int = 100
    # Queues, classification rules and capacity media (YAML, see docs/routing.md); unset: one
    # queue anyone can serve. Applied at start when its content changed since it was last applied.
    queues_file: Path | None = None
    # How often due timers (offers, bullseye, max wait, SLA) are fired.
    tick_seconds: float = Field(0.5, gt=0)
    # How often waiting web chat customers are told their place in the queue (when it changed):
    # at most one notice per conversation per this many seconds (services/router/positions.py).
    queue_notice_seconds: float = Field(5, gt=0)
