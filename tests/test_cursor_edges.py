"""The recovery paths that need a failing read, an unknown position or a layer outage:
cursor and hub, on the memory layer."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

import rtframe._sending
from rtframe import Connection, Group, HistoryPolicy, RealtimeApp, WebSocketRouter
from rtframe._cursor import Cursor
from rtframe._sending import send_close
from rtframe.history import HistorySlice, Position
from rtframe.messages import stamp
from rtframe.testing import TestClient


class Sink:
    def __init__(self) -> None:
        self.out: list[Any] = []
        self.gaps: list[str] = []

    def deliver(self, data: str | bytes) -> None:
        self.out.append(json.loads(data))


def frame(offset: int, epoch: str = "e") -> tuple[Position, str]:
    pos = Position(epoch, offset)
    return pos, stamp(json.dumps({"n": offset}), "g", pos)


def test_a_failed_read_keeps_the_asked_position_and_offers_what_was_buffered() -> None:
    sink = Sink()
    cursor = Cursor(sink.deliver, sink.gaps.append)
    cursor.begin("g")
    cursor.offer("g", *frame(4))  # buffered while the read runs
    cursor.settle("g", None, Position("e", 3), announce=True)
    assert cursor.last["g"] == Position("e", 4)
    assert [m["n"] for m in sink.out] == [4]
    assert "recovering=[]" in repr(cursor)


def test_an_unknown_position_asks_for_a_recovery_that_says_not_recovered() -> None:
    sink = Sink()
    cursor = Cursor(sink.deliver, sink.gaps.append)
    cursor.begin("g")
    cursor.settle("g", None, None, announce=False)  # the read failed: position unknown
    assert cursor.last["g"] is None and sink.out == []
    cursor.offer("g", *frame(9))  # the layer is back: this frame cannot be placed
    assert sink.gaps == ["g"]
    cursor.settle("g", HistorySlice("e", 9, [(9, '{"n":9}')]), None, announce=True)
    assert sink.out[0]["type"] == "$recovery" and sink.out[0]["recovered"] is False
    assert len(sink.out) == 1  # frame 9 is where the group is now: not handed twice
    cursor.offer("g", *frame(10))
    assert sink.out[-1]["n"] == 10


def test_frames_of_a_group_the_member_left_are_ignored() -> None:
    sink = Sink()
    cursor = Cursor(sink.deliver, sink.gaps.append)
    cursor.offer("g", *frame(1))
    cursor.begin("g")
    cursor.forget("g")
    cursor.settle("g", HistorySlice("e", 1, []), None, announce=True)
    assert sink.out == [] and sink.gaps == []


kept = Group("kept.{room}", history=HistoryPolicy(size=10, ttl=60))
plain = Group("plain.{room}")


def both_app() -> RealtimeApp:
    ws = WebSocketRouter()

    @ws.route("/r/{room}")
    async def join(conn: Connection) -> None:
        await kept.add(conn)
        await plain.add(conn)
        await conn.accept()

    return RealtimeApp([ws])


async def test_after_an_outage_history_members_are_recovered_and_the_rest_told() -> None:
    app = both_app()
    async with TestClient(app) as client, client.websocket("/r/x") as ws:
        await app.broadcast(kept, {"n": 1}, room="x")
        assert (await ws.receive_json())["n"] == 1
        await app.hub._layer_recovered()  # what the layer's on_recovery hook runs
        frames = [await ws.receive_json() for _ in range(2)]
        await ws.receive_nothing()
    by_type = {f["type"]: f for f in frames}
    assert by_type["$gap"] == {"type": "$gap", "group": "plain.x", "reason": "layer_outage"}
    assert by_type["$recovery"]["recovered"] is True and by_type["$recovery"]["replayed"] == 0


async def test_a_recovery_for_a_group_nobody_here_is_in_any_more_is_dropped() -> None:
    app = both_app()
    async with TestClient(app) as client, client.websocket("/r/y") as ws:
        [conn] = [s.conn for s in app.sessions]
        app.hub.histories.pop("kept.y")  # as if the last member left during the read
        conn.cursor.begin("kept.y")
        await app.hub._recover("kept.y", [conn])
        assert "kept.y" not in conn.cursor.last
        await ws.receive_nothing()


async def test_a_close_code_the_server_refuses_is_sent_as_a_private_one(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rtframe._sending, "_substituted_once", False)
    caplog.set_level(logging.WARNING, "rtframe.connection")
    sent: list[dict[str, Any]] = []

    async def picky(message: dict[str, Any]) -> None:
        if not (message["code"] == 1000 or 3000 <= message["code"] <= 4999):
            raise ValueError("invalid close code")  # as autobahn does, under daphne
        sent.append(message)

    await send_close(picky, {"type": "websocket.close", "code": 1012, "reason": "restart"})
    await send_close(picky, {"type": "websocket.close", "code": 1013, "reason": ""})
    assert [m["code"] for m in sent] == [4012, 4013]
    assert caplog.text.count("closed with") == 1  # said once, then quietly

    async def gone(message: dict[str, Any]) -> None:
        raise ConnectionResetError("peer gone")

    with pytest.raises(ConnectionResetError):
        await send_close(gone, {"type": "websocket.close", "code": 1012, "reason": ""})
