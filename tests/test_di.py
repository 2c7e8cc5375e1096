"""Dependency injection: kinds, scopes, nesting, teardown, overrides and query parameters."""

import threading
from collections.abc import AsyncIterator
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel

from rtframe import Connection, Depends, RealtimeApp, Reject, WebSocketRouter
from rtframe.testing import HandshakeRejected, TestClient


class Ask(BaseModel):
    type: Literal["ask"] = "ask"
    what: str = ""


class Answer(BaseModel):
    value: str


async def test_async_sync_and_nested_dependencies() -> None:
    ws = WebSocketRouter()
    loop_thread = threading.get_ident()

    def sync_dep() -> str:  # runs in a worker thread, where blocking is fine
        return "thread" if threading.get_ident() != loop_thread else "loop"

    async def base(conn: Connection) -> str:
        return str(conn.path_params["room"])

    async def nested(room: Annotated[str, Depends(base)], where: str = Depends(sync_dep)) -> str:
        return f"{room}/{where}"

    @ws.on_receive("/r/{room}")
    async def handler(msg: Ask, value: Annotated[str, Depends(nested)]) -> Answer:
        return Answer(value=value)

    async with TestClient(RealtimeApp([ws])).websocket("/r/lobby") as sock:
        await sock.send_json({})
        assert await sock.receive_json() == {"value": "lobby/thread"}


async def test_connection_scope_resolves_once_and_message_scope_every_time() -> None:
    ws = WebSocketRouter()
    calls = {"conn": 0, "msg": 0}

    async def per_connection() -> int:
        calls["conn"] += 1
        return calls["conn"]

    async def per_message(msg: Ask) -> str:
        calls["msg"] += 1
        return f"{msg.what}{calls['msg']}"

    @ws.route("/r")
    async def connect(conn: Connection, n: int = Depends(per_connection)) -> None:
        assert n == 1

    @ws.on_receive("/r")
    async def handler(
        msg: Ask,
        n: int = Depends(per_connection),
        m: str = Depends(per_message, scope="message"),
        again: str = Depends(per_message, scope="message"),
    ) -> Answer:
        assert m == again  # cached within one message
        return Answer(value=f"{n}:{m}")

    async with TestClient(RealtimeApp([ws])).websocket("/r") as sock:
        for expected in ("1:a1", "1:b2", "1:c3"):
            await sock.send_json({"what": expected[2]})
            assert (await sock.receive_json())["value"] == expected
    assert calls == {"conn": 1, "msg": 3}


async def test_use_cache_false_calls_again() -> None:
    ws = WebSocketRouter()
    counter = iter(range(100))

    async def fresh() -> int:
        return next(counter)

    @ws.on_receive("/r")
    async def handler(
        msg: Ask, a: int = Depends(fresh, scope="message", use_cache=False), b: int = Depends(fresh, scope="message", use_cache=False)
    ) -> Answer:
        return Answer(value=f"{a},{b}")

    async with TestClient(RealtimeApp([ws])).websocket("/r") as sock:
        await sock.send_json({})
        assert (await sock.receive_json())["value"] == "0,1"


async def test_generator_teardown_runs_at_the_end_of_its_scope() -> None:
    ws = WebSocketRouter()
    events: list[str] = []

    async def resource() -> AsyncIterator[str]:
        events.append("open connection resource")
        yield "conn-res"
        events.append("close connection resource")

    async def per_message() -> AsyncIterator[str]:
        events.append("open message resource")
        yield "msg-res"
        events.append("close message resource")

    @ws.on_receive("/r")
    async def handler(msg: Ask, a: str = Depends(resource), b: str = Depends(per_message, scope="message")) -> Answer:
        events.append("handler")
        return Answer(value=a + b)

    @ws.on_disconnect("/r")
    async def gone(a: str = Depends(resource)) -> None:
        events.append(f"disconnect sees {a}")

    async with TestClient(RealtimeApp([ws])).websocket("/r") as sock:
        await sock.send_json({})
        await sock.receive_json()
        await sock.send_json({})
        await sock.receive_json()
    assert events == [
        "open connection resource",
        "open message resource",
        "handler",
        "close message resource",
        "open message resource",
        "handler",
        "close message resource",
        "disconnect sees conn-res",
        "close connection resource",
    ]


