"""Lines a child prints that say nothing the user can act on, dropped before they reach the log.

- redis-server's "WARNING Memory overcommit must be enabled!" at every (re)start: a kernel setting
  (vm.overcommit_memory) the user of a desktop or CI box does not change for a dev broker. Stalk's redis
  makes no RDB saves; should the fork of an AOF rewrite fail for it, redis logs that failure itself.
"""

from __future__ import annotations

DROPPED = ("# WARNING Memory overcommit must be enabled!",)


def is_noise(text: str) -> bool:
    return any(marker in text for marker in DROPPED)
