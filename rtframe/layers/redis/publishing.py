"""The layer's publish path: which node's `Publisher` carries a publish, and what a
failure means for the caller.

On a single Redis there is one `Publisher`. On a cluster there is one per primary,
chosen by the channel's hash slot (SPUBLISH must reach the shard that owns the slot); a
publish that reaches the old owner of a moved slot gets `MOVED`, reloads the slot map
and is sent once more to the new owner. A publish that finds `max_pending` commands
already waiting waits up to `busy_timeout` for room, then raises `LayerBusyError`.

`run` runs a Lua script the same way (routed by a key's slot) and returns its reply: the
history scripts ride the publish pipeline, so a history broadcast is one round trip like
a plain one, and a burst of history reads (clients reconnecting) shares a few.
"""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import AskError, NoScriptError, RedisClusterException, RedisError

from ...exceptions import LayerBusyError
from . import wire
from .errors import layer_error
from .publisher import Outcome, Publisher, Script
from .stats import RedisStats

__all__ = ["ELSEWHERE", "Publishers"]

#: Who got a frame whose publish failed: the app served this process's members anyway.
ELSEWHERE = "reached only in this process"


class Publishers:
    """The `Publisher`s of one layer, one per Redis node, and the routing between them.

    Args:
        client: the layer's client, for its connection settings and (cluster) slot map.
        client_name: the name the publish connections show in `CLIENT LIST`.
        max_pending: commands that may wait for one node's connection.
        busy_timeout: how long a publish waits for room before `LayerBusyError`.
        stats: the layer's counters.
    """

    __slots__ = (
        "_busy_timeout",
        "_client",
        "_client_name",
        "_loaded",
        "_max_pending",
        "_refreshing",
        "_single",
        "nodes",
        "stats",
    )

    def __init__(
        self,
        client: Redis | RedisCluster,
        *,
        client_name: str,
        max_pending: int,
        busy_timeout: float,
        stats: RedisStats,
    ) -> None:
        self._client = client
        self._client_name = client_name
        self._max_pending = max_pending
        self._busy_timeout = busy_timeout
        self.stats = stats
        #: the publishers of a cluster's nodes, by node name ("host:port")
        self.nodes: dict[str, Publisher] = {}
        self._single: Publisher | None = None
        self._refreshing: asyncio.Task[None] | None = None
        self._loaded = False  # the cluster client was initialized since the last stop
        if isinstance(client, Redis):
            pool = client.connection_pool
            self._single = Publisher(
                wire.address(pool.connection_kwargs),
                wire.connection_factory(pool.connection_class, pool.connection_kwargs, client_name),
                sharded=False,
                max_pending=max_pending,
                stats=stats,
            )

    async def send(self, channel: bytes, payload: bytes, target: str) -> None:
        """Publish `payload` on `channel`; `target` names what it was for, in errors.

        Raises:
            LayerUnavailableError: Redis is unreachable.
            LayerBusyError: no room in the node's queue within `busy_timeout`.
            LayerError: Redis refused the command.
        """
        publisher = self._single
        outcome: Outcome
        try:
            if publisher is None:
                publisher = await self._for_slot(channel)
            if publisher.full:
                await self._wait_for_room(publisher, target, "publishing to", ELSEWHERE)
            outcome = await publisher.submit(channel, payload)
            if isinstance(outcome, AskError) and self._single is None:
                # MOVED/ASK: the slot has a new owner; reload the map, try it once more
                await self.refresh_slots()
                outcome = await (await self._for_slot(channel)).submit(channel, payload)
        except (RedisError, RedisClusterException, OSError) as exc:
            outcome = exc
        if isinstance(outcome, BaseException):
            raise layer_error(outcome, target, where=ELSEWHERE) from outcome
        self.stats.published += 1

    async def run(
        self,
        script: Script,
        key: bytes,
        command: bytes,
        target: str,
        *,
        publishes: bool = False,
        doing: str = "publishing to",
        where: str = ELSEWHERE,
    ) -> Outcome:
        """Run `script` (EVALSHA) on the node that owns `key`; its reply.

        When Redis answers NOSCRIPT (it restarted, failed over or flushed its script
        cache) the script did not run: it is sent whole (EVAL) instead, which caches it
        again for the EVALSHAs after it.

        Args:
            script: the script.
            key: a key the script touches: on a cluster, its slot picks the node.
            command: `script.evalsha` followed by the script's `numkeys`, keys and
                arguments (`pack_args`).
            target: what the script is about (a group), for errors.
            publishes: count it in `stats.published` once Redis answered.
            doing, where: the wording of errors (see `errors.layer_error`).

        Raises:
            LayerUnavailableError: Redis is unreachable.
            LayerBusyError: no room in the node's queue within `busy_timeout`.
            LayerError: Redis refused the command (an error reply, the script failed).
        """
        publisher = self._single
        outcome: Outcome
        try:
            if publisher is None:
                publisher = await self._for_slot(key)
            if publisher.full:
                await self._wait_for_room(publisher, target, doing, where)
            outcome = await publisher.submit(None, command)
            if isinstance(outcome, AskError) and self._single is None:
                await self.refresh_slots()  # as in `send`
                publisher = await self._for_slot(key)
                outcome = await publisher.submit(None, command)
            if isinstance(outcome, NoScriptError):
                # the script did not run, so sending it whole cannot apply it twice
                self.stats.script_loads += 1
                whole = script.eval + command[len(script.evalsha) :]
                outcome = await publisher.submit(None, whole)
        except (RedisError, RedisClusterException, OSError) as exc:
            outcome = exc
        if isinstance(outcome, BaseException):
            raise layer_error(outcome, target, where=where, doing=doing) from outcome
        if publishes:
            self.stats.published += 1
        return outcome

    async def refresh_slots(self) -> None:
        """Reload a cluster's slot map; concurrent callers share one refresh."""
        task = self._refreshing
        if task is None or task.done():
            assert isinstance(self._client, RedisCluster)
            task = self._refreshing = asyncio.get_running_loop().create_task(
                self._load_slots(self._client)
            )
            task.add_done_callback(_retrieve)
        await asyncio.shield(task)

    async def stop(self) -> None:
        """Stop every publisher (queued publishes fail); they start again when used."""
        task, self._refreshing = self._refreshing, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        publishers = [*self.nodes.values()]
        if self._single is not None:
            publishers.append(self._single)
        for publisher in publishers:
            await publisher.stop()
        self.nodes.clear()
        self._loaded = False

    async def _load_slots(self, client: RedisCluster) -> None:
        if self._loaded:  # client.initialize() loads the slot map once, a no-op after
            await client.nodes_manager.initialize()
        else:  # sets the client up, so that its aclose() closes what this opened
            await client.initialize()
            self._loaded = True

    async def _wait_for_room(
        self, publisher: Publisher, target: str, doing: str, where: str
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._busy_timeout
        while publisher.full:
            remaining = deadline - loop.time()
            if remaining <= 0:
                if publisher.broken is not None:  # not busy: the connection keeps failing
                    raise layer_error(publisher.broken, target, where=where, doing=doing)
                self.stats.busy += 1
                raise LayerBusyError(
                    f"{publisher.max_pending} commands to Redis at {publisher.name} stayed "
                    f"queued for {self._busy_timeout}s {doing} {target!r} ({where})"
                )
            await publisher.room(remaining)

    async def _for_slot(self, channel: bytes) -> Publisher:
        client = self._client
        assert isinstance(client, RedisCluster)
        if not client.nodes_manager.slots_cache:
            await self.refresh_slots()
        node = client.get_node_from_key(channel.decode())
        assert node is not None  # a primary always exists for a covered slot
        publisher = self.nodes.get(node.name)
        if publisher is None:
            publisher = self.nodes[node.name] = Publisher(
                node.name,
                wire.connection_factory(
                    node.connection_class, node.connection_kwargs, self._client_name
                ),
                sharded=True,
                max_pending=self._max_pending,
                stats=self.stats,
            )
        return publisher


def _retrieve(task: asyncio.Task[None]) -> None:
    """Mark a shared task's error as seen (its awaiters got it, or nobody waited)."""
    if not task.cancelled():
        task.exception()
