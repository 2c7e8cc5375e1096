"""History on the Redis layer: the script, its keys and slots, restarts, NOSCRIPT, round
trips, the positioned wire format and sync publishing. The semantics shared with the
memory layer are in test_contract.py; this file checks what only Redis can get wrong."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from rtframe import (
    Connection,
    Group,
    LayerError,
    LayerUnavailableError,
    RealtimeApp,
    RedisLayer,
    RtframeError,
    WebSocketRouter,
)
from rtframe.layers.base import HistoryPolicy, Position
from rtframe.layers.redis.history import PUBLISH, READ, history_keys
from rtframe.sync import SyncPublisher, broadcast_sync
from rtframe.testing import TestClient

from .conftest import Recorder
from .redis_servers import RedisServer, redis_server

KEEP = HistoryPolicy(size=5, ttl=30, meta_ttl=60)
FAST = {"ping_interval": 1.0, "reconnect_backoff": (0.05, 0.5)}


@asynccontextmanager
async def started(url: str, prefix: str, **options: object) -> AsyncIterator[RedisLayer]:
    layer = RedisLayer(url, prefix=prefix, **options)  # type: ignore[arg-type]
    layer.bind(Recorder())
    await layer.start()
    try:
        yield layer
    finally:
        await layer.stop()


def recorder(layer: RedisLayer) -> Recorder:
    receiver = layer.receiver
    assert isinstance(receiver, Recorder)
    return receiver


@pytest.fixture
def private() -> Iterator[RedisServer]:
    """A redis-server of this test's own: it may be flushed, killed and restarted."""
    with redis_server() as server:
        yield server


# -- keys and slots --------------------------------------------------------------------

NAMES = [
    "rtframe:g:chat.lobby",  # no tag: the keys wrap the whole channel in one
    "{app}:g:chat.lobby",  # a prefix with a tag: the keys keep it (all groups one slot)
    "rtframe:g:room.{x}",  # a group name with a tag of its own
    "rtframe:g:a{b",  # an opening brace alone is no tag
    "rtframe:g:a{}{b}",  # an empty first tag is no tag, and a later '}' follows it
    "rtframe:g:ünïcode ✓",
]


@pytest.mark.parametrize("channel", NAMES[:4] + NAMES[5:])
def test_history_keys_hash_to_the_channel_s_slot(channel: str) -> None:
    meta, stream = history_keys(channel)
    assert meta != stream
    assert key_slot(meta) == key_slot(stream) == key_slot(channel.encode())


def test_history_keys_wrap_or_keep_the_tag() -> None:
    assert history_keys("rtframe:g:chat.lobby") == (
        b"{rtframe:g:chat.lobby}:m",
        b"{rtframe:g:chat.lobby}:s",
    )
    assert history_keys("{app}:g:x") == (b"{app}:g:x:m", b"{app}:g:x:s")


@pytest.mark.parametrize("channel", ["rtframe:g:a}b", "rtframe:g:a{}b", NAMES[4]])
def test_a_brace_outside_a_hash_tag_cannot_keep_history(channel: str) -> None:
    # the channel hashes whole, and a tag cannot hold '}': no key can share its slot
    with pytest.raises(LayerError, match="leave '}' out of history group names"):
        history_keys(channel)


async def test_a_group_with_such_a_name_is_refused_before_anything_is_written(
    redis_url: str, prefix: str
) -> None:
    async with started(redis_url, prefix) as layer:
        with pytest.raises(LayerError, match="outside a hash tag"):
            await layer.publish("a}b", "{}", KEEP)
        with pytest.raises(LayerError, match="outside a hash tag"):
            await layer.history("a}b", KEEP, None, 0)
        assert await layer.publish("a}b", "{}") is None  # without history it is fine
        assert layer.stats.published == 1


async def test_the_keys_their_ids_and_their_lifetimes(redis_url: str, prefix: str) -> None:
    policy = HistoryPolicy(size=3, ttl=1.0, meta_ttl=30)
    async with started(redis_url, prefix) as layer:
        for i in range(5):
            await layer.publish("room.k", f'{{"n":{i}}}', policy)
    meta, stream = history_keys(f"{prefix}:g:room.k")
    with redis.Redis.from_url(redis_url) as raw:
        fields = raw.hgetall(meta)
        assert fields[b"offset"] == b"5" and len(fields[b"epoch"]) == 8
        # ids are the offsets; Redis trims by whole nodes, reads keep to the last `size`
        entries = raw.xrange(stream)
        assert [entry_id for entry_id, _ in entries][-3:] == [b"0-3", b"0-4", b"0-5"]
        assert entries[-3][1] == {b"f": b'{"n":2}'}
        assert 0 < raw.pttl(stream) <= 1000
        assert 29_000 < raw.pttl(meta) <= 30_000
        await asyncio.sleep(1.2)
        # the frames expired, the position did not: a client that missed nothing is
        # still recoverable, one that missed something is told it is not
        assert not raw.exists(stream) and raw.exists(meta)


