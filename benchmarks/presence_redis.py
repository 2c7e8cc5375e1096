"""Presence on RedisLayer at 10,000 members: joins, leaves, reads, refreshes, a crash.

    python -m benchmarks.presence_redis [--members 10000] [--concurrency 100]

A private redis-server on a free loopback port; one `PresenceTracker` (events on,
`coalesce=0.5`) on a `RedisLayer` whose `$presence` frames are PUBLISHed
through the same layer. `concurrency` coroutines share the joins (then the leaves) of
`members` members of one group, each awaiting its calls one after another, as the
connect handlers of a reconnect storm would. The in-memory layer is measured alongside
as the floor (the tracker's own cost).

Rows:
- join / leave: the storm, then the whole group leaving;
- join (1 at a time): one coroutine, the latency of a single join;
- list / stats: reading the 10,000 entries (each call once, repeated);
- refresh round: what one process pays every `ttl / 3` (20 s by default) to keep its
  members alive;
- sweep, nothing expired: what each process pays per group every `ttl / 3`;
- sweep after a crash: another process with all the members killed (its layer stopped
  without removing them, entries expired): the live tracker removes and announces them.

Columns: operations, operations per second, Redis round trips per operation (commands
Redis processed: one EVALSHA per presence call, one PUBLISH per `$presence` frame), the
`$presence` frames sent, and redis-server CPU per 1,000 operations. Runs in ~15 s.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import redis
import uvloop

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fanout_redis import cpu, redis_server, table
from rtframe.layers.base import Layer, PresenceEntry
from rtframe.layers.memory import InMemoryLayer
from rtframe.layers.redis import RedisLayer
from rtframe.layers.redis.presence import presence_keys
from rtframe.presence import PresencePolicy, PresenceTracker

GROUP = "room"
SENT = ("evalsha", "eval", "script|load", "publish", "spublish")
# a long ttl keeps the background refresh and sweep rounds out of the measurements; both
# are measured on their own (what they cost does not depend on the ttl, only how often)
POLICY = PresencePolicy(events=True, ttl=600, coalesce=0.5)


class Nobody:
    def deliver_group(self, *args: Any, **kwargs: Any) -> None:
        pass

    def deliver_direct(self, member_id: str, data: str | bytes) -> bool:
        return False


@dataclass
class Row:
    case: str
    layer: str
    ops: int
    seconds: float
    commands: int = 0
    frames: int = 0
    redis_cpu: float = float("nan")

    def cells(self) -> list[Any]:
        nan = float("nan")
        per_op = self.commands / self.ops if self.layer == "redis" else nan
        return [
            self.case, self.layer, self.ops, self.ops / self.seconds, self.seconds * 1e6 / self.ops,
            per_op, self.frames, self.redis_cpu * 1e6 / self.ops if self.layer == "redis" else nan,
        ]  # fmt: skip


class Meter:
    """Counts what Redis processed (INFO) and its CPU around one case."""

    def __init__(self, url: str | None, proc: psutil.Process | None) -> None:
        self.client = redis.Redis.from_url(url) if url else None
        self.proc = proc

    def _commands(self) -> int:
        """Commands clients sent (round trips): scripts and publishes, not the commands
        scripts ran inside Redis."""
        if self.client is None:
            return 0
        stats = self.client.info("commandstats")
        return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in SENT)

    async def run(
        self, case: str, layer: str, ops: int, body: Callable[[], Awaitable[None]], frames: Frames
    ) -> Row:
        sent = frames.count
        before, cpu0 = self._commands(), cpu([self.proc]) if self.proc else 0.0
        start = time.perf_counter()
        await body()
        seconds = time.perf_counter() - start
        await asyncio.sleep(POLICY.coalesce + 0.2)  # the last window's frame
        commands = self._commands() - before
        redis_cpu = cpu([self.proc]) - cpu0 if self.proc else float("nan")
        return Row(case, layer, ops, seconds, commands, frames.count - sent, redis_cpu)


class Frames:
    def __init__(self, layer: Layer) -> None:
        self.layer = layer
        self.count = 0

    async def __call__(self, group: str, frame: str) -> None:
        self.count += 1
        await self.layer.publish(group, frame)


def storm(
    call: Callable[[int], Awaitable[None]], members: int, concurrency: int
) -> Callable[[], Awaitable[None]]:
    async def body() -> None:
        async def worker(first: int) -> None:
            for i in range(first, members, concurrency):
                await call(i)

        await asyncio.gather(*(worker(w) for w in range(concurrency)))

    return body


async def measure(kind: str, url: str | None, proc: psutil.Process | None, args: Any) -> list[Row]:
    members, concurrency = args.members, args.concurrency
    prefix = f"benchp{os.getpid()}{kind}"
    layer: Layer = RedisLayer(url, prefix=prefix) if url else InMemoryLayer()
    layer.bind(Nobody())
    await layer.start()
    frames = Frames(layer)
    tracker = PresenceTracker(layer, frames)
    meter = Meter(url, proc)
    now = time.time()
    entries = [
        PresenceEntry(f"member-{i:05d}", f"user-{i // 2}", now, {"device": "phone"})
        for i in range(members)
    ]
    rows: list[Row] = []
    if isinstance(layer, RedisLayer):  # the first call of each script loads it: not measured
        await layer.presence_add("warm-up", entries[0], POLICY.ttl)
        await layer.presence("warm-up")
        await layer.presence_sweep("warm-up")
        await layer._presence._refresh_all()
        await layer.presence_remove("warm-up", entries[0].id)

    async def join(i: int) -> None:
        await tracker.join(GROUP, POLICY, entries[i])

    async def leave(i: int) -> None:
        await tracker.leave(GROUP, entries[i].id)

    rows.append(await meter.run("join", kind, members, storm(join, members, concurrency), frames))

    async def lists() -> None:
        for _ in range(args.reads):
            assert len(await tracker.list(GROUP)) == members

    async def stats() -> None:
        for _ in range(args.reads):
            assert (await tracker.stats(GROUP)).users == (members + 1) // 2

    rows.append(await meter.run("list", kind, args.reads, lists, frames))
    rows.append(await meter.run("stats", kind, args.reads, stats, frames))
    if isinstance(layer, RedisLayer):
        refresh = layer._presence._refresh_all  # one round, as the refresh task runs it
        rows.append(await meter.run("refresh round", kind, 1, refresh, frames))

        async def sweep_nothing() -> None:
            assert await layer.presence_sweep(GROUP) == []

        rows.append(await meter.run("sweep, nothing expired", kind, 1, sweep_nothing, frames))
    rows.append(await meter.run("leave", kind, members, storm(leave, members, concurrency), frames))
    single = min(members, 1000)
    rows.append(await meter.run("join (1 at a time)", kind, single, storm(join, single, 1), frames))
    await storm(leave, single, concurrency)()
    if isinstance(layer, RedisLayer):
        rows.append(await crash(layer, tracker, frames, meter, entries, url, prefix))
    await tracker.stop()
    await layer.stop()
    return rows


async def crash(
    layer: RedisLayer,
    tracker: PresenceTracker,
    frames: Frames,
    meter: Meter,
    entries: list[PresenceEntry],
    url: str | None,
    prefix: str,
) -> Row:
    """Another process adds every member, then dies: the live tracker sweeps them."""
    assert url is not None
    dead = RedisLayer(url, prefix=prefix)
    dead.bind(Nobody())
    await dead.start()
    sem = asyncio.Semaphore(100)

    async def add(e: PresenceEntry) -> None:
        async with sem:
            await dead.presence_add(GROUP, e, POLICY.ttl)

    await asyncio.gather(*(add(e) for e in entries))
    await dead.stop()  # a crash: nothing removed
    client = redis.Redis.from_url(url)
    client.zadd(presence_keys(prefix, GROUP)[0], {e.id: 1 for e in entries})  # expired
    await tracker.join(GROUP, POLICY, PresenceEntry("survivor", None, time.time(), {}))
    await asyncio.sleep(POLICY.coalesce + 0.2)
    sweep = tracker._sweeper_of(GROUP, tracker._groups[GROUP])  # one round of the sweeper
    row = await meter.run("sweep after a crash", "redis", len(entries), sweep, frames)
    assert await layer.presence(GROUP) != [] and len(await layer.presence(GROUP)) == 1
    return row


COLUMNS = ["case", "layer", "ops", "ops/s", "µs/op", "Redis round trips/op", "$presence frames",
           "Redis CPU ms/1k ops"]  # fmt: skip


async def run(args: argparse.Namespace) -> str:
    rows: list[Row] = []
    with redis_server() as (url, proc):
        rows += await measure("redis", url, proc, args)
    rows += await measure("memory", None, None, args)
    rows.sort(key=lambda r: r.case)
    head = (
        f"Presence of one group, {args.members:,} members, {args.concurrency} concurrent "
        f"callers; events on, coalesce {POLICY.coalesce} s, ttl {POLICY.ttl:g} s. "
        f"{platform.python_implementation()} {platform.python_version()}, "
        f"{os.cpu_count()} CPUs, uvloop"
    )
    return "\n".join([head, "", table(COLUMNS, [r.cells() for r in rows])])


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--members", type=int, default=10_000)
    p.add_argument("--concurrency", type=int, default=100)
    p.add_argument("--reads", type=int, default=10, help="list/stats calls measured")
    args = p.parse_args(argv)
    text = uvloop.run(run(args))
    print(text)
    return text


if __name__ == "__main__":
    main()
