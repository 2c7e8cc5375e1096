"""Publishing from sync code (views, commands, tasks) into RedisLayer processes."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio as aioredis

from rtframe import (
    ConfigurationError,
    Group,
    InMemoryLayer,
    LayerError,
    LayerUnavailableError,
    RedisLayer,
    RtframeError,
)
from rtframe.sync import SyncPublisher, broadcast_sync, send_to_connection_sync
from rtframe.testing import TestClient

from .redis_servers import redis_server
from .test_contract import room_app
from .test_redis_layer import joined

rooms = Group("room.{room}")


async def test_sync_broadcasts_and_direct_messages_reach_members(
    redis_url: str, prefix: str
) -> None:
    layer = RedisLayer(redis_url, prefix=prefix)
    async with TestClient(room_app(layer)) as client:
        async with client.websocket("/room/x") as w1, client.websocket("/room/x") as w2:
            await joined(w1)
            id2 = await joined(w2)

            def view() -> None:  # what a Django view or a Celery task would run
                for i in range(50):
                    broadcast_sync(rooms, {"n": i}, room="x", layer=layer)
                send_to_connection_sync(id2, {"just": "you"}, layer=layer)

            await asyncio.to_thread(view)
            for ws in (w1, w2):
                assert [(await ws.receive_json())["n"] for _ in range(50)] == list(range(50))
            assert await w2.receive_json() == {"just": "you"}
            await w1.receive_nothing(0.1)

    publisher = layer.sync_publisher()
    assert layer.sync_publisher() is publisher  # one per layer, reused
    assert isinstance(publisher.client, redis.Redis)
    pool = publisher.client.connection_pool
    assert pool._created_connections == 1  # 51 publishes, one pooled connection, no leak
    publisher.close()


async def test_a_group_name_string_works_too(redis_url: str, prefix: str) -> None:
    layer = RedisLayer(redis_url, prefix=prefix)
    publisher = SyncPublisher(redis_url, prefix=prefix)
    try:
        async with TestClient(room_app(layer)) as client:
            async with client.websocket("/room/x") as w1:
                await joined(w1)
                await asyncio.to_thread(publisher.broadcast, "room.x", "plain text")
                assert await w1.receive_text() == "plain text"
    finally:
        publisher.close()


def test_sync_publishing_needs_a_redis_layer() -> None:
    with pytest.raises(LayerError, match="needs a RedisLayer"):
        broadcast_sync(rooms, {"n": 1}, room="x", layer=InMemoryLayer())


def test_a_layer_built_from_a_client_has_no_url_to_share() -> None:
    layer = RedisLayer(client=aioredis.Redis())
    with pytest.raises(ConfigurationError, match="SyncPublisher"):
        layer.sync_publisher()


def test_bad_arguments_are_refused(redis_url: str) -> None:
    with pytest.raises(ConfigurationError, match="url or a client"):
        SyncPublisher()
    with pytest.raises(ConfigurationError, match="bad Redis URL"):
        SyncPublisher("ftp://nowhere")
    publisher = SyncPublisher(redis_url)
    with pytest.raises(LayerError, match="not a member id"):
        publisher.send_to("no-process-in-here", {"x": 1})
    publisher.close()


def test_an_unreachable_redis_is_a_typed_error() -> None:
    with redis_server() as server:
        publisher = SyncPublisher(server.url)
        publisher.broadcast("g", "warm the pool")
        server.kill()
        with pytest.raises(LayerUnavailableError, match="unreachable"):
            publisher.broadcast("g", "lost")
        server.start()
        publisher.broadcast("g", "fine again")  # the pool recovers by itself
        publisher.close()


async def test_the_target_is_the_layer_or_app_named_else_the_only_app_running(
    redis_url: str, prefix: str
) -> None:
    layer = RedisLayer(redis_url, prefix=prefix)
    other = room_app(RedisLayer(redis_url, prefix=f"{prefix}-other"))
    app = room_app(layer)
    async with TestClient(app) as client:
        async with client.websocket("/room/x") as w1:
            await joined(w1)
            await asyncio.to_thread(broadcast_sync, "room.x", {"via": "app"}, app=app)
            assert await w1.receive_json() == {"via": "app"}
            # one app running: it is the target
            await asyncio.to_thread(broadcast_sync, rooms, {"via": "only"}, room="x")
            assert await w1.receive_json() == {"via": "only"}
            async with TestClient(other):
                # two running: naming none is an error, never a guess
                with pytest.raises(RtframeError, match="name the one"):
                    await asyncio.to_thread(broadcast_sync, "room.x", {"via": "guess"})
                await asyncio.to_thread(broadcast_sync, "room.x", {"via": "layer"}, layer=layer)
                assert await w1.receive_json() == {"via": "layer"}
            await w1.receive_nothing(0.1)
    layer.sync_publisher().close()


def test_an_in_memory_app_cannot_be_reached_from_sync_code() -> None:
    with pytest.raises(LayerError, match="needs a RedisLayer"):
        send_to_connection_sync("x.y", {"n": 1}, app=room_app(InMemoryLayer()))
