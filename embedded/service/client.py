"""StackClient: a stack's API from another process (the panel, the CLI, scripts), over its Unix socket or
a loopback URL; blocking calls for threads, and the change stream as an iterator."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson

from stalk.embedded.service.files import read_token
from stalk.embedded.status_file import read_status

TIMEOUT = 10.0
UNIX_BASE = "http://stalk"  # the Host a socket client names (the guard knows it)


class ApiError(Exception):
    """A refused or failed call: `status` (0: no answer at all) and the server's one-line message."""

    def __init__(self, status: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.body = body  # the error's whole JSON body (e.g. a refused submit's "problems")


class StackClient:
    """One stack's API. `StackClient.on_data_dir(D)` finds it from D's status file."""

    def __init__(self, token: str, socket: str | None = None, url: str | None = None,
                 timeout: float = TIMEOUT) -> None:
        if socket is None and url is None:
            raise ValueError("a socket path or a URL")
        self.where = socket or url or ""
        self.base = (url or UNIX_BASE).rstrip("/") + "/api/v1"
        transport = httpx.HTTPTransport(uds=socket) if socket else None
        self._headers = {"Authorization": f"Bearer {token}"}
        self._http = httpx.Client(transport=transport, headers=self._headers, timeout=timeout)
        self._socket = socket
        self._timeout = timeout

    @classmethod
    def on_data_dir(cls, data_dir: Path, timeout: float = TIMEOUT) -> StackClient:
        """The API of the stack running on `data_dir` (ApiError(0) when none runs or it has no API)."""
        status = read_status(data_dir / "state")
        if status is None:
            raise ApiError(0, f"no Stalk is running on data dir {data_dir}")
        api = status.get("api") or {}
        token = read_token(data_dir / "state")
        if not api.get("socket") or token is None:
            raise ApiError(0, f"the Stalk running on {data_dir} (pid {status.get('pid')}) serves no API")
        return cls(token, socket=api["socket"], timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> StackClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                body: Any = None, timeout: float | None = None) -> Any:
        params = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._http.request(method, self.base + path, params=params,
                                          json=body if method != "GET" else None,
                                          timeout=timeout if timeout is not None else self._timeout)
        except httpx.TimeoutException:
            raise ApiError(0, f"the stack's API at {self.where} did not answer {method} {path} in time") from None
        except httpx.TransportError as exc:
            raise ApiError(0, f"cannot reach the stack's API at {self.where}: {exc}") from None
        if response.status_code >= 400:
            raise ApiError(response.status_code, _message(response), _body(response))
        if not response.content:
            return None
        try:
            return orjson.loads(response.content)  # a task page: ~1 ms, against 4-15 ms for json.loads
        except orjson.JSONDecodeError:  # a lone surrogate's \u escape (a task's undecodable text): orjson refuses
            return json.loads(response.content)

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any = None, **params: Any) -> Any:
        return self.request("POST", path, params=params, body=body if body is not None else {})

    def changes(self, topics: tuple[str, ...] = ("tasks", "workers", "processes", "logs", "alerts"),
                ) -> Iterator[dict]:
        """The change stream: one dict per batch ({} for the opening hello); ends when the server goes."""
        transport = httpx.HTTPTransport(uds=self._socket) if self._socket else None
        with httpx.Client(transport=transport, headers=self._headers,
                          timeout=httpx.Timeout(self._timeout, read=60.0)) as http:
            try:
                with http.stream("GET", self.base + "/changes", params={"topics": ",".join(topics)}) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise ApiError(response.status_code, _message(response))
                    for line in response.iter_lines():
                        if line.startswith("data: "):
                            yield json.loads(line[6:])
            except httpx.TransportError as exc:
                raise ApiError(0, f"the stack's change stream at {self.where} ended: {exc}") from None


def _body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _message(response: httpx.Response) -> str:
    try:
        data = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text[:200]}"
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return data["error"]
    if isinstance(data, dict) and "detail" in data:
        return f"HTTP {response.status_code}: {data['detail']}"
    return f"HTTP {response.status_code}"
