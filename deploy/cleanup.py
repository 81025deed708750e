"""Remove what Switchyard namespaces left on the broker: `python -m deploy.cleanup` (`make clean-broker`).

A stack that is killed (an interrupted test run, `make run` killed -9) leaves its durable queues
and exchanges behind, and every quorum queue costs the broker memory and file descriptors. Every
name of a namespace starts with `<namespace>.`, so the broker's own list filtered by that prefix
finds all of them: agent queues, dead-letter and retry queues, signal and plugin queues, and names
a newer version adds. The list comes from the management HTTP API, else from `rabbitmqctl` (the
local default node), else from the names this code knows (Topology). Deletion goes over AMQP.

    python -m deploy.cleanup                        # list namespaces that have queues or exchanges
    python -m deploy.cleanup --namespace NS [...]   # delete NS's queues and exchanges
    python -m deploy.cleanup --tests                # every test namespace (t + 12 hex digits)

A namespace with a consumer on any of its queues (or an exclusive queue) is in use, a stack is
running on it, and it is kept unless --force. Nothing outside the named namespaces is touched.
"""

import argparse
import asyncio
import base64
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlparse

import aio_pika
import aiohttp
import aiormq.exceptions
from pydantic import AliasChoices, Field

from services.intake.channels import PLUGINS
from shared.amqp_hosts import connect_to_any, first_broker_url
from shared.settings import CommonSettings
from shared.topology import RELAY_SERVICES, Topology

# The namespaces tests/conftest.py makes: "t" and 12 hex digits.
TEST_NAMESPACE = re.compile(r"t[0-9a-f]{12}")
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
# rabbitmqctl speaks to the machine's default node; only trust its list for the default listener.
DEFAULT_AMQP_PORT = 5672
MANAGEMENT_PORT = 15672


class CleanupSettings(CommonSettings):
    management_url: str | None = Field(
        None, validation_alias=AliasChoices("management_url", "SWITCHYARD_MANAGEMENT_URL")
    )


class SourceUnavailable(Exception):
    """A way of listing the broker's queues did not answer (the reason is the message)."""


@dataclass(frozen=True)
class Broker:
    """Where to list (management API, rabbitmqctl) and where to delete (AMQP)."""

    amqp_url: str
    management_url: str

    @classmethod
    def from_urls(cls, amqp_url: str, management_url: str | None = None) -> "Broker":
        """The management API named, else the default port beside a broker on the default AMQP port.

        A node on other ports (CI's own, a test's) gets no guessed management URL: the default
        one would be another node's, and its list would not be this broker's. An AMQP_URL naming
        a cluster's nodes is read by its first node (any node lists and deletes the cluster's queues)."""
        url = urlparse(first_broker_url(amqp_url))
        host = url.hostname or "127.0.0.1"
        netloc = f"[{host}]" if ":" in host else host
        management_url = management_url or CleanupSettings().management_url
        if management_url is None and (url.port or DEFAULT_AMQP_PORT) == DEFAULT_AMQP_PORT:
            management_url = f"http://{netloc}:{MANAGEMENT_PORT}"
        return cls(amqp_url, (management_url or "").rstrip("/"))

    @property
    def vhost(self) -> str:
        path = urlparse(first_broker_url(self.amqp_url)).path
        return unquote(path[1:]) if len(path) > 1 else "/"

    @property
    def authorization(self) -> dict[str, str]:
        """HTTP basic auth with the AMQP URL's credentials (aiohttp.BasicAuth is deprecated)."""
        url = urlparse(first_broker_url(self.amqp_url))
        pair = f"{unquote(url.username or 'guest')}:{unquote(url.password or 'guest')}"
        return {"Authorization": f"Basic {base64.b64encode(pair.encode()).decode()}"}

    @property
    def is_local_default_node(self) -> bool:
        url = urlparse(first_broker_url(self.amqp_url))
        return (url.hostname or "127.0.0.1") in LOCAL_HOSTS and (url.port or DEFAULT_AMQP_PORT) == DEFAULT_AMQP_PORT


@dataclass(frozen=True)
class Queue:
    name: str
    messages: int = 0
    consumers: int = 0  # as listed, for people: removal asks the broker again


@dataclass(frozen=True)
class Listing:
    """The broker's queues and exchanges, and how they were listed."""

    source: str
    queues: tuple[Queue, ...]
    exchanges: tuple[str, ...]

    def of(self, namespace: str) -> "Listing":
        return Listing(
            self.source,
            tuple(q for q in self.queues if in_namespace(q.name, namespace)),
            tuple(e for e in self.exchanges if in_namespace(e, namespace)),
        )

    def namespaces(self) -> list[str]:
        names = [q.name for q in self.queues] + [e for e in self.exchanges if not is_builtin_exchange(e)]
        return sorted({namespace_of(name) for name in names})


