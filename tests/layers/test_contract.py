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
from rtframe.layers.base import HistoryPolicy, HistorySlice, Layer, Position
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


# -- history: every layer keeps the same semantics (memory is the reference) -----------

#: short lifetimes, so what the tests write to the shared Redis goes away by itself
KEEP = HistoryPolicy(size=5, ttl=30, meta_ttl=60)


async def test_history_positions_grow_by_one_in_one_epoch(layers: Layers) -> None:
    layer = await layers.started()
    positions = [await layer.publish("room.h", f'{{"n":{i}}}', KEEP) for i in range(4)]
    assert [p.offset for p in positions if p] == [1, 2, 3, 4]
    assert len({p.epoch for p in positions if p}) == 1
    other = await layer.publish("room.other", "{}", KEEP)  # each channel counts on its own
    assert other is not None and other.offset == 1


async def test_history_after_a_position_is_exactly_the_missed_frames(layers: Layers) -> None:
    layer = await layers.started()
    first = await layer.publish("room.h", '{"n":1}', KEEP)
    assert first is not None
    for i in range(2, 5):
        await layer.publish("room.h", f'{{"n":{i}}}', KEEP)
    read = await layer.history("room.h", KEEP, 2, 0)
    assert read == HistorySlice(first.epoch, 4, [(3, '{"n":3}'), (4, '{"n":4}')])
    assert read.covers(Position(first.epoch, 2))
    assert not read.covers(Position("another", 2))
    # missed nothing: nothing to replay, still recovered
    nothing = await layer.history("room.h", KEEP, 4, 0)
    assert nothing.frames == [] and nothing.covers(Position(first.epoch, 4))
    # ahead of the group (a position it never gave out): not recoverable
    ahead = await layer.history("room.h", KEEP, 9, 0)
    assert ahead.frames == [] and not ahead.covers(Position(first.epoch, 9))


async def test_history_without_a_position_gives_the_newest_frames(layers: Layers) -> None:
    layer = await layers.started()
    for i in range(1, 5):
        await layer.publish("room.h", f'{{"n":{i}}}', KEEP)
    newest = await layer.history("room.h", KEEP, None, 2)
    assert newest.offset == 4 and newest.frames == [(3, '{"n":3}'), (4, '{"n":4}')]
    assert (await layer.history("room.h", KEEP, None, 0)).frames == []
    assert len((await layer.history("room.h", KEEP, None, 50)).frames) == 4


async def test_history_is_trimmed_to_its_size(layers: Layers) -> None:
    layer = await layers.started()
    for i in range(1, 9):
        await layer.publish("room.h", f'{{"n":{i}}}', KEEP)
    read = await layer.history("room.h", KEEP, 0, 0)
    assert [offset for offset, _ in read.frames] == [4, 5, 6, 7, 8]  # the last `size`
    assert not read.covers(Position(read.epoch, 2))  # 3 was trimmed: never partial
    assert read.covers(Position(read.epoch, 3))


async def test_reading_a_new_channel_starts_the_epoch_publishes_continue(layers: Layers) -> None:
    layer = await layers.started()
    read = await layer.history("room.new", KEEP, None, 10)
    assert read.offset == 0 and read.frames == [] and read.epoch
    assert read.covers(Position(read.epoch, 0))
    assert await layer.publish("room.new", "{}", KEEP) == Position(read.epoch, 1)


async def test_frames_expire_after_ttl_but_the_position_is_kept(layers: Layers) -> None:
    short = HistoryPolicy(size=5, ttl=0.2, meta_ttl=60)
    layer = await layers.started()
    await layer.publish("room.h", '{"n":1}', short)
    last = await layer.publish("room.h", '{"n":2}', short)
    assert last is not None
    await asyncio.sleep(0.4)
    read = await layer.history("room.h", short, 1, 0)
    assert read.position == last and read.frames == []
    assert read.covers(last)  # a client that missed nothing is still told so
    assert not read.covers(Position(last.epoch, 1))  # one that missed 2 cannot be recovered
    assert await layer.publish("room.h", "{}", short) == Position(last.epoch, 3)


async def test_a_new_epoch_starts_when_the_position_expired(layers: Layers) -> None:
    short = HistoryPolicy(size=5, ttl=0.1, meta_ttl=0.2)
    layer = await layers.started()
    old = await layer.publish("room.h", '{"n":1}', short)
    assert old is not None
    await asyncio.sleep(0.4)
    new = await layer.publish("room.h", '{"n":2}', short)
    assert new is not None and new.epoch != old.epoch and new.offset == 1
    read = await layer.history("room.h", short, 0, 0)
    assert read.frames == [(1, '{"n":2}')]  # nothing of the old epoch
    assert not read.covers(old)


async def test_history_frames_are_text(layers: Layers) -> None:
    layer = await layers.started()
    with pytest.raises(TypeError, match="text frames only"):
        await layer.publish("room.h", b"{}", KEEP)


async def test_other_processes_receive_history_frames_with_their_positions(
    processes: Layers,
) -> None:
    a, b, c = [await processes.started() for _ in range(3)]
    await b.subscribe("room.h")
    await a.subscribe("room.h")
    await a.publish("room.h", '{"plain":true}')  # the same channel without history
    sent = [await a.publish("room.h", f'{{"n":{i}}}', KEEP) for i in range(3)]
    sent += [await c.publish("room.h", '{"from":"c"}', KEEP)]  # one sequence for all
    frames = await recorder_of(b).wait_groups(5)
    assert [f for _, f in frames] == ['{"plain":true}', '{"n":0}', '{"n":1}', '{"n":2}',
                                      '{"from":"c"}']  # fmt: skip
    assert recorder_of(b).positions == [None, *sent]
    assert [p.offset for p in sent if p] == [1, 2, 3, 4]
    # the publisher's own frames are not echoed; c's reach a with its position
    assert await recorder_of(a).wait_groups(1) == [("room.h", '{"from":"c"}')]
    assert recorder_of(a).positions == [sent[3]]
    read = await b.history("room.h", KEEP, 0, 0)
    assert sent[0] is not None and read.epoch == sent[0].epoch
    assert [o for o, _ in read.frames] == [1, 2, 3, 4]


async def test_concurrent_history_publishes_get_distinct_ordered_positions(
    processes: Layers,
) -> None:
    a, b = await processes.started(), await processes.started()
    await b.subscribe("room.h")
    big = HistoryPolicy(size=300, ttl=30, meta_ttl=60)
    sent = await asyncio.gather(*(a.publish("room.h", f'{{"n":{i}}}', big) for i in range(200)))
    assert [p.offset for p in sent if p] == list(range(1, 201))  # in the order made
    frames = await recorder_of(b).wait_groups(200)
    assert [f for _, f in frames] == [f'{{"n":{i}}}' for i in range(200)]
    assert recorder_of(b).positions == sent


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
