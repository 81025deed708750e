"""Event subscriptions: signed, retried, ordered, replayable webhooks out to external systems (docs/events.md).

Wiring into the reporting service is one call, `add_subscriptions(app, settings, store)`: the routes,
the store's hook that turns newly recorded events into deliveries before the batch is acked, and the
dispatcher, started and stopped with the app.
"""

from collections.abc import AsyncIterator
from datetime import timedelta

from aiohttp import web
from prometheus_client import CollectorRegistry

from services.reporting.model import ReportEvent
from services.reporting.settings import ReportingSettings
from services.reporting.store import ReportStore
from services.reporting.subscriptions.api import (
    DISPATCHER,
    LIMITS,
    SUBSCRIPTION_OPERATIONS,
    SUBSCRIPTION_STORE,
    ApiLimits,
    add_subscription_routes,
)
from services.reporting.subscriptions.dispatcher import Dispatcher, DispatcherSettings
from services.reporting.subscriptions.policy import RetryPolicy
from services.reporting.subscriptions.store import SubscriptionStore
from shared.models import utcnow

__all__ = ["SUBSCRIPTION_OPERATIONS", "add_subscriptions", "dispatcher_settings"]


def dispatcher_settings(settings: ReportingSettings) -> DispatcherSettings:
    policy = RetryPolicy(base_seconds=settings.subscriptions_backoff_seconds,
                         cap_seconds=settings.subscriptions_backoff_cap_seconds,
                         max_attempts=settings.subscriptions_max_attempts,
                         max_age=timedelta(seconds=settings.subscriptions_max_age_seconds))
    return DispatcherSettings(policy, timeout_seconds=settings.subscriptions_timeout_seconds,
                              concurrency=settings.subscriptions_concurrency,
                              per_subscription=settings.subscriptions_concurrency_per_subscription,
                              poll_seconds=settings.subscriptions_poll_seconds,
                              allow_private=settings.subscriptions_allow_private,
                              keep_delivered=timedelta(days=settings.subscriptions_keep_delivered_days),
                              keep_dead=timedelta(days=settings.subscriptions_keep_dead_days))


def add_subscriptions(app: web.Application, settings: ReportingSettings, store: ReportStore,
                      registry: CollectorRegistry | None = None) -> None:
    subscriptions = SubscriptionStore(store.db)
    dispatcher = Dispatcher(subscriptions, dispatcher_settings(settings), registry=registry)
    app[SUBSCRIPTION_STORE] = subscriptions
    app[DISPATCHER] = dispatcher
    app[LIMITS] = ApiLimits(settings.subscriptions_allow_private, settings.subscriptions_per_workspace,
                            settings.subscriptions_replay_max_events)

    settle = timedelta(seconds=settings.subscriptions_settle_seconds)

    async def before_insert(events: list[ReportEvent]) -> None:
        if await subscriptions.add_deliveries(events, utcnow(), settle) and not settle:
            dispatcher.wake()

    store.before_insert = before_insert
    add_subscription_routes(app)

    async def running(_: web.Application) -> AsyncIterator[None]:
        await subscriptions.ensure_indexes()
        await dispatcher.start()
        yield
        await dispatcher.stop()

    app.cleanup_ctx.append(running)
