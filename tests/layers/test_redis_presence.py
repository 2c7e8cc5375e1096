"""Presence in the layers: the same suite on the in-memory layer, Redis and a 3-primary
Redis Cluster; then across processes (several RedisLayers on one Redis, a real process
killed with SIGKILL), Redis-specific storage, and Redis going away.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot

from rtframe import LayerError, LayerUnavailableError, RedisLayer
from rtframe.layers.base import Layer, PresenceEntry
from rtframe.layers.redis.presence import presence_keys
from rtframe.presence import PresenceNotice, PresencePolicy, PresenceStats, PresenceTracker

from .conftest import Layers, Recorder
from .redis_servers import redis_server

ROOT = Path(__file__).resolve().parents[2]
FAST = {"ping_interval": 1.0, "reconnect_backoff": (0.05, 0.5)}


def entry(member_id: str, user: str | None = "ann", **meta: Any) -> PresenceEntry:
    return PresenceEntry(member_id, user, time.time(), meta)


async def ids(layer: Layer, channel: str) -> list[str]:
    return sorted(e.id for e in await layer.presence(channel))


async def until(check: Callable[[], Any], timeout: float, what: str) -> float:
    """Seconds until `await check()` is truthy; fails after `timeout`."""
    start = time.monotonic()
    while not await check():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)
    return time.monotonic() - start


class Frames:
    """A tracker's `publish`: the frames it was asked to send, decoded."""

    def __init__(self) -> None:
        self.notices: list[PresenceNotice] = []

    async def __call__(self, group: str, frame: str) -> None:
        self.notices.append(PresenceNotice.model_validate_json(frame))

    def left(self) -> list[str]:
        return [member_id for n in self.notices for member_id in n.left]

    def joined(self) -> list[str]:
        return [info.id for n in self.notices for info in n.joined]


# -- the contract, on every layer ------------------------------------------------------


async def test_add_list_and_remove(layers: Layers) -> None:
    layer = await layers.started()
    await layer.presence_add("room", entry("a", status="here", tabs=[1, 2]), 30)
    await layer.presence_add("room", entry("b", user=None), 30)
    await layer.presence_add("other", entry("c"), 30)
    listed = {e.id: e for e in await layer.presence("room")}
    assert sorted(listed) == ["a", "b"]
    assert listed["a"].user == "ann" and listed["a"].meta == {"status": "here", "tabs": [1, 2]}
    assert listed["b"].user is None and listed["b"].meta == {}
    assert abs(listed["a"].connected_at - time.time()) < 5
    await layer.presence_remove("room", "a")
    await layer.presence_remove("room", "a")  # no error for what is not there
    await layer.presence_remove("never.used", "a")
    assert await ids(layer, "room") == ["b"]
    assert await ids(layer, "other") == ["c"]
    assert await layer.presence("never.used") == []


async def test_adding_again_replaces_the_entry(layers: Layers) -> None:
    layer = await layers.started()
    await layer.presence_add("room", entry("a", status="away"), 30)
    await layer.presence_add("room", entry("a", status="here"), 30)
    assert [e.meta for e in await layer.presence("room")] == [{"status": "here"}]


async def test_entries_live_as_long_as_the_layer_that_added_them(layers: Layers) -> None:
    layer = await layers.started()
    await layer.presence_add("room", entry("a"), 0.6)  # Redis: refreshed every 0.2 s
    await asyncio.sleep(1.5)
    assert await ids(layer, "room") == ["a"]
    assert await layer.presence_sweep("room") == []  # type: ignore[attr-defined]


async def test_a_remove_racing_its_add_never_brings_the_member_back(layers: Layers) -> None:
    layer = await layers.started()
    for i in range(30):
        await asyncio.gather(
            layer.presence_add("room", entry(f"m{i}"), 30), layer.presence_remove("room", f"m{i}")
        )
    await asyncio.sleep(0.1)
    assert await layer.presence("room") == []


# -- across processes (Redis and a Redis Cluster) ----------------------------------------


