"""Redis under load: no false outages.

A burst of publishers used to take one pooled connection each; past redis-py's 100 the
pool raised a `ConnectionError`, reported as "Redis unreachable" (issue 8: 400 chat
clients sending at once got ~290 `layer_unavailable` frames from a healthy Redis). Now
publishes share one pipelined connection per node, the queue is bounded, and a wait
that runs out is `LayerBusyError`, never `LayerUnavailableError`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Literal

import pytest
import redis
import redis.asyncio as aioredis
from pydantic import BaseModel

from rtframe import (
    Connection,
    Group,
    LayerError,
    LayerUnavailableError,
    RealtimeApp,
    RedisLayer,
    WebSocketRouter,
)
from rtframe.exceptions import LayerBusyError
from rtframe.layers.redis.errors import layer_error
from rtframe.sync import SyncPublisher
from rtframe.testing import TestClient

from .conftest import Layers, Recorder, recorder_of
from .redis_servers import RedisServer, redis_server

PUBLISHERS = 1000


def publisher_connections(url: str, name: str) -> int:
    """How many connections named `name` the Redis at `url` has open."""
    with redis.Redis.from_url(url) as client:
        return sum(1 for c in client.client_list() if c.get("name") == name)


async def test_a_thousand_simultaneous_publishers_get_through(processes: Layers) -> None:
    a, b = await processes.started(), await processes.started()
    rooms = [f"room.{i}" for i in range(10)]
    for room in rooms:
        await b.subscribe(room)
    started = time.perf_counter()
    results = await asyncio.gather(
        *(a.publish(rooms[i % 10], str(i)) for i in range(PUBLISHERS)), return_exceptions=True
    )
    elapsed = time.perf_counter() - started
    errors = [r for r in results if r is not None]
    assert not [e for e in errors if isinstance(e, LayerUnavailableError)]
    assert errors == []
    frames = await recorder_of(b).wait_groups(PUBLISHERS)
    for room in rooms:  # and each room's frames in the order they were published
        n = int(room.split(".")[1])
        assert [int(f) for r, f in frames if r == room] == list(range(n, PUBLISHERS, 10))
    assert isinstance(a, RedisLayer)
    assert a.stats.published == PUBLISHERS
    # pipelined: a handful of round trips per node, not one each
    assert a.stats.batches <= 10 * (3 if a.cluster else 1)
    assert elapsed < 5, f"{PUBLISHERS} simultaneous publishes took {elapsed:.2f}s"
    print(f"\n{processes.kind}: {PUBLISHERS} simultaneous publishes in {elapsed * 1000:.0f} ms, "
          f"{a.stats.batches} round trips")  # fmt: skip


async def test_publishes_share_one_connection(redis_url: str, prefix: str) -> None:
    layer = RedisLayer(redis_url, prefix=prefix)
    layer.bind(Recorder())
    try:
        for _ in range(3):
            await asyncio.gather(*(layer.publish("room.x", "x") for _ in range(300)))
        assert publisher_connections(redis_url, f"rtframe-pub:{prefix}:{layer.node_id}") == 1
    finally:
        await layer.stop()
    for _ in range(100):  # Redis notices the close a moment later
        if publisher_connections(redis_url, f"rtframe-pub:{prefix}:{layer.node_id}") == 0:
            break
        await asyncio.sleep(0.01)
    assert publisher_connections(redis_url, f"rtframe-pub:{prefix}:{layer.node_id}") == 0


rooms = Group("room.{room}")


class Say(BaseModel):
    type: Literal["say"] = "say"
    text: str


def chat(layer: RedisLayer) -> RealtimeApp:
    ws = WebSocketRouter()

    @ws.route("/room/{room}")
    async def join(conn: Connection) -> None:
        await rooms.add(conn)
        await conn.accept()

    @ws.on_receive("/room/{room}")
    @rooms.broadcast
    async def say(msg: Say) -> Say:
        return msg

    return RealtimeApp(routers=[ws], layer=layer)


async def test_a_thousand_clients_sending_at_once_get_no_layer_unavailable(
    redis_url: str, prefix: str
) -> None:
    """The issue's scenario: every client of a Redis-backed app sends at the same instant."""
    layer = RedisLayer(redis_url, prefix=prefix)
    async with TestClient(chat(layer)) as client:
        sessions = [client.websocket(f"/room/{i}") for i in range(PUBLISHERS)]
        sockets = await asyncio.gather(*(s.__aenter__() for s in sessions))
        try:
            await asyncio.gather(
                *(ws.send_json({"type": "say", "text": str(i)}) for i, ws in enumerate(sockets))
            )
            replies = await asyncio.gather(*(ws.receive_json() for ws in sockets))
            # each its own room: its own broadcast back, and no error frame
            assert replies == [{"type": "say", "text": str(i)} for i in range(PUBLISHERS)]
            for ws in sockets[:50]:
                await ws.receive_nothing(0.01)
        finally:
            for s in sessions:
                await s.__aexit__(None, None, None)
    assert layer.stats.published == PUBLISHERS and layer.stats.busy == 0


