"""The Connection object: request data, its state machine, and the bounded outbox."""

import asyncio
from typing import Any, Literal

import pytest
from pydantic import BaseModel

from rtframe import (
    CLOSE_SLOW_CONSUMER,
    Connection,
    ConnectionState,
    ConnectionStateError,
    InMemoryLayer,
    RealtimeApp,
    WebSocketRouter,
)
from rtframe.hub import Hub
from rtframe.testing import HandshakeRejected, TestClient
from rtframe.types import Message


class Ping(BaseModel):
    type: Literal["ping"] = "ping"


async def test_request_data_is_exposed() -> None:
    ws = WebSocketRouter()
    seen: dict[str, Any] = {}

    @ws.route("/c/{room}")
    async def connect(conn: Connection) -> None:
        seen.update(
            path=conn.path,
            params=conn.path_params,
            query=dict(conn.query_params),
            agent=conn.headers["user-agent"],
            cookies=dict(conn.cookies),
            client=conn.client,
            id=conn.id,
        )
        conn.state.n = 1
        await conn.accept()

    @ws.on_receive("/c/{room}")
    async def ping(msg: Ping, conn: Connection) -> dict[str, Any]:
        conn.state.n += 1
        return {"n": conn.state.n, "id": conn.id}

    client = TestClient(RealtimeApp([ws]))
    async with client.websocket(
        "/c/lobby?a=1&b=two", headers={"User-Agent": "pytest"}, cookies={"sessionid": "abc:1x:sig", "theme": "dark"}
    ) as sock:
        await sock.send_json({})
        reply = await sock.receive_json()
    assert seen["path"] == "/c/lobby"
    assert seen["params"] == {"room": "lobby"}
    assert seen["query"] == {"a": "1", "b": "two"}
    assert seen["agent"] == "pytest"
    assert seen["cookies"] == {"sessionid": "abc:1x:sig", "theme": "dark"}
    assert seen["client"] == ("testclient", 50000)
    assert reply == {"n": 2, "id": seen["id"]} and len(seen["id"]) == 32


async def test_state_machine_refuses_out_of_order_operations() -> None:
    ws = WebSocketRouter()
    errors: list[str] = []

    @ws.route("/c")
    async def connect(conn: Connection) -> None:
        with pytest.raises(ConnectionStateError, match="before accept"):
            await conn.send({"too": "early"})
        await conn.accept()
        with pytest.raises(ConnectionStateError, match="accept\\(\\) needs a connecting connection"):
            await conn.accept()
        assert conn.state_ is ConnectionState.OPEN
        errors.append("checked")

    @ws.on_receive("/c")
    async def ping(msg: Ping, conn: Connection) -> None:
        await conn.close(4100, "done")
        await conn.close()  # closing twice is harmless
        with pytest.raises(ConnectionStateError, match="it is closed"):
            await conn.send_text("late")
        errors.append("closed")

    async with TestClient(RealtimeApp([ws])).websocket("/c") as sock:
        await sock.send_json({})
        assert await sock.expect_close(4100) == 4100
    assert errors == ["checked", "closed"]


async def test_send_accepts_models_dicts_text_and_bytes() -> None:
    ws = WebSocketRouter()

    @ws.route("/c")
    async def connect(conn: Connection) -> None:
        await conn.accept()
        await conn.send(Ping())
        await conn.send({"a": [1, 2]})
        await conn.send("raw text")
        await conn.send(b"\x00raw")

    async with TestClient(RealtimeApp([ws])).websocket("/c") as sock:
        assert await sock.receive_json() == {"type": "ping"}
        assert await sock.receive_json() == {"a": [1, 2]}
        assert await sock.receive_text() == "raw text"
        assert await sock.receive_bytes() == b"\x00raw"


async def test_disconnect_hook_runs_after_a_handler_raised_and_on_client_close() -> None:
    ws = WebSocketRouter()
    log: list[tuple[str, int | None]] = []

    @ws.on_receive("/c")
    async def ping(msg: Ping) -> None:
        raise RuntimeError("handler failure")

    @ws.on_disconnect("/c")
    async def first(conn: Connection) -> None:
        log.append(("first", conn.close_code))
        raise RuntimeError("a failing hook does not stop the next one")

    @ws.on_disconnect("/c")
    async def second(conn: Connection) -> None:
        log.append(("second", conn.close_code))

    async with TestClient(RealtimeApp([ws])).websocket("/c") as sock:
        await sock.send_json({})
        assert (await sock.receive_json())["code"] == "internal_error"
        await sock.close(4321)
    assert log == [("first", 4321), ("second", 4321)]


async def test_disconnect_hooks_do_not_run_for_refused_handshakes() -> None:
    ws = WebSocketRouter()
    log: list[str] = []

    @ws.route("/c")
    async def connect(conn: Connection) -> None:
        await conn.close(4003)

    @ws.on_disconnect("/c")
    async def gone(conn: Connection) -> None:
        log.append("ran")

    with pytest.raises(HandshakeRejected):
        async with TestClient(RealtimeApp([ws])).websocket("/c"):
            pass
    assert log == []


# -- the outbox, driven with a send that waits until the test lets it write --------------


