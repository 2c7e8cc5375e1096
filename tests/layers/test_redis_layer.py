"""RedisLayer across two layers (two "processes") sharing one real Redis."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.connection import SSLConnection

from rtframe import (
    ConfigurationError,
    Connection,
    LayerError,
    RealtimeApp,
    RedisLayer,
    WebSocketRouter,
)
from rtframe.testing import TestClient, WebSocketSession

from .redis_servers import redis_server
from .test_contract import room_app


@pytest.fixture
async def two(redis_url: str, prefix: str) -> AsyncIterator[tuple[RedisLayer, RedisLayer]]:
    a, b = RedisLayer(redis_url, prefix=prefix), RedisLayer(redis_url, prefix=prefix)
    yield a, b
    await a.stop()
    await b.stop()


async def numsub(url: str, channel: str) -> int:
    async with aioredis.Redis.from_url(url) as client:
        [(_, count)] = await client.pubsub_numsub(channel)
        return int(count)


async def joined(ws: WebSocketSession) -> str:
    return str((await ws.receive_json())["id"])


async def test_broadcast_and_direct_messages_cross_layers(
    two: tuple[RedisLayer, RedisLayer],
) -> None:
    a, b = two
    app_a = room_app(a)
    async with TestClient(app_a) as ca, TestClient(room_app(b)) as cb:
        async with ca.websocket("/room/x") as wa, cb.websocket("/room/x") as wb:
            await joined(wa)
            id_b = await joined(wb)
            assert id_b.startswith(b.node_id + ".")
            await wa.send_json({"type": "say", "text": "from a"})
            assert await wa.receive_json() == {"text": "from a"}
            assert await wb.receive_json() == {"text": "from a"}
            await app_a.send_to(id_b, '{"direct":1}')
            assert await wb.receive_json() == {"direct": 1}
            await wa.receive_nothing(0.2)
    # one PUBLISH per broadcast: the say and the direct message
    assert a.stats.published == 2


async def test_a_layer_subscribes_only_while_it_has_members(
    two: tuple[RedisLayer, RedisLayer], redis_url: str, prefix: str
) -> None:
    a, b = two
    channel = f"{prefix}:g:room.x"
    async with TestClient(room_app(a)) as ca, TestClient(room_app(b)) as cb:
        assert await numsub(redis_url, channel) == 0
        async with ca.websocket("/room/x") as wa1, ca.websocket("/room/x") as wa2:
            await joined(wa1)
            await joined(wa2)
            assert await numsub(redis_url, channel) == 1  # one subscription for two members
            async with cb.websocket("/room/x") as wb:
                await joined(wb)
                assert await numsub(redis_url, channel) == 2
            await _eventually(lambda: numsub(redis_url, channel), 1)
            await wa2.send_json({"type": "leave"})
            assert await wa2.receive_json() == {"left": True}
            assert await numsub(redis_url, channel) == 1  # wa1 is still there
        await _eventually(lambda: numsub(redis_url, channel), 0)
        assert a.local_groups() == []


async def _eventually(probe: object, expected: int) -> None:
    # unsubscribing runs in the disconnect teardown, after the client saw the close
    for _ in range(100):
        if await probe() == expected:  # type: ignore[operator]
            return
        await asyncio.sleep(0.02)
    assert await probe() == expected  # type: ignore[operator]


async def test_malformed_payloads_are_logged_and_dropped(
    two: tuple[RedisLayer, RedisLayer],
    redis_url: str,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    a, _ = two
    async with TestClient(room_app(a)) as ca, aioredis.Redis.from_url(redis_url) as raw:
        async with ca.websocket("/room/x") as wa:
            await joined(wa)
            caplog.set_level(logging.WARNING, logger="rtframe.layers.redis")
            group = f"{prefix}:g:room.x"
            bad = [
                (group, b""),
                (group, b"Xabcdefabcdef hello"),  # unknown kind
                (group, b"T12345"),  # header cut short
                (group, b"Tabcdefabcdef \xff\xfe"),  # text that is not UTF-8
                (group, b"\x80\x04\x95pickle"),  # a pickle is just garbage here
                (f"{prefix}:p:{a.node_id}", b"Tabcdefabcdef no-space-after-id"),
            ]
            for channel, payload in bad:
                await raw.publish(channel, payload)
            await raw.publish(group, b'Tabcdefabcdef {"ok":true}')
            assert await wa.receive_json() == {"ok": True}  # later traffic is unharmed
            await wa.receive_nothing(0.1)
    assert a.stats.malformed == len(bad)
    assert sum("malformed" in r.message for r in caplog.records) == len(bad)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({}, "url or a client"),
        ({"url": "redis://h", "client": aioredis.Redis()}, "url or a client"),
        ({"url": "http://127.0.0.1"}, "bad Redis URL"),
        ({"url": "redis://h", "prefix": ""}, "prefix"),
        ({"url": "redis://h", "prefix": "a b"}, "prefix"),
        ({"url": "redis://h", "ping_interval": 0}, "positive"),
        ({"url": "redis://h", "reconnect_backoff": (2.0, 1.0)}, "backoff"),
        ({"url": "redis://h", "max_pending": 0}, "max_pending"),
        ({"url": "redis://h", "busy_timeout": 0}, "positive"),
    ],
)
def test_bad_configuration_is_refused(kwargs: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigurationError, match=match):
        RedisLayer(**kwargs)  # type: ignore[arg-type]


def test_a_url_carries_password_tls_and_db() -> None:
    layer = RedisLayer("rediss://:s3cret@redis.example:6380/3", prefix="app1")
    assert isinstance(layer.client, aioredis.Redis)
    pool = layer.client.connection_pool
    assert pool.connection_class is SSLConnection
    assert pool.connection_kwargs["password"] == "s3cret"
    assert pool.connection_kwargs["db"] == 3
    assert layer.prefix == "app1"


async def test_wrong_credentials_fail_startup_clearly() -> None:
    with redis_server(password="right") as server:
        url = f"redis://:wrong@127.0.0.1:{server.port}/0"
        layer = RedisLayer(url)
        with pytest.raises(LayerError, match="refused"):
            await layer.start()
        await layer.stop()


@pytest.mark.parametrize("tls", [False, True], ids=["password-db", "tls-password-db"])
async def test_password_tls_and_db_from_the_url_carry_messages(tls: bool, prefix: str) -> None:
    with redis_server(password="s3cret", tls=tls) as server:
        url = server.url.replace("/0", "/5")
        assert url.startswith("rediss://" if tls else "redis://")
        a, b = RedisLayer(url, prefix=prefix), RedisLayer(url, prefix=prefix)
        app_a = room_app(a)
        try:
            async with TestClient(app_a) as ca, TestClient(room_app(b)) as cb:
                async with ca.websocket("/room/x") as wa, cb.websocket("/room/x") as wb:
                    await joined(wa)
                    id_b = await joined(wb)
                    await app_a.broadcast("room.x", '{"secure":true}')
                    assert await wb.receive_json() == {"secure": True}
                    assert await wa.receive_json() == {"secure": True}
                    await app_a.send_to(id_b, '{"direct":true}')
                    assert await wb.receive_json() == {"direct": True}
            publisher = a.sync_publisher()
            assert isinstance(publisher.client, redis.Redis)
            assert publisher.client.connection_pool.connection_kwargs["db"] == 5
            publisher.broadcast("room.x", "nobody listens now")  # sync path, same URL
            publisher.close()
        finally:
            await a.stop()
            await b.stop()


async def test_an_injected_client_is_used_and_left_open(redis_url: str, prefix: str) -> None:
    client = aioredis.Redis.from_url(redis_url)
    layer = RedisLayer(client=client, prefix=prefix)
    other = RedisLayer(redis_url, prefix=prefix)
    app = room_app(layer)
    try:
        async with TestClient(room_app(other)) as cb, TestClient(app):
            async with cb.websocket("/room/x") as wb:
                await joined(wb)
                await app.broadcast("room.x", '{"via":"injected"}')
                assert await wb.receive_json() == {"via": "injected"}
        assert await client.ping()  # the layer stopped, the client is still ours
    finally:
        await other.stop()
        await client.aclose()


async def test_connect_handlers_see_the_final_connection_id(redis_url: str, prefix: str) -> None:
    seen: list[str] = []
    ws = WebSocketRouter()

    @ws.route("/x")
    async def join(conn: Connection) -> None:
        seen.append(conn.id)
        await conn.accept()
        await conn.send({"id": conn.id})

    layer = RedisLayer(redis_url, prefix=prefix)
    try:
        async with TestClient(RealtimeApp(routers=[ws], layer=layer)) as client:
            async with client.websocket("/x") as ws1:
                assert await joined(ws1) == seen[0]
                assert seen[0].startswith(layer.node_id + ".")
    finally:
        await layer.stop()


async def test_a_layer_stops_and_starts_again(two: tuple[RedisLayer, RedisLayer]) -> None:
    a, b = two
    app_a, app_b = room_app(a), room_app(b)
    for round_ in range(2):
        async with TestClient(app_a) as ca, TestClient(app_b) as cb:
            async with ca.websocket("/room/x") as wa, cb.websocket("/room/x") as wb:
                await joined(wa)
                await joined(wb)
                await a.publish("room.x", f'{{"round":{round_}}}')
                assert await wb.receive_json() == {"round": round_}
        assert not a.available  # stopped with the app


async def test_replies_are_parsed_by_hiredis_when_installed(
    two: tuple[RedisLayer, RedisLayer],
) -> None:
    pytest.importorskip("hiredis")
    a, _ = two
    await a.start()
    [sub] = a._subscribers.values()
    assert sub._conn is not None
    assert type(sub._conn._parser).__name__ == "_AsyncHiredisParser"
