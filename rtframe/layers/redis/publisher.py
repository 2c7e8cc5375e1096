"""The publish path: every PUBLISH (SPUBLISH) to one Redis node rides one connection,
and so does any other command the layer pipelines (the history scripts).

Publishing through a connection pool makes every concurrent publisher hold a connection
of its own for a round trip, so a burst of publishers exhausts the pool (redis-py's
async pool refuses the 101st with a `ConnectionError`, indistinguishable from an outage)
or opens hundreds of connections. Instead each node gets one `Publisher`: an
auto-batching pipeline on one dedicated connection.

- `submit` appends the command to the pending batch and returns a future; it never
  waits. The writer task takes the whole batch when it is free, writes it in one go
  (one `send`), then reads the replies in order and resolves each caller's future with
  the reply to that command, or its error. A command is a PUBLISH (packed here, the hot
  path) or any single command the caller packed in RESP itself (`submit(None, packed)`,
  e.g. an EVALSHA whose reply the caller wants). Publishes made while a batch is on the wire form
  the next batch: one round trip per loop turn, however many publishers there are.
- Order: one connection, commands written in the order they were submitted, so frames
  one publisher sends to one channel keep their order (and across channels too).
- Bounded: at most `max_pending` commands wait for the writer; `full` tells the caller
  to wait for `room` (bounded, by the layer) instead of growing the queue without end.
- Health: before each batch the connection is checked without blocking (a closed or
  dirty socket is replaced), so a connection that died with a restarted Redis costs no
  failed publish. A failure while a batch is on the wire fails the batch's unanswered
  commands with the error (at most once: they are never sent again); the next batch
  opens a new connection.
- A caller that is cancelled before its batch is written is left out of it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable

from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError

from .stats import RedisStats

__all__ = ["Publisher", "Script", "pack_args", "pack_command"]

logger = logging.getLogger("rtframe.layers.redis")

#: What a caller's future resolves to: the command's reply (a PUBLISH's is the number of
#: subscribers that got it), or the error (an exception object, never raised).
Outcome = object
_Item = tuple[bytes | None, bytes, "asyncio.Future[Outcome]"]


class Publisher:
    """One connection to one Redis node that carries a layer's publishes in batches.

    Args:
        name: the node address, for logs and errors.
        connect: makes a new, unconnected connection.
        sharded: SPUBLISH (Redis Cluster sharded pub/sub) instead of PUBLISH.
        max_pending: commands that may wait for the writer; beyond it `full` is True.
        stats: the layer's counters (`batches`).
    """

    __slots__ = (
        "_conn",
        "_connect",
        "_head",
        "_loop",
        "_pending",
        "_room",
        "_task",
        "_wake",
        "broken",
        "max_pending",
        "name",
        "stats",
    )

    def __init__(
        self,
        name: str,
        connect: Callable[[], AbstractConnection],
        *,
        sharded: bool,
        max_pending: int,
        stats: RedisStats,
    ) -> None:
        self.name = name
        self.max_pending = max_pending
        self.stats = stats
        command = b"SPUBLISH" if sharded else b"PUBLISH"
        self._head = b"*3\r\n$%d\r\n%s\r\n" % (len(command), command)
        self._connect = connect
        self._conn: AbstractConnection | None = None
        self._pending: list[_Item] = []
        self._wake: asyncio.Future[None] | None = None
        self._room: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        #: why the last batch failed, if it did; None once a batch got through
        self.broken: BaseException | None = None

    def __repr__(self) -> str:
        return f"<Publisher {self.name} {len(self._pending)} pending>"

    @property
    def full(self) -> bool:
        """No room for another command: wait for `room` first."""
        return len(self._pending) >= self.max_pending

    def submit(self, channel: bytes | None, payload: bytes) -> asyncio.Future[Outcome]:
        """Queue one command; the future gets its reply or error. Never waits, never raises.

        With a `channel`, the command is PUBLISH `channel` `payload`; with None, `payload`
        is one whole command already packed in RESP (`pack_command`).
        """
        loop = asyncio.get_running_loop()
        if self._loop is not loop or self._task is None or self._task.done():
            self._start(loop)
        future: asyncio.Future[Outcome] = loop.create_future()
        self._pending.append((channel, payload, future))
        wake = self._wake
        if wake is not None:
            self._wake = None
            wake.set_result(None)
        return future

    async def room(self, timeout: float) -> None:
        """Wait until the writer took a batch (or `timeout` passed); no error either way."""
        room = self._room
        if room is None:
            room = self._room = asyncio.get_running_loop().create_future()
        # asyncio.wait, not await: a waiter that gives up must not cancel the shared future
        await asyncio.wait((room,), timeout=timeout)

    async def stop(self) -> None:
        """Stop the writer and close the connection; queued publishes fail. Restartable."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._fail(self._pending, RedisConnectionError("the Redis layer was stopped"))
        self._pending = []
        self._wake = None
        room, self._room = self._room, None
        if room is not None and not room.done():
            room.set_result(None)  # waiters look again (and find room)
        await self._close()

    # -- the writer task -------------------------------------------------------------

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is not loop:  # a new event loop (tests): the old socket is unusable
            self._conn = None
            self._pending = []
            self._wake = self._room = None
        self._loop = loop
        self._task = loop.create_task(self._run(), name=f"rtframe redis publisher {self.name}")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wake = loop.create_future()
                await self._wake
            batch, self._pending = self._pending, []
            room = self._room
            if room is not None:
                self._room = None
                room.set_result(None)
            await self._flush(batch)

    async def _flush(self, batch: list[_Item]) -> None:
        live = [item for item in batch if not item[2].done()]  # leave out cancelled callers
        if not live:
            return
        answered = 0
        try:
            conn = await self._connection()
            await conn.send_packed_command(self._pack(live), check_health=False)
            for _, _, future in live:
                try:
                    outcome: Outcome = await conn.read_response(disconnect_on_error=False)
                except ResponseError as exc:  # refused (MOVED, ...): the reply was read whole
                    outcome = exc
                answered += 1
                if not future.done():
                    future.set_result(outcome)
            self.stats.batches += 1
            self.broken = None
        except BaseException as exc:
            error: BaseException = exc
            if isinstance(exc, asyncio.CancelledError):
                error = RedisConnectionError("the Redis layer was stopped")
            elif not isinstance(exc, RedisError | OSError):
                logger.exception("publishing to Redis at %s failed unexpectedly", self.name)
            self.broken = error
            self._fail(live[answered:], error)
            await self._close()
            if not isinstance(exc, Exception):
                raise

    def _pack(self, items: list[_Item]) -> bytes:
        """The batch in the Redis protocol (RESP): `*3 $n PUBLISH $n <channel> $n <payload>`
        for a publish, the caller's packed command for any other.

        Written out here rather than by redis-py's generic packer, which costs more than
        the rest of a publish; both arguments are bytes already.
        """
        head = self._head
        parts: list[bytes] = []
        append = parts.append
        for channel, payload, _ in items:
            if channel is None:
                append(payload)
                continue
            append(head)
            append(b"$%d\r\n" % len(channel))
            append(channel)
            append(b"\r\n$%d\r\n" % len(payload))
            append(payload)
            append(b"\r\n")
        return b"".join(parts)

    async def _connection(self) -> AbstractConnection:
        conn = self._conn
        if conn is not None:
            # a socket that has data or EOF waiting is dead or out of step: replace it
            try:
                dirty = not conn.is_connected or await _can_read(conn)
            except (RedisError, OSError):
                dirty = True
            if not dirty:
                return conn
            await self._close()
        conn = self._connect()
        self._conn = conn
        await conn.connect()  # type: ignore[no-untyped-call]
        return conn

    async def _close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await conn.disconnect(nowait=True)
            except Exception as exc:
                logger.debug("closing the publisher connection to %s failed: %r", self.name, exc)

    @staticmethod
    def _fail(items: list[_Item], error: BaseException) -> None:
        for _, _, future in items:
            if not future.done():
                future.set_result(error)


