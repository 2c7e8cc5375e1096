"""What a Redis failure means to the caller: unreachable, busy, or refused.

- **unreachable** (`LayerUnavailableError`): the connection failed, timed out or was
  refused at the TCP level, or the cluster is down; the frame did not leave this process.
- **busy** (`LayerBusyError`): Redis is reachable but every connection the publish could
  use is taken and the bounded wait for one ran out (a full redis-py pool, or a full
  publish queue). Not an outage: the layer stays available, the next publish may pass.
- **refused** (`LayerError`): Redis answered with an error (wrong credentials, a command
  the server does not know, ...); retrying would not help.
"""

from __future__ import annotations

from redis.exceptions import (
    AuthenticationError,
    ClusterDownError,
    ClusterError,
    RedisError,
    SlotNotCoveredError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ...exceptions import LayerBusyError, LayerError, LayerUnavailableError

__all__ = ["UNAVAILABLE", "is_busy", "layer_error"]

#: Errors that mean "Redis cannot be reached right now", as opposed to a refused command.
UNAVAILABLE = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    ClusterError,
    SlotNotCoveredError,  # the cluster's slot map has holes: nodes are missing
    OSError,
)


_POOL_EXHAUSTED = ("Too many connections", "No connection available.")


def is_busy(exc: BaseException) -> bool:
    """Whether `exc` is redis-py saying its pool had no free connection in time.

    A plain `ConnectionPool` raises `MaxConnectionsError("Too many connections")` at
    once; a `BlockingConnectionPool` raises `ConnectionError("No connection
    available.")` when its wait times out (sync and asyncio alike). Both are
    `ConnectionError`s, which redis-py also raises for a Redis that is really gone: they
    must not be read as an outage.
    """
    # MaxConnectionsError is recent; older redis-py raises the same message, bare
    return isinstance(exc, RedisConnectionError) and (
        type(exc).__name__ == "MaxConnectionsError" or str(exc) in _POOL_EXHAUSTED
    )


def layer_error(
    exc: BaseException, target: str, *, where: str, doing: str = "publishing to"
) -> LayerError:
    """The rtframe error to raise for a failed command about `target` (a channel, a member).

    `doing` says what the command was for ("publishing to", "reading the history of");
    `where` ends the sentence of an outage: what happened anyway (e.g. "reached only in
    this process").
    """
    if is_busy(exc):
        return LayerBusyError(
            f"every Redis connection stayed busy {doing} {target!r} ({where}): {exc}"
        )
    if isinstance(exc, AuthenticationError):
        return LayerError(f"Redis refused the layer's credentials {doing} {target!r}: {exc}")
    if isinstance(exc, UNAVAILABLE):
        return LayerUnavailableError(f"Redis is unreachable {doing} {target!r} ({where}): {exc}")
    if isinstance(exc, RedisError):
        return LayerError(f"Redis refused {doing} {target!r}: {exc}")
    return LayerError(f"{doing} {target!r} failed: {exc!r}")
