"""Settings every service shares. Each service subclasses `CommonSettings` with its own env prefix.

Parsed once at start (`Settings()`); nothing else in the code reads `os.environ`.
"""

import re
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from shared.partitions import DEFAULT_PARTITIONS, MAX_PARTITIONS
from shared.topology import Topology


def parse_api_keys(raw: str | dict[str, str]) -> dict[str, str]:
    """Turn `workspace:key,workspace2:key2` into {key: workspace}."""
    if isinstance(raw, dict):
        return raw
    keys: dict[str, str] = {}
    for pair in raw.split(","):
        pair = pair.strip()
        if not pair:
            continue
        workspace, sep, key = pair.partition(":")
        if not sep or not workspace or not key:
            raise ValueError(f"API key entry {pair!r} is not 'workspace:key'")
        keys[key] = workspace
    return keys


# A browser origin: scheme, host, optional port; no path, no wildcard.
ORIGIN = re.compile(r"https?://(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?")


def parse_origins(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """`http://a:1,http://b` as origins; `*` or anything that is not a bare origin is refused."""
    items = value.split(",") if isinstance(value, str) else value
    origins = tuple(dict.fromkeys(item.strip().rstrip("/") for item in items if item.strip()))
    for origin in origins:
        if not ORIGIN.fullmatch(origin):
            raise ValueError(f"CORS origin {origin!r} is not scheme://host[:port] (a wildcard is not allowed)")
    return origins


class CommonSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", populate_by_name=True)

    amqp_url: str = Field(
        "amqp://guest:guest@127.0.0.1:5672/", validation_alias=AliasChoices("amqp_url", "AMQP_URL")
    )
    mongo_url: str = Field(
        "mongodb://127.0.0.1:27017/?directConnection=true",
        validation_alias=AliasChoices("mongo_url", "MONGO_URL"),
    )
    mongo_db: str = Field("switchyard", validation_alias=AliasChoices("mongo_db", "MONGO_DB"))
    # key -> workspace; set as SWITCHYARD_API_KEYS="default:dev-key,acme:acme-key".
    api_keys: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=lambda: {"dev-key": "default"},
        validation_alias=AliasChoices("api_keys", "SWITCHYARD_API_KEYS"),
    )
    # Prefix of every exchange and queue name: lets several stacks (and tests) share one broker.
    namespace: str = Field(
        "switchyard", validation_alias=AliasChoices("namespace", "SWITCHYARD_NAMESPACE")
    )
    queue_type: Literal["quorum", "classic"] = Field(
        "quorum", validation_alias=AliasChoices("queue_type", "SWITCHYARD_QUEUE_TYPE")
    )
    # How many partition queues carry the agents' deliveries (shared/partitions.py): the same in every
    # service of a deployment; the queues do not grow with agents or workspaces.
    partitions: int = Field(DEFAULT_PARTITIONS, ge=1, le=MAX_PARTITIONS,
                            validation_alias=AliasChoices("partitions", "SWITCHYARD_PARTITIONS"))
    # Signs agent tokens (POST /v1/agents/{id}/token): the same secret in every service, a long
    # random one in production (the default is for development only).
    token_secret: str = Field("switchyard-dev-token-secret", min_length=16,
                              validation_alias=AliasChoices("token_secret", "SWITCHYARD_TOKEN_SECRET"))
    log_level: str = Field("info", validation_alias=AliasChoices("log_level", "LOG_LEVEL"))
    # Tracing (shared/tracing.py): OTLP/HTTP collector base URL, e.g. http://127.0.0.1:4318; unset: off.
    otel_exporter_otlp_endpoint: str | None = Field(
        None, validation_alias=AliasChoices("otel_exporter_otlp_endpoint", "OTEL_EXPORTER_OTLP_ENDPOINT"))
    # The service.name of the spans; unset: switchyard-<service>.
    otel_service_name: str | None = Field(None, validation_alias=AliasChoices("otel_service_name", "OTEL_SERVICE_NAME"))
    host: str = "127.0.0.1"
    port: int = 0

    def topology(self) -> Topology:
        return Topology(self.namespace, self.queue_type, self.partitions)

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: str | dict[str, str]) -> dict[str, str]:
        return parse_api_keys(value)
