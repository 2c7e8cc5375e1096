"""The Redis pub/sub layer: group and direct frames across processes and machines.

How it implements the layer contract (`rtframe.layers.base`):
- `publish(channel, data)` is one PUBLISH (SPUBLISH on a Redis Cluster) of the frame to
  `<prefix>:g:<channel>`, whatever the group size; the app's registry serves this
  process's members, and every other subscribed process fans the frame out to its own.
  With a `HistoryPolicy`, one Lua script in the same round trip appends the frame to
  the group's history and publishes it with its position (`history`).
  Publishes share one connection per node, batched (`publisher`), so a burst of
  publishers never runs out of connections; the pipeline is bounded, and a publish that
  waited `busy_timeout` for room raises `LayerBusyError`, never an outage.
- `subscribe` / `unsubscribe` add and drop the channel on the process's subscriber
  connection (one per shard on a cluster); `subscribe` returns once Redis confirmed it
  (bounded by `subscribe_timeout`).
- member ids name their process (`<node id>.<uuid>`), so `send_direct` is one PUBLISH
  to that process's own channel `<prefix>:p:<node id>`.
- frames cross Redis verbatim behind a short header (`wire`): no second serialization,
  never pickle. A process skips the copy of its own broadcasts that Redis sends back.

When Redis is unreachable, `publish` and `send_direct` raise `LayerUnavailableError`,
`available` is False and the outage hooks run; the subscriber reconnects with backoff,
subscribes again and runs the recovery hooks once every subscription is confirmed.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.exceptions import AuthenticationError, RedisError

from ...exceptions import ConfigurationError, LayerError, LayerUnavailableError
from ..base import HistoryPolicy, HistorySlice, Layer, Position, PresenceEntry
from . import wire
from .errors import UNAVAILABLE
from .health import Health, Hook
from .history import RedisHistory
from .presence import RedisPresence
from .publishing import Publishers
from .stats import RedisStats
from .subscriber import Subscriber
from .sync import SyncPublisher

__all__ = ["RedisLayer"]

logger = logging.getLogger("rtframe.layers.redis")


class RedisLayer(Layer):
    """Groups and direct messages across every process connected to one Redis.

    Args:
        url: `redis://[:password@]host[:port][/db]`, `rediss://...` for TLS, or any URL
            `redis.asyncio.Redis.from_url` accepts. Exactly one of `url` and `client`.
        client: an existing `redis.asyncio.Redis` or `RedisCluster` client, whose
            connection settings the layer's own connections copy. The layer does not
            close a client it was given.
        prefix: starts every channel name, so several apps can share one Redis.
        cluster: treat `url` as a Redis Cluster node and use sharded pub/sub.
        ping_interval: seconds of silence after which the subscriber pings Redis; a
            connection that does not answer within another interval is replaced.
        reconnect_backoff: (first, longest) delay between reconnection attempts, seconds.
        subscribe_timeout: how long `subscribe` waits for Redis to confirm a new
            subscription before returning anyway (the subscriber keeps trying).
        max_pending: publishes that may wait for their turn on a node's connection.
        busy_timeout: how long a publish waits for room when `max_pending` are waiting
            before it raises `LayerBusyError`.

    Raises:
        ConfigurationError: both or neither of `url` and `client`, a bad URL or prefix,
            non-positive timings or limits.
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
        max_pending: int = 10_000,
        busy_timeout: float = 5.0,
    ) -> None:
        super().__init__()
        if (
            ping_interval <= 0
            or subscribe_timeout <= 0
            or busy_timeout <= 0
            or max_pending < 1
            or not 0 < reconnect_backoff[0] <= reconnect_backoff[1]
        ):
            raise ConfigurationError(
                "RedisLayer timings and max_pending must be positive "
                "(and reconnect_backoff first <= longest)"
            )
        self.prefix = wire.check_prefix(prefix)
        self.url = url
        self.client: Redis | RedisCluster
        self.client, self._owns_client = wire.resolve_client(
            url,
            client,
            who="RedisLayer",
            cluster=cluster,
            classes=(Redis, RedisCluster),
            retry=Retry,
        )
        self.cluster = isinstance(self.client, RedisCluster)
        self.node_id = wire.new_node_id()
        self.stats = RedisStats()
        self._sub_name = f"rtframe-sub:{self.prefix}:{self.node_id}"
        self._origin = self.node_id.encode()
        self._group_prefix = f"{self.prefix}:g:".encode()
        self._process_channel = wire.process_channel(self.prefix, self.node_id).encode()
        self._ping_interval = ping_interval
        self._backoff = reconnect_backoff
        self._subscribe_timeout = subscribe_timeout
        #: the Redis channel of every channel this process is subscribed to -> its name
        self._names: dict[bytes, str] = {}
        self._subscribers: dict[str, Subscriber] = {}
        self._placement: dict[bytes, Subscriber] = {}
        self._subscribing: dict[bytes, asyncio.Task[None]] = {}
        self._publishing = Publishers(
            self.client,
            client_name=f"rtframe-pub:{self.prefix}:{self.node_id}",
            max_pending=max_pending,
            busy_timeout=busy_timeout,
            stats=self.stats,
        )
        self._send = self._publishing.send
        self._history = RedisHistory(self._publishing, self.prefix, self._origin, self.cluster)
        self._presence = RedisPresence(self.client, self.prefix)
        self._health = Health(self.stats)
        self._rebalancing: asyncio.Task[None] | None = None
        self._started = False
        self._sync: SyncPublisher | None = None
        self._sync_lock = threading.Lock()

    def __repr__(self) -> str:
        where = "cluster" if self.cluster else "redis"
        return f"<RedisLayer {where} prefix={self.prefix!r} node={self.node_id}>"

    @property
    def available(self) -> bool:
        """True while every subscriber connection is up with its subscriptions confirmed.

        False before `start`, after `stop`, and from the moment a connection is lost (or
        its task hit an unexpected error) until it is back and resubscribed.
        """
        return (
            self._started
            and bool(self._subscribers)
            and all(s.connected for s in self._subscribers.values())
        )

    # -- outage hooks ----------------------------------------------------------------

    def on_outage(self, hook: Hook) -> Hook:
        """Register `async def hook()`, run when Redis becomes unreachable.

        From then on only local members receive broadcasts; use it to tell clients
        their view may go stale.
        """
        return self._health.on_outage(hook)

    def on_recovery(self, hook: Hook) -> Hook:
        """Register `async def hook()`, run once every subscription is back after an outage.

        Messages published during the outage are lost (at most once): use it to make
        clients resynchronize, e.g. hand a "resync" frame to `layer.receiver` for each
        of `local_groups()`.
        """
        return self._health.on_recovery(hook)

    def local_groups(self) -> list[str]:
        """The channels (group names) this process is subscribed to."""
        return list(self._names.values())

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
        self._presence.start()
        if self.cluster:
            try:
                await self._publishing.refresh_slots()
            except UNAVAILABLE as exc:
                logger.warning("Redis Cluster unreachable at startup (%r); running local-only", exc)
        first = await self._place(self._process_channel)
        for channel in list(self._names):
            await self._place(channel)
        waiter = first.first_attempt
        error = await waiter if waiter is not None else None
        if isinstance(error, AuthenticationError) or (
            isinstance(error, RedisError) and not isinstance(error, UNAVAILABLE)
        ):
            await self.stop()
            raise LayerError(f"Redis refused the layer's connection: {error}") from error
        if error is not None and not self.available:
            logger.warning("Redis unreachable at startup (%r); local-only until it is back", error)
            self._health.down()

    async def stop(self) -> None:
        """Close the layer's connections, and the client if the layer made it.

        The layer can start again afterwards.
        """
        if self._started:
            self._started = False
            await self._health.stop()
            tasks = [*self._subscribing.values()]
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
        await self._presence.stop()
        # publishes work without start() (the publisher connects on first use): always
        await self._publishing.stop()
        if self._owns_client:
            await self.client.aclose()
            # a closed client reconnects on its next command, so the layer can start again

    # -- the contract ----------------------------------------------------------------

    def new_member_id(self) -> str:
        return f"{self.node_id}.{uuid.uuid4().hex}"

    async def publish(
        self, channel: str, data: str | bytes, history: HistoryPolicy | None = None
    ) -> Position | None:
        """PUBLISH the frame once, for the other processes subscribed to `channel`; with
        `history`, the history script instead (`history.RedisHistory.publish`).

        Raises:
            LayerUnavailableError: Redis is unreachable.
            LayerBusyError: `max_pending` publishes stayed ahead of this one for
                `busy_timeout` (Redis is reachable; not an outage).
            LayerError: Redis refused the command.
        """
        if history is not None:
            return await self._history.publish(channel, data, history)
        await self._send(
            self._group_prefix + channel.encode(), wire.pack_group(self._origin, data), channel
        )
        return None

    async def history(
        self, channel: str, policy: HistoryPolicy, since: int | None, limit: int
    ) -> HistorySlice:
        """One script reads the history (`history.RedisHistory.read`); errors as `publish`."""
        return await self._history.read(channel, policy, since, limit)

    async def subscribe(self, channel: str) -> None:
        key = self._group_prefix + channel.encode()
        if key in self._names:
            pending = self._subscribing.get(key)
            if pending is not None:  # the first call's subscription is still on its way
                await asyncio.shield(pending)
            return
        self._names[key] = channel
        if not self._started:
            return  # `start` subscribes to every channel wanted by then
        task = asyncio.get_running_loop().create_task(self._subscribe(key))
        self._subscribing[key] = task
        try:
            await asyncio.shield(task)
        finally:
            if self._subscribing.get(key) is task:
                del self._subscribing[key]

    async def unsubscribe(self, channel: str) -> None:
        key = self._group_prefix + channel.encode()
        if self._names.pop(key, None) is None:
            return
        sub = self._placement.pop(key, None)
        if sub is not None:
            await sub.unsubscribe(key)

    async def send_direct(self, member_id: str, data: str | bytes) -> None:
        """Send to one member of any process; a member that is gone is not an error.

        Raises:
            LayerError: `member_id` was not made by a RedisLayer.
            LayerUnavailableError: the member is elsewhere and Redis is unreachable.
            LayerBusyError: as for `publish`.
        """
        node = wire.node_of(member_id)
        if node is None:
            raise LayerError(f"{member_id!r} is not a member id made by a RedisLayer")
        if node == self.node_id:
            if not self.receiver.deliver_direct(member_id, data):
                self._unknown_target(member_id)
            return
        await self._send(
            wire.process_channel(self.prefix, node).encode(),
            wire.pack_direct(self._origin, member_id, data),
            member_id,
        )

    def _unknown_target(self, member_id: str) -> None:
        self.stats.unknown_target += 1
        logger.warning("direct message to %r dropped: no such member in this process", member_id)

    # presence lives in `presence`: scripts batched per group, refreshed every ttl/3
    async def presence_add(self, channel: str, entry: PresenceEntry, ttl: float) -> None:
        await self._presence.add(channel, entry, ttl)

    async def presence_remove(self, channel: str, member_id: str) -> None:
        await self._presence.remove(channel, member_id)

    async def presence(self, channel: str) -> list[PresenceEntry]:
        return await self._presence.read(channel)

    async def presence_sweep(self, channel: str) -> list[str]:
        return await self._presence.sweep(channel)

    def sync_publisher(self) -> SyncPublisher:
        """A publisher for sync code (views, commands, tasks) that shares this configuration.

        Raises:
            ConfigurationError: the layer was built from a client, not a URL; create a
                `rtframe.sync.SyncPublisher` with a sync client yourself.
        """
        with self._sync_lock:
            if self._sync is None:
                if self.url is None:
                    raise ConfigurationError(
                        "sync publishing needs the layer's URL, but this RedisLayer was given a "
                        "client: build rtframe.sync.SyncPublisher(client=<redis.Redis>) yourself"
                    )
                self._sync = SyncPublisher(self.url, prefix=self.prefix, cluster=self.cluster)
            return self._sync

    # -- subscribing -----------------------------------------------------------------

    async def _subscribe(self, channel: bytes) -> None:
        if channel not in self._names:  # unsubscribed before this task ran
            return
        sub = await self._place(channel)
        await sub.subscribe(channel, self._subscribe_timeout)
        if channel not in self._names and self._placement.get(channel) is sub:
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
            factory = wire.connection_factory(
                node.connection_class, node.connection_kwargs, self._sub_name
            )
        else:
            pool = self.client.connection_pool
            name = wire.address(pool.connection_kwargs)
            factory = wire.connection_factory(
                pool.connection_class, pool.connection_kwargs, self._sub_name
            )
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
            name = self._names.get(channel)
            if name is not None:
                if payload[:1] == wire.POSITIONED:
                    origin, position, text = wire.unpack_positioned(payload)
                    if origin != self._origin:  # as below
                        self.receiver.deliver_group(name, text, position)
                    return
                origin, frame = wire.unpack_group(payload)
                if origin != self._origin:  # the app served our own members when we published
                    self.receiver.deliver_group(name, frame)
            elif channel == self._process_channel:
                target, frame = wire.unpack_direct(payload)
                if not self.receiver.deliver_direct(target, frame):
                    self._unknown_target(target)
            elif not channel.startswith(self._group_prefix):
                raise wire.MalformedPayload("not a channel of this layer")
            # else: a frame sent before our unsubscribe took effect; nobody wants it
        except (wire.MalformedPayload, UnicodeDecodeError) as exc:
            self.stats.malformed += 1
            logger.warning("dropped a malformed message on %r (%s): %r", channel, exc, payload[:64])
        except Exception:  # a delivery bug must not take the subscriber connection down
            logger.exception("delivering a message from %r failed", channel)

    # -- health ----------------------------------------------------------------------

    async def _on_state(
        self, sub: Subscriber, connected: bool, error: BaseException | None
    ) -> None:
        if connected and sub.ups > 1:
            self.stats.resubscribed += 1
        if self._health.update(self.available, sub.name, error) and self.cluster:
            self._rebalance_soon()  # a shard went away: its slots may have moved

    def _on_lost(self, channel: bytes | None) -> None:
        if channel is None:
            logger.info("Redis Cluster refused a subscription (slot moved?)")
        else:
            logger.info("Redis Cluster dropped our subscription to %r (slot moved?)", channel)
        self._rebalance_soon()

    def _rebalance_soon(self) -> None:
        if self._started and (self._rebalancing is None or self._rebalancing.done()):
            self._rebalancing = asyncio.get_running_loop().create_task(self._rebalance())

    async def _rebalance(self) -> None:
        """Refresh the cluster's slot map and move channels whose slot changed owner."""
        assert isinstance(self.client, RedisCluster)
        delay = self._backoff[0]
        while self._started:
            try:
                await self._publishing.refresh_slots()
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
        self._health.update(self.available, "the cluster", None)