def namespace_of(name: str) -> str:
    return name.split(".", 1)[0]


def in_namespace(name: str, namespace: str) -> bool:
    # The dot matters: namespace "t1" must not take "t12.router.work".
    return name.startswith(f"{namespace}.")


def is_builtin_exchange(name: str) -> bool:
    return name == "" or name.startswith("amq.")


def check_namespace(namespace: str) -> str:
    """A namespace we may delete: a plain name, never the broker's own `amq.` names."""
    if not re.fullmatch(r"[A-Za-z0-9_\-.]+", namespace) or namespace.startswith(".") or namespace == "amq":
        raise ValueError(f"{namespace!r} is not a namespace that can be removed")
    return namespace


# --- listing -------------------------------------------------------------------------------


async def list_from_management(broker: Broker, timeout: float = 10) -> Listing:
    if not broker.management_url:
        raise SourceUnavailable("no management API is known for this broker (SWITCHYARD_MANAGEMENT_URL)")
    vhost = quote(broker.vhost, safe="")
    base = f"{broker.management_url}/api"
    try:
        async with aiohttp.ClientSession(headers=broker.authorization, timeout=aiohttp.ClientTimeout(total=timeout)) as session:
            queues = await _get_json(session, f"{base}/queues/{vhost}?columns=name,messages,consumers")
            exchanges = await _get_json(session, f"{base}/exchanges/{vhost}?columns=name")
    except (aiohttp.ClientError, TimeoutError, ValueError) as error:
        raise SourceUnavailable(f"management API at {broker.management_url}: {error or type(error).__name__}") from error
    return Listing(
        "the management API",
        tuple(Queue(q["name"], q.get("messages") or 0, q.get("consumers") or 0) for q in queues),
        tuple(e["name"] for e in exchanges),
    )


async def _get_json(session: aiohttp.ClientSession, url: str) -> list[dict]:
    async with session.get(url) as response:
        response.raise_for_status()
        return await response.json()


def rabbitmqctl() -> str | None:
    return shutil.which("rabbitmqctl") or ("/usr/sbin/rabbitmqctl" if Path("/usr/sbin/rabbitmqctl").exists() else None)


def list_from_rabbitmqctl(broker: Broker, timeout: float = 60) -> Listing:
    ctl = rabbitmqctl()
    if ctl is None or not broker.is_local_default_node:
        raise SourceUnavailable("rabbitmqctl: not installed, or the broker is not this machine's default node")
    queues = [
        Queue(name, int(messages or 0), int(consumers or 0))
        for name, messages, consumers in _ctl_rows(ctl, broker, timeout, "list_queues", "name", "messages", "consumers")
    ]
    exchanges = [row[0] for row in _ctl_rows(ctl, broker, timeout, "list_exchanges", "name")]
    return Listing("rabbitmqctl", tuple(queues), tuple(exchanges))


def _ctl_rows(ctl: str, broker: Broker, timeout: float, command: str, *columns: str) -> list[list[str]]:
    argv = [ctl, "-q", command, "-p", broker.vhost, "--no-table-headers", "--timeout", str(int(timeout)), *columns]
    returncode, out = run_bounded(argv, timeout + 10)
    if returncode != 0:
        raise SourceUnavailable(f"rabbitmqctl {command}: {out.strip()[-300:] or f'exit {returncode}'}")
    rows = [line.split("\t") for line in out.splitlines()]
    return [row for row in rows if len(row) == len(columns)]


