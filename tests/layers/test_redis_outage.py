"""Redis goes away and comes back: a real redis-server the test kills and restarts."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from rtframe import LayerUnavailableError, Position, RedisLayer
from rtframe.testing import TestClient

from .conftest import Recorder
from .redis_servers import RedisServer, redis_server
from .test_contract import room_app
from .test_redis_layer import joined

FAST = {"ping_interval": 1.0, "reconnect_backoff": (0.05, 0.5)}


def rtframe_tasks() -> list[asyncio.Task[object]]:
    return [t for t in asyncio.all_tasks() if "rtframe" in repr(t) and not t.done()]


class Watch:
    """Records a layer's outage and recovery hooks."""

    def __init__(self, layer: RedisLayer) -> None:
        self.down = asyncio.Event()
        self.up = asyncio.Event()
        layer.on_outage(self._down)
        layer.on_recovery(self._up)

    async def _down(self) -> None:
        self.down.set()

    async def _up(self) -> None:
        self.up.set()


async def test_delivery_resumes_after_redis_is_killed_and_restarted(prefix: str) -> None:
    with redis_server() as server:
        a = RedisLayer(server.url, prefix=prefix, **FAST)  # type: ignore[arg-type]
        b = RedisLayer(server.url, prefix=prefix, **FAST)  # type: ignore[arg-type]
        watch_a, watch_b = Watch(a), Watch(b)
        app_a = room_app(a)
        async with TestClient(app_a) as ca, TestClient(room_app(b)) as cb:
            async with ca.websocket("/room/x") as wa, cb.websocket("/room/x") as wb:
                await joined(wa)
                await joined(wb)
                assert a.available and b.available

                server.kill()
                await asyncio.wait_for(watch_b.down.wait(), 10)
                await asyncio.wait_for(watch_a.down.wait(), 10)
                assert not a.available and not b.available

                # local traffic keeps flowing; the caller learns the rest missed it
                with pytest.raises(LayerUnavailableError, match="only in this process"):
                    await app_a.broadcast("room.x", '{"n":"outage"}')
                assert await wa.receive_json() == {"n": "outage"}
                await wb.receive_nothing(0.2)
                # a @group.broadcast handler: local members get it, the sender is told
                await wa.send_json({"type": "say", "text": "anyone?"})
                assert await wa.receive_json() == {"text": "anyone?"}
                error = await wa.receive_json()
                assert (error["type"], error["code"]) == ("error", "layer_unavailable")
                await wb.receive_nothing(0.2)

                # joining a new group during the outage works locally...
                async with cb.websocket("/room/y") as wy:
                    await joined(wy)

                    server.start()
                    await asyncio.wait_for(watch_a.up.wait(), 15)
                    await asyncio.wait_for(watch_b.up.wait(), 15)
                    assert a.available and b.available

                    # every member is told it may have missed messages (no history here)
                    for ws, group in ((wa, "room.x"), (wb, "room.x"), (wy, "room.y")):
                        gap = {"type": "$gap", "group": group, "reason": "layer_outage"}
                        assert await ws.receive_json() == gap
                    # ...and is subscribed once Redis is back, like the older group
                    await app_a.broadcast("room.x", '{"n":"back"}')
                    assert await wb.receive_json() == {"n": "back"}
                    assert await wa.receive_json() == {"n": "back"}
                    await app_a.broadcast("room.y", '{"n":"y"}')
                    assert await wy.receive_json() == {"n": "y"}
        assert a.stats.outages == 1 and b.stats.outages == 1
        assert a.stats.resubscribed == 1 and b.stats.resubscribed == 1
        assert rtframe_tasks() == []


async def test_a_layer_starts_while_redis_is_down_and_catches_up(prefix: str) -> None:
    server = RedisServer()
    try:
        a = RedisLayer(server.url, prefix=prefix, **FAST)  # type: ignore[arg-type]
        b = RedisLayer(server.url, prefix=prefix, **FAST)  # type: ignore[arg-type]
        watch_a, watch_b = Watch(a), Watch(b)
        app_b = room_app(b)
        async with TestClient(room_app(a)) as ca, TestClient(app_b) as cb:
            assert not a.available
            async with ca.websocket("/room/x") as wa, cb.websocket("/room/x") as wb:
                await joined(wa)
                await joined(wb)
                server.start()
                await asyncio.wait_for(watch_a.up.wait(), 15)
                await asyncio.wait_for(watch_b.up.wait(), 15)
                assert watch_a.down.is_set()  # starting without Redis is an outage too
                gap = {"type": "$gap", "group": "room.x", "reason": "layer_outage"}
                assert await wa.receive_json() == gap
                assert await wb.receive_json() == gap
                await app_b.broadcast("room.x", '{"n":1}')
                assert await wa.receive_json() == {"n": 1}
                assert await wb.receive_json() == {"n": 1}
        assert rtframe_tasks() == []
    finally:
        server.close()