async def test_the_stream_stays_near_its_size_and_reads_keep_to_it_exactly(
    redis_url: str, prefix: str
) -> None:
    policy = HistoryPolicy(size=50, ttl=30, meta_ttl=60)
    async with started(redis_url, prefix) as layer:
        for i in range(1, 1001):
            await layer.publish("room.t", f'{{"n":{i}}}', policy)
        _, stream = history_keys(f"{prefix}:g:room.t")
        with redis.Redis.from_url(redis_url) as raw:
            assert 50 <= raw.xlen(stream) <= 50 + 100  # whole nodes of <= 100 entries go
        since = await layer.history("room.t", policy, 0, 0)
        assert [o for o, _ in since.frames] == list(range(951, 1001))
        assert not since.covers(Position(since.epoch, 949))
        assert since.covers(Position(since.epoch, 950))
        newest = await layer.history("room.t", policy, None, 80)  # no more than size either
        assert [o for o, _ in newest.frames] == list(range(951, 1001))


async def test_a_history_read_does_not_extend_the_history_s_life(
    redis_url: str, prefix: str
) -> None:
    policy = HistoryPolicy(size=3, ttl=1, meta_ttl=30)
    async with started(redis_url, prefix) as layer:
        await layer.history("room.r", policy, None, 0)  # creates the epoch, with meta_ttl
        meta, _ = history_keys(f"{prefix}:g:room.r")
        with redis.Redis.from_url(redis_url) as raw:
            raw.pexpire(meta, 5_000)
            await layer.history("room.r", policy, 0, 0)
            assert raw.pttl(meta) <= 5_000  # the same as the memory layer: from the last write


# -- round trips and NOSCRIPT ------------------------------------------------------------


def commandstats(server: RedisServer) -> dict[str, int]:
    with server.client() as raw:
        stats = raw.info("commandstats")
    return {name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items()}


async def test_a_history_broadcast_is_one_round_trip(private: RedisServer, prefix: str) -> None:
    async with started(private.url, prefix) as layer:
        await layer.publish("room.h", "{}", KEEP)  # caches the script (EVAL after NOSCRIPT)
        with private.client() as raw:
            raw.config_resetstat()
        batches = layer.stats.batches
        for i in range(50):
            await layer.publish("room.h", f'{{"n":{i}}}', KEEP)
            assert layer.stats.batches == batches + i + 1  # exactly one per broadcast
        calls = commandstats(private)
        assert calls["evalsha"] == 50 and "eval" not in calls
        assert calls["publish"] == 50 and calls["xadd"] == 50  # run inside the script
        # a burst shares round trips, like plain publishes do
        batches = layer.stats.batches
        sent = await asyncio.gather(
            *(layer.publish("room.h", f'{{"n":{i}}}', KEEP) for i in range(500))
        )
        assert [p.offset for p in sent if p] == list(range(52, 552))
        assert layer.stats.batches - batches <= 10
        assert layer.stats.published == 551


async def test_publishing_and_reading_survive_a_script_flush(
    private: RedisServer, prefix: str
) -> None:
    async with started(private.url, prefix) as a, started(private.url, prefix) as b:
        await b.subscribe("room.h")
        first = await a.publish("room.h", '{"n":1}', KEEP)
        await b.history("room.h", KEEP, None, 0)
        loads = a.stats.script_loads + b.stats.script_loads
        with private.client() as raw:
            raw.script_flush()
        assert first is not None
        second = await a.publish("room.h", '{"n":2}', KEEP)  # NOSCRIPT, then EVAL
        assert second == Position(first.epoch, 2)
        read = await b.history("room.h", KEEP, 0, 0)
        assert read.frames == [(1, '{"n":1}'), (2, '{"n":2}')]
        assert a.stats.script_loads + b.stats.script_loads == loads + 2
        assert await recorder(b).wait_groups(2) == [("room.h", '{"n":1}'), ("room.h", '{"n":2}')]
        assert recorder(b).positions == [first, second]
        with private.client() as raw:  # the EVAL cached them again
            assert raw.script_exists(PUBLISH.sha.decode(), READ.sha.decode()) == [True, True]


# -- restarts ----------------------------------------------------------------------------


