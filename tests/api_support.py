"""Tests of the stack's API: a client and a RemoteStack on a started Stack's own server."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from stalk.embedded import Stack
from stalk.embedded.service import RemoteStack, StackClient


def client_of(stack: Stack) -> StackClient:
    """A client on `stack`'s Unix socket with its token (as any other process finds it)."""
    return StackClient.on_data_dir(stack.paths.data_dir)


@contextmanager
def remote_of(stack: Stack) -> Iterator[RemoteStack]:
    """The Stack-shaped view the panel attaches with; closed after."""
    remote = RemoteStack(client_of(stack))
    try:
        yield remote
    finally:
        remote.close()
