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
        assert len(app.hub.registry.members("chat.a")) == 3


async def test_discard_and_automatic_discard_on_disconnect() -> None:
    app = chat_app()
    client = TestClient(app)
    async with client.websocket("/chat/a") as a1, client.websocket("/chat/a") as a2:
        async with client.websocket("/chat/a"):
            assert len(app.hub.registry.members("chat.a")) == 3
        assert len(app.hub.registry.members("chat.a")) == 2
        await a2.send_json({"type": "leave"})
        await a1.send_json({"type": "say", "text": "x"})
        assert await a1.receive_json() == {"text": "x"}
        await a2.receive_nothing()
    assert app.hub.registry.members("chat.a") == []


async def test_broadcast_from_outside_a_handler_and_direct_send(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = chat_app()
    client = TestClient(app)
    async with client.websocket("/chat/a") as a1, client.websocket("/chat/b") as b1:
        await app.broadcast(rooms, Said(text="from a task"), room="b")
        assert await b1.receive_json() == {"text": "from a task"}
        await a1.receive_nothing()

        await a1.send_json({"type": "whoami"})
        my_id = (await a1.receive_json())["id"]
        await app.send_to(my_id, {"direct": True})
        assert await a1.receive_json() == {"direct": True}
        await b1.receive_nothing()
        await app.send_to("no-such-connection", {"lost": True})  # at most once: dropped,
        assert "direct message to 'no-such-connection' dropped" in caplog.text  # and said


async def test_group_templates() -> None:
    assert Group("news").name() == "news"
    assert Group("chat.{room}").name(room="x") == "chat.x"
    with pytest.raises(RtframeError, match="needs a value for 'room'"):
        Group("chat.{room}").name()
    with pytest.raises(ConfigurationError, match="not a plain name"):
        Group("chat.{room.attr}")


class Shout(BaseModel):
    type: Literal["shout"] = "shout"
    text: str


def shouting_app(title: str) -> RealtimeApp:
    """An app whose handler broadcasts with `rooms.broadcast(...)`, naming no app."""
    ws = WebSocketRouter()

    @ws.route(ROOM)
    async def join(conn: Connection) -> None:
        await rooms.add(conn)

    @ws.on_receive(ROOM)
    async def shout(msg: Shout, room: str) -> None:
        await rooms.broadcast({"shout": msg.text, "app": title}, room=room)

    return RealtimeApp([ws], title=title)


async def test_two_apps_in_one_process_an_outside_broadcast_must_name_its_app() -> None:
    admin, chat = shouting_app("admin"), shouting_app("chat")
    async with (
        TestClient(admin) as admin_client,
        TestClient(chat) as chat_client,
        admin_client.websocket("/chat/a") as on_admin,
        chat_client.websocket("/chat/a") as on_chat,
    ):
        # from outside any connection, with two running apps: an error, never a guess
        with pytest.raises(RtframeError, match=r"2 RealtimeApps could receive.*'admin'.*'chat'"):
            await rooms.broadcast({"x": 1}, room="a")
        with pytest.raises(RtframeError, match="2 RealtimeApps"):
            await send_to_connection("someone", {"x": 1})
        # named: delivered to that app's members only
        await chat.broadcast(rooms, {"x": 2}, room="a")
        assert await on_chat.receive_json() == {"x": 2}
        await on_admin.receive_nothing()
        await admin.broadcast("chat.a", {"x": 3})  # a concrete group name works too
        assert await on_admin.receive_json() == {"x": 3}
        await on_chat.receive_nothing()
        # inside a handler, the connection's own app is the target
        await on_admin.send_json({"type": "shout", "text": "hi"})
        assert await on_admin.receive_json() == {"shout": "hi", "app": "admin"}
        await on_chat.receive_nothing()
        await on_chat.send_json({"type": "shout", "text": "yo"})
        assert await on_chat.receive_json() == {"shout": "yo", "app": "chat"}
        await on_admin.receive_nothing()


async def test_the_only_running_app_is_the_target_of_an_outside_broadcast() -> None:
    app = shouting_app("only")
    async with TestClient(app) as client, client.websocket("/chat/a") as sock:
        await rooms.broadcast({"x": 1}, room="a")
        assert await sock.receive_json() == {"x": 1}


async def test_broadcast_to_an_empty_group_is_not_an_error() -> None:
    app = chat_app()
    assert await app.broadcast(rooms, {"x": 1}, room="nobody") is None
    assert app.hub.registry.members("chat.nobody") == []


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
        conn = app.hub.registry.get(conn_id)
        assert isinstance(conn, Connection)
        name = await ws_group.add(conn, user="ada")
        assert name == "user.ada" and "user.ada" in conn.groups
        await app.broadcast(ws_group, {"hi": "ada"}, user="ada")
        assert await sock.receive_json() == {"hi": "ada"}
        await ws_group.discard(conn, user="ada")
        assert "user.ada" not in conn.groups


def routed(order: str, template: str = "chat.{room}") -> RealtimeApp:
    """An app whose `say` handler has @group.broadcast above or below @ws.on_receive."""
    ws = WebSocketRouter()
    group = Group(template)

    @ws.route(ROOM)
    async def join(conn: Connection) -> None:
        await group.add(conn, room=conn.path_params["room"])

    if order == "below":

        @ws.on_receive(ROOM)
        @group.broadcast
        async def say(msg: Say) -> Said:
            return Said(text=msg.text)

    else:

        @group.broadcast
        @ws.on_receive(ROOM)
        async def say(msg: Say) -> Said:
            return Said(text=msg.text)

    return RealtimeApp([ws])


@pytest.mark.parametrize("order", ["below", "above"])
async def test_broadcast_decorator_works_above_or_below_on_receive(order: str) -> None:
    app = routed(order)
    client = TestClient(app)
    async with client.websocket("/chat/a") as a1, client.websocket("/chat/a") as a2:
        await a1.send_json({"type": "say", "text": order})
        assert await a1.receive_json() == {"text": order}
        assert await a2.receive_json() == {"text": order}  # the group, not just the sender


@pytest.mark.parametrize("order", ["below", "above"])
def test_a_group_template_naming_an_unknown_path_field_fails_at_registration(order: str) -> None:
    with pytest.raises(ConfigurationError, match=r"say broadcasts to Group\('chat.\{rooom\}'\).*'rooom'.*no such path parameter \(it has: room\)"):
        routed(order, "chat.{rooom}")


def test_broadcast_on_a_connect_handler_is_refused() -> None:
    ws = WebSocketRouter()

    @rooms.broadcast
    @ws.route(ROOM)
    async def join(conn: Connection) -> Said:
        return Said(text="never sent")

    with pytest.raises(ConfigurationError, match=r"join is decorated with @group\.broadcast but is a connect"):
        RealtimeApp([ws])


def test_a_broadcast_handler_returning_none_is_refused() -> None:
    ws = WebSocketRouter()

    @ws.on_receive(ROOM)
    @rooms.broadcast
    async def say(msg: Say) -> None:
        return None

    with pytest.raises(ConfigurationError, match=r"say broadcasts to Group\('chat\.\{room\}'\) but returns None"):
        RealtimeApp([ws])