async def test_processes_see_each_others_members(processes: Layers) -> None:
    a, b = await processes.started(), await processes.started()
    await a.presence_add("room", entry("from-a"), 30)
    await b.presence_add("room", entry("from-b"), 30)
    assert await ids(a, "room") == await ids(b, "room") == ["from-a", "from-b"]
    await b.presence_remove("room", "from-a")  # any process may remove any member
    assert await ids(a, "room") == ["from-b"]


async def test_a_stopped_layers_members_expire_and_one_sweep_gets_each(
    processes: Layers,
) -> None:
    dead, b, c = [await processes.started() for _ in range(3)]
    for i in range(3):
        await dead.presence_add("room", entry(f"m{i}"), 1.0)
    await b.presence_add("room", entry("alive"), 1.0)
    await dead.stop()  # stops refreshing and forgets, without removing: a crash
    stopped = time.monotonic()
    swept: list[str] = []

    async def sweep_until_gone(layer: Layer) -> None:
        while time.monotonic() - stopped < 2.0:
            swept.extend(await layer.presence_sweep("room"))  # type: ignore[attr-defined]
            await asyncio.sleep(0.01)

    sweepers = asyncio.gather(sweep_until_gone(b), sweep_until_gone(c))
    await until(lambda: _only(b, "room", ["alive"]), 1.5, "the dead entries to vanish")
    await sweepers
    assert sorted(swept) == ["m0", "m1", "m2"]  # each returned to one sweeper, once
    assert await ids(c, "room") == ["alive"]  # b refreshes its own: never swept


async def _only(layer: Layer, channel: str, expected: list[str]) -> bool:
    return await ids(layer, channel) == expected


async def test_trackers_in_two_processes_share_one_list(processes: Layers) -> None:
    a, b = await processes.started(), await processes.started()
    frames_a, frames_b = Frames(), Frames()
    ta, tb = PresenceTracker(a, frames_a), PresenceTracker(b, frames_b)
    policy = PresencePolicy(events=True, ttl=5, coalesce=0.05)
    await ta.join("room", policy, entry("ann-laptop", user="ann"))
    await tb.join("room", policy, entry("ann-phone", user="ann"))
    await tb.join("room", policy, entry("bob", user="bob"))
    assert [i.id for i in await ta.list("room")] == ["ann-laptop", "ann-phone", "bob"]
    assert await ta.stats("room") == await tb.stats("room") == PresenceStats(connections=3, users=2)
    await asyncio.sleep(0.2)
    # each process announces its own members, in one frame per window
    assert frames_a.joined() == ["ann-laptop"] and frames_b.joined() == ["ann-phone", "bob"]
    assert len(frames_b.notices) == 1
    await tb.leave("room", "ann-phone")
    assert await ta.stats("room") == PresenceStats(connections=2, users=2)
    await tb.stop()
    await ta.stop()
    assert await a.presence("room") == []
    assert frames_b.left() == ["ann-phone", "bob"]


# -- Redis: storage, a killed process, a stalled one ---------------------------------------


async def test_keys_share_a_slot_with_the_group_and_expire_when_idle(
    redis_url: str, prefix: str
) -> None:
    layer = RedisLayer(redis_url, prefix=prefix)
    zset, table = presence_keys(prefix, "chat.lobby")
    assert key_slot(zset.encode()) == key_slot(table.encode())
    assert key_slot(zset.encode()) == key_slot(f"{prefix}:g:chat.lobby".encode())  # its channel
    try:
        await layer.start()
        await layer.presence_add("chat.lobby", entry("a"), 0.5)
        with redis.Redis.from_url(redis_url) as client:
            assert client.type(zset) == b"zset" and client.type(table) == b"hash"
            assert 500 < client.pttl(zset) <= 1000 and 500 < client.pttl(table) <= 1000
            await layer.stop()  # nobody refreshes the group any more
            await asyncio.sleep(1.1)
            assert client.exists(zset, table) == 0  # gone whole: nothing left behind
    finally:
        await layer.stop()


