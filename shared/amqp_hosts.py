"""AMQP_URL naming the nodes of a RabbitMQ cluster, and connections that fail over between them.

The URL syntax is the single-host one with a comma-separated list of `host[:port]` where the
host goes, every node sharing the credentials, the virtual host and the query:

    amqp://guest:guest@10.0.0.1:5672,10.0.0.2:5672,10.0.0.3/vhost?heartbeat=30

A client connects to one node at a time (any node serves every queue of the cluster); when the
connection is lost it reconnects through the next node, so a node that died is not waited for.
aio-pika's robust connection retries one URL only, hence FailoverConnection.
"""

import re
from collections.abc import Sequence
from typing import Any

import aio_pika
import structlog
from aio_pika.abc import AbstractConnection
from aio_pika.exceptions import CONNECTION_EXCEPTIONS
from aio_pika.robust_connection import RobustConnection
from yarl import URL

log = structlog.get_logger(__name__)

_URL = re.compile(
    r"^(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<userinfo>[^@/?#]*@)?(?P<hosts>[^/?#]*)(?P<rest>.*)$", re.IGNORECASE
)


def broker_urls(url: str) -> list[str]:
    """One single-host URL per node of the AMQP_URL, in the order given.

    A URL without a comma is returned as it is; an empty entry in the list is a mistake."""
    match = _URL.match(url)
    if match is None or "," not in match["hosts"]:
        return [url]
    hosts = [host.strip() for host in match["hosts"].split(",")]
    if not all(hosts):
        raise ValueError(f"AMQP_URL has an empty host in its list: {url!r}")
    return [f"{match['scheme']}{match['userinfo'] or ''}{host}{match['rest']}" for host in hosts]


def first_broker_url(url: str) -> str:
    """The first node's URL: for tools that talk to one node (any node of a cluster will do)."""
    return broker_urls(url)[0]


class FailoverConnection(RobustConnection):
    """A robust connection over several nodes: each new connection attempt after the first goes
    to the next node of the list, round robin (after a node died its neighbour is tried at once,
    and a node that does not answer is passed over after one attempt)."""

    def __init__(self, urls: Sequence[str], first: int = 0, **kwargs: Any) -> None:
        self.node_urls = [URL(url) for url in urls]
        self._node = first
        self._attempted = False
        super().__init__(self.node_urls[first], **kwargs)

    async def _RobustConnection__connect_transport(self) -> None:
        # The name-mangled method RobustConnection's reconnect loop calls for every attempt
        # (aio-pika 9 and 10): the one place that sees each attempt before it reads self.url.
        # tests/service/test_broker_failover.py fails should a new aio-pika rename it.
        if self._attempted:
            self._node = (self._node + 1) % len(self.node_urls)
            self.url = self.node_urls[self._node]
            log.info("amqp.reconnecting_via", node=f"{self.url.host}:{self.url.port}")
        self._attempted = True
        await super()._RobustConnection__connect_transport()  # type: ignore[misc]


async def connect_robust_to_any(url: str, **kwargs: Any) -> FailoverConnection:
    """A robust connection through the first node of AMQP_URL that answers; raises the last
    node's error when none does (as aio_pika.connect_robust fails fast for one node)."""
    urls = broker_urls(url)
    error: BaseException | None = None
    for first in range(len(urls)):
        connection = FailoverConnection(urls, first, **kwargs)
        try:
            await connection.connect()
            return connection
        except CONNECTION_EXCEPTIONS as failure:
            error = failure
            await connection.close()
    assert error is not None
    raise error


async def connect_to_any(url: str) -> AbstractConnection:
    """A plain connection (for tools: no reconnecting) to the first node of AMQP_URL that answers."""
    urls = broker_urls(url)
    for node_url in urls[:-1]:
        try:
            return await aio_pika.connect(node_url)
        except CONNECTION_EXCEPTIONS:
            continue
    return await aio_pika.connect(urls[-1])
