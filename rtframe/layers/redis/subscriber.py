"""One pub/sub connection to one Redis node, kept subscribed through outages and bugs.

The connection is a bare `redis.asyncio` connection in RESP2, read by a single task.
Every read has an explicit timeout of `ping_interval`: when it expires the task sends a
PING and expects the pong within the next interval. So a quiet connection never dies of
the client's socket timeout (redis-py 8 defaults it to 5 s, which is what kills idle
channels_redis consumers), and a half-open one is noticed within two intervals instead
of never.

The subscriber counts as connected only once Redis has processed every subscription it
sent after connecting: a `PING <marker>` follows them, and Redis answers commands of
one connection in order, so its pong means every SUBSCRIBE before it took effect.

On any failure (a Redis or network error, and just as well an unexpected exception: a
bug must not stop the task while the layer still reports itself available) the task
marks itself down, reconnects with jittered exponential backoff and subscribes again to
every channel it still wants. Unexpected exceptions are logged with their traceback.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import AuthenticationError, RedisError, ResponseError

__all__ = ["Subscriber"]

logger = logging.getLogger("rtframe.layers.redis")

#: The argument of the PING that follows the subscriptions made after connecting.
_READY = b"rtframe-ready"


class Subscriber:
    """Keeps one connection subscribed to a set of channels and hands messages on.

    Args:
        name: shown in logs (the node address).
        connect: makes a new, unconnected connection.
        sharded: use SSUBSCRIBE (Redis Cluster sharded pub/sub) instead of SUBSCRIBE.
        on_message: called with (channel, payload) for every message, never awaited;
            it must not raise (the layer's catches everything).
        on_state: awaited with (subscriber, connected, error) when the connection comes
            up (after Redis confirmed the subscriptions) or goes down.
        on_lost: called with a channel the server unsubscribed on its own (a slot
            moved), or with None when it refused a subscription (e.g. MOVED).
    """

    def __init__(
        self,
        name: str,
        connect: Callable[[], AbstractConnection],
        *,
        sharded: bool,
        on_message: Callable[[bytes, bytes], None],
        on_state: Callable[[Subscriber, bool, BaseException | None], Awaitable[None]],
        on_lost: Callable[[bytes | None], None] | None = None,
        ping_interval: float = 5.0,
        backoff: tuple[float, float] = (0.1, 5.0),
    ) -> None:
        self.name = name
        self.channels: set[bytes] = set()
        self.connected = False
        self.attempts = 0
        self.ups = 0  # times the connection came up, its channels subscribed
        self._connect = connect
        self._on_message = on_message
        self._on_state = on_state
        self._on_lost = on_lost
        self._ping_interval = ping_interval
        self._backoff = backoff
        self._sub, self._unsub = (
            ("SSUBSCRIBE", "SUNSUBSCRIBE") if sharded else ("SUBSCRIBE", "UNSUBSCRIBE")
        )
        self._message = b"smessage" if sharded else b"message"
        self._sub_reply = self._sub.lower().encode()
        self._unsub_reply = self._unsub.lower().encode()
        self._sharded = sharded
        self._conn: AbstractConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._confirm: dict[bytes, asyncio.Future[None]] = {}
        self.first_attempt: asyncio.Future[BaseException | None] | None = None

    def __repr__(self) -> str:
        state = "up" if self.connected else "down"
        return f"<Subscriber {self.name} {state} {len(self.channels)} channels>"

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self.first_attempt = loop.create_future()
        self._task = loop.create_task(self._run(), name=f"rtframe redis subscriber {self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._release_waiters()

    async def subscribe(self, channel: bytes, timeout: float) -> None:
        """Want `channel`; when connected, wait (bounded) for Redis to confirm it."""
        self.channels.add(channel)
        conn = self._conn
        connecting = self.first_attempt is not None and not self.first_attempt.done()
        if conn is None and not connecting:
            return  # Redis is down: subscribed again on reconnection
        waiter = self._confirm.get(channel)
        if waiter is None:
            waiter = self._confirm[channel] = asyncio.get_running_loop().create_future()
        try:
            if conn is not None:
                await conn.send_command(self._sub, channel)
            # else the first connection, still being made, subscribes to it
            await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except (RedisError, OSError) as exc:  # TimeoutError is an OSError
            # the reader task sees the same failure and resubscribes after reconnecting
            logger.debug("subscribing %r on %s did not complete: %r", channel, self.name, exc)

    async def unsubscribe(self, channel: bytes) -> None:
        self.channels.discard(channel)
        conn = self._conn
        if conn is None:
            return
        try:
            await conn.send_command(self._unsub, channel)
        except (RedisError, OSError) as exc:
            logger.debug("unsubscribing %r on %s failed: %r", channel, self.name, exc)

    def _release_waiters(self) -> None:
        for waiter in self._confirm.values():
            if not waiter.done():
                waiter.set_result(None)
        self._confirm.clear()

    async def _run(self) -> None:
        delay = self._backoff[0]
        while True:
            self.attempts += 1
            conn = self._connect()
            error: BaseException | None = None
            try:
                await conn.connect()  # type: ignore[no-untyped-call]
                self._conn = conn
                if await self._subscribe_all(conn):
                    await conn.send_command("PING", _READY)  # answered after the above
                else:
                    await self._up()
                await self._read(conn)
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:  # Redis or the network failed
                error = exc
                if isinstance(exc, AuthenticationError):
                    logger.error("Redis at %s refused our credentials: %s", self.name, exc)
            except Exception as exc:  # a bug: log it, then recover like from an outage
                error = exc
                logger.exception(
                    "the Redis subscriber for %s failed unexpectedly; reconnecting", self.name
                )
            finally:
                was_connected, self.connected, self._conn = self.connected, False, None
                self._release_waiters()
                try:
                    await conn.disconnect(nowait=True)
                except Exception as exc:  # closing a broken connection may fail too
                    logger.debug("closing the connection to %s failed: %r", self.name, exc)
            self._first(error)
            if was_connected:
                delay = self._backoff[0]
                await self._state(False, error)
            else:
                logger.debug("Redis at %s still unreachable: %r", self.name, error)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, self._backoff[1])

    async def _up(self) -> None:
        self.connected = True
        self.ups += 1
        self._first(None)
        await self._state(True, None)

    async def _state(self, connected: bool, error: BaseException | None) -> None:
        try:
            await self._on_state(self, connected, error)
        except Exception:  # the layer's bookkeeping failed: keep the connection going
            logger.exception("handling the state of the Redis subscriber for %s failed", self.name)

    def _first(self, error: BaseException | None) -> None:
        if self.first_attempt is not None and not self.first_attempt.done():
            self.first_attempt.set_result(error)

    async def _subscribe_all(self, conn: AbstractConnection) -> bool:
        """Subscribe to every wanted channel; False when there is none."""
        channels = list(self.channels)
        if self._sharded:
            # one command per channel: a multi-channel SSUBSCRIBE must stay in one slot
            for channel in channels:
                await conn.send_command(self._sub, channel)
        else:
            for i in range(0, len(channels), 256):
                await conn.send_command(self._sub, *channels[i : i + 256])
        return bool(channels)

    async def _read(self, conn: AbstractConnection) -> None:
        interval = self._ping_interval
        awaiting_pong = False
        message, sub_reply, unsub_reply = self._message, self._sub_reply, self._unsub_reply
        while True:
            try:
                reply = await conn.read_response(timeout=interval, disconnect_on_error=False)
            except ResponseError as exc:  # an error reply: the connection is still in step
                self._refused(exc)
                continue
            if reply is None:
                if awaiting_pong:
                    raise TimeoutError(f"no answer from Redis at {self.name} within {interval}s")
                await conn.send_command("PING")
                awaiting_pong = True
                continue
            awaiting_pong = False
            if reply.__class__ is not list:  # a pong outside subscribed mode
                if reply == _READY and not self.connected:
                    await self._up()
                continue
            kind = reply[0]
            if kind == message:
                self._on_message(reply[1], reply[2])
            elif kind == sub_reply:
                waiter = self._confirm.pop(reply[1], None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
            elif kind == unsub_reply:
                if reply[1] in self.channels and self._on_lost is not None:
                    self._on_lost(reply[1])
            elif kind == b"pong" and reply[1] == _READY and not self.connected:
                await self._up()

    def _refused(self, exc: ResponseError) -> None:
        logger.warning("Redis at %s refused a subscription: %s", self.name, exc)
        if self._on_lost is not None:  # on a cluster: the slot map is stale, refresh it
            self._on_lost(None)
