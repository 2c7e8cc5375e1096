"""The Redis pub/sub layer: groups and direct messages across processes and machines.

Fan-out design:
- a broadcast is one PUBLISH (SPUBLISH on a Redis Cluster) whatever the group size; the
  publishing process hands the frame to its own members at once, and every other
  process fans it out to its members from its single subscriber connection;
- a process subscribes to a group's channel only while it has a member there (the
  local member dict is the reference count) and unsubscribes when the last one leaves;
- every connection id names its process (`<node id>.<uuid>`), so a direct message is one
  PUBLISH to that process's own channel;
- frames cross Redis verbatim behind a short header (see `_redis_wire`): no second
  serialization, never pickle.

When Redis is unreachable, local members still get every broadcast, `publish` and
`send_to` raise `LayerUnavailableError`, `available` is False and the outage hooks run;
the subscriber reconnects with backoff, subscribes again and runs the recovery hooks.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    AuthenticationError,
    ClusterDownError,
    ClusterError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from ..exceptions import ConfigurationError, LayerError, LayerUnavailableError
from . import _redis_wire as wire
from ._redis_sub import Subscriber, subscriber_factory
from .base import Layer

if TYPE_CHECKING:
    from ..connection import Connection
    from ..sync import SyncPublisher

logger = logging.getLogger("rtframe.layers.redis")

Hook = Callable[[], Awaitable[None]]

#: Errors that mean "Redis cannot be reached right now", as opposed to a refused command.
UNAVAILABLE = (RedisConnectionError, RedisTimeoutError, ClusterDownError, ClusterError, OSError)


class RedisStats:
    """Counters of one layer, for logs, metrics and tests."""

    __slots__ = ("malformed", "outages", "published", "received", "unknown_target")

    def __init__(self) -> None:
        self.published = 0  #: PUBLISH/SPUBLISH commands that succeeded
        self.received = 0  #: messages read from the subscriber connection(s)
        self.malformed = 0  #: payloads dropped because they did not parse
        self.unknown_target = 0  #: direct messages for a connection no longer here
        self.outages = 0  #: times the layer went from available to unavailable

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)}" for name in self.__slots__)
        return f"RedisStats({fields})"


def check_prefix(prefix: str) -> str:
    if not prefix or any(c.isspace() for c in prefix):
        raise ConfigurationError(
            f"prefix must be a non-empty string without spaces, not {prefix!r}"
        )
    return prefix


class RedisLayer(Layer):
    """Groups and direct messages across every process connected to one Redis.

    Args:
        url: `redis://[:password@]host[:port][/db]`, `rediss://...` for TLS, or any URL
            `redis.asyncio.Redis.from_url` accepts. Exactly one of `url` and `client`.
        client: an existing `redis.asyncio.Redis` or `RedisCluster` client. The layer
            does not close a client it was given.
        prefix: starts every channel name, so several apps can share one Redis.
        cluster: treat `url` as a Redis Cluster node and use sharded pub/sub.
        ping_interval: seconds of silence after which the subscriber pings Redis; a
            connection that does not answer within another interval is replaced.
        reconnect_backoff: (first, longest) delay between reconnection attempts, seconds.
        subscribe_timeout: how long `group_add` waits for Redis to confirm a new
            subscription before returning anyway (the subscriber keeps trying).

    Raises:
        ConfigurationError: both or neither of `url` and `client`, a bad URL or prefix.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        client: Redis | RedisCluster | None = None,
        prefix: str = "rtframe",
        cluster: bool = False,
        ping_interval: float = 5.0,
        reconnect_backoff: tuple[float, float] = (0.1, 5.0),
        subscribe_timeout: float = 5.0,
    ) -> None:
        super().__init__()
        if (url is None) == (client is None):
            raise ConfigurationError(
                "RedisLayer needs either a url or a client, not both or neither"
            )
        if (
            ping_interval <= 0
            or subscribe_timeout <= 0
            or not 0 < reconnect_backoff[0] <= reconnect_backoff[1]
        ):
            raise ConfigurationError(
                "RedisLayer timings must be positive (and backoff first <= longest)"
            )
        self.prefix = check_prefix(prefix)
        self.url = url
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
        self.node_id = wire.new_node_id()
        self._client_name = f"rtframe-sub:{self.prefix}:{self.node_id}"
        self._origin = self.node_id.encode()
        self._group_prefix = f"{self.prefix}:g:".encode()
        self._process_channel = wire.process_channel(self.prefix, self.node_id).encode()
        self._ping_interval = ping_interval
        self._backoff = reconnect_backoff
        self._subscribe_timeout = subscribe_timeout
        self._subscribers: dict[str, Subscriber] = {}
        self._placement: dict[bytes, Subscriber] = {}
        self._subscribing: dict[bytes, asyncio.Task[None]] = {}
        self._outage_hooks: list[Hook] = []
        self._recovery_hooks: list[Hook] = []
        self._hook_tasks: set[asyncio.Task[None]] = set()
        self._rebalancing: asyncio.Task[None] | None = None
        self._started = False
        self._degraded = False  # an outage began and the recovery hooks have not run yet
        self._sync: SyncPublisher | None = None
        self._sync_lock = threading.Lock()
        #: False while any subscriber connection is down (and before `start`).
        self.available = False
        self.stats = RedisStats()

    def __repr__(self) -> str:
        where = "cluster" if self.cluster else "redis"
        return f"<RedisLayer {where} prefix={self.prefix!r} node={self.node_id}>"

    # -- outage hooks ----------------------------------------------------------------

    def on_outage(self, hook: Hook) -> Hook:
        """Register `async def hook()`, run when Redis becomes unreachable.

        From then on only local members receive broadcasts; use it to tell clients
        their view may go stale.
        """
        self._outage_hooks.append(hook)
        return hook

    def on_recovery(self, hook: Hook) -> Hook:
        """Register `async def hook()`, run once every subscription is back after an outage.

        Messages published during the outage are lost (at most once): use it to make
        clients resynchronize, e.g. broadcast a "resync" frame to the local groups.
        """
        self._recovery_hooks.append(hook)
        return hook

    def local_groups(self) -> list[str]:
        """The groups this process has members in (what it is subscribed to)."""
        return list(self._groups)

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Connect the subscriber; if Redis is down, start anyway in outage mode.

        Raises:
            LayerError: Redis refused the credentials or the command (a configuration
                problem, which retrying would not fix).
        """
        if self._started:
            return
        self._started = True
        if isinstance(self.client, RedisCluster):
            try:
                await self.client.initialize()
            except UNAVAILABLE as exc:
                logger.warning("Redis Cluster unreachable at startup (%r); running local-only", exc)
        first = await self._place(self._process_channel)
        for name in self._groups:
            await self._place(self._channel(name))
        waiter = first.first_attempt
        error = await waiter if waiter is not None else None
        if isinstance(error, AuthenticationError | ResponseError):
            await self.stop()
            raise LayerError(f"Redis refused the layer's connection: {error}") from error
        if error is not None and not self.available:
            logger.warning("Redis unreachable at startup (%r); local-only until it is back", error)
            self._degraded = True
            self.stats.outages += 1
            self._run_hooks(self._outage_hooks)

    async def stop(self) -> None:
        """Close the subscriber connection(s), and the client if the layer made it."""
        if not self._started:
            return
        self._started = False
        self.available = False
        tasks = [*self._hook_tasks, *self._subscribing.values()]
        if self._rebalancing is not None:
            tasks.append(self._rebalancing)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._rebalancing = None
        for sub in self._subscribers.values():
            await sub.stop()
        self._subscribers.clear()
        self._placement.clear()
        if self._owns_client:
            await self.client.aclose()
            # a closed client reconnects on its next command, so the layer can start again

    # -- the contract ----------------------------------------------------------------

    def new_connection_id(self) -> str:
        return f"{self.node_id}.{uuid.uuid4().hex}"

    async def group_add(self, group: str, conn: Connection) -> None:
        channel = self._channel(group)
        if self._add_local(group, conn):
            if self._started:
                task = asyncio.ensure_future(self._subscribe(channel))
                self._subscribing[channel] = task
                try:
                    await asyncio.shield(task)
                finally:
                    if self._subscribing.get(channel) is task:
                        del self._subscribing[channel]
        else:
            pending = self._subscribing.get(channel)
            if pending is not None:  # the first member's subscription is still on its way
                await asyncio.shield(pending)

    async def group_discard(self, group: str, conn: Connection) -> None:
        if self._discard_local(group, conn):
            channel = self._channel(group)
            sub = self._placement.pop(channel, None)
            if sub is not None:
                await sub.unsubscribe(channel)

    async def publish(self, group: str, data: str | bytes) -> None:
        """PUBLISH once for the other processes, then deliver to this process's members.

        Local members are served right after Redis acknowledged the PUBLISH, which is
        when the other processes start serving theirs, so the fan-outs run side by side;
        they are served even when the PUBLISH fails.

        Raises:
            LayerUnavailableError: Redis is unreachable; only this process's members got
                the frame.
            LayerError: Redis refused the command.
        """
        try:
            await self._publish(self._channel(group), wire.pack_group(self._origin, data), group)
        finally:
            self.fan_out(group, data)

    async def send_to(self, connection_id: str, data: str | bytes) -> None:
        """Send to one connection of any process; unknown connections are ignored.

        Raises:
            LayerError: `connection_id` was not made by a RedisLayer.
            LayerUnavailableError: the connection is elsewhere and Redis is unreachable.
        """
        node = wire.node_of(connection_id)
        if node is None:
            raise LayerError(f"{connection_id!r} is not a connection id made by a RedisLayer")
        if node == self.node_id:
            if not self.deliver_local(connection_id, data):
                self.stats.unknown_target += 1
            return
        channel = wire.process_channel(self.prefix, node).encode()
        await self._publish(
            channel, wire.pack_direct(self._origin, connection_id, data), connection_id
        )

    def sync_publisher(self) -> SyncPublisher:
        """A publisher for sync code (views, commands, tasks) that shares this configuration.

        Raises:
            ConfigurationError: the layer was built from a client, not a URL; create a
                `rtframe.sync.SyncPublisher` with a sync client yourself.
        """
        with self._sync_lock:
            if self._sync is None:
                from ..sync import SyncPublisher

                if self.url is None:
                    raise ConfigurationError(
                        "sync publishing needs the layer's URL, but this RedisLayer was given a "
                        "client: build rtframe.sync.SyncPublisher(client=<redis.Redis>) yourself"
                    )
                self._sync = SyncPublisher(self.url, prefix=self.prefix, cluster=self.cluster)
            return self._sync

    # -- internals -------------------------------------------------------------------

    def _channel(self, group: str) -> bytes:
        return self._group_prefix + group.encode()

    async def _publish(self, channel: bytes, payload: bytes, target: str) -> None:
        try:
            if isinstance(self.client, RedisCluster):
                await self.client.spublish(channel, payload)
            else:
                await self.client.publish(channel, payload)
        except UNAVAILABLE as exc:
            raise LayerUnavailableError(
                f"Redis is unreachable, so {target!r} was reached only in this process: {exc}"
            ) from exc
        except RedisError as exc:
            raise LayerError(f"Redis refused to publish to {target!r}: {exc}") from exc
        self.stats.published += 1

    async def _subscribe(self, channel: bytes) -> None:
        group = channel[len(self._group_prefix) :].decode()
        if group not in self._groups:  # the last member left before this task ran
            return
        sub = await self._place(channel)
        await sub.subscribe(channel, self._subscribe_timeout)
        if group not in self._groups and self._placement.get(channel) is sub:
            del self._placement[channel]
            await sub.unsubscribe(channel)

    async def _place(self, channel: bytes) -> Subscriber:
        """The subscriber that carries `channel` (created and started if need be)."""
        sub = self._placement.get(channel)
        if sub is not None:
            return sub
        if isinstance(self.client, RedisCluster):
            node = (
                self.client.get_node_from_key(channel.decode())
                if self.client.nodes_manager.slots_cache
                else None
            )
            if node is None:  # cluster not reachable yet: park it on the first known node
                nodes = self.client.get_nodes()
                if not nodes:
                    raise LayerUnavailableError("no Redis Cluster node is known yet")
                node = nodes[0]
            name = node.name
            factory = subscriber_factory(
                node.connection_class, node.connection_kwargs, self._client_name
            )
        else:
            pool = self.client.connection_pool
            kwargs = pool.connection_kwargs
            name = f"{kwargs.get('host', kwargs.get('path', 'redis'))}:{kwargs.get('port', '')}"
            factory = subscriber_factory(pool.connection_class, kwargs, self._client_name)
        sub = self._subscribers.get(name)
        if sub is None:
            sub = self._subscribers[name] = Subscriber(
                name,
                factory,
                sharded=self.cluster,
                on_message=self._on_message,
                on_state=self._on_state,
                on_lost=self._on_lost if self.cluster else None,
                ping_interval=self._ping_interval,
                backoff=self._backoff,
            )
            sub.start()
        sub.channels.add(channel)
        self._placement[channel] = sub
        return sub

    def _on_message(self, channel: bytes, payload: bytes) -> None:
        self.stats.received += 1
        try:
            if channel == self._process_channel:
                target, frame = wire.unpack_direct(payload)
                if not self.deliver_local(target, frame):
                    self.stats.unknown_target += 1
                return
            if not channel.startswith(self._group_prefix):
                raise wire.MalformedPayload("not a channel of this layer")
            origin, frame = wire.unpack_group(payload)
            if origin != self._origin:  # our own broadcasts were delivered when published
                self.fan_out(channel[len(self._group_prefix) :].decode(), frame)
        except (wire.MalformedPayload, UnicodeDecodeError) as exc:
            self.stats.malformed += 1
            logger.warning("dropped a malformed message on %r (%s): %r", channel, exc, payload[:64])
        except Exception:  # a delivery bug must not take the subscriber connection down
            logger.exception("delivering a message from %r failed", channel)

    async def _on_state(
        self, sub: Subscriber, connected: bool, error: BaseException | None
    ) -> None:
        was = self.available
        self.available = self._started and all(s.connected for s in self._subscribers.values())
        if was and not self.available:
            self._degraded = True
            self.stats.outages += 1
            logger.warning(
                "lost Redis at %s (%r): broadcasts reach local members only until it is back",
                sub.name,
                error,
            )
            self._run_hooks(self._outage_hooks)
            if self.cluster:
                self._rebalance_soon()
        elif not was and self.available:
            if self._degraded:
                self._degraded = False
                logger.warning("Redis is back at %s; subscriptions restored", sub.name)
                self._run_hooks(self._recovery_hooks)

    def _run_hooks(self, hooks: list[Hook]) -> None:
        for hook in hooks:
            task = asyncio.get_running_loop().create_task(self._call_hook(hook))
            self._hook_tasks.add(task)
            task.add_done_callback(self._hook_tasks.discard)

    async def _call_hook(self, hook: Hook) -> None:
        try:
            await hook()
        except Exception:
            logger.exception("Redis layer hook %r failed", hook)

    def _on_lost(self, channel: bytes) -> None:
        logger.info("Redis Cluster dropped our subscription to %r (slot moved?)", channel)
        self._rebalance_soon()

    def _rebalance_soon(self) -> None:
        if self._rebalancing is None or self._rebalancing.done():
            self._rebalancing = asyncio.get_running_loop().create_task(self._rebalance())

    async def _rebalance(self) -> None:
        """Refresh the cluster's slot map and move channels whose slot changed owner."""
        assert isinstance(self.client, RedisCluster)
        delay = self._backoff[0]
        while self._started:
            try:
                await self.client.nodes_manager.initialize()
                break
            except UNAVAILABLE as exc:
                logger.debug("cluster slot refresh failed: %r", exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, self._backoff[1])
        for channel, sub in list(self._placement.items()):
            node = self.client.get_node_from_key(channel.decode())
            if node is not None and node.name != sub.name:
                del self._placement[channel]
                await sub.unsubscribe(channel)
                await (await self._place(channel)).subscribe(channel, self._subscribe_timeout)
        for name, sub in list(self._subscribers.items()):
            if not sub.channels:
                del self._subscribers[name]
                await sub.stop()
        self.available = self._started and all(s.connected for s in self._subscribers.values())