async def test_teardown_runs_even_when_the_handler_raised() -> None:
    ws = WebSocketRouter()
    closed: list[str] = []

    async def per_message() -> AsyncIterator[None]:
        yield
        closed.append("message")

    @ws.on_receive("/r")
    async def handler(msg: Ask, _: None = Depends(per_message, scope="message")) -> None:
        raise ValueError("boom")

    async with TestClient(RealtimeApp([ws])).websocket("/r") as sock:
        await sock.send_json({})
        assert (await sock.receive_json())["code"] == "internal_error"
    assert closed == ["message"]


async def test_overrides_replace_a_dependency_everywhere() -> None:
    ws = WebSocketRouter()

    async def real_user() -> str:
        return "real"

    async def who(user: str = Depends(real_user)) -> str:
        return f"user={user}"

    @ws.on_receive("/r")
    async def handler(msg: Ask, label: str = Depends(who)) -> Answer:
        return Answer(value=label)

    app = RealtimeApp([ws])
    app.dependency_overrides[real_user] = lambda: "fake"
    async with TestClient(app).websocket("/r") as sock:
        await sock.send_json({})
        assert (await sock.receive_json())["value"] == "user=fake"
    app.dependency_overrides.clear()
    async with TestClient(app).websocket("/r") as sock:
        await sock.send_json({})
        assert (await sock.receive_json())["value"] == "user=real"


async def test_callable_instances_are_dependencies() -> None:
    ws = WebSocketRouter()

    class Prefix:
        def __init__(self, prefix: str) -> None:
            self.prefix = prefix

        async def __call__(self, conn: Connection) -> str:
            return self.prefix + conn.id[:0]

    @ws.on_receive("/r")
    async def handler(msg: Ask, p: str = Depends(Prefix("pre-"))) -> Answer:
        return Answer(value=p + msg.what)

    async with TestClient(RealtimeApp([ws])).websocket("/r") as sock:
        await sock.send_json({"what": "x"})
        assert (await sock.receive_json())["value"] == "pre-x"


async def test_dependency_can_refuse_the_handshake() -> None:
    ws = WebSocketRouter()

    async def token(conn: Connection) -> str:
        value = conn.headers.get("authorization")
        if value != "Bearer ok":
            raise Reject(4001, "bad token")
        return value

    @ws.route("/r")
    async def connect(conn: Connection, auth: str = Depends(token)) -> None: ...

    client = TestClient(RealtimeApp([ws]))
    with pytest.raises(HandshakeRejected) as info:
        async with client.websocket("/r", headers={"authorization": "Bearer nope"}):
            pass
    assert info.value.code == 4001
    async with client.websocket("/r", headers={"authorization": "Bearer ok"}) as sock:
        assert sock.accepted


async def test_query_parameters_are_validated_once_at_the_handshake() -> None:
    ws = WebSocketRouter()

    @ws.on_receive("/r")
    async def handler(msg: Ask, limit: int, tag: str | None = None) -> Answer:
        return Answer(value=f"{limit}:{tag}")

    client = TestClient(RealtimeApp([ws]))
    async with client.websocket("/r?limit=5") as sock:
        await sock.send_json({})
        assert (await sock.receive_json())["value"] == "5:None"
    async with client.websocket("/r?limit=5&tag=t") as sock:
        await sock.send_json({})
        assert (await sock.receive_json())["value"] == "5:t"
    for bad, reason in (("/r", "missing query parameter 'limit'"), ("/r?limit=ten", "invalid query parameter 'limit'")):
        with pytest.raises(HandshakeRejected) as info:
            async with client.websocket(bad):
                pass
        assert info.value.code == 1008
        assert reason in info.value.reason


async def test_generator_that_yields_twice_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    ws = WebSocketRouter()

    async def greedy() -> AsyncIterator[int]:
        yield 1
        yield 2

    @ws.on_receive("/r")
    async def handler(msg: Ask, v: int = Depends(greedy)) -> Answer:
        return Answer(value=str(v))

    async with TestClient(RealtimeApp([ws])).websocket("/r") as sock:
        await sock.send_json({})
        assert (await sock.receive_json())["value"] == "1"
    assert "yielded more than once" in caplog.text
