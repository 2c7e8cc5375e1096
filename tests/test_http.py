"""HTTP routes of the app itself, the fallback app, and the lifespan protocol."""

import pytest

from rtframe import Connection, HTMLResponse, JSONResponse, RealtimeApp, Request, WebSocketRouter
from rtframe.testing import TestClient
from rtframe.types import Message, Receive, Scope, Send


async def test_own_routes_404_and_405() -> None:
    app = RealtimeApp()

    @app.get("/hello")
    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"q": request.query_params.get("q"), "path": request.path})

    client = TestClient(app)
    response = await client.get("/hello?q=1")
    assert (response.status, response.json()) == (200, {"q": "1", "path": "/hello"})
    assert response.headers["content-type"] == "application/json"
    assert (await client.get("/missing")).status == 404

    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    await app({"type": "http", "method": "POST", "path": "/hello", "headers": []}, receive, send)
    assert sent[0]["status"] == 405


async def test_other_http_goes_to_the_fallback_app() -> None:
    async def fallback(scope: Scope, receive: Receive, send: Send) -> None:
        await HTMLResponse(f"fallback {scope['path']}")(scope, receive, send)

    app = RealtimeApp().mount_beside(fallback)

    @app.get("/own")
    async def own(request: Request) -> HTMLResponse:
        return HTMLResponse("own")

    client = TestClient(app)
    assert (await client.get("/own")).text == "own"
    assert (await client.get("/admin/")).text == "fallback /admin/"


async def test_lifespan_runs_hooks_and_reports_failures() -> None:
    app = RealtimeApp()
    events: list[str] = []

    @app.on_startup
    async def up() -> None:
        events.append("up")

    @app.on_shutdown
    async def down() -> None:
        events.append("down")

    async with TestClient(app):
        assert events == ["up"]
    assert events == ["up", "down"]

    broken = RealtimeApp()

    @broken.on_startup
    async def fail() -> None:
        raise RuntimeError("cannot reach the database")

    try:
        async with TestClient(broken):
            raise AssertionError("startup should have failed")
    except AssertionError as exc:
        assert "cannot reach the database" in str(exc)


async def test_first_connection_starts_an_app_whose_lifespan_did_not_run() -> None:
    ws = WebSocketRouter()
    started: list[str] = []

    @ws.route("/w")
    async def connect(conn: Connection) -> None:
        await conn.accept()
        await conn.send({"started": started})

    app = RealtimeApp([ws])

    @app.on_startup
    async def up() -> None:
        started.append("up")

    client = TestClient(app)  # no `async with`: like a server run with --lifespan off
    async with client.websocket("/w") as first, client.websocket("/w") as second:
        assert await first.receive_json() == {"started": ["up"]}
        assert await second.receive_json() == {"started": ["up"]}  # started once


async def test_a_failing_shutdown_is_reported() -> None:
    app = RealtimeApp()

    @app.on_shutdown
    async def down() -> None:
        raise RuntimeError("could not flush the queue")

    with pytest.raises(AssertionError, match="app shutdown failed: could not flush the queue"):
        async with TestClient(app):
            pass
