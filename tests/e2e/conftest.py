"""Fixtures of the end-to-end tests."""

import pytest

from tests.e2e.broker_node import BrokerCluster, rabbitmq_installed


@pytest.fixture
def cluster():
    """A three-node RabbitMQ cluster of the test's own (its own node names and ports), removed after."""
    if not rabbitmq_installed():
        pytest.skip("rabbitmq-server is not installed: the cluster test runs three nodes of its own")
    cluster = BrokerCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.remove()
