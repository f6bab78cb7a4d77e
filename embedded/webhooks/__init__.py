"""Webhooks: task notifications POSTed to the URLs of stalk.toml's `[[webhooks]]` from a persistent
outbox in the data dir (outbox.py), with retries and back-off, in order per task (delivery.py).

`start_webhooks(stack)` wires them into a started Stack (wiring.py); `Outbox` reads the outbox file.
"""

from stalk.embedded.webhooks.delivery import Target
from stalk.embedded.webhooks.outbox import Delivery, Entry, Outbox, outbox_path
from stalk.embedded.webhooks.wiring import Webhooks, start_webhooks

__all__ = ["Delivery", "Entry", "Outbox", "Target", "Webhooks", "outbox_path", "start_webhooks"]
