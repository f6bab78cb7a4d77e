"""Upstream patches, quarantined: every module of the stack that overrides private internals of kombu,
Celery, fakeredis or CPython, one module each, named after what it patches.

- kombu_redis_channel: kombu's redis Channel, one redis-py client per pool; survives a broker restart.
- kombu_redis_reliable: Stalk's workers on Stalk's redis pop into unacked atomically and record what they hold.
- celery_send_task_message: Celery's task sender skips declarations kombu's cache says are done.
- kombu_redis_fanout: the event receiver reads kombu's redis fanout topic with redis-py directly.
- celery_event_dispatcher: a worker's task events leave in batches every 50 ms.
- cpython_gc_untrack: task records and the store's containers are not walked by the cyclic GC.
- fakeredis_tcp_server: the embedded broker's TCP server, driving fakeredis connections directly.
- redis_connection_guard: on TCP, redis-py sends nothing to a server that is not Stalk's redis-server.
- billiard_pool_shutdown: a prefork worker's warm stop skips the pool's fixed 1.5 s of sleeps.

Each module's docstring names the internals it overrides, the versions it was written against, what it
buys (measured) and what happens without it. tests/test_upstream_canaries.py fails, naming the module
to revisit, when an upstream behaviour one relies on changes; pyproject.toml pins the minor versions.

Private to the stack: the panel, the CLI and the demo never import this package (pyproject.toml
[tool.importlinter]). It exports only what the stack's other modules use.
"""

from stalk.embedded.patches.billiard_pool_shutdown import install as quick_pool_shutdown
from stalk.embedded.patches.celery_event_dispatcher import install as batch_task_events
from stalk.embedded.patches.celery_send_task_message import skip_declared
from stalk.embedded.patches.cpython_gc_untrack import untrack
from stalk.embedded.patches.fakeredis_tcp_server import LoopbackFakeServer, UnixFakeServer
from stalk.embedded.patches.kombu_redis_channel import NAME as REDIS_TRANSPORT
from stalk.embedded.patches.kombu_redis_channel import use_socket_connections
from stalk.embedded.patches.kombu_redis_fanout import RedisFeed, redis_feed
from stalk.embedded.patches.kombu_redis_reliable import consume_reliably
from stalk.embedded.patches.redis_connection_guard import guard_port, unguard_port

__all__ = [
    "REDIS_TRANSPORT", "LoopbackFakeServer", "RedisFeed", "UnixFakeServer", "batch_task_events", "consume_reliably",
    "redis_feed",
    "guard_port", "quick_pool_shutdown", "skip_declared", "unguard_port", "untrack", "use_socket_connections",
]
