from pydantic import AliasChoices, Field
from pydantic_settings import SettingsConfigDict

from shared.settings import CommonSettings


class ReportingSettings(CommonSettings):
    model_config = SettingsConfigDict(env_prefix="REPORTING_", extra="ignore", populate_by_name=True)

    port: int = 8083
    # Reporting's collections may live in a database server of their own (the embedded default
    # gives reporting its own SecantusDB: its recomputations must not hold the routing path's
    # database); REPORTING_MONGO_URL, else MONGO_URL.
    mongo_url: str = Field("mongodb://127.0.0.1:27017/?directConnection=true",
                           validation_alias=AliasChoices("REPORTING_MONGO_URL", "mongo_url", "MONGO_URL"))
    # Where the router keeps `routing_config` (business hours per queue): MONGO_URL.
    config_mongo_url: str | None = Field(None, validation_alias=AliasChoices("config_mongo_url", "MONGO_URL"))
    batch_size: int = Field(200, ge=1)
    # How often online agents' time is carried forward into the buckets that had no event of theirs.
    extend_seconds: float = Field(60, gt=0)
    # How often the buckets that events changed are recomputed: reports lag by at most this much,
    # and a bucket of thousands of conversations is recomputed once a period, not once per batch.
    rollup_seconds: float = Field(2, gt=0)
    # The timers' lease (services/reporting/lease.py): after the active replica dies, its successor's
    # rounds start within this; a round must take less (it is renewed at every round).
    lease_seconds: float = Field(30, gt=0)
    # The longest range one report may cover (a summary reads one stored rollup per 15 minutes of it).
    max_range_days: int = Field(366, ge=1)
    # How often a live screen (GET /v1/reports/live/ws) gets the view again: at most once a second.
    live_seconds: float = Field(1.0, ge=1.0)
    # Where a browser reaches the agents service (the supervisor page's status changes and
    # transfers go there): served to the page by GET /supervisor/config.json. The agents service
    # must allow this page's origin (AGENTS_CORS_ORIGINS).
    agents_url: str = "http://127.0.0.1:8082"

    # Event subscriptions (webhooks out, docs/events.md). A delivery is tried until it is delivered,
    # `max_attempts` tries were made or it is `max_age_seconds` old, waiting between tries an
    # exponential `backoff_seconds` * 2^(n-1), capped, with jitter (and at least a Retry-After).
    subscriptions_timeout_seconds: float = Field(10, gt=0, le=300)
    subscriptions_max_attempts: int = Field(15, ge=1, le=1000)
    subscriptions_max_age_seconds: float = Field(86400, gt=0)
    subscriptions_backoff_seconds: float = Field(1, gt=0)
    subscriptions_backoff_cap_seconds: float = Field(3600, gt=0)
    subscriptions_concurrency: int = Field(16, ge=1, le=1000)  # deliveries in flight at once, over all receivers
    subscriptions_concurrency_per_subscription: int = Field(4, ge=1, le=1000)  # so one slow receiver holds few
    subscriptions_poll_seconds: float = Field(1, gt=0)  # how often due retries are looked for
    # New deliveries wait this long, so that a conversation's events from different services, which
    # reach reporting a moment apart, are sent in the order they happened (docs/events.md, Order).
    subscriptions_settle_seconds: float = Field(1, ge=0, le=60)
    # Receivers on private, loopback and link-local addresses (SSRF: docs/events.md). Allowed by
    # default for development (receivers on 127.0.0.1); set false in production.
    subscriptions_allow_private: bool = True
    subscriptions_per_workspace: int = Field(50, ge=1)
    subscriptions_replay_max_events: int = Field(10000, ge=1)  # stored events one replay request re-sends at most
    subscriptions_keep_delivered_days: float = Field(7, gt=0)  # delivered deliveries are then removed
    subscriptions_keep_dead_days: float = Field(30, gt=0)  # dead letters not re-sent are then removed
