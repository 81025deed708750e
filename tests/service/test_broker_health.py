"""The broker check behind `make run` and the tests: AMQP spoken, not just a port open; and a
broker that is slow to answer is waited for, never stopped or killed (others may be using it)."""

import os
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from urllib.parse import urlparse

import pytest

from deploy import local
from deploy.local import BrokerUnavailable, LocalSettings, amqp_answers, bring_up_infrastructure, ensure_rabbitmq


@pytest.fixture
def no_process_touched(monkeypatch: pytest.MonkeyPatch) -> list[tuple]:
    """Fail the test if the code runs, starts or signals any process; keep what it tried."""
    attempts: list[tuple] = []

    def refuse(what: str):
        def tripwire(*args, **kwargs):
            attempts.append((what, args))
            raise AssertionError(f"the broker check tried {what}{args}: it must not touch a process")
        return tripwire

    monkeypatch.setattr(subprocess, "run", refuse("subprocess.run"))
    monkeypatch.setattr(subprocess, "Popen", refuse("subprocess.Popen"))
    monkeypatch.setattr(os, "kill", refuse("os.kill"))
    monkeypatch.setattr(os, "killpg", refuse("os.killpg"))
    return attempts


@pytest.fixture
def silent_listener() -> Iterator[socket.socket]:
    """What a wedged or overloaded broker looks like from outside: connections accepted, nothing said."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        yield silent


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_real_broker_answers_amqp_and_is_left_alone(infra, no_process_touched):
    url = urlparse(infra.amqp_url)
    assert amqp_answers(url.hostname, url.port or 5672)
    ensure_rabbitmq(infra.amqp_url, wait_seconds=1)
    assert no_process_touched == []


def test_a_silent_broker_is_waited_for_then_fails_with_advice_and_no_process_touched(
    silent_listener, no_process_touched, monkeypatch, capsys
):
    port = silent_listener.getsockname()[1]
    monkeypatch.setenv("AMQP_URL", f"amqp://guest:guest@127.0.0.1:{port}/")
    monkeypatch.setenv("MONGO_URL", "mongodb://127.0.0.1:1/?directConnection=true")  # never reached
    monkeypatch.setenv("SWITCHYARD_BROKER_WAIT_SECONDS", "1")
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as failure:
        bring_up_infrastructure(LocalSettings(), ":memory:", 1, None)
    waited = time.monotonic() - started

    assert 1 <= waited < 10, waited
    assert "waiting up to 1s for it (SWITCHYARD_BROKER_WAIT_SECONDS)" in capsys.readouterr().err
    advice = str(failure.value)
    for hint in (f"127.0.0.1:{port}", "has not answered the AMQP handshake for 1s", "file descriptors",
                 "rabbitmqctl status", "make clean-broker", "restart it yourself", "SWITCHYARD_BROKER_WAIT_SECONDS"):
        assert hint in advice
    assert no_process_touched == []
    # The listener (the "broker") is still there, as it was.
    with socket.create_connection(("127.0.0.1", port), timeout=1):
        pass


def test_a_broker_that_answers_while_we_wait_is_used(no_process_touched):
    # A busy broker: it drops the first connections, then answers the handshake.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        accepted: list[int] = []
        server = threading.Thread(target=answer_on_third_connection, args=(listener, accepted), daemon=True)
        server.start()
        ensure_rabbitmq(f"amqp://guest:guest@127.0.0.1:{listener.getsockname()[1]}/", wait_seconds=30)
        server.join(timeout=5)
    # 1: the first probe; 2: is anything listening?; 3: the wait's first probe, answered.
    assert accepted == [1, 2, 3]
    assert no_process_touched == []


def answer_on_third_connection(listener: socket.socket, accepted: list[int]) -> None:
    while len(accepted) < 3:
        connection, _ = listener.accept()
        with connection:
            accepted.append(len(accepted) + 1)
            if len(accepted) == 3:
                connection.recv(8)  # the protocol header
                connection.sendall(b"\x01")  # a method frame: Connection.Start


def test_nothing_listening_locally_starts_rabbitmq_server_and_nothing_else(monkeypatch):
    started: list[list[str]] = []
    monkeypatch.setattr(local, "rabbitmq_server", lambda: "/usr/sbin/rabbitmq-server")
    # Record the start instead of starting a second node on a machine whose broker is shared.
    monkeypatch.setattr(subprocess, "run", lambda command, **_: started.append(command))
    monkeypatch.setattr(os, "kill", lambda *args: pytest.fail(f"os.kill{args}"))
    port = closed_port()
    with pytest.raises(BrokerUnavailable, match=f"started rabbitmq-server, but nothing answered AMQP at 127.0.0.1:{port}"):
        ensure_rabbitmq(f"amqp://guest:guest@127.0.0.1:{port}/", wait_seconds=30, start_timeout=0.5)
    assert started == [["/usr/sbin/rabbitmq-server", "-detached"]]


def test_nothing_listening_on_another_host_fails_at_once(no_process_touched):
    port = closed_port()
    started = time.monotonic()
    with pytest.raises(BrokerUnavailable) as failure:
        ensure_rabbitmq(f"amqp://guest:guest@127.0.0.2:{port}/", wait_seconds=30)
    assert f"nothing listens at 127.0.0.2:{port}" in str(failure.value) and "the broker is not local" in str(failure.value)
    assert time.monotonic() - started < 5
    assert no_process_touched == []


def test_a_closed_port_is_not_a_broker():
    assert not amqp_answers("127.0.0.1", closed_port(), timeout=0.5)


def test_a_listener_that_never_answers_is_not_a_broker(silent_listener):
    assert not amqp_answers("127.0.0.1", silent_listener.getsockname()[1], timeout=0.5)


def test_a_cluster_url_needs_one_node_answering_and_starts_nothing(infra, no_process_touched):
    live = urlparse(infra.amqp_url)
    ensure_rabbitmq(f"amqp://guest:guest@127.0.0.1:{closed_port()},{live.hostname}:{live.port or 5672}/", wait_seconds=1)
    assert no_process_touched == []


def test_a_cluster_url_with_no_node_answering_fails_after_the_wait_and_starts_nothing(no_process_touched):
    ports = [closed_port(), closed_port()]
    with pytest.raises(BrokerUnavailable) as failure:
        ensure_rabbitmq(f"amqp://guest:guest@127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}/", wait_seconds=1)
    assert f"127.0.0.1:{ports[0]}, 127.0.0.1:{ports[1]}" in str(failure.value)
    assert "never started here" in str(failure.value)
    assert no_process_touched == []
