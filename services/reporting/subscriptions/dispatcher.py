"""The dispatcher: sends due deliveries, a bounded number at a time, in order per (subscription, chain).

Its state is the deliveries collection (store.py); nothing is kept in memory but what is in flight,
so a restart resumes where it stopped (a delivery in flight when the process died is sent again:
at least once, with the same delivery id, for receivers to deduplicate).

Order: only a chain's head (its first pending delivery by event time) is ever sent. The later ones
are held out of the due scan (`next_at` pushed past the head's next try) and released when the head
is delivered or dead-lettered. A failing head holds back its own chain only: other conversations of
the same subscription, and other subscriptions, are sent meanwhile.

Replicas: every reporting replica runs a dispatcher over the same collection. Each head is claimed
with a conditional update (`SubscriptionStore.claim`: still pending, `next_at` as read), so of two
dispatchers that found it due at once one sends it; the limits (`concurrency`, `per_subscription`)
are per replica.
"""

import asyncio
import contextlib
import random
import time
from collections import Counter as Tally
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp
import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from services.reporting.subscriptions.policy import RetryPolicy, retry_after_seconds, verdict
from services.reporting.subscriptions.signing import signature
from services.reporting.subscriptions.store import SubscriptionStore
from services.reporting.subscriptions.urls import (
    ForbiddenAddress,
    PublicOnlyResolver,
    forbidden_cause,
    host_problem,
)
from shared.models import utcnow

log = structlog.get_logger(__name__)
USER_AGENT = "Switchyard-Webhooks/1"
ERROR_TEXT = 300  # characters of a receiver's answer kept with an attempt


@dataclass(frozen=True)
class DispatcherSettings:
    policy: RetryPolicy
    timeout_seconds: float = 10.0
    concurrency: int = 16
    # One receiver may hold at most this many of the slots, so a slow one (each try taking the whole
    # timeout) cannot hold every slot and stall the other subscriptions.
    per_subscription: int = 4
    poll_seconds: float = 1.0
    allow_private: bool = True
    keep_delivered: timedelta = timedelta(days=7)  # then removed: the receiver has them
    keep_dead: timedelta = timedelta(days=30)  # then removed unless re-sent
    prune_seconds: float = 300.0
    stop_grace_seconds: float = 2.0  # sends in flight at a stop may finish within this, then are cut short


@dataclass(frozen=True)
class Outcome:
    """One attempt: the receiver's status (None: no answer), what went wrong, and its Retry-After."""

    status: int | None
    error: str | None = None
    retry_after: float | None = None
    final: bool = False  # refused before sending (a forbidden address): no retry will do better


class DispatcherMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.attempts = Counter("subscription_attempts_total", "Delivery attempts by what came of them "
                                "(delivered, retry, dead)", ["outcome"], registry=registry)
        self.seconds = Histogram("subscription_attempt_seconds", "Time one delivery attempt took", registry=registry,
                                 buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))


