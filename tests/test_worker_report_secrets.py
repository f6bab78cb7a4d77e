"""A worker's broker as Worker detail and GET /workers/{hostname} show it never carries the password."""

from kombu import Connection

from stalk.embedded.control.worker_report import broker_text


def test_a_socket_brokers_url_is_shown_without_its_password():
    text = broker_text(Connection("redis+socket://stalk:s3cret@/tmp/d/broker.sock?virtual_host=0").info())
    assert text is not None and "s3cret" not in text and "/tmp/d/broker.sock" in text


def test_a_tcp_broker_is_shown_as_transport_host_port_vhost():
    assert broker_text(Connection("redis://:s3cret@127.0.0.1:6390/1").info()) == "redis://127.0.0.1:6390/1"
