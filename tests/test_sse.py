"""SSE endpoints in-process: streams as group members, positions as event ids, resuming
with Last-Event-ID, keep-alives, refusals, closes, drain and slow clients."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Literal

import pytest
from pydantic import BaseModel

from rtframe import (
    Connection,
    Group,
    HistoryPolicy,
    RealtimeApp,
    Reject,
    SSERouter,
    Stream,
    WebSocketRouter,
)
from rtframe.testing import TestClient
from tests.sse_harness import SSEClient

rooms = Group("room.{room}", history=HistoryPolicy(size=50, ttl=60))
plain = Group("plain.{room}")


class Say(BaseModel):
    type: Literal["say"] = "say"
    text: str


class Said(BaseModel):
    type: Literal["said"] = "said"
    text: str


def make_app(keepalive: float = 15.0, outbox: int = 256) -> RealtimeApp:
    ws = WebSocketRouter()
    sse = SSERouter()

    @ws.route("/ws/{room}")
    async def join(conn: Connection) -> None:
        await rooms.add(conn)
        await plain.add(conn)
        await conn.accept()

    @ws.on_receive("/ws/{room}")
    @rooms.broadcast
    async def say(msg: Say) -> Said:
        return Said(text=msg.text)

    @sse.route("/events/{room}", keepalive=keepalive, retry=1.0)
    async def follow(stream: Stream, room: str, who: str = "anon") -> None:
        if who == "mallory":
            raise Reject(4403, "not you")
        await rooms.add(stream)
        await plain.add(stream)

    return RealtimeApp([ws, sse], outbox_limit=outbox)


async def test_a_stream_receives_group_broadcasts_like_a_websocket_member() -> None:
    app = make_app()
    async with TestClient(app) as client, client.websocket("/ws/r") as ws:
        stream = SSEClient(app, "/events/r")
        assert await stream.start() == 200
        assert stream.headers["content-type"] == "text/event-stream; charset=utf-8"
        assert stream.headers["cache-control"] == "no-cache"
        assert stream.headers["x-accel-buffering"] == "no"
        retry = await stream.event()
        assert 500 <= int(retry["retry"]) <= 1500  # 1 s, jittered
        await ws.send_json({"type": "say", "text": "hello"})
        got = await stream.event()
        data = json.loads(got["data"])
        assert (data["type"], data["text"]) == ("said", "hello")
        assert json.loads(got["id"]) == {"room.r": {"epoch": data["$pos"]["epoch"], "offset": 1}}
        assert (await ws.receive_json())["text"] == "hello"  # the WebSocket member too
        await app.broadcast(plain, {"type": "note", "text": "no history"}, room="r")
        note = await stream.event()
        assert "id" not in note and json.loads(note["data"])["text"] == "no history"
        await stream.disconnect()
        assert len(app.sessions) == 1  # the stream's session ended with the request


async def test_last_event_id_resumes_with_every_missed_message_once() -> None:
    app = make_app()
    async with TestClient(app) as client, client.websocket("/ws/r") as ws:
        stream = SSEClient(app, "/events/r")
        await stream.start()
        await stream.event()  # retry
        await ws.send_json({"type": "say", "text": "seen"})
        last_id = (await stream.event())["id"]
        await stream.disconnect()
        for n in range(3):
            await ws.send_json({"type": "say", "text": f"missed {n}"})
        again = SSEClient(app, "/events/r", headers={"Last-Event-ID": last_id})
        await again.start()
        await again.event()  # retry
        notice = json.loads((await again.event())["data"])
        assert notice["type"] == "$recovery" and notice["recovered"] is True
        assert notice["replayed"] == 3
        replay = [json.loads((await again.event())["data"])["text"] for _ in range(3)]
        assert replay == ["missed 0", "missed 1", "missed 2"]
        await ws.send_json({"type": "say", "text": "live"})
        live = await again.event()
        assert json.loads(live["data"])["text"] == "live"
        assert json.loads(live["id"])["room.r"]["offset"] == 5
        await again.disconnect()


async def test_a_malformed_last_event_id_is_logged_and_the_stream_starts_fresh(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "rtframe")
    app = make_app()
    async with TestClient(app):
        stream = SSEClient(app, "/events/r", headers={"Last-Event-ID": "42"})
        assert await stream.start() == 200
        await stream.disconnect()
    assert "Last-Event-ID" in caplog.text


async def test_keepalive_comments_keep_a_quiet_stream_open() -> None:
    app = make_app(keepalive=0.2)
    async with TestClient(app):
        stream = SSEClient(app, "/events/r")
        await stream.start()
        await stream.event()  # retry
        # the session's heartbeat would close a silent WebSocket after interval+timeout;
        # an SSE client cannot answer, so a keep-alive that was written counts as one
        for _ in range(4):
            assert (await stream.event(timeout=1.0)) == {"comment": "ping"}
        assert not stream.ended
        await stream.disconnect()


async def test_a_refused_stream_gets_403_and_an_unknown_path_404() -> None:
    app = make_app()
    async with TestClient(app) as client:
        refused = SSEClient(app, "/events/r?who=mallory")
        assert await refused.start() == 403
        assert (await client.get("/events-nowhere")).status == 404


async def test_closing_a_stream_sends_a_last_close_event() -> None:
    app = make_app()
    async with TestClient(app):
        stream = SSEClient(app, "/events/r")
        await stream.start()
        await stream.event()
        [session] = list(app.sessions)
        await session.close(4001, "logged out")
        closing = await stream.event()
        assert json.loads(closing["data"]) == {
            "type": "$close",
            "code": 4001,
            "reason": "logged out",
        }
        assert stream.ended
        await asyncio.wait_for(stream.task, 2)


async def test_a_drain_tells_the_browser_when_to_come_back() -> None:
    app = make_app()
    async with TestClient(app):
        stream = SSEClient(app, "/events/r")
        await stream.start()
        await stream.event()
        drained = asyncio.ensure_future(app.drain(0.2))
        notice = await stream.event()
        data = json.loads(notice["data"])
        assert data["type"] == "$reconnect"
        assert notice["retry"] == str(data["after_ms"])  # EventSource waits that long
        closing = json.loads((await stream.event())["data"])
        assert (closing["type"], closing["code"]) == ("$close", 1012)
        await drained


async def test_a_stream_too_slow_for_its_frames_is_closed_to_recover_on_reconnect() -> None:
    gate = asyncio.Event()
    app = make_app(outbox=4)
    async with TestClient(app):
        gate.set()
        stream = SSEClient(app, "/events/r", send_gate=gate)
        await stream.start()
        await stream.event()
        gate.clear()  # the client stops reading
        for n in range(20):
            await app.broadcast(rooms, Said(text=str(n)), room="r")
        gate.set()
        events = []
        while not stream.ended:
            events.append(json.loads((await stream.event())["data"]))
        closing = events[-1]
        assert (closing["type"], closing["code"]) == ("$close", 4008)
        texts = [e["text"] for e in events[:-1]]
        assert texts == [str(n) for n in range(len(texts))]  # no hole before the close


async def test_a_frozen_client_is_let_go_within_two_keepalives() -> None:
    """The send timeout: a stream whose writes block (the client stopped reading, its
    TCP window is full) cannot have its keep-alive written, so no answer is counted and
    the heartbeat ends the session within keepalive + keepalive."""
    gate = asyncio.Event()
    gate.set()
    app = make_app(keepalive=0.2)
    async with TestClient(app):
        stream = SSEClient(app, "/events/r", send_gate=gate)
        await stream.start()
        await stream.event()
        gate.clear()  # frozen from now on
        await app.broadcast(rooms, Said(text="stuck"), room="r")
        started = asyncio.get_running_loop().time()
        while len(app.sessions):
            await asyncio.sleep(0.05)
            assert asyncio.get_running_loop().time() - started < 3, "never let go"
        assert app.stats.timeouts.get("heartbeat") == 1


async def test_streams_match_below_the_servers_root_path() -> None:
    """Under `uvicorn --root-path /api` (or a mount) `path` starts with the root path;
    routes match what follows it (WebSocket routes go through the same `_open`)."""
    app = make_app()
    async with TestClient(app):
        stream = SSEClient(app, "/api/events/r")
        stream.scope["root_path"] = "/api"
        assert await stream.start() == 200
        await stream.disconnect()


async def test_what_a_stream_cannot_carry_is_logged_not_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, "rtframe")
    app = make_app()
    async with TestClient(app):
        stream = SSEClient(app, "/events/r")
        await stream.start()
        await stream.event()
        [session] = list(app.sessions)
        await session.conn.send(b"\x00binary")  # SSE is text: not sent, and said so
        await session.conn.send('{"type":"odd","$pos":{"group":"room.r"}}')  # no epoch
        odd = await stream.event()
        assert json.loads(odd["data"])["type"] == "odd" and odd["id"] == "{}"
        await stream.disconnect()
    assert "binary frame cannot go out on an SSE stream" in caplog.text
    assert "malformed position" in caplog.text


async def test_a_stream_opened_during_a_drain_is_told_to_come_back_later() -> None:
    app = make_app()
    async with TestClient(app):
        first = SSEClient(app, "/events/r")
        await first.start()
        drained = asyncio.ensure_future(app.drain(1.0))
        await first.event()  # retry
        await first.event()  # $reconnect
        late = SSEClient(app, "/events/r")
        assert await late.start() == 503
        assert "retry-after" in late.headers
        await drained