class SlowServerSend:
    """An ASGI `send` whose writes wait on a gate, like a server whose socket buffer is full."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.gate.set()
        self.sent: list[Message] = []

    async def __call__(self, message: Message) -> None:
        await self.gate.wait()
        self.sent.append(message)

    def texts(self) -> list[str]:
        return [m["text"] for m in self.sent if m["type"] == "websocket.send"]


async def open_connection(send: SlowServerSend, **options: Any) -> Connection:
    async def receive() -> Message:
        raise AssertionError("not used")

    conn = Connection({"type": "websocket", "path": "/"}, receive, send, **options)
    await conn.accept()
    return conn


async def test_frames_are_written_in_place_while_the_client_keeps_up() -> None:
    send = SlowServerSend()
    conn = await open_connection(send)
    conn.deliver("a")
    conn.deliver("b")
    # no task, no await: both frames were written synchronously, in order
    assert send.texts() == ["a", "b"]


async def test_drop_oldest_keeps_the_newest_frames_and_counts_drops(caplog: pytest.LogCaptureFixture) -> None:
    send = SlowServerSend()
    conn = await open_connection(send, outbox_limit=3)
    send.gate.clear()
    for i in range(10):
        conn.deliver(str(i))
    assert conn.dropped == 6  # "0" is in flight, 3 queued, 6 dropped
    send.gate.set()
    await conn.wait_flushed()
    assert send.texts() == ["0", "7", "8", "9", '{"type":"$dropped","count":6}']
    assert "too slow" in caplog.text
    assert "lost 6 frames" in caplog.text
    assert conn.is_open


async def test_close_policy_closes_a_slow_client_with_4008() -> None:
    send = SlowServerSend()
    conn = await open_connection(send, outbox_limit=2, overflow="close")
    send.gate.clear()
    for i in range(5):
        conn.deliver(str(i))
    assert conn.state_ is ConnectionState.CLOSING
    send.gate.set()
    await conn.wait_flushed()
    assert send.texts() == ["0"]
    assert send.sent[-1] == {"type": "websocket.close", "code": CLOSE_SLOW_CONSUMER, "reason": "slow consumer"}
    assert conn.state_.value == "closed"


async def test_a_slow_member_does_not_stall_a_broadcast() -> None:
    hub = Hub(InMemoryLayer(), "test")
    slow_send, fast_send = SlowServerSend(), SlowServerSend()
    slow = await open_connection(slow_send, hub=hub, outbox_limit=4)
    fast = await open_connection(fast_send, hub=hub)
    await hub.join("g", slow)
    await hub.join("g", fast)
    slow_send.gate.clear()
    for i in range(100):
        await hub.publish("g", f"m{i}")
    assert fast_send.texts() == [f"m{i}" for i in range(100)]  # all delivered while slow is stuck
    assert slow_send.texts() == []
    slow_send.gate.set()
    await slow.wait_flushed()
    # the client is told what it missed, once the backlog is written
    assert slow_send.texts() == ["m0", "m96", "m97", "m98", "m99", '{"type":"$dropped","count":95}']
    assert slow.dropped == 95


async def test_close_after_queued_frames_sends_them_first() -> None:
    send = SlowServerSend()
    conn = await open_connection(send)
    send.gate.clear()
    for i in range(3):
        conn.deliver(str(i))
    await conn.close(1000, "bye")
    assert conn.state_ is ConnectionState.CLOSING
    conn.deliver("after close")  # ignored: the connection is closing
    send.gate.set()
    await conn.wait_flushed()
    assert send.texts() == ["0", "1", "2"]
    assert send.sent[-1]["type"] == "websocket.close"


async def test_a_send_that_fails_marks_the_client_gone() -> None:
    async def broken(message: Message) -> None:
        if message["type"] == "websocket.send":
            raise OSError("connection reset")

    async def receive() -> Message:
        raise AssertionError("not used")

    conn = Connection({"type": "websocket", "path": "/"}, receive, broken)
    await conn.accept()
    conn.deliver("x")
    assert conn.state_ is ConnectionState.CLOSED
    conn.deliver("ignored")  # no exception for broadcasts racing a disconnect


async def test_a_connection_outside_an_app_has_no_layer() -> None:
    conn = await open_connection(SlowServerSend())
    with pytest.raises(ConnectionStateError, match="does not belong to an application"):
        _ = conn.layer
    assert conn.groups == frozenset()


async def test_a_member_whose_send_fails_does_not_break_the_broadcast() -> None:
    async def broken(message: Message) -> None:
        if message["type"] == "websocket.send":
            raise OSError("connection reset")

    async def receive() -> Message:
        raise AssertionError("not used")

    hub = Hub(InMemoryLayer(), "test")
    gone = Connection({"type": "websocket", "path": "/"}, receive, broken, hub=hub)
    await gone.accept()
    healthy_send = SlowServerSend()
    healthy = await open_connection(healthy_send, hub=hub)
    for conn in (gone, healthy):
        await hub.join("g", conn)
    await hub.publish("g", "first")
    await hub.publish("g", "second")
    assert healthy_send.texts() == ["first", "second"]
    assert gone.state_ is ConnectionState.CLOSED
    assert len(hub.registry.members("g")) == 2  # it leaves the group in its teardown