class Dispatcher:
    def __init__(self, store: SubscriptionStore, settings: DispatcherSettings, *,
                 registry: CollectorRegistry | None = None,
                 clock: Callable[[], datetime] = utcnow, rand: Callable[[], float] = random.random) -> None:
        self.store = store
        self.metrics = DispatcherMetrics(registry or CollectorRegistry())
        self.settings = settings
        self.clock = clock
        self.rand = rand
        self._wake = asyncio.Event()
        self._in_flight: dict[tuple[str, str], asyncio.Task] = {}  # (subscription, chain) -> its send
        self._loop: asyncio.Task | None = None
        self._session: aiohttp.ClientSession | None = None

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        resolver = None if self.settings.allow_private else PublicOnlyResolver()
        connector = aiohttp.TCPConnector(limit=self.settings.concurrency, resolver=resolver)
        self._session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.settings.timeout_seconds),
            headers={"User-Agent": USER_AGENT})
        self._loop = asyncio.create_task(self._run_forever())

    async def stop(self) -> None:
        """Stop starting sends, let those in flight finish within the grace, cut the rest short: a send cut short
        stays pending (leased) and is sent again after a restart."""
        if self._loop is not None:
            self._loop.cancel()
        if self._in_flight:
            await asyncio.wait(list(self._in_flight.values()), timeout=self.settings.stop_grace_seconds)
        tasks = [t for t in (self._loop, *self._in_flight.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._session is not None:
            await self._session.close()

    def wake(self) -> None:
        """New deliveries were made: look now rather than at the next poll."""
        self._wake.set()

    async def _run_forever(self) -> None:
        pruned = 0.0
        while True:
            try:
                await self.dispatch_due()
                if time.monotonic() - pruned >= self.settings.prune_seconds:
                    now = self.clock()
                    await self.store.prune(now - self.settings.keep_delivered, now - self.settings.keep_dead)
                    pruned = time.monotonic()
            except Exception:  # logged; the state is in the database, the next round tries again
                log.exception("subscriptions.dispatch_failed")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.poll_seconds):
                    await self._wake.wait()
            self._wake.clear()

    # -- choosing what to send -------------------------------------------------------------------

    async def dispatch_due(self) -> int:
        """Start sending the heads of chains that are due, as many as free slots allow; how many started."""
        free = self.settings.concurrency - len(self._in_flight)
        if free <= 0:
            return 0
        now = self.clock()
        candidates: dict[tuple[str, str], dict[str, Any]] = {}
        for delivery in await self.store.due(now, limit=free * 4):
            key = (delivery["subscription_id"], delivery["chain"])
            if key not in self._in_flight and (key not in candidates or delivery["order"] < candidates[key]["order"]):
                candidates[key] = delivery
        busy = Tally(subscription for subscription, _ in self._in_flight)
        started, deferred = 0, []
        for key, candidate in sorted(candidates.items(), key=lambda item: item[1]["next_at"]):
            if started >= free:
                break  # the rest stay due, and are the first seen next time
            if busy[key[0]] >= self.settings.per_subscription:
                deferred.append(candidate["_id"])
                continue
            head = await self.store.head(key[0], key[1], candidate["order"])
            if head is None:
                continue
            if head["next_at"] > now:  # the head backs off: its chain waits with it
                await self.store.hold_behind(head, head["next_at"] + timedelta(seconds=self.settings.poll_seconds))
                continue
            if not await self._start(key, head, now):
                continue  # another replica's dispatcher claimed it first
            busy[key[0]] += 1
            started += 1
        # A busy subscription's due deliveries step back a poll, behind everyone else's: otherwise, being the
        # oldest due, they would fill every scan and the other subscriptions would never be reached.
        await self.store.defer(deferred, now + timedelta(seconds=self.settings.poll_seconds))
        return started

    async def _start(self, key: tuple[str, str], head: dict[str, Any], now: datetime) -> bool:
        """Claim the head and send it; False if another dispatcher claimed it first."""
        lease = now + timedelta(seconds=self.settings.timeout_seconds + 2 * self.settings.poll_seconds)
        if not await self.store.claim(head, lease):
            return False
        await self.store.hold_behind(head, lease)
        task = asyncio.create_task(self._deliver(head))
        self._in_flight[key] = task
        task.add_done_callback(lambda _: self._done(key))
        return True

    def _done(self, key: tuple[str, str]) -> None:
        self._in_flight.pop(key, None)
        self._wake.set()  # a slot is free, and the chain's next may be due

    # -- sending one -----------------------------------------------------------------------------

    async def _deliver(self, delivery: dict[str, Any]) -> None:
        try:
            subscription = (await self.store.by_ids([delivery["subscription_id"]])).get(delivery["subscription_id"])
            if subscription is None:
                return  # deleted meanwhile (its deliveries went with it)
            started = time.perf_counter()
            outcome = await self.send(subscription, delivery)
            took = time.perf_counter() - started
            self.metrics.seconds.observe(took)
            await self._record(delivery, outcome, round(took * 1000))
        except Exception:  # the database failed us: it stays pending (leased) and is sent again, at least once
            log.exception("subscriptions.deliver_failed", delivery_id=delivery["_id"])

    async def send(self, subscription: dict[str, Any], delivery: dict[str, Any]) -> Outcome:
        """One signed POST of the delivery's stored body; what came of it."""
        assert self._session is not None
        if not self.settings.allow_private and (problem := host_problem(subscription["url"])):
            return Outcome(None, f"the URL {problem}", final=True)
        body = delivery["body"].encode()
        timestamp = int(self.clock().timestamp())
        headers = {
            "Content-Type": "application/json", "X-Switchyard-Delivery": delivery["_id"],
            "X-Switchyard-Event": delivery["event"], "X-Switchyard-Timestamp": str(timestamp),
            "X-Switchyard-Signature": signature(subscription["secret"], timestamp, body),
        }
        if "replay_id" in delivery:
            headers["X-Switchyard-Replay"] = delivery["replay_id"]
        try:
            async with self._session.post(subscription["url"], data=body, headers=headers,
                                          allow_redirects=False) as response:
                return await self._outcome(response)
        except TimeoutError:
            return Outcome(None, f"no answer within {self.settings.timeout_seconds:g} s")
        except aiohttp.InvalidURL as error:  # the same URL will never do: final
            return Outcome(None, f"the URL is invalid: {error}"[:ERROR_TEXT], final=True)
        except aiohttp.ClientError as error:
            forbidden = forbidden_cause(error)
            if forbidden is not None:
                return Outcome(None, str(forbidden), final=True)
            return Outcome(None, f"{type(error).__name__}: {error}"[:ERROR_TEXT])
        except ForbiddenAddress as error:
            return Outcome(None, str(error), final=True)
        except Exception as error:  # counted as a failed attempt, so a delivery that always breaks ends dead
            log.exception("subscriptions.send_crashed", delivery_id=delivery["_id"])
            return Outcome(None, f"{type(error).__name__}: {error}"[:ERROR_TEXT])

    async def _outcome(self, response: aiohttp.ClientResponse) -> Outcome:
        """A 2xx as it is; anything else with the start of the receiver's answer, for the dead letter's reason."""
        retry_after = retry_after_seconds(response.headers.get("Retry-After"), self.clock())
        if 200 <= response.status < 300:
            return Outcome(response.status)
        text = (await response.content.read(ERROR_TEXT)).decode("utf-8", "replace").strip()
        if response.status < 400 and "Location" in response.headers:
            text = f"to {response.headers['Location'][:200]}, not followed"
        return Outcome(response.status, f"HTTP {response.status} {text}".strip(), retry_after)

    async def _record(self, delivery: dict[str, Any], outcome: Outcome, took_ms: int) -> None:
        now = self.clock()
        attempts = delivery["attempts"] + 1
        attempt = {"at": now, "status": outcome.status, "error": outcome.error, "took_ms": took_ms}
        judged = "final" if outcome.final else verdict(outcome.status)
        if judged == "delivered":
            self.metrics.attempts.labels(outcome="delivered").inc()
            await self.store.finish(delivery, attempt, {"status": "delivered", "delivered_at": now,
                                                        "last_error": None})
        else:
            reason = self._dead_reason(judged, outcome, attempts, delivery["created_at"], now)
            if reason is None:
                delay = self.settings.policy.delay(attempts, self.rand, outcome.retry_after)
                await self.store.finish(delivery, attempt, {"next_at": now + timedelta(seconds=delay),
                                                            "last_error": outcome.error})
                self.metrics.attempts.labels(outcome="retry").inc()
                log.info("subscriptions.retry", delivery_id=delivery["_id"], subscription_id=delivery["subscription_id"],
                         workspace_id=delivery["workspace_id"], error=outcome.error, delay=round(delay, 3))
                return
            self.metrics.attempts.labels(outcome="dead").inc()
            await self.store.finish(delivery, attempt, {"status": "dead", "dead_at": now, "dead_reason": reason,
                                                        "last_error": outcome.error})
            log.warning("subscriptions.dead_lettered", delivery_id=delivery["_id"],
                        subscription_id=delivery["subscription_id"], workspace_id=delivery["workspace_id"], reason=reason)
        await self.store.release_next(delivery, now)

    def _dead_reason(self, judged: str, outcome: Outcome, attempts: int, created_at: datetime, now: datetime
                     ) -> str | None:
        error = outcome.error or f"HTTP {outcome.status}"
        if judged == "final":
            return f"{error} (not retried)" if outcome.status is None else f"{error} (a {outcome.status} is final)"
        exhausted = self.settings.policy.exhausted(attempts, created_at, now)
        return None if exhausted is None else f"{exhausted}; last: {error}"
