"""Alerts: `[[alerts]]` rules of stalk.toml over the stack's state (task failures, queue depth, offline
workers, quota use), evaluated every few seconds by a thread of the stack (engine.py); each firing and
resolution is kept in the state dir (history.py) and POSTed to the rule's URLs through the webhooks'
durable outbox (payloads.py).

`start_alerts(stack)` starts them on a started Stack; `targets_for(rules)` are their outbox targets.
"""

from stalk.embedded.alerts.engine import Alerts, start_alerts
from stalk.embedded.alerts.history import AlertEvent, AlertHistory, history_path
from stalk.embedded.alerts.measures import describe
from stalk.embedded.alerts.payloads import targets_for

__all__ = ["AlertEvent", "AlertHistory", "Alerts", "describe", "history_path", "start_alerts", "targets_for"]