async def test_the_refresh_adds_back_what_redis_lost(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="rtframe.layers.redis")
    layer = RedisLayer(redis_url, prefix=prefix)
    layer.bind(Recorder())
    try:
        await layer.start()
        await layer.presence_add("room", entry("a", x=1), 0.6)
        with redis.Redis.from_url(redis_url) as client:
            client.delete(*presence_keys(prefix, "room"))  # as a restarted Redis would
        assert await layer.presence("room") == []
        await until(lambda: _only(layer, "room", ["a"]), 1.0, "the entry to come back")
        assert [e.meta for e in await layer.presence("room")] == [{"x": 1}]
        assert "had gone from Redis" in caplog.text
    finally:
        await layer.stop()


async def test_a_storm_of_writes_is_batched_per_group_and_kept_in_order(
    redis_url: str, prefix: str
) -> None:
    layer = RedisLayer(redis_url, prefix=prefix)
    try:
        await asyncio.gather(*(layer.presence_add("room", entry(f"m{i}"), 30) for i in range(2000)))
        assert len(await layer.presence("room")) == 2000
        trips = layer._presence.round_trips
        assert trips <= 1 + 50  # ~1 script per BATCH writes, never one per write
        # one id's add, remove, add made together arrive in that order
        await asyncio.gather(
            layer.presence_add("room", entry("x", n=1), 30),
            layer.presence_remove("room", "x"),
            layer.presence_add("room", entry("x", n=2), 30),
            layer.presence_remove("room", "m0"),
            *(layer.presence_remove("room", f"m{i}") for i in range(1, 2000)),
        )
        assert [e.meta for e in await layer.presence("room")] == [{"n": 2}]
    finally:
        await layer.stop()


