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
from asyncio import FIRST_COMPLETED
from collections.abc import Awaitable, Mapping, Sequence
from types import TracebackType
from typing import Any

from .types import ASGIApp, Message, Scope

__all__ = [
    "HTTPResult",
    "HTTPStream",
    "HandshakeRejected",
    "TestClient",
    "WebSocketClosed",
    "WebSocketSession",
]


async def _run(call: Awaitable[None]) -> None:
    await call


async def _next_from_app(
    queue: asyncio.Queue[Message],
    task: asyncio.Task[None],
    timeout: float,
    waiting_for: str,
    scope: Scope,
) -> Message:
    """The app's next message; if the app ends first, what it raised or an assertion
    naming what it never sent; an assertion after `timeout` seconds."""
    getter = asyncio.ensure_future(queue.get())
    done, _ = await asyncio.wait({getter, task}, timeout=timeout, return_when=FIRST_COMPLETED)
    if getter in done:
        return getter.result()
    getter.cancel()
    if task in done:
        if not queue.empty():
            return queue.get_nowait()
        task.result()  # re-raises what the app raised
        raise AssertionError(f"the app finished without sending {waiting_for}")
    raise AssertionError(f"timed out after {timeout}s waiting for {waiting_for} on {scope['path']}")


class _CloseInfo(Exception):
    """The close code and reason an app sent; shared by the two exceptions below."""

    def __init__(self, what: str, code: int, reason: str) -> None:
        super().__init__(f"{what} with close code {code}{f': {reason}' if reason else ''}")
        self.code = code
        self.reason = reason


class HandshakeRejected(_CloseInfo):
    """The app refused the WebSocket handshake (a real server would answer HTTP 403)."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__("handshake rejected", code, reason)


class WebSocketClosed(_CloseInfo, AssertionError):
    """The app closed the connection while the test expected a message."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__("the app closed the connection", code, reason)


