"""History groups on the in-memory layer: positions on the wire, recovery on reconnect,
gaps and epochs seen live, and the replay/live handover (a property test)."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Literal
from urllib.parse import quote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from rtframe import (
    ConfigurationError,
    Connection,
    Group,
    HistoryPolicy,
    InMemoryLayer,
    RealtimeApp,
    RtframeError,
    WebSocketRouter,
)
from rtframe._cursor import Cursor
from rtframe.history import HistorySlice, Position, parse_since, stamp
from rtframe.layers.base import HistorySlice as BaseSlice
from rtframe.testing import HandshakeRejected, TestClient

ROOM = "/chat/{room}"


class Say(BaseModel):
    type: Literal["say"] = "say"
    text: str


class Said(BaseModel):
    type: Literal["said"] = "said"
    text: str


def chat_app(
    policy: HistoryPolicy | None = None, layer: InMemoryLayer | None = None
) -> tuple[RealtimeApp, Group]:
    rooms = Group("chat.{room}", history=policy or HistoryPolicy(size=5, ttl=60))
    ws = WebSocketRouter()

    @ws.route(ROOM)
    async def join(conn: Connection) -> None:
        await rooms.add(conn)  # join before accept: the replay waits for the open socket
        await conn.accept()

    @ws.on_receive(ROOM)
    @rooms.broadcast
    async def say(msg: Say) -> Said:
        return Said(text=msg.text)

    return RealtimeApp([ws], layer=layer or InMemoryLayer()), rooms


def since(*positions: tuple[str, str, int]) -> str:
    value = {g: {"epoch": e, "offset": o} for g, e, o in positions}
    return "?" + quote("$since") + "=" + quote(json.dumps(value))


async def test_a_history_broadcast_carries_its_position_and_keeps_the_message() -> None:
    app, _ = chat_app()
    async with TestClient(app) as client, client.websocket("/chat/lobby") as ws:
        await ws.send_json({"type": "say", "text": "one"})
        await ws.send_json({"type": "say", "text": "two"})
        first, second = await ws.receive_json(), await ws.receive_json()
    assert first["type"] == "said" and first["text"] == "one"
    assert first["$pos"]["group"] == "chat.lobby" and first["$pos"]["offset"] == 1
    assert second["$pos"]["offset"] == 2 and second["$pos"]["epoch"] == first["$pos"]["epoch"]
    assert Said.model_validate(first) == Said(text="one")  # the schema still validates


async def test_a_reconnecting_client_gets_every_missed_message_in_order_then_live() -> None:
    app, rooms = chat_app()
    async with TestClient(app) as client:
        async with client.websocket("/chat/lobby") as ws:
            await ws.send_json({"type": "say", "text": "seen"})
            seen = (await ws.receive_json())["$pos"]
        for text in ("m1", "m2", "m3"):  # sent while the client was away
            await app.broadcast(rooms, Said(text=text), room="lobby")
        url = "/chat/lobby" + since(("chat.lobby", seen["epoch"], seen["offset"]))
        async with client.websocket(url) as ws:
            notice = await ws.receive_json()
            replay = [await ws.receive_json() for _ in range(3)]
            await app.broadcast(rooms, Said(text="live"), room="lobby")
            live = await ws.receive_json()
            await ws.receive_nothing()
    assert notice == {
        "type": "$recovery",
        "group": "chat.lobby",
        "recovered": True,
        "replayed": 3,
        "epoch": seen["epoch"],
        "offset": 4,
    }
    assert [m["text"] for m in replay] == ["m1", "m2", "m3"]
    assert [m["$pos"]["offset"] for m in replay] == [2, 3, 4]
    assert live["text"] == "live" and live["$pos"]["offset"] == 5


async def test_a_client_that_missed_nothing_is_recovered_with_nothing_replayed() -> None:
    app, _ = chat_app()
    async with TestClient(app) as client:
        async with client.websocket("/chat/lobby") as ws:
            await ws.send_json({"type": "say", "text": "seen"})
            seen = (await ws.receive_json())["$pos"]
        url = "/chat/lobby" + since(("chat.lobby", seen["epoch"], seen["offset"]))
        async with client.websocket(url) as ws:
            notice = await ws.receive_json()
            await ws.receive_nothing()
    assert notice["recovered"] is True and notice["replayed"] == 0 and notice["offset"] == 1


@pytest.mark.parametrize(
    ("why", "epoch", "offset"),
    [("too old: trimmed", None, 1), ("another epoch", "0ldep0ch", 9), ("ahead", None, 99)],
)
async def test_a_gap_that_cannot_be_filled_is_told_and_nothing_is_replayed(
    why: str, epoch: str | None, offset: int
) -> None:
    app, rooms = chat_app(HistoryPolicy(size=3, ttl=60))
    async with TestClient(app) as client:
        for n in range(10):
            await app.broadcast(rooms, Said(text=f"m{n}"), room="lobby")
        async with client.websocket("/chat/lobby") as ws:
            await ws.send_json({"type": "say", "text": "x"})
            current = (await ws.receive_json())["$pos"]
        url = "/chat/lobby" + since(("chat.lobby", epoch or current["epoch"], offset))
        async with client.websocket(url) as ws:
            notice = await ws.receive_json()
            await ws.receive_nothing()
    assert notice["type"] == "$recovery" and notice["recovered"] is False, why
    assert notice["replayed"] == 0 and notice["offset"] == current["offset"]
    assert notice["epoch"] == current["epoch"]


async def test_on_join_gives_the_newest_messages_to_a_client_without_a_position() -> None:
    app, rooms = chat_app(HistoryPolicy(size=10, ttl=60, on_join=2))
    async with TestClient(app) as client:
        for text in ("a", "b", "c"):
            await app.broadcast(rooms, Said(text=text), room="lobby")
        async with client.websocket("/chat/lobby") as ws:
            recent = [await ws.receive_json() for _ in range(2)]
            await ws.receive_nothing()
    assert [m["text"] for m in recent] == ["b", "c"]
    assert [m["$pos"]["offset"] for m in recent] == [2, 3]


async def test_a_malformed_since_refuses_the_handshake_with_1008(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, _ = chat_app()
    caplog.set_level(logging.WARNING, "rtframe")
    async with TestClient(app) as client:
        for bad in ("not json", "[1]", '{"chat.lobby": {"epoch": 1, "offset": 2}}'):
            url = "/chat/lobby?" + quote("$since") + "=" + quote(bad)
            with pytest.raises(HandshakeRejected) as refused:
                async with client.websocket(url):
                    pass
            assert refused.value.code == 1008
    assert "$since" in caplog.text


async def test_broadcasting_a_non_object_to_a_history_group_is_an_error() -> None:
    app, rooms = chat_app()
    async with TestClient(app):
        with pytest.raises(RtframeError, match="JSON object"):
            await app.broadcast(rooms, "plain text", room="lobby")
        with pytest.raises(RtframeError, match="JSON object"):
            await app.broadcast(rooms, [1, 2], room="lobby")


async def test_a_restarted_memory_layer_starts_a_new_epoch_and_says_so() -> None:
    app, _ = chat_app()
    async with TestClient(app) as client:
        async with client.websocket("/chat/lobby") as ws:
            await ws.send_json({"type": "say", "text": "before"})
            seen = (await ws.receive_json())["$pos"]
    app2, _ = chat_app()  # a new process: its memory layer lost the history
    async with TestClient(app2) as client:
        url = "/chat/lobby" + since(("chat.lobby", seen["epoch"], seen["offset"]))
        async with client.websocket(url) as ws:
            notice = await ws.receive_json()
    assert notice["recovered"] is False and notice["epoch"] != seen["epoch"]


def test_history_policy_is_validated() -> None:
    for bad in (
        {"size": 0},
        {"ttl": 0},
        {"ttl": 100, "meta_ttl": 10},
        {"size": 3, "on_join": 4},
        {"on_join": -1},
    ):
        with pytest.raises(ConfigurationError):
            HistoryPolicy(**bad)


def test_stamp_adds_the_position_as_the_last_member() -> None:
    assert stamp('{"a":1}', "g", ("e", 3)) == '{"a":1,"$pos":{"group":"g","epoch":"e","offset":3}}'
    assert stamp("{}", "g", ("e", 1)) == '{"$pos":{"group":"g","epoch":"e","offset":1}}'
    with pytest.raises(RtframeError):
        stamp(b"{}", "g", ("e", 1))


def test_parse_since_accepts_positions_and_refuses_the_rest() -> None:
    assert parse_since('{"g": {"epoch": "e", "offset": 4}}') == {"g": Position("e", 4)}
    for bad in ('{"g": {"epoch": "e", "offset": -1}}', '{"g": {"epoch": "e", "offset": true}}'):
        with pytest.raises(ValueError, match=r"\$since"):
            parse_since(bad)


# -- the cursor: gaps and epochs seen live, and the handover ---------------------------


class Collector:
    def __init__(self) -> None:
        self.out: list[Any] = []
        self.gaps: list[str] = []

    def deliver(self, data: str | bytes) -> None:
        self.out.append(json.loads(data))

    def cursor(self, last: Position | None) -> Cursor:
        cursor = Cursor(self.deliver, self.gaps.append)
        cursor.begin("g")
        cursor.settle("g", HistorySlice("e", last.offset if last else 0, []), None, announce=False)
        return cursor


def frame(offset: int, epoch: str = "e") -> tuple[Position, str]:
    pos = Position(epoch, offset)
    return pos, stamp(json.dumps({"n": offset}), "g", pos)


def test_a_duplicate_live_frame_is_dropped_and_a_skip_asks_for_recovery() -> None:
    sink = Collector()
    cursor = sink.cursor(Position("e", 2))
    cursor.offer("g", *frame(2))  # already had it
    cursor.offer("g", *frame(3))
    cursor.offer("g", *frame(5))  # 4 went missing
    cursor.offer("g", *frame(6))  # buffered behind the recovery
    assert [m["n"] for m in sink.out] == [3]
    assert sink.gaps == ["g"]
    read = HistorySlice("e", 6, [(4, '{"n":4}'), (5, '{"n":5}'), (6, '{"n":6}')])
    cursor.settle("g", read, cursor.last["g"], announce=True)
    assert sink.out[1]["type"] == "$recovery" and sink.out[1]["recovered"] is True
    assert [m["n"] for m in sink.out[2:]] == [4, 5, 6]  # 5 and 6 once, not twice


def test_a_new_epoch_seen_live_is_told_as_not_recovered() -> None:
    sink = Collector()
    cursor = sink.cursor(Position("e", 7))
    cursor.offer("g", *frame(1, epoch="new"))
    assert sink.out[0]["type"] == "$recovery" and sink.out[0]["recovered"] is False
    assert sink.out[1]["n"] == 1 and cursor.last["g"] == Position("new", 1)


def test_frames_are_held_until_the_member_opens() -> None:
    sink = Collector()
    cursor = Cursor(sink.deliver, sink.gaps.append, opened=False)
    cursor.begin("g")
    cursor.settle("g", HistorySlice("e", 1, [(1, '{"n":1}')]), None, announce=False)
    cursor.offer("g", *frame(2))
    assert sink.out == []
    cursor.open()
    assert [m["n"] for m in sink.out] == [1, 2]


@settings(max_examples=200, deadline=None)
@given(
    seen=st.integers(min_value=0, max_value=20),
    missed=st.integers(min_value=0, max_value=20),
    during=st.integers(min_value=0, max_value=10),
    read_sees=st.integers(min_value=0, max_value=10),
    after=st.integers(min_value=0, max_value=5),
)
def test_the_replay_live_handover_neither_drops_nor_repeats(
    seen: int, missed: int, during: int, read_sees: int, after: int
) -> None:
    """A client at `seen` reconnects; `missed` were published while it was away,
    `during` while the history read was in flight, of which the read already saw
    `read_sees`; then `after` more arrive live. It must get seen+1 .. end exactly once."""
    read_sees = min(read_sees, during)
    sink = Collector()
    cursor = Cursor(sink.deliver, sink.gaps.append)
    cursor.begin("g")
    top_at_read = seen + missed + read_sees
    for n in range(seen + missed + 1, seen + missed + during + 1):
        cursor.offer("g", *frame(n))  # buffered: live frames during the read
    frames = [(n, json.dumps({"n": n})) for n in range(seen + 1, top_at_read + 1)]
    cursor.settle("g", BaseSlice("e", top_at_read, frames), Position("e", seen), announce=True)
    end = seen + missed + during
    for n in range(end + 1, end + after + 1):
        cursor.offer("g", *frame(n))
    notice, *rest = sink.out
    assert notice["recovered"] is True and notice["replayed"] == missed + read_sees
    assert [m["n"] for m in rest] == list(range(seen + 1, end + after + 1))
    assert sink.gaps == []


async def test_a_member_joining_while_a_publisher_floods_misses_nothing() -> None:
    """Join-before-accept with recovery under a concurrent publisher, end to end."""
    app, rooms = chat_app(HistoryPolicy(size=1000, ttl=60))
    async with TestClient(app) as client:
        async with client.websocket("/chat/lobby") as ws:
            await ws.send_json({"type": "say", "text": "0"})
            seen = (await ws.receive_json())["$pos"]
        stop = asyncio.Event()

        async def flood() -> None:
            n = 0
            while not stop.is_set():
                n += 1
                await app.broadcast(rooms, Said(text=str(n)), room="lobby")
                await asyncio.sleep(0)

        task = asyncio.create_task(flood())
        await asyncio.sleep(0.01)
        url = "/chat/lobby" + since(("chat.lobby", seen["epoch"], seen["offset"]))
        async with client.websocket(url) as ws:
            notice = await ws.receive_json()
            await asyncio.sleep(0.02)
            stop.set()
            await task
            got = []
            while True:
                try:
                    got.append((await ws.receive_json(timeout=0.2))["$pos"]["offset"])
                except AssertionError:  # nothing more within 0.2 s
                    break
    assert notice["recovered"] is True
    assert got == list(range(seen["offset"] + 1, seen["offset"] + 1 + len(got)))
    assert len(got) > notice["replayed"]  # live frames followed the replay


class CountingLayer(InMemoryLayer):
    """The memory layer, counting its history reads."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def history(
        self, channel: str, policy: HistoryPolicy, since: int | None, limit: int
    ) -> HistorySlice:
        self.reads += 1
        return await super().history(channel, policy, since, limit)


async def test_a_frame_lost_on_its_way_is_recovered_for_every_member_from_one_read() -> None:
    layer = CountingLayer()
    app, rooms = chat_app(HistoryPolicy(size=50, ttl=60), layer=layer)
    policy = rooms.history
    assert policy is not None
    async with TestClient(app) as client:
        async with (
            client.websocket("/chat/lobby") as a,
            client.websocket("/chat/lobby") as b,
            client.websocket("/chat/lobby") as c,
        ):
            joined_reads = layer.reads
            # in history, but never reached this process (as if Redis lost the PUBLISH)
            await layer.publish("chat.lobby", Said(text="lost").model_dump_json(), policy)
            await app.broadcast(rooms, Said(text="next"), room="lobby")
            for ws in (a, b, c):
                notice = await ws.receive_json()
                assert notice["type"] == "$recovery" and notice["recovered"] is True
                assert notice["replayed"] == 2
                assert [(await ws.receive_json())["text"] for _ in range(2)] == ["lost", "next"]
                await ws.receive_nothing()
            assert layer.reads - joined_reads == 1  # one read served all three
