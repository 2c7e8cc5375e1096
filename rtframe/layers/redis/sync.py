"""Publishing into `RedisLayer` processes from sync code: views, commands, Celery tasks.

`SyncPublisher` uses a plain (sync) redis client with its own thread-safe connection
pool and the same wire format as `RedisLayer`: no event loop is created per call, no
thread is started, and repeated calls reuse pooled connections. The frame reaches every
member in every process (the calling process has no members of its own to serve).
A broadcast to a history group runs the layer's history script (`history`), so its
frames get positions like any other. `rtframe.sync` is the public front:
`broadcast_sync` and `send_to_connection_sync`.
"""

from __future__ import annotations

from typing import Any, Protocol

from redis import Redis
from redis.cluster import RedisCluster
from redis.exceptions import NoScriptError, RedisClusterException, RedisError
from redis.retry import Retry

from ...exceptions import LayerError, RtframeError
from ...messages import encode
from ..base import HistoryPolicy, Position
from . import wire
from .errors import layer_error
from .history import PUBLISH, new_epoch, publish_args, reply_position

__all__ = ["NamedGroup", "SyncPublisher"]


class NamedGroup(Protocol):
    """Anything that names a group from parameters: `rtframe.Group`."""

    def name(self, **params: Any) -> str: ...


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
        self.prefix = wire.check_prefix(prefix)
        self.client: Redis | RedisCluster
        self.client, self._owns_client = wire.resolve_client(
            url,
            client,
            who="SyncPublisher",
            cluster=cluster,
            classes=(Redis, RedisCluster),
            retry=Retry,
        )
        self.cluster = isinstance(self.client, RedisCluster)
        self._origin = wire.new_node_id().encode()

    def broadcast(
        self,
        group: NamedGroup | str,
        message: Any,
        history: HistoryPolicy | None = None,
        **params: Any,
    ) -> Position | None:
        """Encode `message` once and publish it to a group (a `Group` and its params, or a name).

        A group that keeps history (`history`, by default the `Group`'s own policy) gets
        the message appended and published by the history script, atomically; its
        position is returned. Otherwise it is one PUBLISH, and None is returned.

        Raises:
            LayerUnavailableError: Redis is unreachable; nobody received the message.
            LayerBusyError: every pooled connection stayed taken (many threads).
            LayerError: Redis refused the command.
            RtframeError: a message to a history group that is not a JSON object.
        """
        if isinstance(group, str):
            name = group
        else:
            name = group.name(**params)
            if history is None:
                policy = getattr(group, "history", None)
                history = policy if isinstance(policy, HistoryPolicy) else None
        channel = wire.group_channel(self.prefix, name)
        data = encode(message)
        if history is not None:
            return self._publish_history(name, channel, data, history)
        self._publish(channel.encode(), wire.pack_group(self._origin, data), name)
        return None

    def send_to(self, member_id: str, message: Any) -> None:
        """Send a message to one member (connection) of any process.

        Raises:
            LayerError: `member_id` was not made by a RedisLayer, or Redis refused.
            LayerUnavailableError: Redis is unreachable.
        """
        node = wire.node_of(member_id)
        if node is None:
            raise LayerError(f"{member_id!r} is not a member id made by a RedisLayer")
        channel = wire.process_channel(self.prefix, node).encode()
        self._publish(
            channel, wire.pack_direct(self._origin, member_id, encode(message)), member_id
        )

    def close(self) -> None:
        """Release the pooled connections (if the publisher made its client)."""
        if self._owns_client:
            self.client.close()

    def _publish_history(
        self, name: str, channel: str, data: str | bytes, policy: HistoryPolicy
    ) -> Position:
        # the receiving processes add the position to the JSON object: refuse what cannot
        # carry one here, where the caller sees it, rather than in their logs
        if not isinstance(data, str) or data[:1] != "{" or data[-1:] != "}":
            raise RtframeError(
                f"messages to history group {name!r} must encode to a JSON object; got "
                f"{data[:40]!r}"
            )
        header = wire.positioned_header(self._origin)
        args = [*publish_args(channel, policy, header, self.cluster), new_epoch(), data.encode()]
        reply: Any
        try:
            try:
                reply = self.client.evalsha(PUBLISH.sha.decode(), 2, *args)
            except NoScriptError:  # Redis lost its script cache: EVAL caches it again
                reply = self.client.eval(PUBLISH.source.decode(), 2, *args)
        except (RedisError, RedisClusterException, OSError) as exc:
            raise layer_error(exc, name, where="reached nobody") from exc
        return reply_position(name, reply)

    def _publish(self, channel: bytes, payload: bytes, target: str) -> None:
        try:
            if isinstance(self.client, RedisCluster):
                self.client.spublish(channel, payload)
            else:
                self.client.publish(channel, payload)
        except (RedisError, RedisClusterException, OSError) as exc:
            raise layer_error(exc, target, where="reached nobody") from exc
