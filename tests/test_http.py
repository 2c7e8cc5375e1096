"""HTTP routes of the app itself, the fallback app, the lifespan protocol, and the
request and response objects."""

import asyncio
from collections.abc import AsyncIterator

import pytest

from rtframe import (
    Connection,
    ConnectionStateError,
    HTMLResponse,
    JSONResponse,
    RealtimeApp,
    Request,
    Response,
    WebSocketRouter,
)
from rtframe.http import ClientDisconnectedError, HTTPError, StreamingResponse
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


async def test_a_request_reads_its_body_once_within_its_limit() -> None:
    chunks: list[Message] = [
        {"type": "http.request", "body": b'{"a":', "more_body": True},
        {"type": "http.request", "body": b"1}", "more_body": False},
    ]

    async def receive() -> Message:
        return chunks.pop(0)

    request = Request({"type": "http", "method": "PUT", "path": "/x", "headers": []}, receive)
    assert request.method == "PUT"
    assert await request.body() == b'{"a":1}'
    assert await request.body() == b'{"a":1}'  # read once, kept
    assert isinstance(request, Connection)  # dependencies written for sockets take it

    small = Request(
        {"type": "http", "path": "/x", "headers": [(b"content-length", b"10")]}, max_body_size=4
    )
    with pytest.raises(HTTPError) as too_big:
        await small.body()
    assert (too_big.value.status, too_big.value.code) == (413, "content_too_large")

    gone = Request({"type": "http", "path": "/x", "headers": []})  # no receive: disconnected
    with pytest.raises(ClientDisconnectedError):
        await gone.body()
    with pytest.raises(ConnectionStateError, match="return a Response instead"):
        await gone.accept()
    with pytest.raises(ConnectionStateError, match="return a Response instead"):
        await gone.send_text("frame")
    gone.deliver("a broadcast")  # not a member: dropped, never raises


def test_http_error_defaults_and_responses_without_content() -> None:
    error = HTTPError(404)
    assert (error.detail, error.code, repr(error)) == (
        "Not Found",
        "not_found",
        "HTTPError(status=404, detail='Not Found')",
    )
    assert HTTPError(499).code == "error"  # a status Python does not name
    assert "content-type" not in Response(status=204).headers
    assert Response("x").headers["content-type"] == "text/plain; charset=utf-8"


async def test_a_streaming_response_is_a_plain_asgi_app() -> None:
    sent: list[Message] = []
    left = asyncio.Event()

    async def receive() -> Message:
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if len(sent) == 3:
            left.set()  # the client goes away after two chunks

    async def endless() -> AsyncIterator[bytes]:
        while True:
            yield b"x"
            await asyncio.sleep(0)

    response = StreamingResponse(endless(), headers={"x-a": "1"}, media_type="text/csv")
    await asyncio.wait_for(response({"type": "http", "method": "GET"}, receive, send), 1)
    assert sent[0]["headers"] == [(b"x-a", b"1"), (b"content-type", b"text/csv")]
    assert all(m.get("more_body") for m in sent[1:3])
