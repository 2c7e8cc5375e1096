"""Redis goes away and comes back: a real redis-server the test kills and restarts."""

from __future__ import annotations

import asyncio

import pytest

from rtframe import LayerUnavailableError, RedisLayer
from rtframe.testing import TestClient

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
        async with TestClient(room_app(a)) as ca, TestClient(room_app(b)) as cb:
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
                    await a.publish("room.x", '{"n":"outage"}')
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

                    # ...and is subscribed once Redis is back, like the older group
                    await a.publish("room.x", '{"n":"back"}')
                    assert await wb.receive_json() == {"n": "back"}
                    assert await wa.receive_json() == {"n": "back"}
                    await a.publish("room.y", '{"n":"y"}')
                    assert await wy.receive_json() == {"n": "y"}
        assert a.stats.outages == 1 and b.stats.outages == 1
        assert rtframe_tasks() == []


async def test_a_layer_starts_while_redis_is_down_and_catches_up(prefix: str) -> None:
    server = RedisServer()
    try:
        a = RedisLayer(server.url, prefix=prefix, **FAST)  # type: ignore[arg-type]
        b = RedisLayer(server.url, prefix=prefix, **FAST)  # type: ignore[arg-type]
        watch_a, watch_b = Watch(a), Watch(b)
        async with TestClient(room_app(a)) as ca, TestClient(room_app(b)) as cb:
            assert not a.available
            async with ca.websocket("/room/x") as wa, cb.websocket("/room/x") as wb:
                await joined(wa)
                await joined(wb)
                server.start()
                await asyncio.wait_for(watch_a.up.wait(), 15)
                await asyncio.wait_for(watch_b.up.wait(), 15)
                assert watch_a.down.is_set()  # starting without Redis is an outage too
                await b.publish("room.x", '{"n":1}')
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
