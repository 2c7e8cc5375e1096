"""The layer contract: the same tests run on the in-memory and the Redis layer."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from rtframe import Connection, Group, RealtimeApp, WebSocketRouter
from rtframe.layers.base import Layer
from rtframe.testing import TestClient

from .conftest import LayerFactory

rooms = Group("room.{room}")


class Say(BaseModel):
    type: Literal["say"] = "say"
    text: str


class Leave(BaseModel):
    type: Literal["leave"] = "leave"


class Said(BaseModel):
    text: str


def room_app(layer: Layer) -> RealtimeApp:
    ws = WebSocketRouter()

    @ws.route("/room/{room}")
    async def join(conn: Connection) -> None:
        await conn.accept()
        await rooms.add(conn)
        await rooms.add(conn)  # idempotent
        await conn.send({"id": conn.id})

    @ws.on_receive("/room/{room}")
    @rooms.broadcast
    async def say(msg: Say) -> Said:
        return Said(text=msg.text)

    @ws.on_receive("/room/{room}")
    async def leave(msg: Leave, conn: Connection) -> dict[str, bool]:
        await rooms.discard(conn)
        await rooms.discard(conn)  # idempotent
        return {"left": True}

    return RealtimeApp(routers=[ws], layer=layer)


async def test_a_broadcast_reaches_every_member_and_no_one_else(make_layer: LayerFactory) -> None:
    app = room_app(make_layer())
    async with TestClient(app) as client:
        async with (
            client.websocket("/room/a") as a1,
            client.websocket("/room/a") as a2,
            client.websocket("/room/b") as b1,
        ):
            for ws in (a1, a2, b1):
                await ws.receive_json()
            await a1.send_json({"type": "say", "text": "hi"})
            assert await a1.receive_json() == {"text": "hi"}
            assert await a2.receive_json() == {"text": "hi"}
            await b1.receive_nothing(0.2)


async def test_a_member_that_left_stops_receiving(make_layer: LayerFactory) -> None:
    layer = make_layer()
    app = room_app(layer)
    async with TestClient(app) as client:
        async with client.websocket("/room/a") as a1, client.websocket("/room/a") as a2:
            await a1.receive_json()
            await a2.receive_json()
            await a2.send_json({"type": "leave"})
            assert await a2.receive_json() == {"left": True}
            await a1.send_json({"type": "say", "text": "after"})
            assert await a1.receive_json() == {"text": "after"}
            await a2.receive_nothing(0.2)
            assert len(layer.local_members("room.a")) == 1


async def test_disconnecting_leaves_every_group(make_layer: LayerFactory) -> None:
    layer = make_layer()
    async with TestClient(room_app(layer)) as client:
        async with client.websocket("/room/a") as a1:
            await a1.receive_json()
            assert len(layer.local_members("room.a")) == 1
        assert layer.local_members("room.a") == []


async def test_frames_from_one_publisher_arrive_in_order(make_layer: LayerFactory) -> None:
    layer = make_layer()
    async with TestClient(room_app(layer)) as client:
        async with client.websocket("/room/a") as a1:
            await a1.receive_json()
            for i in range(200):
                await layer.publish("room.a", f'{{"n":{i}}}')
            assert [(await a1.receive_json())["n"] for _ in range(200)] == list(range(200))


async def test_binary_frames_stay_binary(make_layer: LayerFactory) -> None:
    layer = make_layer()
    async with TestClient(room_app(layer)) as client:
        async with client.websocket("/room/a") as a1:
            await a1.receive_json()
            await layer.publish("room.a", b"\x00\xffraw")
            assert await a1.receive_bytes() == b"\x00\xffraw"


async def test_a_direct_message_reaches_one_connection(make_layer: LayerFactory) -> None:
    layer = make_layer()
    async with TestClient(room_app(layer)) as client:
        async with client.websocket("/room/a") as a1, client.websocket("/room/a") as a2:
            await a1.receive_json()
            target = (await a2.receive_json())["id"]
            await layer.send_to(target, '{"only":"you"}')
            assert await a2.receive_json() == {"only": "you"}
            await a1.receive_nothing(0.2)


async def test_a_direct_message_to_a_gone_connection_is_dropped(make_layer: LayerFactory) -> None:
    layer = make_layer()
    async with TestClient(room_app(layer)) as client:
        async with client.websocket("/room/a") as a1:
            gone = (await a1.receive_json())["id"]
        async with client.websocket("/room/a") as a2:
            await a2.receive_json()
            await layer.send_to(gone, "lost")  # at most once: no error, nobody gets it
            await a2.receive_nothing(0.2)
