"""The test client fails loudly instead of hanging."""

import time
from typing import Literal

import pytest
from pydantic import BaseModel

from rtframe import Connection, RealtimeApp, WebSocketRouter
from rtframe.testing import TestClient, WebSocketClosed


class Escape(BaseException):
    """Not an Exception, so it passes the handler's error frame machinery."""


class Ping(BaseModel):
    type: Literal["ping"] = "ping"


def app() -> RealtimeApp:
    ws = WebSocketRouter()

    @ws.on_receive("/t")
    async def ping(msg: Ping, conn: Connection) -> None:
        await conn.send({"pong": True})

    @ws.route("/closing")
    async def closing(conn: Connection) -> None:
        await conn.accept()
        await conn.close(4005, "nope")

    @ws.route("/crash")
    async def crash(conn: Connection) -> None:
        await conn.accept()

    @ws.on_receive("/crash")
    async def boom(msg: Ping) -> None:
        raise Escape

    return RealtimeApp([ws])


async def test_receive_times_out_with_a_clear_failure() -> None:
    async with TestClient(app(), timeout=0.1).websocket("/t") as sock:
        started = time.monotonic()
        with pytest.raises(AssertionError, match=r"timed out after 0.1s waiting for a message from the app on /t"):
            await sock.receive_json()
        assert time.monotonic() - started < 1


async def test_receive_nothing_fails_when_something_arrives() -> None:
    async with TestClient(app()).websocket("/t") as sock:
        await sock.send_json({})
        with pytest.raises(AssertionError, match="expected no message"):
            await sock.receive_nothing(0.05)


async def test_close_is_reported_and_checked() -> None:
    client = TestClient(app())
    async with client.websocket("/closing") as sock:
        with pytest.raises(WebSocketClosed) as info:
            await sock.receive_json()
        assert info.value.code == 4005
    async with client.websocket("/closing") as sock:
        with pytest.raises(AssertionError, match="expected close code 1000, got 4005"):
            await sock.expect_close(1000)
    async with client.websocket("/t") as sock:
        await sock.close()
        with pytest.raises(AssertionError, match="not open"):
            await sock.send_json({})


async def test_an_app_crash_surfaces_in_the_test() -> None:
    with pytest.raises(Escape):
        async with TestClient(app()).websocket("/crash") as sock:
            await sock.send_json({})
            await sock.receive_json()


async def test_receiving_the_wrong_kind_of_frame_fails_and_names_it() -> None:
    async with TestClient(app()).websocket("/t") as ws:
        await ws.send_json({"type": "ping"})
        with pytest.raises(AssertionError, match="expected a binary frame"):
            await ws.receive_bytes()  # the pong is text
    ws_app = WebSocketRouter()

    @ws_app.on_receive("/b")
    async def echo(data: bytes) -> bytes:
        return data

    async with TestClient(RealtimeApp([ws_app])).websocket("/b") as ws:
        await ws.send_bytes(b"x")
        with pytest.raises(AssertionError, match="expected a text frame"):
            await ws.receive_text()
