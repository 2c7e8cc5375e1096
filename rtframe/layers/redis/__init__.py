"""The Redis layer: `RedisLayer` for the app, `SyncPublisher` for sync code.

Needs the `redis` package (`pip install 'rtframe[redis]'`); importing this package
without it raises `ModuleNotFoundError` saying so. Modules:

- `layer`: `RedisLayer`, the layer contract on Redis pub/sub (sharded on a cluster);
- `publishing`: the publish path: which node, bounded waits, what a failure means;
- `publisher`: one node's publishes, batched on one connection;
- `history`: the history scripts (append and publish, read), their keys and replies;
- `subscriber`: one subscriber connection per node, kept subscribed through outages;
- `health`: outage and recovery hooks;
- `wire`: channel names, payload format, connection settings;
- `errors`: what a Redis failure means (unreachable, busy, refused);
- `sync`: `SyncPublisher`, publishing from sync code;
- `stats`: `RedisStats`, the layer's counters.
"""

from __future__ import annotations

try:
    import redis  # noqa: F401 - imported for the check
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ModuleNotFoundError(
        "the Redis layer needs the redis package: pip install 'rtframe[redis]'",
        name="redis",
    ) from exc

from .layer import RedisLayer
from .stats import RedisStats
from .sync import SyncPublisher

__all__ = ["RedisLayer", "RedisStats", "SyncPublisher"]
