"""Broker modes: Stalk's own redis-server, the embedded fakeredis server, eager, external."""

from stalk.embedded.broker.base import BrokerError, BrokerInfo, url_problem
from stalk.embedded.broker.health import broker_problem
from stalk.embedded.broker.select import start_broker

__all__ = ["BrokerError", "BrokerInfo", "broker_problem", "start_broker", "url_problem"]
