"""Presence on Redis: who is in a group in every process, and how a dead process's
members disappear.

Per group, two keys hash-tagged alike, so they live in one Cluster slot (the slot of the
group's own pub/sub channel, for ordinary group names):

    {<prefix>:g:<group>}:pz   ZSET  member id -> expire-at (ms, the Redis server's clock)
    {<prefix>:g:<group>}:ph   HASH  member id -> {"user": ..., "connected_at": ..., "meta": ...}

Every operation is a Lua script: atomic, one round trip, and timed by the Redis
server's clock (`TIME`), so processes whose clocks disagree still agree on what expired.

- **add / remove** write both keys, in the order they were made, batched per group (the
  adds and removes made while a group's previous write was in flight go in its next);
  both keys expire `2 * ttl` after the last add or refresh, so a group nobody is in any
  more vanishes whole.
- **refresh**: every `ttl / 3` the layer pushes the expire-at of the entries it added
  (one script per group and 1,000 entries). An entry that is gone although this process
  still holds it (Redis lost it, or a stall longer than `2/3 * ttl` let another process
  sweep it) is added again, with a WARNING.
- **read** returns the entries whose expire-at is ahead; expired ones are filtered out on
  the server but left for the sweep, whose caller announces them.
- **sweep** removes expired entries and returns their ids. The script is atomic, so each
  expired id is returned to exactly one caller among all processes.

If the process dies, its entries stop being refreshed and expire within `ttl`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from pydantic_core import from_json, to_json
from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import AuthenticationError, RedisClusterException, RedisError

from ..._bounded import Job, run_bounded
from ...exceptions import LayerBusyError, LayerError, LayerUnavailableError
from ..base import PresenceEntry
from .errors import UNAVAILABLE, is_busy

__all__ = ["BATCH", "CONCURRENCY", "RedisPresence", "presence_keys"]

logger = logging.getLogger("rtframe.layers.redis")

#: Entries per script call: keeps each script short (Redis runs one script at a time)
#: and under Lua's limit on unpacked arguments.
BATCH = 1000
#: Scripts one layer has in flight at once, at most (redis-py's pool holds 100).
CONCURRENCY = 32
_Job = Job
#: While Redis fails, a refresh round is retried this often (seconds) at the most.
_RETRY = 1.0

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
# Both keys outlive the newest expire-at by one ttl: a live process's sweep still finds
# a dead one's entries; when every process left, the keys go with the last entries.
_KEEP = """
local function keep(ttl)
  for _, key in ipairs(KEYS) do
    if redis.call('PTTL', key) < 2 * ttl then redis.call('PEXPIRE', key, 2 * ttl) end
  end
