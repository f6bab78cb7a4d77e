"""Broker modes: Stalk's own redis-server, the embedded fakeredis server, eager, external."""

from .base import BrokerError, BrokerInfo
from .select import start_broker

__all__ = ["BrokerError", "BrokerInfo", "start_broker"]
