"""deploy.cleanup reads a cluster's node list by its first node (any node lists and deletes the cluster's queues)."""

from deploy.cleanup import Broker


def test_a_node_list_is_read_by_its_first_node(monkeypatch):
    monkeypatch.delenv("SWITCHYARD_MANAGEMENT_URL", raising=False)
    broker = Broker.from_urls("amqp://ann:s%3Acret@127.0.0.1:5672,127.0.0.1:5702/prod", None)
    assert broker.vhost == "prod"
    assert broker.authorization == Broker.from_urls("amqp://ann:s%3Acret@127.0.0.1:5672/prod", None).authorization
    assert broker.is_local_default_node
    assert broker.management_url == "http://127.0.0.1:15672"


def test_a_first_node_on_its_own_port_gets_no_guessed_management_url(monkeypatch):
    monkeypatch.delenv("SWITCHYARD_MANAGEMENT_URL", raising=False)
    broker = Broker.from_urls("amqp://guest:guest@127.0.0.1:5701,127.0.0.1:5672/", None)
    assert broker.management_url == ""
    assert not broker.is_local_default_node
    assert broker.vhost == "/"