@pytest.fixture
def private_redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


async def test_a_full_publish_queue_is_busy_not_an_outage(
    private_redis: RedisServer, prefix: str
) -> None:
    layer = RedisLayer(private_redis.url, prefix=prefix, max_pending=5, busy_timeout=0.2)
    layer.bind(Recorder())
    await layer.start()
    try:
        await layer.publish("room.x", "warm")
        with private_redis.client() as admin:
            admin.execute_command("CLIENT", "PAUSE", 1000, "ALL")
        # 5 go out as a batch (and wait for the pause to end), 5 more queue behind them;
        # the other 90 find no room for 0.2 s: busy, while Redis is perfectly reachable
        results = await asyncio.gather(
            *(layer.publish("room.x", str(i)) for i in range(100)), return_exceptions=True
        )
        busy = [r for r in results if isinstance(r, LayerBusyError)]
        assert not [r for r in results if isinstance(r, LayerUnavailableError)]
        assert len(busy) == 90 and results[:10] == [None] * 10
        assert "stayed queued" in str(busy[0]) and "only in this process" in str(busy[0])
        assert layer.available and layer.stats.outages == 0 and layer.stats.busy == 90
        await layer.publish("room.x", "fine again")
    finally:
        await layer.stop()


async def test_a_redis_py_pool_that_runs_out_is_busy_not_unavailable(redis_url: str) -> None:
    """Where a redis-py pool is still used (clients handed in, sync code), its exhaustion
    is reported as busy: redis-py raises a ConnectionError, the same class as for a
    Redis that is gone."""
    blocking = aioredis.BlockingConnectionPool.from_url(redis_url, max_connections=1, timeout=0.05)
    capped = aioredis.ConnectionPool.from_url(redis_url, max_connections=1)
    for pool in (blocking, capped):
        client = aioredis.Redis(connection_pool=pool)
        held = await pool.get_connection()  # type: ignore[no-untyped-call]
        try:
            with pytest.raises(redis.ConnectionError) as caught:
                await client.publish("x", "y")
            error = layer_error(caught.value, "room.x", where="only in this process")
            assert isinstance(error, LayerBusyError) and not isinstance(
                error, LayerUnavailableError
            )
        finally:
            await pool.release(held)
            await client.aclose()
            await pool.disconnect()
    # and a Redis that is really gone is still an outage
    gone = layer_error(redis.ConnectionError("Connection refused"), "room.x", where="here")
    assert isinstance(gone, LayerUnavailableError)
    refused = layer_error(redis.ResponseError("ERR unknown command"), "room.x", where="here")
    assert type(refused) is LayerError


def test_a_sync_publisher_whose_pool_runs_out_is_busy(redis_url: str) -> None:
    pool = redis.BlockingConnectionPool.from_url(redis_url, max_connections=1, timeout=0.05)
    publisher = SyncPublisher(client=redis.Redis(connection_pool=pool))
    held = pool.get_connection()  # type: ignore[no-untyped-call]
    try:
        with pytest.raises(LayerBusyError, match="busy"):
            publisher.broadcast("room.x", "y")
    finally:
        pool.release(held)  # type: ignore[no-untyped-call]
    publisher.broadcast("room.x", "y")  # and fine once a connection is free
    pool.disconnect()
