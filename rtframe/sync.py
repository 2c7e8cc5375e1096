"""Broadcast from sync code: Django views, management commands, Celery tasks.

    from rtframe.sync import broadcast_sync
    broadcast_sync(rooms, Said(nick="bot", text="deploy done"), room="lobby")

Publishing uses a plain (sync) redis client with its own thread-safe connection pool and
the same wire format as `RedisLayer`: no event loop is created per call, no thread is
started, and repeated calls reuse pooled connections. The frame reaches every member in
every process (the calling process has no WebSocket members of its own to serve).
"""

from __future__ import annotations

from typing import Any

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.cluster import RedisCluster
from redis.exceptions import ClusterDownError, ClusterError, RedisError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from .exceptions import ConfigurationError, LayerError, LayerUnavailableError
from .groups import Group, default_layer
from .layers import _redis_wire as wire
from .layers.base import Layer
from .layers.redis import RedisLayer, check_prefix
from .messages import encode

__all__ = ["SyncPublisher", "broadcast_sync", "send_to_connection_sync"]

_UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ClusterDownError, ClusterError, OSError)


class SyncPublisher:
    """Publishes group and direct messages for `RedisLayer` processes, from sync code.

    Thread-safe; create one per process and keep it (the layer's `sync_publisher()`
    does that for you).

    Args:
        url: the same URL the layer uses. Exactly one of `url` and `client`.
        client: a sync `redis.Redis` or `redis.cluster.RedisCluster` client.
        prefix: the layer's prefix.
        cluster: `url` points at a Redis Cluster (sharded pub/sub).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Redis | RedisCluster | None = None,
        prefix: str = "rtframe",
        cluster: bool = False,
    ) -> None:
        if (url is None) == (client is None):
            raise ConfigurationError(
                "SyncPublisher needs either a url or a client, not both or neither"
            )
        self.prefix = check_prefix(prefix)
        self._owns_client = client is None
        if client is None:
            assert url is not None
            client = wire.client_from_url(
                url,
                cluster=cluster,
                single=Redis.from_url,
                clustered=RedisCluster.from_url,
                retry=Retry(ExponentialBackoff(cap=0.05, base=0.01), 1),
            )
        self.client: Redis | RedisCluster = client
        self.cluster = isinstance(client, RedisCluster)
        self._origin = wire.new_node_id().encode()

    def broadcast(self, group: Group | str, message: Any, **params: Any) -> None:
        """Encode `message` once and publish it to a group (a `Group` and its params, or a name).

        Raises:
            LayerUnavailableError: Redis is unreachable; nobody received the message.
            LayerError: Redis refused the command.
        """
        name = group.name(**params) if isinstance(group, Group) else group
        channel = f"{self.prefix}:g:{name}".encode()
        self._publish(channel, wire.pack_group(self._origin, encode(message)), name)

    def send_to(self, connection_id: str, message: Any) -> None:
        """Send a message to one connection of any process.

        Raises:
            LayerError: `connection_id` was not made by a RedisLayer, or Redis refused.
            LayerUnavailableError: Redis is unreachable.
        """
        node = wire.node_of(connection_id)
        if node is None:
            raise LayerError(f"{connection_id!r} is not a connection id made by a RedisLayer")
        channel = wire.process_channel(self.prefix, node).encode()
        self._publish(
            channel, wire.pack_direct(self._origin, connection_id, encode(message)), connection_id
        )

    def close(self) -> None:
        """Release the pooled connections (if the publisher made its client)."""
        if self._owns_client:
            self.client.close()

    def _publish(self, channel: bytes, payload: bytes, target: str) -> None:
        try:
            if isinstance(self.client, RedisCluster):
                self.client.spublish(channel, payload)
            else:
                self.client.publish(channel, payload)
        except _UNAVAILABLE as exc:
            raise LayerUnavailableError(
                f"Redis is unreachable; {target!r} was not reached: {exc}"
            ) from exc
        except RedisError as exc:
            raise LayerError(f"Redis refused to publish to {target!r}: {exc}") from exc


def _publisher(layer: Layer | None) -> SyncPublisher:
    layer = layer if layer is not None else default_layer()
    if not isinstance(layer, RedisLayer):
        raise LayerError(
            f"sync publishing needs a RedisLayer, but the app's layer is {type(layer).__name__}: "
            "an in-memory layer has no way in from outside the event loop"
        )
    return layer.sync_publisher()


def broadcast_sync(
    group: Group | str, message: Any, *, layer: Layer | None = None, **params: Any
) -> None:
    """Broadcast from sync code through the app's `RedisLayer` (or `layer`).

    Raises:
        LayerError: the layer is not a RedisLayer, or Redis refused the command.
        LayerUnavailableError: Redis is unreachable.
    """
    _publisher(layer).broadcast(group, message, **params)


def send_to_connection_sync(
    connection_id: str, message: Any, *, layer: Layer | None = None
) -> None:
    """Send to one connection from sync code through the app's `RedisLayer` (or `layer`)."""
    _publisher(layer).send_to(connection_id, message)
