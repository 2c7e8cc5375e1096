"""Groups on the in-memory layer: membership, broadcasts and direct sends."""

from typing import Any, Literal

import pytest
from pydantic import BaseModel, model_serializer

from rtframe import (
    ConfigurationError,
    Connection,
    Group,
    RealtimeApp,
    RtframeError,
    WebSocketRouter,
    send_to_connection,
)
from rtframe.testing import TestClient

ROOM = "/chat/{room}"
rooms = Group("chat.{room}")
serializations = 0


class Say(BaseModel):
    type: Literal["say"] = "say"
    text: str


class Leave(BaseModel):
    type: Literal["leave"] = "leave"


class WhoAmI(BaseModel):
    type: Literal["whoami"] = "whoami"


class Said(BaseModel):
    text: str

    @model_serializer
    def count(self) -> dict[str, Any]:
        global serializations
        serializations += 1
        return {"text": self.text}


def chat_app() -> RealtimeApp:
    ws = WebSocketRouter()

    @ws.route(ROOM)
    async def join(conn: Connection) -> None:
        await conn.accept()
        await rooms.add(conn)

    @ws.on_receive(ROOM)
    @rooms.broadcast
    async def say(msg: Say) -> Said:
        return Said(text=msg.text)

    @ws.on_receive(ROOM)
    async def leave(msg: Leave, conn: Connection) -> None:
        await rooms.discard(conn)

    @ws.on_receive(ROOM)
    async def whoami(msg: WhoAmI, conn: Connection) -> dict[str, str]:
        return {"id": conn.id}

    return RealtimeApp([ws])


async def test_broadcast_reaches_the_room_only_and_is_serialized_once() -> None:
    global serializations
    app = chat_app()
    client = TestClient(app)
    async with (
        client.websocket("/chat/a") as a1,
        client.websocket("/chat/a") as a2,
        client.websocket("/chat/a") as a3,
        client.websocket("/chat/b") as b1,
    ):
        serializations = 0
        await a1.send_json({"type": "say", "text": "hello"})
        for sock in (a1, a2, a3):
            assert await sock.receive_json() == {"text": "hello"}
        await b1.receive_nothing()
        assert serializations == 1
        assert len(app.layer.local_members("chat.a")) == 3


async def test_discard_and_automatic_discard_on_disconnect() -> None:
    app = chat_app()
    client = TestClient(app)
    async with client.websocket("/chat/a") as a1, client.websocket("/chat/a") as a2:
        async with client.websocket("/chat/a"):
            assert len(app.layer.local_members("chat.a")) == 3
        assert len(app.layer.local_members("chat.a")) == 2
        await a2.send_json({"type": "leave"})
        await a1.send_json({"type": "say", "text": "x"})
        assert await a1.receive_json() == {"text": "x"}
        await a2.receive_nothing()
    assert app.layer.local_members("chat.a") == []


async def test_broadcast_from_outside_a_handler_and_direct_send() -> None:
    app = chat_app()
    client = TestClient(app)
    async with client.websocket("/chat/a") as a1, client.websocket("/chat/b") as b1:
        await rooms.broadcast(Said(text="from a task"), room="b")
        assert await b1.receive_json() == {"text": "from a task"}
        await a1.receive_nothing()

        await a1.send_json({"type": "whoami"})
        my_id = (await a1.receive_json())["id"]
        await send_to_connection(my_id, {"direct": True})
        assert await a1.receive_json() == {"direct": True}
        await b1.receive_nothing()
        await send_to_connection("no-such-connection", {"lost": True})  # at most once: dropped


async def test_group_templates() -> None:
    assert Group("news").name() == "news"
    assert Group("chat.{room}").name(room="x") == "chat.x"
    with pytest.raises(RtframeError, match="needs a value for 'room'"):
        Group("chat.{room}").name()
    with pytest.raises(ConfigurationError, match="not a plain name"):
        Group("chat.{room.attr}")


async def test_outside_broadcasts_use_the_layer_of_the_app_that_started_last() -> None:
    first = chat_app()
    chat_app()  # created later: until `first` starts, the default layer is this one's
    async with TestClient(first) as client, client.websocket("/chat/a") as sock:
        await rooms.broadcast({"x": 1}, room="a")
        assert await sock.receive_json() == {"x": 1}


async def test_broadcast_to_an_empty_group_is_not_an_error() -> None:
    app = chat_app()
    await rooms.broadcast({"x": 1}, room="nobody")
    assert app.layer.local_members("chat.nobody") == []


def test_a_handler_broadcasts_to_one_group_only() -> None:
    other = Group("other")

    async def handler(msg: Say) -> Said:
        return Said(text=msg.text)

    rooms.broadcast(handler)
    with pytest.raises(ConfigurationError, match="already broadcasts"):
        other.broadcast(handler)


async def test_connection_params_fill_add_and_discard_overrides() -> None:
    app = chat_app()
    ws_group = Group("user.{user}")
    async with TestClient(app).websocket("/chat/a") as sock:
        await sock.send_json({"type": "whoami"})
        conn_id = (await sock.receive_json())["id"]
        conn = app.layer._connections[conn_id]
        name = await ws_group.add(conn, user="ada")
        assert name == "user.ada" and "user.ada" in conn.groups
        await ws_group.broadcast({"hi": "ada"}, user="ada")
        assert await sock.receive_json() == {"hi": "ada"}
        await ws_group.discard(conn, user="ada")
        assert "user.ada" not in conn.groups
