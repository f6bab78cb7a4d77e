"""RemoteStack: a running stack seen through its API, shaped like `Stack` where the panel reads it.

The panel holds no event store, no control connection and no ledger of its own: `events`, `control` and
`quota` are views whose every call is an API request (made on the panel's thread workers)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from stalk.embedded.broker.base import BrokerInfo
from stalk.embedded.config import StackConfig
from stalk.embedded.in_flight import Unfinished
from stalk.embedded.paths import StackPaths
from stalk.embedded.service.client import StackClient
from stalk.embedded.service.codec import decode
from stalk.embedded.service.feed import ChangeFeed
from stalk.embedded.supervisor import LogLine, ProcessInfo


class RemoteStack:
    """What the panel needs of a Stack, over `client`."""

    def __init__(self, client: StackClient) -> None:
        self.client = client
        self.feed = ChangeFeed(client)
        self.status: dict[str, Any] = client.get("/stack")
        self.mode: str = self.status["mode"]
        broker = self.status.get("broker")
        self.broker: BrokerInfo | None = BrokerInfo(**broker) if broker else None
        self.paths = StackPaths(Path(self.status["data_dir"]))
        self.config = StackConfig(app=self.status.get("app"), data_dir=self.paths.data_dir,
                                  app_dir=Path(self.status["app_dir"]), beat=self.status.get("beat"))
        self.task_modules_problem: str | None = self.status.get("task_modules_problem")
        self.own_log = True  # the stack keeps its own log (note() sends lines there)
        self.remote = True
        self.events: Any = None  # RemoteEvents (remote_events.py)
        self.control: Any = None  # RemoteControl (remote_control.py)
        self.quota: Any = None  # RemoteQuota (remote_quota.py)
        self._attach_views()

    def _attach_views(self) -> None:
        from stalk.embedded.service.remote_control import RemoteControl
        from stalk.embedded.service.remote_events import RemoteEvents
        from stalk.embedded.service.remote_quota import RemoteQuota

        self.events = RemoteEvents(self.client, self.feed)
        self.control = RemoteControl(self.client, self)
        self.quota = RemoteQuota(self.client)

    @classmethod
    def on_data_dir(cls, data_dir: Path) -> RemoteStack:
        return cls(StackClient.on_data_dir(data_dir))

    # -- processes and logs ---------------------------------------------------------------------

    def processes(self) -> list[ProcessInfo]:
        return decode(list[ProcessInfo], self.client.get("/processes"))

    def process(self, name: str) -> ProcessInfo:
        return decode(ProcessInfo, self.client.get(f"/processes/{name}"))

    def logs(self, name: str, since: int = 0) -> list[LogLine]:
        return decode(list[LogLine], self.client.get(f"/logs/{name}", since=since))

    def note(self, line: str) -> None:
        """Lines the panel's own process logs stay with it: the stack's log is the stack's."""

    def subscribe(self, listener: Callable[[list[ProcessInfo]], None]) -> Callable[[], None]:
        """`listener(snapshot)` on the feed's thread whenever a process changes."""
        lock = threading.Lock()

        def on_batch(_batch: dict[str, Any]) -> None:
            with lock:  # one re-read at a time; the next batch re-reads again
                listener(self.processes())

        return self.feed.listen("processes", on_batch)

    def restart_process(self, name: str) -> None:
        self.client.post(f"/processes/{name}/restart")

    def stop_process(self, name: str) -> None:
        self.client.post(f"/processes/{name}/stop")

    def start_process(self, name: str) -> None:
        self.client.post(f"/processes/{name}/start")

    def kill_process(self, name: str) -> None:
        self.client.post(f"/processes/{name}/kill")

    # -- the stack as a whole -------------------------------------------------------------------

    def refresh_status(self) -> dict[str, Any]:
        self.status = self.client.get("/stack")
        return self.status

    def broker_problem(self) -> str | None:
        """The stack process probes its broker (GET /stack/broker): None when it answers."""
        return self.client.get("/stack/broker")["problem"]

    def unfinished(self) -> Unfinished:
        return decode(Unfinished, self.client.get("/stack/unfinished"))

    def stop_consuming(self) -> None:
        self.client.post("/stack/stop-consuming")

    @property
    def pid(self) -> int:
        return int(self.status["pid"])

    def stop_stack(self) -> None:
        """Ask the stack process to stop (warm: workers finish their tasks)."""
        self.client.post("/stack/stop")

    def detach(self) -> None:
        self.client.post("/stack/detach")

    def close(self) -> None:
        """Leave the stack as it is; only this view ends."""
        self.feed.stop()
        self.client.close()
