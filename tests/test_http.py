"""HTTP routes of the app itself, the fallback app, and the lifespan protocol."""

from rtframe import HTMLResponse, JSONResponse, RealtimeApp, Request
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
