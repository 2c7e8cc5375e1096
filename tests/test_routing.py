"""Path templates, route matching, router prefixes and the connect handshake."""

import uuid
from typing import Literal

import pytest
from pydantic import BaseModel

from rtframe import ConfigurationError, Connection, RealtimeApp, Reject, WebSocketRouter
from rtframe.routing import PathTemplate
from rtframe.testing import HandshakeRejected, TestClient


class Echo(BaseModel):
    type: Literal["echo"] = "echo"
    text: str


def test_path_template_converts_typed_params() -> None:
    t = PathTemplate("/items/{id:int}/{name}/{ref:uuid}")
    ref = uuid.uuid4()
    assert t.match(f"/items/42/box/{ref}") == {"id": 42, "name": "box", "ref": ref}
    assert t.match("/items/x/box/" + str(ref)) is None
    assert t.match("/items/42/box") is None
    assert PathTemplate("/files/{rest:path}").match("/files/a/b.txt") == {"rest": "a/b.txt"}
    assert PathTemplate("/p/{x:float}").match("/p/1.5") == {"x": 1.5}


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("no-slash", "must start with '/'"),
        ("/a/{x:nope}", "unknown converter 'nope'"),
        ("/a/{x}/{x}", "appears twice"),
    ],
)
def test_bad_templates_fail_at_registration(template: str, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        PathTemplate(template)


async def test_path_params_reach_handlers_with_their_types() -> None:
    ws = WebSocketRouter()
    seen: list[object] = []

    @ws.route("/items/{id:int}")
    async def connect(conn: Connection, id: int) -> None:
        seen.append(id)

    @ws.on_receive("/items/{id:int}")
    async def echo(msg: Echo, id: int) -> Echo:
        return Echo(text=f"{msg.text}@{id}")

    async with TestClient(RealtimeApp([ws])) as client, client.websocket("/items/7") as sock:
        await sock.send_json({"text": "hi"})
        assert await sock.receive_json() == {"type": "echo", "text": "hi@7"}
    assert seen == [7]


async def test_unknown_path_is_refused_before_accept() -> None:
    ws = WebSocketRouter()

    @ws.on_receive("/items/{id:int}")
    async def echo(msg: Echo) -> Echo:
        return msg

    client = TestClient(RealtimeApp([ws]))
    for path in ("/nowhere", "/items/abc"):
        with pytest.raises(HandshakeRejected) as info:
            async with client.websocket(path):
                pass
        assert info.value.code == 1008


async def test_router_prefix_and_include_router() -> None:
    inner = WebSocketRouter(prefix="/chat")

    @inner.on_receive("/{room}")
    async def echo(msg: Echo, room: str) -> Echo:
        return Echo(text=f"{room}:{msg.text}")

    outer = WebSocketRouter()
    outer.include_router(inner, prefix="/ws")
    app = RealtimeApp([outer])
    assert [r.path.template for r in app.routes] == ["/ws/chat/{room}"]
    async with TestClient(app).websocket("/ws/chat/lobby") as sock:
        await sock.send_json({"text": "x"})
        assert (await sock.receive_json())["text"] == "lobby:x"


def test_duplicate_routes_and_connect_handlers_are_refused() -> None:
    ws = WebSocketRouter()

    @ws.route("/a")
    async def first(conn: Connection) -> None: ...

    with pytest.raises(ConfigurationError, match="already has a connect handler"):

        @ws.route("/a")
        async def second(conn: Connection) -> None: ...

    other = WebSocketRouter()

    @other.route("/a")
    async def third(conn: Connection) -> None: ...

    with pytest.raises(ConfigurationError, match="registered twice"):
        RealtimeApp([ws, other])
    with pytest.raises(ConfigurationError, match="prefix"):
        WebSocketRouter(prefix="/trailing/")


async def test_connect_handler_can_accept_with_subprotocol_and_headers() -> None:
    ws = WebSocketRouter()

    @ws.route("/s")
    async def connect(conn: Connection) -> None:
        assert conn.scope["subprotocols"] == ["v1.chat", "v2.chat"]
        await conn.accept(subprotocol="v2.chat", headers={"x-server": "rtframe"})

    async with TestClient(RealtimeApp([ws])).websocket("/s", subprotocols=["v1.chat", "v2.chat"]) as sock:
        assert sock.subprotocol == "v2.chat"
        assert sock.response_headers["x-server"] == "rtframe"


async def test_connect_handler_that_returns_accepts() -> None:
    ws = WebSocketRouter()

    @ws.route("/s")
    async def connect(conn: Connection) -> None:
        conn.state.greeted = True

    @ws.on_receive("/s")
    async def echo(msg: Echo, conn: Connection) -> Echo:
        return Echo(text=str(conn.state.greeted))

    async with TestClient(RealtimeApp([ws])).websocket("/s") as sock:
        await sock.send_json({"text": ""})
        assert (await sock.receive_json())["text"] == "True"


@pytest.mark.parametrize("how", ["close", "reject"])
async def test_connect_handler_can_refuse(how: str) -> None:
    ws = WebSocketRouter()

    @ws.route("/s")
    async def connect(conn: Connection) -> None:
        if how == "close":
            await conn.close(4003, "go away")
        else:
            raise Reject(4003, "go away")

    with pytest.raises(HandshakeRejected) as info:
        async with TestClient(RealtimeApp([ws])).websocket("/s"):
            pass
    assert (info.value.code, info.value.reason) == (4003, "go away")


async def test_connect_handler_crash_refuses_without_leaking_details(caplog: pytest.LogCaptureFixture) -> None:
    ws = WebSocketRouter()

    @ws.route("/s")
    async def connect(conn: Connection) -> None:
        raise RuntimeError("database password is hunter2")

    with pytest.raises(HandshakeRejected) as info:
        async with TestClient(RealtimeApp([ws])).websocket("/s"):
            pass
    assert info.value.code == 1011
    assert "hunter2" not in info.value.reason
    assert "hunter2" in caplog.text  # the server log keeps the traceback
