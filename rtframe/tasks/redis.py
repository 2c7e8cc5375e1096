"""Tasks on Redis Streams: taskiq-redis's `RedisStreamBroker`, with what a production
queue needs besides and that broker leaves out.

The broker (taskiq-redis) sends a task with XADD to its queue's stream; workers read it
through one consumer group (XREADGROUP), acknowledge it with XACK once it ran and its
result was saved, and take over messages that another consumer left unacknowledged for
`idle_timeout` (XAUTOCLAIM). rtframe adds, around that same stream:

- **delays** (`delay=`, `eta=`, retry backoff): taskiq-redis ignores Taskiq's `delay`
  label, and Taskiq's scheduler works by the minute from one process. A delayed message
  waits in a sorted set beside its stream (score: when it is due); every worker moves
  the due ones into the stream with one script (ZRANGEBYSCORE, XADD, ZREM: atomic, so
  a message is moved once however many workers try);
- **renewal**: a worker re-claims the messages it holds every quarter of `idle_timeout`
  (XCLAIM to itself, only those still its own), so a long task is never taken from a
  live worker; only a dead (or frozen) worker's messages are taken over. A message is
  held from the moment it is read, also one read ahead in a batch that waits inside
  the worker for a free slot (else another worker would take it over and both run it);
- **no growth**: an acknowledged message is deleted from the stream (XACK and XDEL in
  one transaction); the consumer group starts at the stream's beginning ("0"), so what
  was enqueued before any worker ever ran is not skipped;
- **hand back**: on a graceful stop, messages this worker took but did not start go
  back to the end of the stream at once (one script: XACK, XADD a copy, XDEL; only those
  still this consumer's), rather than waiting `idle_timeout` for someone to take them
  over;
- **dead letters**: a task that failed its last attempt is added to the stream
  `<queue>:dead` (capped), with its error, for an operator to read or requeue.

Results and status records go to taskiq-redis's `RedisAsyncResultBackend`, as JSON
(never pickle), kept `result_ttl` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from taskiq import AckableMessage, TaskiqResult
from taskiq.depends.progress_tracker import TaskProgress
from taskiq.message import BrokerMessage
from taskiq.serializers import JSONSerializer
from taskiq_redis import RedisAsyncResultBackend, RedisStreamBroker
from taskiq_redis.exceptions import ResultIsMissingError
from taskiq_redis.redis_backend import PROGRESS_KEY_SUFFIX

from .context import delivery, logger
from .records import DeadLetter, TaskInfo
from .stats import WorkerState

__all__ = ["StreamBroker", "stream_broker"]

_MOVE_DUE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, message in ipairs(due) do
    redis.call('XADD', KEYS[2], '*', 'data', message)
    redis.call('ZREM', KEYS[1], message)
end
return #due
"""

# Renew only what is still this consumer's: a message another worker took over (this
# one was frozen past idle_timeout) stays with it.
_RENEW = """
local renewed = 0
for i = 3, #ARGV do
    local entry = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
    if #entry > 0 then
        redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
        renewed = renewed + 1
    end
end
return renewed
"""

# Hand back only what is still this consumer's, as _RENEW: a message another worker
# took over is running there, and a copy in the stream would run it twice.
_HAND_BACK = """
local moved = 0
for i = 3, #ARGV do
    local mine = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2])
    local entry = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
    if #mine > 0 and #entry > 0 then
        redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
        redis.call('XADD', KEYS[1], '*', unpack(entry[1][2]))
        redis.call('XDEL', KEYS[1], ARGV[i])
        moved = moved + 1
    end
end
return moved
"""