async def test_a_restart_without_persistence_starts_a_new_epoch(
    private: RedisServer, prefix: str
) -> None:
    async with started(private.url, prefix, **FAST) as layer:
        for i in range(3):
            old = await layer.publish("room.h", f'{{"n":{i}}}', KEEP)
        assert old is not None
        private.kill()
        with pytest.raises(LayerUnavailableError, match=r"publishing to 'room\.h'"):
            await layer.publish("room.h", "{}", KEEP)
        with pytest.raises(LayerUnavailableError, match=r"reading the history of 'room\.h'"):
            await layer.history("room.h", KEEP, 0, 0)
        private.start()  # empty: no RDB, no AOF
        new = await layer.publish("room.h", '{"n":"after"}', KEEP)
        assert new is not None and new.epoch != old.epoch and new.offset == 1
        read = await layer.history("room.h", KEEP, old.offset, 0)
        assert not read.covers(old)  # the client reloads: its position is of a lost history


async def test_a_restart_with_persistence_keeps_the_epoch() -> None:
    with redis_server("--appendonly", "yes", "--appendfsync", "always") as server:
        async with started(server.url, "persisted", **FAST) as layer:
            for i in range(1, 4):
                old = await layer.publish("room.h", f'{{"n":{i}}}', KEEP)
            assert old is not None
            server.kill()  # SIGKILL: only what was fsynced to the AOF comes back
            server.start()
            await asyncio.sleep(0.1)  # the loop sees the old connection's EOF (as in life)
            new = await layer.publish("room.h", '{"n":4}', KEEP)
            assert new == Position(old.epoch, 4)  # offsets continue in the same epoch
            read = await layer.history("room.h", KEEP, 1, 0)
            assert read.covers(Position(old.epoch, 1))
            assert [o for o, _ in read.frames] == [2, 3, 4]


# -- the wire ----------------------------------------------------------------------------


