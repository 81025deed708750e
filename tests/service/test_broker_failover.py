"""A connection over several nodes (AMQP_URL with a host list) against the real broker: it starts
on the first node that answers, and each reconnect goes on to the next node of the list."""

import asyncio
from urllib.parse import urlparse

import pytest
from aiormq.exceptions import AMQPConnectionError

from deploy.local import free_port
from shared.amqp_hosts import connect_robust_to_any, connect_to_any


def node_list(infra, *hosts: str) -> str:
    """An AMQP_URL naming `hosts` (host:port), with the test broker's credentials, and reconnects
    0.1 s apart instead of aio-pika's 5 s."""
    url = urlparse(infra.amqp_url)
    return f"amqp://{url.username}:{url.password}@{','.join(hosts)}/?reconnect_interval=0.1"


def live_port(infra) -> int:
    return urlparse(infra.amqp_url).port or 5672


async def test_the_first_node_that_answers_is_connected_to(infra):
    url = node_list(infra, f"127.0.0.1:{free_port()}", f"127.0.0.1:{live_port(infra)}")
    connection = await connect_robust_to_any(url)
    try:
        assert connection.url.port == live_port(infra)
        channel = await connection.channel()
        assert not channel.is_closed
    finally:
        await connection.close()
    plain = await connect_to_any(url)
    await plain.close()


async def test_no_node_answering_fails_with_the_connection_error(infra):
    url = node_list(infra, f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}")
    with pytest.raises((AMQPConnectionError, ConnectionError)):
        await connect_robust_to_any(url)


async def test_a_lost_connection_reconnects_through_the_next_nodes(infra):
    # The same broker under two names, a dead node between: landing on `localhost` proves the
    # reconnect moved on twice, passing over the node that did not answer.
    port = live_port(infra)
    url = node_list(infra, f"127.0.0.1:{port}", f"127.0.0.1:{free_port()}", f"localhost:{port}")
    connection = await connect_robust_to_any(url)
    try:
        channel = await connection.channel()
        reconnected = asyncio.Event()
        connection.reconnect_callbacks.add(lambda *_: reconnected.set())
        assert connection.url.host == "127.0.0.1"
        await connection.transport.connection.close()  # the node is gone, as far as this client knows
        async with asyncio.timeout(30):
            await reconnected.wait()
        assert (connection.url.host, connection.url.port) == ("localhost", port)
        queue = await channel.declare_queue(exclusive=True)  # the robust channel was restored there
        assert queue.name
    finally:
        await connection.close()