class StreamBroker(RedisStreamBroker):
    """`RedisStreamBroker` with delays, renewal, deletion on ack, hand back, dead letters.

    Args:
        url: the Redis server.
        queue_name: the stream of the default queue; workers also read
            `additional_streams` (set by `rtframe worker` from the registered tasks).
        idle_timeout: milliseconds after which another worker takes over a message.
        poll_interval: seconds between two moves of due delayed messages.
        dead_letter_size: the newest dead letters kept per queue (approximately).
    """

    def __init__(
        self,
        url: str,
        *,
        queue_name: str,
        idle_timeout: int,
        poll_interval: float = 0.25,
        dead_letter_size: int = 10_000,
        **options: Any,
    ) -> None:
        super().__init__(
            url,
            queue_name=queue_name,
            consumer_group_name="rtframe",
            consumer_id="0",
            idle_timeout=idle_timeout,
            # one worker's lock on the takeover step must not outlive it
            unacknowledged_lock_timeout=max(1.0, idle_timeout / 1000),
            **options,
        )
        self.poll_interval = poll_interval
        self.dead_letter_size = dead_letter_size
        #: messages this worker took and has not acknowledged: stream -> ids
        self.held: dict[str, set[str]] = {}
        #: a worker's readiness and counters (`rtframe worker` sets it): told when Redis
        #: answers or fails, and of every message taken over
        self.worker_state: WorkerState | None = None
        self._chores: asyncio.Task[None] | None = None
        self._stopping = False  # shutdown asked the chores to end
        self._client: Redis | None = None

    @contextlib.asynccontextmanager
    async def _redis(self) -> AsyncIterator[Redis]:
        # One client for the broker's life: a client holds no connection (the pool does),
        # and making one costs ~0.3 ms (redis-py fills a 170-entry callback table), which
        # was a sixth of a trivial task's worker CPU when made per command.
        if self._client is None:
            self._client = Redis(connection_pool=self.connection_pool)
        yield self._client

    def streams(self) -> list[str]:
        return [self.queue_name, *self.additional_streams]

    async def startup(self) -> None:
        await super().startup()
        if self.is_worker_process and self._chores is None:
            self._stopping = False
            self._chores = asyncio.get_running_loop().create_task(self._chore_loop())

    async def shutdown(self) -> None:
        chores, self._chores = self._chores, None
        if chores is not None:
            # the flag as well as the cancel: a cancel that lands inside a Redis command
            # can be absorbed there (seen: the loop went on and shutdown waited forever)
            self._stopping = True
            chores.cancel()
            await asyncio.gather(chores, return_exceptions=True)
        await super().shutdown()

    async def kick(self, message: BrokerMessage) -> None:
        delay = float(message.labels.get("delay") or 0)
        if delay <= 0:
            await super().kick(message)
            return
        queue = message.labels.get("queue_name") or self.queue_name
        async with self._redis() as redis:
            await redis.zadd(f"{queue}:delayed", {message.message: time.time() + delay})

    def _hold(self, stream: str | bytes, entry_id: str | bytes) -> tuple[str, str]:
        """Count a message just read as this worker's: renewed from now on."""
        name = stream.decode() if isinstance(stream, bytes) else stream
        entry = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
        self.held.setdefault(name, set()).add(entry)
        return name, entry

    def _ack_generator(self, id: str, queue_name: str) -> Callable[[], Awaitable[None]]:
        stream, entry = self._hold(queue_name, id)

        async def ack() -> None:
            current = delivery.get()
            if current is not None:
                current.acked = True
                if not current.saved:
                    self.held.get(stream, set()).discard(entry)
                    logger.warning(
                        "task message %s of %s is not acknowledged: its run's outcome was "
                        "not saved (the error is logged above); it runs again once idle "
                        "for %.1fs",
                        entry,
                        stream,
                        self.idle_timeout / 1000,
                    )
                    return
            try:
                async with self._redis() as redis:
                    async with redis.pipeline(transaction=True) as pipe:
                        pipe.xack(stream, self.consumer_group_name, entry)
                        pipe.xdel(stream, entry)
                        await pipe.execute()
            finally:
                # acknowledged, or not (Redis down): either way no longer renewed, so
                # an unacknowledged one is taken over after idle_timeout, here or elsewhere
                self.held.get(stream, set()).discard(entry)

        return ack

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        """New messages of every stream, then those idle past `idle_timeout`, in turn.

        Unlike taskiq-redis's own loop, the takeover step runs after every read, also
        after an empty one: an idle worker is the one that should take over a dead
        worker's tasks. XAUTOCLAIM is atomic, so two workers never take the same one.

        One read or takeover returns up to `count` messages, but Taskiq asks for the next
        one only when a slot is free: the rest wait here, held (renewed) meanwhile, and
        are handed back if the listening stops before they were asked for.
        """
        group, consumer = self.consumer_group_name, self.consumer_name
        waiting: deque[tuple[str, str, bytes]] = deque()
        try:
            async with self._redis() as redis:
                while True:
                    fetched: Any = await redis.xreadgroup(
                        group,
                        consumer,
                        dict.fromkeys(self.streams(), ">"),
                        count=self.count,
                        block=self.block,
                    )
                    if self.worker_state is not None:
                        self.worker_state.broker_up()
                    for key, entries in fetched or ():
                        for entry_id, fields in entries:
                            waiting.append((*self._hold(key, entry_id), fields[b"data"]))
                    while waiting:
                        name, entry, data = waiting.popleft()
                        yield AckableMessage(data=data, ack=self._ack_generator(entry, name))
                    for stream in self.streams():
                        claimed: Any = await redis.xautoclaim(
                            stream,
                            group,
                            consumer,
                            min_idle_time=self.idle_timeout,
                            count=self.unacknowledged_batch_size,
                        )
                        for entry_id, fields in claimed[1]:
                            if not fields:
                                continue  # deleted while pending: nothing left to run
                            name, entry = self._hold(stream, entry_id)
                            if self.worker_state is not None:
                                self.worker_state.stats.taken_over += 1
                            logger.warning(
                                "taking over task message %s of %s: not renewed for %.1fs (its "
                                "worker died or froze, or could not save its outcome)",
                                entry,
                                name,
                                self.idle_timeout / 1000,
                            )
                            waiting.append((name, entry, fields[b"data"]))
                        while waiting:
                            name, entry, data = waiting.popleft()
                            yield AckableMessage(data=data, ack=self._ack_generator(entry, name))
        finally:
            # only when closed at a yield (a stop): every await on Redis finds it empty
            if waiting:
                await self._give_back(waiting)

    async def _give_back(self, waiting: deque[tuple[str, str, bytes]]) -> None:
        by_stream: dict[str, list[str]] = {}
        for stream, entry, _ in waiting:
            self.held.get(stream, set()).discard(entry)
            by_stream.setdefault(stream, []).append(entry)
        try:
            async with self._redis() as redis:
                for stream, ids in by_stream.items():
                    await self._hand_back(redis, stream, ids)
        except (RedisError, OSError) as exc:
            logger.warning(
                "could not hand back %d task message(s) read but not started (Redis: %s): "
                "they are taken over after idle_timeout",
                len(waiting),
                exc,
            )

    # -- the worker's chores: due delayed messages, renewal ---------------------------

    async def _chore_loop(self) -> None:
        renew_every = self.idle_timeout / 4000
        last_renewal = time.monotonic()
        while not self._stopping:
            try:
                await self.move_due()
                if time.monotonic() - last_renewal >= renew_every:
                    last_renewal = time.monotonic()
                    await self.renew()
            except (RedisError, OSError) as exc:
                logger.warning("task worker chores failed (Redis: %s); retrying", exc)
                if self.worker_state is not None:
                    self.worker_state.broker_down(f"{type(exc).__name__}: {exc}")
            else:
                if self.worker_state is not None:
                    self.worker_state.broker_up()
            await asyncio.sleep(self.poll_interval)

    async def move_due(self) -> int:
        """Move the delayed messages that are due into their streams; how many moved."""
        moved = 0
        async with self._redis() as redis:
            for stream in self.streams():
                moved += int(
                    await redis.eval(
                        _MOVE_DUE, 2, f"{stream}:delayed", stream, repr(time.time()), 100
                    )
                )
        return moved

    async def renew(self) -> int:
        """Reset the idle time of every message this worker still holds."""
        renewed = 0
        async with self._redis() as redis:
            for stream, ids in list(self.held.items()):
                if ids:
                    renewed += int(
                        await redis.eval(
                            _RENEW,
                            1,
                            stream,
                            self.consumer_group_name,
                            self.consumer_name,
                            *sorted(ids),
                        )
                    )
        return renewed

    async def hand_back(self) -> int:
        """Put the messages this worker took but never finished back in their streams."""
        moved = 0
        async with self._redis() as redis:
            for stream, ids in list(self.held.items()):
                if ids:
                    moved += await self._hand_back(redis, stream, sorted(ids))
                ids.clear()
        return moved

    async def _hand_back(self, redis: Redis, stream: str, ids: list[str]) -> int:
        group, consumer = self.consumer_group_name, self.consumer_name
        return int(await redis.eval(_HAND_BACK, 1, stream, group, consumer, *ids))

    # -- dead letters -----------------------------------------------------------------

    async def dead_letter(self, queue: str, message: bytes, info: TaskInfo) -> None:
        """Add a task that failed for good to `<queue>:dead`."""
        fields: dict[Any, Any] = {
            "task_id": info.id,
            "name": info.name,
            "attempts": info.attempts,
            "error_type": info.error_type or "",
            "error": info.error or "",
            "failed_at": repr(info.finished_at or time.time()),
            "data": message,
        }
        async with self._redis() as redis:
            await redis.xadd(
                f"{queue or self.queue_name}:dead",
                fields,
                maxlen=self.dead_letter_size,
                approximate=True,
            )

    async def dead_letters(self, queue: str, count: int = 100) -> list[DeadLetter]:
        """The newest `count` dead letters of `queue`, oldest first."""
        async with self._redis() as redis:
            entries: Any = await redis.xrevrange(f"{queue}:dead", count=count)
        letters = []
        for entry_id, raw in reversed(entries):
            fields = {k.decode(): v for k, v in raw.items()}
            letters.append(
                DeadLetter(
                    id=entry_id.decode(),
                    task_id=fields["task_id"].decode(),
                    name=fields["name"].decode(),
                    attempts=int(fields["attempts"]),
                    error_type=fields["error_type"].decode(),
                    error=fields["error"].decode(),
                    failed_at=float(fields["failed_at"]),
                    message=fields["data"],
                )
            )
        return letters


