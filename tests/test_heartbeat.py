"""Heartbeats and timeouts: dead or idle peers are closed and leave their groups."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
import time
from typing import Literal

import httpx
import pytest
from pydantic import BaseModel
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from rtframe import (
    ConfigurationError,
    Connection,
    Group,
    Heartbeat,
    RealtimeApp,
    Timeouts,
    WebSocketRouter,
)
from rtframe.connection import CLOSE_HANDSHAKE_TIMEOUT, CLOSE_HEARTBEAT_TIMEOUT, CLOSE_IDLE_TIMEOUT
from rtframe.testing import HandshakeRejected, TestClient

from .servers import uvicorn_server

room = Group("room")
FAST = Heartbeat(interval=0.1, timeout=0.1)


class Say(BaseModel):
    type: Literal["say"] = "say"
    text: str


class Slow(BaseModel):
    type: Literal["slow"] = "slow"
    seconds: float


def make_app(**options: object) -> RealtimeApp:
    ws = WebSocketRouter()

    @ws.route("/room")
    async def join(conn: Connection) -> None:
        await room.add(conn)

    @ws.on_receive("/room")
    async def say(msg: Say) -> Say:
        return msg

    @ws.on_receive("/room")
    async def slow(msg: Slow) -> dict[str, str]:
        await asyncio.sleep(msg.seconds)
        return {"type": "done"}

    @ws.route("/quiet", heartbeat=False)
    async def quiet(conn: Connection) -> None:
        await conn.accept()

    @ws.route("/hang")
    async def hang(conn: Connection) -> None:
        await asyncio.sleep(30)

    return RealtimeApp([ws], **options)  # type: ignore[arg-type]


async def test_the_server_pings_and_an_answering_client_stays() -> None:
    app = make_app(heartbeat=FAST)
    async with TestClient(app) as client, client.websocket("/room") as sock:
        for _ in range(4):  # four intervals: more than interval + timeout
            assert await sock.receive_text(timeout=1) == '{"type":"$ping"}'
            await sock.send_text('{"type":"$pong"}')
        assert len(app.hub.registry.members("room")) == 1


async def test_a_client_that_stops_answering_is_closed_with_4002_and_leaves_its_groups(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(heartbeat=FAST)
    async with TestClient(app) as client, client.websocket("/room") as sock:
        started = time.monotonic()
        assert await sock.receive_text(timeout=1) == '{"type":"$ping"}'
        assert await sock.expect_close(CLOSE_HEARTBEAT_TIMEOUT, timeout=1) == 4002
        # interval + timeout, plus at most one sweep tick (a quarter of the shortest span)
        assert time.monotonic() - started <= 0.1 + 0.1 + 0.05 + 0.1
        for _ in range(50):
            if not app.sessions:
                break
            await asyncio.sleep(0.01)
        assert app.hub.registry.members("room") == []
        assert len(app.sessions) == 0
    assert "heartbeat timeout (close code 4002)" in caplog.text


async def test_any_message_counts_as_an_answer_and_a_client_ping_gets_a_pong() -> None:
    app = make_app(heartbeat=FAST)
    async with TestClient(app) as client, client.websocket("/room") as sock:
        await sock.send_text('{"type": "$ping"}')  # as json.dumps writes it
        assert await sock.receive_text() == '{"type":"$pong"}'
        deadline = time.monotonic() + 0.6
        while time.monotonic() < deadline:
            await sock.send_json({"type": "say", "text": "still here"})
            frame = await sock.receive_json()
            assert frame in ({"type": "say", "text": "still here"}, {"type": "$ping"})
            await asyncio.sleep(0.03)
        assert len(app.sessions) == 1


async def test_a_route_can_switch_heartbeats_off() -> None:
    app = make_app(heartbeat=FAST)
    async with TestClient(app) as client, client.websocket("/quiet") as sock:
        await sock.receive_nothing(within=0.5)
        assert len(app.sessions) == 1


async def test_an_idle_connection_is_closed_with_4003_and_pongs_do_not_count() -> None:
    app = make_app(heartbeat=FAST, timeouts=Timeouts(idle=0.4))
    async with TestClient(app) as client, client.websocket("/room") as sock:
        started = time.monotonic()
        closed = None
        while closed is None:
            message = await sock.receive(timeout=1)
            if message["type"] == "websocket.close":
                closed = message["code"]
            else:
                await sock.send_text('{"type":"$pong"}')
        assert closed == CLOSE_IDLE_TIMEOUT
        assert 0.4 <= time.monotonic() - started <= 0.4 + 0.2


async def test_a_hanging_connect_handler_hits_the_handshake_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(timeouts=Timeouts(handshake=0.2))
    started = time.monotonic()
    with pytest.raises(HandshakeRejected) as refused:
        async with TestClient(app).websocket("/hang"):
            pass
    assert refused.value.code == CLOSE_HANDSHAKE_TIMEOUT
    assert time.monotonic() - started < 1
    assert "refused the WebSocket handshake for /hang" in caplog.text
    assert "did not finish within 0.2s" in caplog.text


async def test_a_slow_handler_is_reported_to_its_client_and_still_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(heartbeat=FAST, timeouts=Timeouts(handler=0.2))
    async with TestClient(app) as client, client.websocket("/room") as sock:
        await sock.send_json({"type": "slow", "seconds": 0.6})
        frames: list[dict[str, object]] = []
        while not frames or frames[-1].get("type") != "done":
            frames.append(await sock.receive_json(timeout=2))
        codes = [f.get("code") for f in frames if f.get("type") == "error"]
        assert codes == ["handler_timeout"]  # told once, while it ran
        assert frames[-1] == {"type": "done"}
        # the server read nothing while the handler ran: no heartbeat timeout for that
        assert len(app.sessions) == 1
    assert "still running after 0.2s" in caplog.text


class Ping(BaseModel):
    type: Literal["$ping"] = "$ping"


def test_a_route_cannot_declare_a_heartbeat_message_type() -> None:
    ws = WebSocketRouter()

    @ws.on_receive("/x")
    async def ping(msg: Ping) -> None:
        return None

    with pytest.raises(
        ConfigurationError, match=r"type .\$ping., which is reserved for rtframe.s own frames"
    ):
        RealtimeApp([ws])


def test_heartbeat_and_timeouts_refuse_nonsense() -> None:
    with pytest.raises(ConfigurationError):
        Heartbeat(interval=0)
    with pytest.raises(ConfigurationError):
        Timeouts(idle=-1)


# -- end to end: real uvicorn, real sockets ---------------------------------------------------


@pytest.fixture(scope="module")
def port() -> object:
    with uvicorn_server("tests.heartbeat_app:app") as port:
        yield port


async def members(port: int) -> dict[str, int]:
    async with httpx.AsyncClient() as http:
        answer = await http.get(f"http://127.0.0.1:{port}/members")
        return answer.json()  # type: ignore[no-any-return]


@pytest.mark.e2e
async def test_a_websocket_client_that_ignores_pings_is_closed_and_leaves_the_room(
    port: int,
) -> None:
    async with connect(f"ws://127.0.0.1:{port}/room") as sock:
        assert (await members(port))["room"] == 1
        started = time.monotonic()
        assert json.loads(await asyncio.wait_for(sock.recv(), 2)) == {"type": "$ping"}
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(sock.recv(), 2)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4002
        assert time.monotonic() - started <= 0.3 + 0.3 + 0.2 + 0.3
    assert await members(port) == {"room": 0, "sessions": 0}


@pytest.mark.e2e
async def test_a_raw_client_that_never_reads_is_closed_and_leaves_the_room(port: int) -> None:
    """A peer that completed the handshake and then went silent, reading nothing."""
    raw = socket.create_connection(("127.0.0.1", port))
    try:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        key = base64.b64encode(os.urandom(16)).decode()
        raw.sendall(
            (
                "GET /room HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                "Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        assert raw.recv(4096).startswith(b"HTTP/1.1 101")
        assert (await members(port))["room"] == 1
        # keep the room busy so the silent peer's buffers fill up behind its back
        async with connect(f"ws://127.0.0.1:{port}/room") as talker:
            deadline = time.monotonic() + 2.0
            gone = False
            while time.monotonic() < deadline and not gone:
                await talker.send(json.dumps({"type": "say", "text": "x" * 2000}))
                await asyncio.sleep(0.02)
                gone = (await members(port))["room"] == 1  # only the talker is left
            assert gone, "the silent peer was never removed from the room"
    finally:
        raw.close()
