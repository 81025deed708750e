"""The broker check behind `make run` and the tests: AMQP spoken, not just a port open."""

import socket
from urllib.parse import urlparse

from deploy.local import amqp_answers


def test_the_real_broker_answers_amqp(infra):
    url = urlparse(infra.amqp_url)
    assert amqp_answers(url.hostname, url.port or 5672)


def test_a_listener_that_never_answers_is_not_a_broker():
    # What a wedged broker looks like from outside: the connection is accepted, nothing comes back.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        assert not amqp_answers("127.0.0.1", silent.getsockname()[1], timeout=0.5)


def test_a_closed_port_is_not_a_broker():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    assert not amqp_answers("127.0.0.1", port, timeout=0.5)