async def test_a_malformed_positioned_payload_is_dropped_with_a_warning(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with started(redis_url, prefix) as layer:
        await layer.subscribe("room.h")
        caplog.set_level(logging.WARNING, logger="rtframe.layers.redis")
        channel = f"{prefix}:g:room.h"
        bad = [
            b"Pabcdef",  # header cut short
            b"Pabcdefabcdef ",  # nothing after the header
            b"Pabcdefabcdef e1 {}",  # no offset
            b"Pabcdefabcdef  7 {}",  # an empty epoch
            b"Pabcdefabcdef e1 x7 {}",  # an offset that is not a number
            b"Pabcdefabcdef e1 -7 {}",  # nor is a negative one
            b"Pabcdefabcdef \xff 7 {}",  # an epoch that is not ASCII
            b"Pabcdefabcdef e1 7 \xff\xfe",  # a frame that is not UTF-8
        ]
        with redis.Redis.from_url(redis_url) as raw:
            for payload in bad:
                raw.publish(channel, payload)
            raw.publish(channel, b'Pabcdefabcdef e1 7 {"ok":true}')
        assert await recorder(layer).wait_groups(1) == [("room.h", '{"ok":true}')]
        assert recorder(layer).positions == [Position("e1", 7)]  # later traffic is unharmed
        dropped = [r for r in caplog.records if "dropped a malformed message" in r.getMessage()]
        assert len(dropped) == len(bad) and all(r.levelno == logging.WARNING for r in dropped)
        assert layer.stats.malformed == len(bad)


# -- sync code ---------------------------------------------------------------------------

hist = Group("hist.{room}", history=KEEP)


async def test_sync_broadcasts_to_a_history_group_get_positions(
    redis_url: str, prefix: str
) -> None:
    publisher = SyncPublisher(redis_url, prefix=prefix)
    try:
        async with started(redis_url, prefix) as a, started(redis_url, prefix) as b:
            await a.subscribe("hist.x")
            await b.subscribe("hist.x")
            first = await a.publish("hist.x", '{"n":1}', KEEP)
            assert first is not None
            # the Group's own policy by default, an explicit one for a name
            second = await asyncio.to_thread(publisher.broadcast, hist, {"n": 2}, room="x")
            third = await asyncio.to_thread(
                broadcast_sync, "hist.x", {"n": 3}, layer=a, history=KEEP
            )
            assert (second, third) == (Position(first.epoch, 2), Position(first.epoch, 3))
            frames = await recorder(b).wait_groups(3)
            assert [f for _, f in frames] == ['{"n":1}', '{"n":2}', '{"n":3}']
            assert recorder(b).positions == [first, second, third]
            # the layer's own sync publisher, too: nobody skips it as an echo
            assert await recorder(a).wait_groups(2) == [
                ("hist.x", '{"n":2}'),
                ("hist.x", '{"n":3}'),
            ]
            # without history: a plain PUBLISH, no position
            assert await asyncio.to_thread(publisher.broadcast, "hist.x", {"n": 4}) is None
            assert (await recorder(b).wait_groups(4))[3] == ("hist.x", '{"n":4}')
            assert recorder(b).positions[3] is None
            read = await a.history("hist.x", KEEP, 0, 0)
            assert [o for o, _ in read.frames] == [1, 2, 3]
    finally:
        publisher.close()


def test_a_sync_history_broadcast_must_be_a_json_object(redis_url: str, prefix: str) -> None:
    publisher = SyncPublisher(redis_url, prefix=prefix)
    try:
        with pytest.raises(RtframeError, match="must encode to a JSON object"):
            publisher.broadcast("hist.x", "plain text", history=KEEP)
        with pytest.raises(RtframeError, match="must encode to a JSON object"):
            publisher.broadcast(hist, [1, 2], room="x")
        with pytest.raises(LayerError, match="outside a hash tag"):
            publisher.broadcast("a}b", {}, history=KEEP)
    finally:
        publisher.close()


def test_a_sync_history_broadcast_survives_a_script_flush_and_reports_outages(
    private: RedisServer, prefix: str
) -> None:
    publisher = SyncPublisher(private.url, prefix=prefix)
    try:
        first = publisher.broadcast("hist.x", {"n": 1}, history=KEEP)
        with private.client() as raw:
            raw.script_flush()
        assert first is not None
        assert publisher.broadcast("hist.x", {"n": 2}, history=KEEP) == Position(first.epoch, 2)
        private.kill()
        with pytest.raises(LayerUnavailableError, match="reached nobody"):
            publisher.broadcast("hist.x", {"n": 3}, history=KEEP)
    finally:
        publisher.close()


# -- Redis Cluster -----------------------------------------------------------------------


@pytest.mark.parametrize("cluster_prefix", ["plain", "{tagged}"])
async def test_history_on_a_cluster_lives_in_the_channel_s_slot(
    cluster_ports: list[int], prefix: str, cluster_prefix: str
) -> None:
    prefix = f"{cluster_prefix}{prefix}"
    urls = [f"redis://127.0.0.1:{port}" for port in cluster_ports]
    publisher = SyncPublisher(urls[2], cluster=True, prefix=prefix)
    try:
        async with (
            started(urls[0], prefix, cluster=True) as a,
            started(urls[1], prefix, cluster=True) as b,
        ):
            rooms = [f"room.{i}" for i in range(6)]  # spread over the shards
            for room in rooms:
                await b.subscribe(room)
            sent = []
            for room in rooms:
                sent.append(await a.publish(room, f'{{"room":"{room}"}}', KEEP))
                sent.append(
                    await asyncio.to_thread(publisher.broadcast, room, {"sync": 1}, history=KEEP)
                )
            assert [p.offset for p in sent if p] == [1, 2] * len(rooms)
            await recorder(b).wait_groups(2 * len(rooms))
            assert recorder(b).positions == sent
            for room in rooms:
                read = await b.history(room, KEEP, 0, 0)
                assert [o for o, _ in read.frames] == [1, 2]
            with RedisCluster(host="127.0.0.1", port=cluster_ports[0]) as cluster:
                for room in rooms:
                    channel = f"{prefix}:g:{room}"
                    meta, stream = history_keys(channel)
                    slot = cluster.keyslot(channel)
                    assert cluster.keyslot(meta) == cluster.keyslot(stream) == slot
                    assert cluster.exists(meta) == cluster.exists(stream) == 1
    finally:
        publisher.close()


# -- through an app ----------------------------------------------------------------------


def history_app(layer: RedisLayer) -> RealtimeApp:
    ws = WebSocketRouter()

    @ws.route("/hist/{room}")
    async def join(conn: Connection) -> None:
        await hist.add(conn)
        await conn.accept()

    return RealtimeApp(routers=[ws], layer=layer)


async def test_members_in_every_process_get_the_same_positions(redis_url: str, prefix: str) -> None:
    a, b = RedisLayer(redis_url, prefix=prefix), RedisLayer(redis_url, prefix=prefix)
    app_a = history_app(a)
    async with TestClient(app_a) as ca, TestClient(history_app(b)) as cb:
        async with ca.websocket("/hist/x") as wa, cb.websocket("/hist/x") as wb:
            position = await app_a.broadcast(hist, {"text": "hi"}, room="x")
            assert isinstance(position, Position) and position.offset == 1
            pos = {"group": "hist.x", "epoch": position.epoch, "offset": 1}
            assert await wa.receive_json() == {"text": "hi", "$pos": pos}
            assert await wb.receive_json() == {"text": "hi", "$pos": pos}