async def test_a_hook_that_fails_is_logged_and_the_layer_carries_on(
    prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    with redis_server() as server:
        layer = RedisLayer(server.url, prefix=prefix, **FAST)  # type: ignore[arg-type]
        watch = Watch(layer)

        @layer.on_outage
        async def broken() -> None:
            raise RuntimeError("hook bug")

        await layer.start()
        server.kill()
        await asyncio.wait_for(watch.down.wait(), 10)
        server.start()
        await asyncio.wait_for(watch.up.wait(), 15)
        assert layer.available
        await layer.stop()
    assert any("hook" in r.message and r.exc_info for r in caplog.records)
    assert rtframe_tasks() == []


async def test_the_subscriber_survives_an_unexpected_exception(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="rtframe.layers.redis")
    a = RedisLayer(redis_url, prefix=prefix, **FAST)  # type: ignore[arg-type]
    b = RedisLayer(redis_url, prefix=prefix, **FAST)  # type: ignore[arg-type]
    a.bind(Recorder())
    got = Recorder()
    b.bind(got)
    watch = Watch(b)
    try:
        await a.start()
        await b.start()
        await b.subscribe("room.x")
        [sub] = b._subscribers.values()
        conn = sub._conn
        assert conn is not None
        real = conn.read_response

        async def broken_once(*args: Any, **kwargs: Any) -> Any:
            monkeypatch.setattr(conn, "read_response", real)
            raise RuntimeError("a bug in the read path")

        # not a Redis or network error: the kind the old loop did not catch, dying
        # silently while the layer still said it was available
        monkeypatch.setattr(conn, "read_response", broken_once)
        await a.publish("room.x", "before")  # the read in progress returns it; the next raises
        await asyncio.wait_for(watch.down.wait(), 5)
        await asyncio.wait_for(watch.up.wait(), 10)
        assert b.available
        await a.publish("room.x", "after")
        assert await got.wait_groups(2) == [("room.x", "before"), ("room.x", "after")]
        assert b.stats.outages == 1 and sub.attempts == 2 and b.stats.resubscribed == 1
    finally:
        await a.stop()
        await b.stop()
    [record] = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert "failed unexpectedly" in record.getMessage()
    assert rtframe_tasks() == []


async def test_the_health_flag_goes_down_with_the_subscriber(
    redis_url: str, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    b = RedisLayer(redis_url, prefix=prefix, **FAST)  # type: ignore[arg-type]
    b.bind(Recorder())
    watch = Watch(b)
    seen: list[bool] = []
    try:
        await b.start()
        [sub] = b._subscribers.values()
        real_up = sub._up

        async def up_and_look() -> None:  # what `available` says as the connection returns
            seen.append(b.available)
            await real_up()
            seen.append(b.available)

        monkeypatch.setattr(sub, "_up", up_and_look)
        assert sub._conn is not None
        await sub._conn.disconnect()  # the reader fails on its closed socket
        await asyncio.wait_for(watch.up.wait(), 10)
        assert watch.down.is_set()
        assert seen == [False, True]  # never True before the subscriptions are confirmed
    finally:
        await b.stop()


async def test_a_receiver_that_raises_does_not_take_the_connection_down(
    redis_url: str, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    class Exploding(Recorder):
        def deliver_group(
            self, channel: str, data: str | bytes, position: Position | None = None
        ) -> None:
            if data == "boom":
                raise RuntimeError("a bug in the receiver")
            super().deliver_group(channel, data, position)

    caplog.set_level(logging.WARNING, logger="rtframe.layers.redis")
    a = RedisLayer(redis_url, prefix=prefix)
    b = RedisLayer(redis_url, prefix=prefix)
    a.bind(Recorder())
    got = Exploding()
    b.bind(got)
    try:
        await a.start()
        await b.start()
        await b.subscribe("room.x")
        await a.publish("room.x", "boom")
        await a.publish("room.x", "ok")
        assert await got.wait_groups(1) == [("room.x", "ok")]
        [sub] = b._subscribers.values()
        assert b.available and b.stats.outages == 0 and sub.attempts == 1
        assert b.stats.resubscribed == 0
    finally:
        await a.stop()
        await b.stop()
    [record] = [r for r in caplog.records if r.exc_info and r.exc_info[0] is RuntimeError]
    assert "delivering a message" in record.getMessage()


async def test_a_publish_connection_that_died_with_redis_is_replaced_without_an_error(
    prefix: str,
) -> None:
    with redis_server() as server:
        layer = RedisLayer(server.url, prefix=prefix, **FAST)  # type: ignore[arg-type]
        layer.bind(Recorder())
        watch = Watch(layer)
        try:
            await layer.start()
            await layer.publish("room.x", "before")  # the publish connection is open now
            server.kill()
            await asyncio.wait_for(watch.down.wait(), 10)
            server.start()
            await asyncio.wait_for(watch.up.wait(), 15)
            # its socket died with the old server: noticed before writing, not reported
            await layer.publish("room.x", "after")
            assert layer.stats.published == 2
        finally:
            await layer.stop()