class Script:
    """A Lua script, with the start of its EVALSHA and EVAL commands packed in RESP.

    A command is `evalsha` (or `eval`) followed by `pack_args(numkeys, *keys, *argv)`
    with exactly `arity` arguments.
    """

    __slots__ = ("eval", "evalsha", "sha", "source")

    def __init__(self, source: str, arity: int) -> None:
        self.source = source.encode()
        # Redis names a cached script by the SHA1 of its text
        self.sha = hashlib.sha1(self.source, usedforsecurity=False).hexdigest().encode()
        self.evalsha = b"*%d\r\n" % (arity + 2) + pack_args(b"EVALSHA", self.sha)
        self.eval = b"*%d\r\n" % (arity + 2) + pack_args(b"EVAL", self.source)


def pack_args(*args: bytes) -> bytes:
    """Arguments of a command in RESP (`$<len>` then the bytes), after its `*<n>` header."""
    return b"".join([b"$%d\r\n%s\r\n" % (len(arg), arg) for arg in args])


def pack_command(*args: bytes) -> bytes:
    """One whole command in RESP, for `Publisher.submit(None, ...)`."""
    return b"*%d\r\n" % len(args) + pack_args(*args)


async def _can_read(conn: AbstractConnection) -> bool:
    """Whether the socket has something to read (redis-py 8 renamed the check)."""
    check = getattr(conn, "can_read", None) or conn.can_read_destructive
    return bool(await check())