end
local function forget(ids)
  for i = 1, #ids, 1000 do
    local last = math.min(i + 999, #ids)
    redis.call('ZREM', KEYS[1], unpack(ids, i, last))
    redis.call('HDEL', KEYS[2], unpack(ids, i, last))
  end
end
"""
#: KEYS pz ph; ARGV a sequence of writes, applied in order: `a <id> <json> <ttl_ms>`
#: adds (or replaces) an entry, `r <id>` removes one.
_WRITE = (
    _NOW
    + _KEEP
    + """
local i, longest = 1, 0
while i <= #ARGV do
  if ARGV[i] == 'a' then
    local ttl = tonumber(ARGV[i + 3])
    redis.call('ZADD', KEYS[1], now + ttl, ARGV[i + 1])
    redis.call('HSET', KEYS[2], ARGV[i + 1], ARGV[i + 2])
    if ttl > longest then longest = ttl end
    i = i + 4
  else
    redis.call('ZREM', KEYS[1], ARGV[i + 1])
    redis.call('HDEL', KEYS[2], ARGV[i + 1])
    i = i + 2
  end
end
if longest > 0 then keep(longest) end
return 1
"""
)
#: KEYS pz ph; ARGV ttl_ms, then ids. Returns the ids that were not there.
_REFRESH = (
    _NOW
    + _KEEP
    + """
local ttl = tonumber(ARGV[1])
local missing = {}
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], 'XX', now + ttl, ARGV[i])
  else
    missing[#missing + 1] = ARGV[i]
  end
end
keep(ttl)
return missing
"""
)
#: KEYS pz ph. Returns id, json, id, json, ... of the entries not expired.
_READ = (
    _NOW
    + """
local ids = redis.call('ZRANGE', KEYS[1], '(' .. now, '+inf', 'BYSCORE')
local out = {}
for i = 1, #ids, 1000 do
  local chunk = {unpack(ids, i, math.min(i + 999, #ids))}
  local values = redis.call('HMGET', KEYS[2], unpack(chunk))
  for j = 1, #chunk do
    if values[j] then
      out[#out + 1] = chunk[j]
      out[#out + 1] = values[j]
    end
  end
end
return out
"""
)
#: KEYS pz ph; ARGV limit. Removes up to `limit` expired entries, returns their ids.
_SWEEP = (
    _NOW
    + _KEEP
    + """
local ids = redis.call('ZRANGE', KEYS[1], '-inf', now, 'BYSCORE', 'LIMIT', 0, tonumber(ARGV[1]))
forget(ids)
return ids
"""
)


def presence_keys(prefix: str, channel: str) -> tuple[str, str]:
    """The ZSET and HASH keys of a group's presence (one hash tag: one Cluster slot)."""
    tag = f"{{{prefix}:g:{channel}}}"
    return f"{tag}:pz", f"{tag}:ph"


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _error(exc: BaseException, channel: str, doing: str) -> LayerError:
    if is_busy(exc):
        return LayerBusyError(f"every Redis connection stayed busy {doing} {channel!r}: {exc}")
    if isinstance(exc, AuthenticationError):
        return LayerError(f"Redis refused the layer's credentials {doing} {channel!r}: {exc}")
    if isinstance(exc, UNAVAILABLE):
        return LayerUnavailableError(f"Redis is unreachable {doing} {channel!r}: {exc}")
    return LayerError(f"Redis refused {doing} {channel!r}: {exc}")


class _Mine:
    """The entries this process added to one group, which it keeps refreshing."""

    __slots__ = ("adding", "entries", "ttl_ms")

    def __init__(self, ttl_ms: int) -> None:
        self.ttl_ms = ttl_ms  # the latest add's: one group has one presence policy
        self.entries: dict[str, str] = {}  # id -> its JSON as stored
        self.adding: set[str] = set()  # ids whose add has not returned: not lost yet


class _Writes:
    """One group's adds and removes waiting for the script in flight to return."""

    __slots__ = ("args", "task", "waiters")

    def __init__(self) -> None:
        self.args: list[list[str | int]] = []  # one write's ARGV each
        self.waiters: list[asyncio.Future[None]] = []
        self.task: asyncio.Task[None] | None = None  # sending them, one script at a time


class RedisPresence:
    """The presence half of a `RedisLayer`, on the layer's redis-py client.

    Writes to one group are applied in the order they were made: one script at a time
    per group carries every add and remove made while the previous one was in flight
    (up to `BATCH`), so a storm of N joins costs about N / BATCH round trips, and a
    remove can never reach Redis before the add it follows. At most `CONCURRENCY`
    scripts are in flight at once; more wait for their turn rather than exhaust the
    client's connection pool.

    Args:
        client: the layer's client (a single Redis or a Cluster).
        prefix: the layer's prefix.
    """

    __slots__ = (
        "_client",
        "_every",
        "_failing",
        "_gate",
        "_mine",
        "_prefix",
        "_read",
        "_refresh",
        "_sweep",
        "_task",
        "_wake",
        "_write",
        "_writes",
        "revived",
        "round_trips",
    )

    def __init__(self, client: Redis | RedisCluster, prefix: str) -> None:
        self._client = client
        self._prefix = prefix
        self._write = client.register_script(_WRITE)
        self._refresh = client.register_script(_REFRESH)
        self._read = client.register_script(_READ)
        self._sweep = client.register_script(_SWEEP)
        self._gate: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self._mine: dict[str, _Mine] = {}
        self._writes: dict[str, _Writes] = {}
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self._every: float | None = None  # the refresh period the task sleeps on
        self._failing = False
        #: entries of this process found gone by a refresh and added again
        self.revived = 0
        #: scripts sent to Redis (one round trip each)
        self.round_trips = 0

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        """Start refreshing this process's entries (one task for every group)."""
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.get_running_loop().create_task(
                self._refresh_forever(), name="rtframe presence refresh"
            )

    async def stop(self) -> None:
        """Stop refreshing and forget this process's entries.

        Entries still in Redis expire within their ttl, like those of a process that
        died, and a live process's sweep announces them: remove them first for a prompt
        goodbye (the presence tracker does, when it stops).
        """
        task, self._task = self._task, None
        self._every = None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._mine.clear()
        # writes already made still go out (or fail) before the client may be closed
        writing = [w.task for w in self._writes.values() if w.task is not None]
        await asyncio.gather(*writing, return_exceptions=True)

    # -- the contract ----------------------------------------------------------------

    async def add(self, channel: str, entry: PresenceEntry, ttl: float) -> None:
        """Add or replace `entry` (ZADD + HSET).

        The entry is this process's from now on, even when Redis is unreachable: the
        refresh adds it once Redis answers again.

        Raises:
            LayerUnavailableError: Redis is unreachable.
            LayerError: Redis refused the script.
            TypeError: `entry.meta` cannot be encoded as JSON.
        """
        try:
            data = to_json(
                {"user": entry.user, "connected_at": entry.connected_at, "meta": entry.meta}
            ).decode()
        except ValueError as exc:  # PydanticSerializationError
            raise TypeError(f"presence meta of {entry.id!r} is not JSON: {exc}") from None
        ttl_ms = max(1, round(ttl * 1000))
        mine = self._mine.get(channel)
        if mine is None:
            mine = self._mine[channel] = _Mine(ttl_ms)
            every = self._every
            if self._wake is not None and (every is None or ttl_ms / 3000 < every):
                self._every = ttl_ms / 3000
                self._wake.set()  # the refresh task sleeps longer than this ttl allows
        mine.ttl_ms = ttl_ms
        mine.entries[entry.id] = data
        mine.adding.add(entry.id)
        try:
            await self._enqueue(channel, ["a", entry.id, data, ttl_ms])
        finally:
            mine.adding.discard(entry.id)

    async def remove(self, channel: str, member_id: str) -> None:
        """Remove an entry (ZREM + HDEL); nothing happens for an id that is not there.

        Raises:
            LayerUnavailableError: Redis is unreachable (the entry then expires within
                its ttl, and a sweep removes and announces it).
        """
        mine = self._mine.get(channel)
        if mine is not None:
            mine.entries.pop(member_id, None)
            if not mine.entries:
                del self._mine[channel]
        await self._enqueue(channel, ["r", member_id])

    async def read(self, channel: str) -> list[PresenceEntry]:
        """The entries of `channel` that have not expired.

        Raises:
            LayerUnavailableError: Redis is unreachable.
        """
        reply = await self._call(self._read, channel, "reading the presence of")
        entries: list[PresenceEntry] = []
        loads = from_json  # per entry, so that one malformed entry spoils nothing else
        for i in range(0, len(reply) - 1, 2):
            try:
                value = loads(reply[i + 1])
                entries.append(
                    PresenceEntry(
                        _text(reply[i]), value["user"], value["connected_at"], value["meta"]
                    )
                )
            except (ValueError, TypeError, KeyError) as exc:
                msg = "skipped a malformed presence entry %r in %r (%r)"
                logger.warning(msg, reply[i], channel, exc)
        return entries

    async def sweep(self, channel: str) -> list[str]:
        """Remove the expired entries of `channel`; their ids.

        Each expired id is returned to one caller only, among every process. A script
        removes at most `BATCH` entries (Redis runs nothing else meanwhile); more take
        several.

        Raises:
            LayerUnavailableError: Redis is unreachable.
        """
        swept: list[str] = []
        while True:
            reply = await self._call(self._sweep, channel, "sweeping the presence of", BATCH)
            swept.extend(_text(member_id) for member_id in reply)
            if len(reply) < BATCH:
                return swept

    # -- internals -------------------------------------------------------------------

    async def _call(self, script: Any, channel: str, doing: str, *args: Any) -> Any:
        gate = self._gate
        if gate is None or gate[0] is not asyncio.get_running_loop():  # one loop's only
            gate = self._gate = (asyncio.get_running_loop(), asyncio.Semaphore(CONCURRENCY))
        async with gate[1]:
            self.round_trips += 1
            try:
                return await script(keys=presence_keys(self._prefix, channel), args=args)
            except (RedisError, RedisClusterException, OSError) as exc:
                raise _error(exc, channel, doing) from exc

    async def _enqueue(self, channel: str, args: list[str | int]) -> None:
        """Apply one write after every write to `channel` made before it."""
        writes = self._writes.get(channel)
        if writes is None:
            writes = self._writes[channel] = _Writes()
        done = asyncio.get_running_loop().create_future()
        writes.args.append(args)
        writes.waiters.append(done)
        if writes.task is None:
            writes.task = asyncio.get_running_loop().create_task(
                self._drain(channel, writes), name="rtframe presence write"
            )
        await done

    async def _drain(self, channel: str, writes: _Writes) -> None:
        # a task of its own: a caller that is cancelled must not stop the others' writes
        try:
            while writes.args:
                batch, waiters = writes.args[:BATCH], writes.waiters[:BATCH]
                del writes.args[:BATCH], writes.waiters[:BATCH]
                error: LayerError | None = None
                try:
                    flat = [arg for args in batch for arg in args]
                    await self._call(self._write, channel, "writing the presence of", *flat)
                except LayerError as exc:
                    error = exc
                for waiter in waiters:
                    if waiter.done():  # its caller was cancelled
                        continue
                    if error is None:
                        waiter.set_result(None)
                    else:
                        waiter.set_exception(error)
        finally:
            writes.task = None
            if self._writes.get(channel) is writes and not writes.args:
                del self._writes[channel]

    def _period(self) -> float | None:
        """Seconds between refresh rounds: a third of the shortest ttl (None: no entries)."""
        ttls = [m.ttl_ms for m in self._mine.values()]
        return min(ttls) / 3000 if ttls else None

    async def _refresh_forever(self) -> None:
        wake = self._wake
        assert wake is not None
        loop = asyncio.get_running_loop()
        deadline: float | None = None  # None: no entries, sleep until one arrives
        while True:
            self._every = every = self._period()
            if every is not None:
                soonest = loop.time() + (min(every, _RETRY) if self._failing else every)
                deadline = soonest if deadline is None else min(deadline, soonest)
            wake.clear()
            try:
                timeout = None if deadline is None else max(0.0, deadline - loop.time())
                await asyncio.wait_for(wake.wait(), timeout)
            except TimeoutError:
                await self._refresh_all()
                deadline = None

    async def _refresh_all(self) -> None:
        jobs: list[_Job] = []
        for channel, mine in self._mine.items():
            ids = list(mine.entries)
            for i in range(0, len(ids), BATCH):
                jobs.append(self._refresher(channel, mine.ttl_ms, ids[i : i + BATCH]))
        errors = await run_bounded(jobs, CONCURRENCY)
        if errors and not self._failing:
            self._failing = True
            msg = "could not refresh %d of %d presence batches (%r): entries expire if it lasts"
            logger.warning(msg, len(errors), len(jobs), errors[0])
        elif not errors and self._failing:
            self._failing = False
            logger.warning("presence refresh works again")

    def _refresher(self, channel: str, ttl_ms: int, ids: list[str]) -> _Job:
        async def refresh() -> None:
            reply = await self._call(self._refresh, channel, "refreshing presence in", ttl_ms, *ids)
            mine = self._mine.get(channel)
            if not reply or mine is None:
                return
            revive = [
                (m, mine.entries[m])
                for m in map(_text, reply)
                if m in mine.entries and m not in mine.adding
            ]
            if not revive:
                return
            self.revived += len(revive)
            msg = (
                "%d presence entries of this process in %r had gone from Redis (lost, or "
                "swept after a stall past their ttl); adding them again"
            )
            logger.warning(msg, len(revive), channel)
            await asyncio.gather(
                *(self._enqueue(channel, ["a", m, data, ttl_ms]) for m, data in revive)
            )

        return refresh