class RecordBackend(RedisAsyncResultBackend[Any]):
    """taskiq-redis's result backend (same keys, same JSON), through one Redis client;
    results are kept until they expire (`result_px_time`), as `stream_broker` makes it.

    The parent makes a redis-py client per command; each costs ~0.3 ms of CPU (redis-py
    fills a 170-entry callback table per client), and a task writes its status record
    three times or more. A client holds no connection (the pool does), so one serves
    the backend's whole life.
    """

    def __init__(self, url: str, **options: Any) -> None:
        super().__init__(url, **options)
        self._client: Redis | None = None

    def _redis(self) -> Redis:
        if self._client is None:
            self._client = Redis(connection_pool=self.redis_pool)
        return self._client

    async def _put(self, name: str, value: bytes) -> None:
        # as stream_broker makes it: kept (read any number of times) for result_ttl
        await self._redis().set(name, value, px=self.result_px_time)

    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        value = self.serializer.dumpb(result.model_dump(mode="json"))
        await self._put(self._task_name(task_id), value)

    async def is_result_ready(self, task_id: str) -> bool:
        return bool(await self._redis().exists(self._task_name(task_id)))

    async def get_result(self, task_id: str, with_logs: bool = False) -> TaskiqResult[Any]:
        raw = await self._redis().get(self._task_name(task_id))
        if raw is None:
            raise ResultIsMissingError
        result = TaskiqResult[Any].model_validate(self.serializer.loadb(_bytes(raw)))
        if not with_logs:
            result.log = None
        return result

    async def set_progress(self, task_id: str, progress: TaskProgress[Any]) -> None:
        value = self.serializer.dumpb(progress.model_dump(mode="json"))
        await self._put(self._task_name(task_id) + PROGRESS_KEY_SUFFIX, value)

    async def get_progress(self, task_id: str) -> TaskProgress[Any] | None:
        raw = await self._redis().get(self._task_name(task_id) + PROGRESS_KEY_SUFFIX)
        if raw is None:
            return None
        return TaskProgress[Any].model_validate(self.serializer.loadb(_bytes(raw)))


def _bytes(raw: bytes | str) -> bytes:
    # the pool decodes nothing, so replies are bytes; redis-py's types allow str
    return raw if isinstance(raw, bytes) else raw.encode()


def stream_broker(
    url: str,
    *,
    prefix: str,
    idle_timeout: float,
    result_ttl: float,
    poll_interval: float,
    dead_letter_size: int,
) -> StreamBroker:
    """A `StreamBroker` for the default queue of `prefix`, with its JSON result backend."""
    broker = StreamBroker(
        url,
        queue_name=f"{prefix}:default",
        idle_timeout=max(1, int(idle_timeout * 1000)),
        poll_interval=poll_interval,
        dead_letter_size=dead_letter_size,
    )
    backend: RedisAsyncResultBackend[Any] = RecordBackend(
        url,
        serializer=JSONSerializer(),
        prefix_str=f"{prefix}:result",
        result_px_time=max(1, int(result_ttl * 1000)),
    )
    return broker.with_result_backend(backend)