async def test_sweeps_beyond_one_batch_and_skips_malformed_entries(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    layer = RedisLayer(redis_url, prefix=prefix)
    zset, table = presence_keys(prefix, "room")
    try:
        with redis.Redis.from_url(redis_url) as client:
            client.zadd(zset, {f"dead{i}": 1 for i in range(1500)})  # expired long ago
            client.zadd(zset, {"bad": 2**50, "gone": 2**50})  # not expired...
            client.hset(table, "bad", "{not json")  # ...but unreadable, or with no entry
            swept = await layer.presence_sweep("room")
            assert sorted(swept) == sorted(f"dead{i}" for i in range(1500))
            assert await layer.presence_sweep("room") == []
            assert await layer.presence("room") == []
            assert "skipped a malformed presence entry" in caplog.text
            client.delete(zset)
            client.set(zset, "not a sorted set")  # Redis refuses: an error, not an outage
        with pytest.raises(LayerError, match="Redis refused") as refused:
            await layer.presence_add("room", entry("a"), 30)
        assert not isinstance(refused.value, LayerUnavailableError)
    finally:
        await layer.stop()
        with redis.Redis.from_url(redis_url) as client:
            client.delete(zset, table)  # written here without expiry: leave nothing behind


_CHILD = """
import asyncio, sys, time
from rtframe.layers.base import PresenceEntry
from rtframe.layers.redis import RedisLayer

class Nobody:
    def deliver_group(self, *args, **kwargs): pass
    def deliver_direct(self, *args): return False

async def main():
    url, prefix, group, ttl = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
    layer = RedisLayer(url, prefix=prefix)
    layer.bind(Nobody())
    await layer.start()
    ids = [layer.new_member_id() for _ in range(3)]
    for i, member_id in enumerate(ids):
        await layer.presence_add(group, PresenceEntry(member_id, f"u{i}", time.time(), {}), ttl)
    print(" ".join(ids), flush=True)
    await asyncio.sleep(3600)

asyncio.run(main())
"""


async def test_a_killed_process_vanishes_in_time_and_its_left_is_announced_once(
    redis_url: str, prefix: str
) -> None:
    ttl, coalesce = 1.0, 0.1
    policy = PresencePolicy(events=True, ttl=ttl, coalesce=coalesce)
    child = await asyncio.create_subprocess_exec(
        *[sys.executable, "-c", _CHILD, redis_url, prefix, "room", str(ttl)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    b, c = RedisLayer(redis_url, prefix=prefix), RedisLayer(redis_url, prefix=prefix)
    frames_b, frames_c = Frames(), Frames()
    tb, tc = PresenceTracker(b, frames_b), PresenceTracker(c, frames_c)
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 20)
        theirs = line.decode().split()
        for layer in (b, c):
            layer.bind(Recorder())
            await layer.start()
        await tb.join("room", policy, entry("on-b"))  # both live processes sweep "room"
        await tc.join("room", policy, entry("on-c"))
        assert await ids(b, "room") == sorted([*theirs, "on-b", "on-c"])
        await asyncio.sleep(1.5)  # the child keeps them alive past their ttl
        assert len(await b.presence("room")) == 5

        os.kill(child.pid, signal.SIGKILL)
        await asyncio.wait_for(child.wait(), 10)
        vanished = await until(
            lambda: _only(b, "room", ["on-b", "on-c"]), ttl + 0.5, "the dead to vanish"
        )
        assert vanished <= ttl + 0.3  # expired a ttl after its last refresh at most
        bound = ttl + ttl / 3 + coalesce  # documented in rtframe.presence

        async def announced() -> bool:
            return sorted(frames_b.left() + frames_c.left()) == sorted(theirs)

        assert await until(announced, bound + 0.5, "their `left`") <= bound + 0.3
        await asyncio.sleep(ttl)  # more sweeps by both processes announce nothing more
        assert sorted(frames_b.left() + frames_c.left()) == sorted(theirs)
        assert "on-b" not in frames_c.left() and "on-c" not in frames_b.left()
    finally:
        if child.returncode is None:
            child.kill()
            await asyncio.wait_for(child.wait(), 10)
        await tb.stop()
        await tc.stop()
        await b.stop()
        await c.stop()


async def test_a_live_member_whose_entry_expired_is_added_back_not_announced(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    layer = RedisLayer(redis_url, prefix=prefix)
    layer.bind(Recorder())
    frames = Frames()
    tracker = PresenceTracker(layer, frames)
    try:
        await layer.start()
        await tracker.join("room", PresencePolicy(events=True, ttl=30, coalesce=0.05), entry("a"))
        with redis.Redis.from_url(redis_url) as client:  # as after a long stall
            client.zadd(presence_keys(prefix, "room")[0], {"a": 1})
        assert await layer.presence("room") == []
        # one round of the tracker's sweep (it runs every ~10 s with this ttl)
        await tracker._sweeper_of("room", tracker._groups["room"])()
        await asyncio.sleep(0.2)
        assert await ids(layer, "room") == ["a"]
        assert frames.left() == [] and "had expired; adding them again" in caplog.text
    finally:
        await tracker.stop()
        await layer.stop()


# -- Redis going away --------------------------------------------------------------------


async def test_redis_unreachable(prefix: str, caplog: pytest.LogCaptureFixture) -> None:
    with redis_server() as server:
        layer = RedisLayer(server.url, prefix=prefix, **FAST)  # type: ignore[arg-type]
        layer.bind(Recorder())
        up = asyncio.Event()

        async def recovered() -> None:
            up.set()

        layer.on_recovery(recovered)
        frames = Frames()
        tracker = PresenceTracker(layer, frames)
        policy = PresencePolicy(events=True, ttl=3, coalesce=0.05)
        try:
            await layer.start()
            await tracker.join("room", policy, entry("before"))
            await asyncio.sleep(0.2)
            server.kill()
            for call in (
                layer.presence_add("room", entry("x"), 3),
                layer.presence_remove("room", "x"),
                layer.presence("room"),
                layer.presence_sweep("room"),
                tracker.list("room"),
                tracker.stats("room"),
            ):
                with pytest.raises(LayerUnavailableError, match="unreachable"):
                    await call
            # joining during the outage is not refused: logged, added once Redis is back
            await tracker.join("room", policy, entry("during"))
            assert "not in the layer yet" in caplog.text

            server.start()  # an empty Redis: "before" was lost with the old one
            await asyncio.wait_for(up.wait(), 15)
            await until(lambda: _only(layer, "room", ["before", "during"]), 5, "presence back")
            # re-announced: other processes may have swept them during the outage
            await asyncio.sleep(0.2)
            assert frames.joined().count("before") == 2
        finally:
            await tracker.stop()
            await layer.stop()