def run_bounded(argv: list[str], timeout: float) -> tuple[int, str]:
    """Run a command; past the timeout, kill it and every process it started, then fail.

    Debian's rabbitmqctl runs its Erlang VM under `su` in a session of its own: killing the
    command alone leaves that VM behind, hung on a silent node, for good."""
    try:
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    except OSError as error:
        raise SourceUnavailable(f"{argv[0]}: {error}") from error
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        for pid in [*descendants(process.pid), process.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        process.communicate()
        raise SourceUnavailable(f"{' '.join(argv[:3])}: no answer within {timeout:.0f}s") from None
    return process.returncode, out


def descendants(pid: int) -> list[int]:
    """The processes `pid` started, and theirs, from /proc (empty where there is no /proc)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(parent, []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        kids = children.get(todo.pop(), [])
        found += kids
        todo += kids
    return found


def known_names(namespace: str, agents: Iterable[tuple[str, str]] = (), extra_queues: Sequence[str] = ()) -> Listing:
    """The names this code gives a namespace's queues and exchanges (agents: (workspace, agent) pairs).

    The fallback when the broker cannot be listed: per-process signal queues, and names that
    depend on data the caller does not pass, are missed."""
    topology = Topology(check_namespace(namespace))
    queues = _named(topology, "_queue") + list(topology.core_queues())
    queues += [topology.outbound_queue(p.name) for p in PLUGINS if p.sender is not None]
    queues += [topology.plugin_queue(p.name) for p in PLUGINS if p.background is not None]
    queues += [topology.legacy_agent_queue(workspace, agent) for workspace, agent in agents]
    queues += [topology.dead_letter_queue(q) for q in queues] + list(extra_queues)
    exchanges = _named(topology, "_exchange") + [topology.relay_exchange(service) for service in RELAY_SERVICES]
    return Listing("the names the code knows", tuple(Queue(q) for q in dict.fromkeys(queues)), tuple(exchanges))


def _named(topology: Topology, suffix: str) -> list[str]:
    """Every fixed name Topology declares as a property (`events_exchange`, `retry_queue`, ...),
    so a name added there is cleaned up without a change here."""
    return [getattr(topology, name) for name, value in vars(Topology).items() if isinstance(value, property) and name.endswith(suffix)]


async def list_broker(broker: Broker, *, use_rabbitmqctl: bool = True) -> tuple[Listing | None, list[str]]:
    """The broker's own list (management API, else rabbitmqctl), and why the sources tried failed."""
    failures: list[str] = []
    try:
        return await list_from_management(broker), failures
    except SourceUnavailable as error:
        failures.append(str(error))
    if use_rabbitmqctl:
        try:
            return await asyncio.to_thread(list_from_rabbitmqctl, broker), failures
        except SourceUnavailable as error:
            failures.append(str(error))
    return None, failures


# --- deleting ------------------------------------------------------------------------------


@dataclass
class Removal:
    namespace: str
    deleted_queues: list[str] = field(default_factory=list)
    deleted_exchanges: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    skipped: str | None = None  # why nothing of the namespace was deleted


class _Deleter:
    """Probes and deletes one namespace's names over AMQP; refuses any name outside it."""

    def __init__(self, connection: aio_pika.abc.AbstractConnection, namespace: str) -> None:
        self.connection = connection
        self.namespace = namespace
        self.channel: aio_pika.abc.AbstractChannel | None = None

    async def _channel(self) -> aio_pika.abc.AbstractChannel:
        if self.channel is None or self.channel.is_closed:  # a refused declare or delete closes its channel
            self.channel = await self.connection.channel()
        return self.channel

    def _check(self, name: str) -> None:
        if not in_namespace(name, self.namespace):
            raise ValueError(f"{name!r} is not in namespace {self.namespace!r}: not deleting it")

    async def consumers(self, name: str) -> int | None:
        """Consumers on the queue now, from the broker (a listing's counts may be seconds old);
        None when there is no such queue. An exclusive queue of another connection counts as one."""
        self._check(name)
        try:
            queue = await (await self._channel()).declare_queue(name, passive=True)
        except aiormq.exceptions.ChannelNotFoundEntity:
            return None
        except aiormq.exceptions.ChannelLockedResource:
            return 1
        return queue.declaration_result.consumer_count

    async def queue(self, name: str) -> bool:
        """Delete a queue; False when the broker kept it (exclusive to another connection).

        Not `if-unused`: quorum queues refuse that flag (and close the connection); the probe
        just before decides instead."""
        self._check(name)
        try:
            await (await self._channel()).queue_delete(name)
        except aiormq.exceptions.ChannelLockedResource:
            return False
        return True

    async def exchange(self, name: str) -> None:
        self._check(name)
        await (await self._channel()).exchange_delete(name)


async def remove_namespaces(
    broker: Broker, listing: Listing, namespaces: Sequence[str], *, force: bool = False, dry_run: bool = False
) -> list[Removal]:
    """Delete each namespace's queues, then its exchanges; a namespace in use is kept unless force."""
    for namespace in namespaces:
        check_namespace(namespace)
    async with await connect_to_any(broker.amqp_url) as connection:
        return [await _remove(_Deleter(connection, ns), listing.of(ns), force=force, dry_run=dry_run) for ns in namespaces]


async def _remove(deleter: _Deleter, listing: Listing, *, force: bool, dry_run: bool) -> Removal:
    removal = Removal(deleter.namespace)
    queues = [q.name for q in listing.queues]
    if not force:
        live = {name: await deleter.consumers(name) for name in queues}
        queues = [name for name, consumers in live.items() if consumers is not None]
        if any(live[name] for name in queues):
            removal.skipped = "in use (a queue has a consumer or is exclusive to a connection); --force deletes it anyway"
    if not removal.skipped and dry_run:
        removal.skipped = f"dry run, would delete: {', '.join(queues + list(listing.exchanges)) or 'nothing'}"
    if removal.skipped:
        removal.kept = queues
        return removal
    for name in queues:
        deleted = await deleter.queue(name)
        (removal.deleted_queues if deleted else removal.kept).append(name)
    if not removal.kept:  # an exchange goes only with all its queues: a kept queue keeps its bindings
        for exchange in listing.exchanges:
            await deleter.exchange(exchange)
            removal.deleted_exchanges.append(exchange)
    return removal


# --- the command ---------------------------------------------------------------------------


def summary_table(listing: Listing) -> list[str]:
    lines = [f"{'namespace':<24} {'queues':>6} {'messages':>9} {'consumers':>9} {'exchanges':>9}  test"]
    for namespace in listing.namespaces():
        mine = listing.of(namespace)
        exchanges = len(mine.exchanges)
        lines.append(
            f"{namespace:<24} {len(mine.queues):>6} {sum(q.messages for q in mine.queues):>9} "
            f"{sum(q.consumers for q in mine.queues):>9} {exchanges:>9}  {'yes' if TEST_NAMESPACE.fullmatch(namespace) else ''}"
        )
    return lines


def describe(removal: Removal) -> str:
    if removal.skipped:
        return f"{removal.namespace}: kept {len(removal.kept)} queues, {removal.skipped}"
    text = f"{removal.namespace}: deleted {len(removal.deleted_queues)} queues and {len(removal.deleted_exchanges)} exchanges"
    if removal.kept:
        text += f"; kept {len(removal.kept)} in use: {', '.join(removal.kept)}"
    return text


def parse_args(argv: Sequence[str] | None, settings: CleanupSettings) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m deploy.cleanup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--namespace", action="append", default=[], help="delete this namespace's queues and exchanges (repeatable)")
    parser.add_argument("--tests", action="store_true", help="delete every test namespace (t + 12 hex digits)")
    parser.add_argument("--list", action="store_true", help="list namespaces that have queues or exchanges (the default)")
    parser.add_argument("--force", action="store_true", help="also delete a namespace that is in use")
    parser.add_argument("--dry-run", action="store_true", help="say what would be deleted, delete nothing")
    parser.add_argument("--amqp-url", default=settings.amqp_url, help="the broker (AMQP_URL; of a node list, the first node that answers)")
    parser.add_argument("--management-url", default=settings.management_url,
                        help="its management API (SWITCHYARD_MANAGEMENT_URL; default http://<AMQP host>:15672)")
    return parser.parse_args(argv)


async def run(args: argparse.Namespace) -> int:
    broker = Broker.from_urls(args.amqp_url, args.management_url)
    listing, failures = await list_broker(broker)
    for failure in failures:
        print(f"not listed through {failure}", file=sys.stderr)
    if listing is None and (args.tests or not args.namespace):
        print("cannot list the broker's queues: enable its management plugin (rabbitmq-plugins enable "
              "rabbitmq_management) or run this on the broker's machine; or name namespaces with --namespace",
              file=sys.stderr)
        return 2
    if listing is None:
        print("deleting only the names the code knows (agent queues, and names it does not know, stay)", file=sys.stderr)
        listing = known_listing(args.namespace)
    print(f"listed through {listing.source}")
    if not args.namespace and not args.tests:
        print("\n".join(summary_table(listing)))
        return 0
    tests = [ns for ns in listing.namespaces() if TEST_NAMESPACE.fullmatch(ns)] if args.tests else []
    namespaces = list(dict.fromkeys(args.namespace + tests))
    for removal in await remove_namespaces(broker, listing, namespaces, force=args.force, dry_run=args.dry_run):
        print(describe(removal))
    return 0


def known_listing(namespaces: Sequence[str]) -> Listing:
    listings = [known_names(ns) for ns in namespaces]
    return Listing(
        "the names the code knows",
        tuple(q for one in listings for q in one.queues),
        tuple(e for one in listings for e in one.exchanges),
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv, CleanupSettings())
    try:
        for namespace in args.namespace:
            check_namespace(namespace)
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    return asyncio.run(run(args))


if __name__ == "__main__":
    raise SystemExit(main())
