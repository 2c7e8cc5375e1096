"""The channel-layer contract (docs/layers.md), run on every layer: in-memory, Redis and a
3-primary Redis Cluster.

Two halves: the layer alone, driven the way the hub drives it, with a recording Receiver
(several layers sharing one Redis stand for several processes); and the same guarantees
seen through an app and its WebSocket clients.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import pytest
from pydantic import BaseModel

from rtframe import ConfigurationError, Connection, Group, LayerError, RealtimeApp, WebSocketRouter
from rtframe.layers.base import Layer
from rtframe.testing import TestClient

from .conftest import LayerFactory, Layers, Recorder, recorder_of

# -- the layer alone -------------------------------------------------------------------


async def test_publish_keeps_no_history_and_never_echoes_to_its_own_process(
    layers: Layers,
) -> None:
    layer = await layers.started()
    await layer.subscribe("room.a")
    assert await layer.publish("room.a", '{"n":1}') is None  # no history: no position
    assert await layer.publish("nobody.listens", "x") is None
    await asyncio.sleep(0.2)
    # the hub serves this process's members: a layer handing its own frame back would
    # make every local member receive it twice
    assert recorder_of(layer).groups == []


async def test_subscribe_is_idempotent_and_unsubscribe_never_fails(layers: Layers) -> None:
    layer = await layers.started()
    await layer.subscribe("room.a")
    await layer.subscribe("room.a")
    await layer.unsubscribe("room.a")
    await layer.unsubscribe("room.a")
    await layer.unsubscribe("never.subscribed")


async def test_a_started_layer_is_available_and_makes_unique_member_ids(layers: Layers) -> None:
    layer = await layers.started()
    assert layer.available
    ids = {layer.new_member_id() for _ in range(1000)}
    assert len(ids) == 1000 and all(isinstance(i, str) and i for i in ids)
    with pytest.raises(AttributeError):
        layer.available = False  # type: ignore[misc]  # read-only: it can never be set to lie


async def test_a_direct_message_to_a_member_that_is_gone_is_dropped(
    layers: Layers, caplog: pytest.LogCaptureFixture
) -> None:
    layer = await layers.started()
    await layer.send_direct(layer.new_member_id(), "lost")  # at most once: no error...
    await asyncio.sleep(0.1)
    assert recorder_of(layer).direct == []
    assert "dropped: no such member in this process" in caplog.text  # ...but a warning


async def test_a_layer_serves_one_app(layers: Layers) -> None:
    layer = layers()
    layer.bind(layer.receiver)  # the same receiver again is fine
    with pytest.raises(ConfigurationError, match="another RealtimeApp"):
        layer.bind(Recorder())


async def test_a_layer_can_be_stopped_twice_and_started_again(layers: Layers) -> None:
    layer = await layers.started()
    await layer.stop()
    await layer.stop()
    await layer.start()
    await layer.subscribe("room.a")
    assert layer.available


# -- layers as processes: the kinds that cross processes ----------------------------------


async def test_a_publish_reaches_the_other_subscribed_processes_only(processes: Layers) -> None:
    a, b, c = [await processes.started() for _ in range(3)]
    await b.subscribe("room.a")
    await c.subscribe("room.b")
    await a.publish("room.a", '{"text":"hi"}')
    await a.publish("room.a", b"\x00\xffraw")  # binary frames stay binary
    assert await recorder_of(b).wait_groups(2) == [
        ("room.a", '{"text":"hi"}'),
        ("room.a", b"\x00\xffraw"),
    ]
    await asyncio.sleep(0.1)
    assert recorder_of(c).groups == [] and recorder_of(a).groups == []


async def test_subscribe_returns_once_the_process_receives_the_channel(
    processes: Layers,
) -> None:
    a, b = await processes.started(), await processes.started()
    for i in range(20):
        await b.subscribe(f"room.{i}")
        await a.publish(f"room.{i}", str(i))  # at once: no sleep between
    frames = await recorder_of(b).wait_groups(20)
    assert sorted(frames) == sorted((f"room.{i}", str(i)) for i in range(20))


async def test_frames_from_one_publisher_arrive_in_order(processes: Layers) -> None:
    a, b = await processes.started(), await processes.started()
    await b.subscribe("room.a")
    await b.subscribe("room.b")
    for i in range(200):
        await a.publish("room.a" if i % 2 else "room.b", str(i))
    frames = await recorder_of(b).wait_groups(200)
    for room, parity in (("room.a", 1), ("room.b", 0)):
        assert [int(f) for r, f in frames if r == room] == list(range(parity, 200, 2))


async def test_concurrent_publishes_keep_the_order_they_were_made_in(processes: Layers) -> None:
    a, b = await processes.started(), await processes.started()
    await b.subscribe("room.a")
    await asyncio.gather(*(a.publish("room.a", str(i)) for i in range(500)))
    frames = await recorder_of(b).wait_groups(500)
    assert [int(f) for _, f in frames] == list(range(500))


async def test_an_unsubscribed_process_stops_receiving(processes: Layers) -> None:
    a, b = await processes.started(), await processes.started()
    await b.subscribe("room.a")
    await a.publish("room.a", "before")
    await recorder_of(b).wait_groups(1)
    await b.unsubscribe("room.a")
    await a.publish("room.a", "after")
    await asyncio.sleep(0.2)
    assert recorder_of(b).groups == [("room.a", "before")]


async def test_subscribe_unsubscribe_subscribe_apply_in_order(processes: Layers) -> None:
    a, b = await processes.started(), await processes.started()
    for _ in range(5):
        # a member joins again while the last one's unsubscribe is still running
        await b.subscribe("room.a")
        leaving = asyncio.ensure_future(b.unsubscribe("room.a"))
        await asyncio.sleep(0)
        await b.subscribe("room.a")
        await leaving
    await a.publish("room.a", "still subscribed")
    assert await recorder_of(b).wait_groups(1) == [("room.a", "still subscribed")]
    assert b.local_groups() == ["room.a"]  # type: ignore[attr-defined]


async def test_a_direct_message_reaches_the_member_s_process(processes: Layers) -> None:
    a, b = await processes.started(), await processes.started()
    member = b.new_member_id()
    recorder_of(b).members.add(member)
    await a.send_direct(member, '{"only":"you"}')
    await a.send_direct(member, b"\x01bin")
    assert await recorder_of(b).wait_direct(2) == [(member, '{"only":"you"}'), (member, b"\x01bin")]
    gone = b.new_member_id()
    await a.send_direct(gone, "lost")  # not an error; b counts it
    await asyncio.sleep(0.1)
    assert len(recorder_of(b).direct) == 2
    assert recorder_of(a).direct == []


async def test_an_id_the_layer_could_not_have_made_is_an_error(processes: Layers) -> None:
    a = await processes.started()
    with pytest.raises(LayerError, match="not a member id"):
        await a.send_direct("0123456789abcdef", "x")


# -- through an app --------------------------------------------------------------------

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
        await rooms.add(conn)
        await rooms.add(conn)  # idempotent
        await conn.accept()
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
    app = room_app(make_layer())
    async with TestClient(app) as client:
        async with client.websocket("/room/a") as a1, client.websocket("/room/a") as a2:
            await a1.receive_json()
            await a2.receive_json()
            await a2.send_json({"type": "leave"})
            assert await a2.receive_json() == {"left": True}
            await a1.send_json({"type": "say", "text": "after"})
            assert await a1.receive_json() == {"text": "after"}
            await a2.receive_nothing(0.2)
            assert len(app.hub.registry.members("room.a")) == 1


async def test_disconnecting_leaves_every_group_and_the_channel(make_layer: LayerFactory) -> None:
    app = room_app(make_layer())
    async with TestClient(app) as client:
        async with client.websocket("/room/a") as a1:
            await a1.receive_json()
            assert len(app.hub.registry.members("room.a")) == 1
        for _ in range(100):  # the teardown runs after the client saw the close
            if not app.hub.registry.members("room.a"):
                break
            await asyncio.sleep(0.01)
        assert app.hub.registry.members("room.a") == []


async def test_app_broadcasts_arrive_in_order(make_layer: LayerFactory) -> None:
    app = room_app(make_layer())
    async with TestClient(app) as client:
        async with client.websocket("/room/a") as a1:
            await a1.receive_json()
            for i in range(200):
                await app.broadcast("room.a", f'{{"n":{i}}}')
            assert [(await a1.receive_json())["n"] for _ in range(200)] == list(range(200))


async def test_binary_frames_stay_binary(make_layer: LayerFactory) -> None:
    app = room_app(make_layer())
    async with TestClient(app) as client:
        async with client.websocket("/room/a") as a1:
            await a1.receive_json()
            await app.broadcast("room.a", b"\x00\xffraw")
            assert await a1.receive_bytes() == b"\x00\xffraw"


async def test_a_direct_message_reaches_one_connection(make_layer: LayerFactory) -> None:
    app = room_app(make_layer())
    async with TestClient(app) as client:
        async with client.websocket("/room/a") as a1, client.websocket("/room/a") as a2:
            await a1.receive_json()
            target = (await a2.receive_json())["id"]
            await app.send_to(target, '{"only":"you"}')
            assert await a2.receive_json() == {"only": "you"}
            await a1.receive_nothing(0.2)


async def test_a_direct_message_to_a_gone_connection_is_dropped(make_layer: LayerFactory) -> None:
    app = room_app(make_layer())
    async with TestClient(app) as client:
        async with client.websocket("/room/a") as a1:
            gone = (await a1.receive_json())["id"]
        async with client.websocket("/room/a") as a2:
            await a2.receive_json()
            await app.send_to(gone, "lost")  # at most once: no error, nobody gets it
            await a2.receive_nothing(0.2)
