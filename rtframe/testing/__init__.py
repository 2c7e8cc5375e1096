"""Test an rtframe app in-process: no sockets, no server, plain `async def` tests.

    async with TestClient(app) as client:                # runs startup and shutdown
        async with client.websocket("/ws/chat/lobby") as ws:
            await ws.send_json({"type": "say", "text": "hi"})
            assert (await ws.receive_json())["text"] == "hi"

Every wait has a timeout (2 s unless told otherwise) and fails the test with a message
saying what it was waiting for, so a missing reply is a red test, never a hung run.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping, Sequence
from types import TracebackType
from typing import Any

from ..types import ASGIApp, Message
from ._http import HTTPResult, HTTPStream
from ._wait import run_app
from ._websocket import HandshakeRejected, WebSocketClosed, WebSocketSession, _WebSocketContext

__all__ = [
    "HTTPResult",
    "HTTPStream",
    "HandshakeRejected",
    "TestClient",
    "WebSocketClosed",
    "WebSocketSession",
]


def _build_headers(
    base: Mapping[str, str], headers: Mapping[str, str] | None, cookies: Mapping[str, str] | None
) -> list[tuple[bytes, bytes]]:
    merged = {k.lower(): v for k, v in base.items()}
    merged.update({k.lower(): v for k, v in (headers or {}).items()})
    if cookies:
        # sent as given, like a browser: cookie values are opaque (signed sessions hold ':')
        merged["cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in merged.items()]


class TestClient:
    """Drive an ASGI app (normally a RealtimeApp) in-process.

    Use it as `async with TestClient(app) as client:` to run the app's lifespan startup
    and shutdown around the test; without `async with`, the app starts on first use.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: ASGIApp,
        *,
        timeout: float = 2.0,
        headers: Mapping[str, str] | None = None,
        client: tuple[str, int] = ("testclient", 50000),
    ) -> None:
        self.app = app
        self.timeout = timeout
        self.headers = {"host": "testserver", "origin": "http://testserver", **(headers or {})}
        self.client = client
        self._lifespan: asyncio.Task[None] | None = None
        self._state: dict[str, Any] = {}
        self._lifespan_in: asyncio.Queue[Message] = asyncio.Queue()
        self._lifespan_out: asyncio.Queue[Message] = asyncio.Queue()

    async def __aenter__(self) -> TestClient:
        async def receive() -> Message:
            return await self._lifespan_in.get()

        async def send(message: Message) -> None:
            self._lifespan_out.put_nowait(message)

        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": self._state}
        self._lifespan = asyncio.create_task(run_app(self.app(scope, receive, send)))
        self._lifespan_in.put_nowait({"type": "lifespan.startup"})
        answer = await asyncio.wait_for(self._lifespan_out.get(), self.timeout)
        if answer["type"] != "lifespan.startup.complete":
            raise AssertionError(f"app startup failed: {answer.get('message', answer)}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._lifespan is None:
            return
        self._lifespan_in.put_nowait({"type": "lifespan.shutdown"})
        answer = await asyncio.wait_for(self._lifespan_out.get(), self.timeout)
        await asyncio.wait_for(self._lifespan, self.timeout)
        if answer["type"] != "lifespan.shutdown.complete" and exc is None:
            raise AssertionError(f"app shutdown failed: {answer.get('message', answer)}")

    def _scope(
        self,
        kind: str,
        path: str,
        headers: Mapping[str, str] | None,
        cookies: Mapping[str, str] | None,
    ) -> dict[str, Any]:
        path, _, query = path.partition("?")
        return {
            "type": kind,
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "scheme": "ws" if kind == "websocket" else "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": query.encode(),
            "headers": _build_headers(self.headers, headers, cookies),
            "client": self.client,
            "server": ("testserver", 80),
            "state": dict(self._state),  # what lifespan kept there, copied as servers do
        }

    def websocket(
        self,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
        subprotocols: Sequence[str] = (),
        timeout: float | None = None,
    ) -> _WebSocketContext:
        """Open a WebSocket: `async with client.websocket("/ws/x") as ws:`."""
        scope = self._scope("websocket", path, headers, cookies)
        scope["subprotocols"] = list(subprotocols)
        return _WebSocketContext(
            WebSocketSession(self.app, scope, self.timeout if timeout is None else timeout)
        )

    def _http_scope(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None,
        cookies: Mapping[str, str] | None,
        body: bytes,
        json_body: Any,
    ) -> tuple[dict[str, Any], bytes]:
        extra = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            extra.setdefault("content-type", "application/json")
        if body:
            extra.setdefault("content-length", str(len(body)))
        scope = self._scope("http", path, extra, cookies)
        scope["method"] = method.upper()
        return scope, body

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes = b"",
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
    ) -> HTTPResult:
        """Make one HTTP request in-process (`json` is sent as an application/json body)."""
        async with self.stream(
            method, path, json=json, content=content, headers=headers, cookies=cookies
        ) as response:
            body = await response.read()
        return HTTPResult(response.status, response.headers, body)

    async def get(
        self,
        path: str,
        *,
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
    ) -> HTTPResult:
        """Make one HTTP GET request in-process."""
        return await self.request("GET", path, headers=headers, cookies=cookies)

    def stream(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content: bytes = b"",
        headers: Mapping[str, str] | None = None,
        cookies: Mapping[str, str] | None = None,
    ) -> HTTPStream:
        """Read a response chunk by chunk: `async with client.stream("GET", "/x") as r:`.

        Leaving the block before the body ended disconnects, as a client that goes away.
        """
        scope, body = self._http_scope(method, path, headers, cookies, content, json)
        return HTTPStream(self.app, scope, body, self.timeout)
