"""AMQP_URL naming several nodes: one single-host URL per node, credentials, vhost and query kept."""

import pytest

from shared.amqp_hosts import broker_urls, first_broker_url


def test_a_single_host_url_is_kept_as_it_is():
    for url in ("amqp://guest:guest@127.0.0.1:5672/", "amqp://localhost", "amqps://u:p@[::1]:5671/v?heartbeat=5"):
        assert broker_urls(url) == [url]


def test_a_host_list_gives_one_url_per_node_in_order():
    assert broker_urls("amqp://guest:guest@127.0.0.1:5701,127.0.0.1:5702,127.0.0.1:5703/") == [
        "amqp://guest:guest@127.0.0.1:5701/",
        "amqp://guest:guest@127.0.0.1:5702/",
        "amqp://guest:guest@127.0.0.1:5703/",
    ]


def test_each_node_shares_the_credentials_vhost_and_query():
    assert broker_urls("amqps://user:p%40ss@a.example:5671, b.example ,[::1]:5672/prod?heartbeat=30") == [
        "amqps://user:p%40ss@a.example:5671/prod?heartbeat=30",
        "amqps://user:p%40ss@b.example/prod?heartbeat=30",
        "amqps://user:p%40ss@[::1]:5672/prod?heartbeat=30",
    ]


def test_a_list_without_credentials_or_path():
    assert broker_urls("amqp://n1,n2") == ["amqp://n1", "amqp://n2"]


def test_a_comma_outside_the_host_part_is_not_a_host_list():
    url = "amqp://guest:guest@127.0.0.1:5672/?name=a,b"
    assert broker_urls(url) == [url]


def test_an_empty_host_in_the_list_is_refused():
    with pytest.raises(ValueError, match="empty host"):
        broker_urls("amqp://guest:guest@n1:5672,,n3:5672/")


def test_the_first_node_is_what_single_node_tools_use():
    assert first_broker_url("amqp://g:g@n1:1,n2:2/v") == "amqp://g:g@n1:1/v"
    assert first_broker_url("amqp://g:g@n1:1/v") == "amqp://g:g@n1:1/v"
