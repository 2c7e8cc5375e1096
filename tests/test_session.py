"""Sessions: the app's set of live connections, and why refused or failed sockets are logged."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel

from rtframe import Connection, Depends, RealtimeApp, Reject, WebSocketRouter
from rtframe.hub import Hub
from rtframe.layers.memory import InMemoryLayer
from rtframe.members import FANOUT_CHUNK, FANOUT_INLINE, Registry
from rtframe.testing import HandshakeRejected, TestClient
from rtframe.types import Message


class Ping(BaseModel):
    type: Literal["ping"] = "ping"


def broken_dependency() -> str:
    raise RuntimeError("database down")


def app_with_refusals() -> RealtimeApp:
    ws = WebSocketRouter()

    @ws.route("/open")
    async def open_(conn: Connection) -> None:
        await conn.accept()

    @ws.on_receive("/open")
    async def ping(msg: Ping) -> dict[str, str]:
        return {"type": "pong"}

    @ws.route("/reject")
    async def reject(conn: Connection) -> None:
        raise Reject(4003, "members only")

    @ws.route("/closed")
    async def closed(conn: Connection) -> None:
        await conn.close(4004, "not today")

    @ws.route("/query")
    async def query(conn: Connection, page: int) -> None:
        await conn.accept()

    @ws.route("/dependency")
    async def dependency(
        conn: Connection, value: Annotated[str, Depends(broken_dependency)]
    ) -> None:
        await conn.accept()

    return RealtimeApp([ws])


async def test_the_app_counts_iterates_and_closes_its_live_sessions() -> None:
    app = app_with_refusals()
    async with TestClient(app) as client:
        assert len(app.sessions) == 0
        async with client.websocket("/open") as a, client.websocket("/open") as b:
            assert len(app.sessions) == 2
            ids = {s.id for s in app.sessions}
            assert len(ids) == 2 and all(app.hub.registry.get(i) is not None for i in ids)
            assert await app.sessions.close_all(1001, "going away") == 2
            assert await a.expect_close(1001) == 1001
            assert await b.expect_close(1001) == 1001
            for _ in range(50):  # teardown runs after the close frame
                if not app.sessions:
                    break
                await asyncio.sleep(0.01)
            assert len(app.sessions) == 0
            assert len(app.hub.registry) == 0
        # refused handshakes leave nothing behind either
        with pytest.raises(HandshakeRejected):
            async with client.websocket("/reject"):
                pass
        assert len(app.sessions) == 0


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/nowhere", "no route matches it"),
        ("/reject", "members only (close code 4003)"),
        ("/closed", "the connect handler closed it (close code 4004)"),
        ("/query", "missing query parameter 'page' (close code 1008)"),
        ("/query?page=x", "invalid query parameter 'page'"),
    ],
)
async def test_a_refused_handshake_is_logged_at_warning_with_its_reason(
    path: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = app_with_refusals()
    caplog.set_level(logging.DEBUG, logger="rtframe")
    with pytest.raises(HandshakeRejected):
        async with TestClient(app).websocket(path):
            pass
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert "refused the WebSocket handshake for " + path.split("?")[0] in warnings[0].getMessage()
    assert reason in warnings[0].getMessage()


async def test_a_failed_dependency_refuses_the_handshake_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = app_with_refusals()
    with pytest.raises(HandshakeRejected) as refused:
        async with TestClient(app).websocket("/dependency"):
            pass
    assert refused.value.code == 1011
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "refused the WebSocket handshake for /dependency" in record.getMessage()
    assert record.exc_info is not None and "database down" in str(record.exc_info[1])


async def _no_receive() -> Message:
    raise AssertionError("not used")


async def test_a_send_failure_that_is_not_a_closed_client_is_a_warning_with_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def buggy(message: Message) -> None:
        if message["type"] == "websocket.send":
            raise RuntimeError("Unexpected ASGI message")

    conn = Connection({"type": "websocket", "path": "/"}, _no_receive, buggy)
    await conn.accept()
    conn.deliver("x")
    assert not conn.is_open
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "failed with an unexpected error" in record.getMessage()
    assert record.exc_info is not None and isinstance(record.exc_info[1], RuntimeError)


async def test_a_closed_client_is_not_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    class ConnectionClosedError(Exception):  # named like the websockets library's
        pass

    for error in (OSError("reset"), ConnectionClosedError()):

        async def gone(message: Message, error: Exception = error) -> None:
            if message["type"] == "websocket.send":
                raise error

        conn = Connection({"type": "websocket", "path": "/"}, _no_receive, gone)
        await conn.accept()
        conn.deliver("x")
        assert not conn.is_open
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


class Recorder:
    """A member that records what it is given."""

    def __init__(self, member_id: str) -> None:
        self.id = member_id
        self.frames: list[str | bytes] = []

    def deliver(self, data: str | bytes) -> None:
        self.frames.append(data)

    def deliver_at(self, group: str, position: tuple[str, int], data: str | bytes) -> None:
        self.frames.append(data)


async def test_a_big_group_is_served_in_chunks_in_publish_order() -> None:
    registry = Registry()
    members = [Recorder(str(i)) for i in range(FANOUT_INLINE + FANOUT_CHUNK + 5)]
    for m in members:
        registry.add("big", m)
    small = Recorder("small")
    registry.add("small", small)
    registry.fan_out("big", "one")
    registry.fan_out("big", "two")  # queued behind "one", never ahead of it
    registry.fan_out("small", "hi")  # another group is not held up
    assert small.frames == ["hi"]
    await asyncio.sleep(0)
    # one chunk per turn of the loop: the first chunk has "one", the last not yet
    assert members[0].frames == ["one"] and members[-1].frames == []
    await registry.flush()
    assert all(m.frames == ["one", "two"] for m in members)


async def test_any_member_joins_gets_direct_and_group_frames_and_leaves() -> None:
    hub = Hub(InMemoryLayer(), "t")
    member = Recorder("r1")
    hub.registry.attach(member)
    await hub.join("g", member)
    assert hub.registry.groups_of(member) == frozenset({"g"})
    await hub.send_to("r1", "direct")
    await hub.publish("g", "group")
    assert member.frames == ["direct", "group"]
    await hub.leave_all(member)
    assert hub.registry.groups() == []
    assert not hub.layer.channels  # type: ignore[attr-defined]