class HTTPResult:
    """Status, headers and body of one in-process HTTP request."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


def _build_headers(
    base: Mapping[str, str], headers: Mapping[str, str] | None, cookies: Mapping[str, str] | None
) -> list[tuple[bytes, bytes]]:
    merged = {k.lower(): v for k, v in base.items()}
    merged.update({k.lower(): v for k, v in (headers or {}).items()})
    if cookies:
        # sent as given, like a browser: cookie values are opaque (signed sessions hold ':')
        merged["cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in merged.items()]


class WebSocketSession:
    """The client side of one in-process WebSocket connection."""

    def __init__(self, app: ASGIApp, scope: dict[str, Any], timeout: float) -> None:
        self.app = app
        self.scope = scope
        self.timeout = timeout
        self.accepted = False
        self.subprotocol: str | None = None
        self.response_headers: dict[str, str] = {}
        self.close_code: int | None = None
        self.close_reason = ""
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._client_closed = False

    async def _app_receive(self) -> Message:
        return await self._to_app.get()

    async def _app_send(self, message: Message) -> None:
        if message["type"] == "websocket.close" and self.accepted:
            # what a server does after a close frame: the app's next receive says disconnected
            self._to_app.put_nowait(
                {"type": "websocket.disconnect", "code": message.get("code", 1000)}
            )
        self._from_app.put_nowait(message)

    async def connect(self) -> None:
        """Open the connection; raises HandshakeRejected if the app refuses it."""
        self._task = asyncio.create_task(
            _run(self.app(self.scope, self._app_receive, self._app_send))
        )
        self._to_app.put_nowait({"type": "websocket.connect"})
        message = await self._next("the handshake answer (accept or close)")
        if message["type"] == "websocket.accept":
            self.accepted = True
            self.subprotocol = message.get("subprotocol")
            self.response_headers = {
                k.decode("latin-1"): v.decode("latin-1") for k, v in message.get("headers") or ()
            }
            return
        if message["type"] == "websocket.close":
            self.close_code = message.get("code", 1000)
            self.close_reason = message.get("reason") or ""
            await self._wait_app()
            raise HandshakeRejected(self.close_code or 1000, self.close_reason)
        raise AssertionError(f"unexpected handshake answer from the app: {message!r}")

    async def _next(self, waiting_for: str, timeout: float | None = None) -> Message:
        if not self._from_app.empty():
            return self._from_app.get_nowait()
        assert self._task is not None, "connect() first"
        limit = self.timeout if timeout is None else timeout
        return await _next_from_app(self._from_app, self._task, limit, waiting_for, self.scope)

    async def _wait_app(self) -> None:
        if self._task is None:
            return
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self.timeout)
        except TimeoutError:
            self._task.cancel()
            raise AssertionError(
                f"the app did not finish within {self.timeout}s after the connection ended"
            ) from None

    # -- sending ----------------------------------------------------------------------

    async def send_text(self, text: str) -> None:
        self._check_open()
        self._to_app.put_nowait({"type": "websocket.receive", "text": text})

    async def send_bytes(self, data: bytes) -> None:
        self._check_open()
        self._to_app.put_nowait({"type": "websocket.receive", "bytes": data})

    async def send_json(self, data: Any) -> None:
        await self.send_text(json.dumps(data))

    def _check_open(self) -> None:
        if not self.accepted or self._client_closed or self.close_code is not None:
            raise AssertionError("the WebSocket is not open")

    # -- receiving --------------------------------------------------------------------

    async def receive(self, timeout: float | None = None) -> Message:
        """The next raw ASGI message the app sent (websocket.send or websocket.close)."""
        message = await self._next("a message from the app", timeout)
        if message["type"] == "websocket.close":
            self.close_code = message.get("code", 1000)
            self.close_reason = message.get("reason") or ""
        return message

    async def receive_text(self, timeout: float | None = None) -> str:
        message = await self.receive(timeout)
        if message["type"] == "websocket.close":
            raise WebSocketClosed(self.close_code or 1000, self.close_reason)
        if message.get("text") is None:
            raise AssertionError(f"expected a text frame, got {message!r}")
        return str(message["text"])

    async def receive_bytes(self, timeout: float | None = None) -> bytes:
        message = await self.receive(timeout)
        if message["type"] == "websocket.close":
            raise WebSocketClosed(self.close_code or 1000, self.close_reason)
        if message.get("bytes") is None:
            raise AssertionError(f"expected a binary frame, got {message!r}")
        return bytes(message["bytes"])

    async def receive_json(self, timeout: float | None = None) -> Any:
        return json.loads(await self.receive_text(timeout))

    async def receive_nothing(self, within: float = 0.05) -> None:
        """Assert the app sends nothing for `within` seconds."""
        await asyncio.sleep(within)
        if not self._from_app.empty():
            raise AssertionError(f"expected no message, got {self._from_app.get_nowait()!r}")

    async def expect_close(self, code: int | None = None, timeout: float | None = None) -> int:
        """Wait for the app to close the connection, skipping data frames; check the code."""
        while True:
            message = await self.receive(timeout)
            if message["type"] == "websocket.close":
                break
        assert self.close_code is not None
        if code is not None and self.close_code != code:
            raise AssertionError(
                f"expected close code {code}, got {self.close_code} ({self.close_reason!r})"
            )
        await self._wait_app()
        return self.close_code

    async def close(self, code: int = 1000) -> None:
        """Disconnect as a client and wait for the app to finish its teardown."""
        if self._client_closed:
            return
        self._client_closed = True
        if self.close_code is None:
            self._to_app.put_nowait({"type": "websocket.disconnect", "code": code})
        await self._wait_app()


class _WebSocketContext:
    def __init__(self, session: WebSocketSession) -> None:
        self.session = session

    async def __aenter__(self) -> WebSocketSession:
        await self.session.connect()
        return self.session

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.session.close()


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
        self._lifespan = asyncio.create_task(_run(self.app(scope, receive, send)))
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


class HTTPStream:
    """The client side of one in-process HTTP request, its response read as it comes."""

    def __init__(self, app: ASGIApp, scope: dict[str, Any], body: bytes, timeout: float) -> None:
        self.app, self.scope, self.timeout = app, scope, timeout
        self._body: bytes | None = body
        self.status = 0
        self.headers: dict[str, str] = {}
        self.ended = False  #: the app sent the last body chunk
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._gone = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _receive(self) -> Message:
        if self._body is not None:
            body, self._body = self._body, None
            return {"type": "http.request", "body": body, "more_body": False}
        await self._gone.wait()  # the request is complete: wait like a server would
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        self._from_app.put_nowait(message)

    async def _next(self, waiting_for: str) -> Message:
        assert self._task is not None
        return await _next_from_app(
            self._from_app, self._task, self.timeout, waiting_for, self.scope
        )

    async def __aenter__(self) -> HTTPStream:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    async def start(self) -> None:
        self._task = asyncio.create_task(_run(self.app(self.scope, self._receive, self._send)))
        start = await self._next("the response start")
        if start["type"] != "http.response.start":
            raise AssertionError(f"expected http.response.start, got {start!r}")
        self.status = start["status"]
        self.headers = {
            k.decode("latin-1"): v.decode("latin-1") for k, v in start.get("headers", ())
        }

    async def receive_chunk(self) -> bytes:
        """The next body chunk the app sent (b"" once the body ended)."""
        while not self.ended:
            message = await self._next("a body chunk")
            self.ended = not message.get("more_body", False)
            if message.get("body") or self.ended:
                return bytes(message.get("body", b""))
        return b""

    async def read(self) -> bytes:
        """The rest of the body, until the app ends it."""
        chunks = []
        while not self.ended:
            chunks.append(await self.receive_chunk())
        return b"".join(chunks)

    async def disconnect(self) -> None:
        """Go away as a client (`http.disconnect`) and wait for the app to finish."""
        self._gone.set()
        if self._task is not None:
            await asyncio.wait_for(self._task, self.timeout)
