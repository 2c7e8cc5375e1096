"""HTTP routes and mounts inside a RealtimeApp: next to WebSockets, Django-like fallback
apps and their lifespans (the wiring in `rtframe.app`)."""

from typing import Any

import pytest
from pydantic import BaseModel

from rtframe import Connection, Group, RealtimeApp, WebSocketRouter
from rtframe.http import HTMLResponse
from rtframe.http_routing import HTTPRouter
from rtframe.testing import TestClient
from rtframe.types import Message, Receive, Scope, Send

ws = WebSocketRouter()
room = Group("room")
http = HTTPRouter(prefix="/api")


class Post(BaseModel):
    text: str


class Posted(BaseModel):
    room: str
    text: str


@ws.route("/ws/room")
async def join(conn: Connection) -> None:
    await room.add(conn)
    await conn.accept()


@http.post("/rooms/{name}/messages", status=202)
async def post(name: str, body: Post) -> Posted:
    # an HTTP request can broadcast to WebSocket members: one framework for both
    message = Posted(room=name, text=body.text)
    await room.broadcast(message)
    return message


async def django_like(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        raise ValueError("Django can only handle ASGI/HTTP connections")
    await HTMLResponse(f"django {scope['path']}")(scope, receive, send)


async def test_http_routes_serve_beside_websockets_and_the_fallback() -> None:
    app = RealtimeApp([ws, http]).mount_beside(django_like)

    @app.get("/health/{part}")
    async def health(part: str, verbose: bool = False) -> dict[str, Any]:
        return {"part": part, "verbose": verbose}

    async with TestClient(app) as client, client.websocket("/ws/room") as sock:
        posted = await client.request("POST", "/api/rooms/lobby/messages", json={"text": "hi"})
        assert (posted.status, posted.json()) == (202, {"room": "lobby", "text": "hi"})
        assert await sock.receive_json() == {"room": "lobby", "text": "hi"}
        assert (await client.get("/health/db?verbose=1")).json() == {
            "part": "db",
            "verbose": True,
        }
        # a path no route claims goes to the app beside, whatever the method
        assert (await client.request("POST", "/admin/login/")).text == "django /admin/login/"
        # a path a route claims is answered here: 405, not handed to Django
        assert (await client.get("/api/rooms/lobby/messages")).status == 405
    described = {d.path: d.methods for d in app.describe().http_routes}
    assert described["/api/rooms/{name}/messages"] == ("POST",)
    assert described["/health/{part}"] == ("GET", "HEAD")
    assert {"/asyncapi.json", "/api/rooms/{name}/messages"} <= set(app.describe().http_paths)


async def test_mounted_apps_get_their_prefix_and_lifespan() -> None:
    events: list[str] = []

    async def plain(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                events.append(message["type"])
                await send({"type": message["type"] + ".complete"})
                if message["type"] == "lifespan.shutdown":
                    return
        own = scope["path"][len(scope["root_path"]) :]
        await HTMLResponse(f"plain {scope['root_path']} {own}")(scope, receive, send)

    app = RealtimeApp([ws]).mount_beside(django_like)
    app.mount("/plain", plain)
    app.mount("/admin", django_like)  # no lifespan support: startup goes on

    @app.on_startup
    async def up() -> None:
        events.append("app startup")

    @app.on_shutdown
    async def down() -> None:
        events.append("app shutdown")

    async with TestClient(app) as client:
        assert events == ["app startup", "lifespan.startup"]
        assert (await client.get("/plain/x?y=1")).text == "plain /plain /x"
        assert (await client.get("/admin/")).text == "django /admin/"
        async with client.websocket("/ws/room"):
            pass
    assert events[2:] == ["lifespan.shutdown", "app shutdown"]


async def test_a_mounted_app_failing_startup_fails_the_app() -> None:
    async def broken(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "no database"})

    app = RealtimeApp()
    app.mount("/broken", broken)
    with pytest.raises(AssertionError, match=r"app startup failed: .*no database"):
        async with TestClient(app):
            pass


async def test_scope_types_nobody_serves_are_an_error() -> None:
    app = RealtimeApp()
    seen: list[Message] = []

    async def webtransport(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(await receive())

    async def receive() -> Message:
        return {"type": "webtransport.connect"}

    async def send(message: Message) -> None:
        pass

    with pytest.raises(ValueError, match="no app serves 'webtransport' scopes"):
        await app({"type": "webtransport", "path": "/"}, receive, send)
    app.mount_protocol("webtransport", webtransport, lifespan=False)
    await app({"type": "webtransport", "path": "/"}, receive, send)
    assert seen == [{"type": "webtransport.connect"}]
