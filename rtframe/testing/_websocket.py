"""The client side of one in-process WebSocket connection."""

from __future__ import annotations

import asyncio
import json
from types import TracebackType
from typing import Any

from ..types import ASGIApp, Message
from ._wait import next_from_app, run_app

__all__ = ["HandshakeRejected", "WebSocketClosed", "WebSocketSession"]


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
            run_app(self.app(self.scope, self._app_receive, self._app_send))
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
        return await next_from_app(self._from_app, self._task, limit, waiting_for, self.scope)

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
        """Send a text frame to the app.

        Raises:
            AssertionError: the WebSocket is not open.
        """
        self._check_open()
        self._to_app.put_nowait({"type": "websocket.receive", "text": text})

    async def send_bytes(self, data: bytes) -> None:
        """Send a binary frame to the app.

        Raises:
            AssertionError: the WebSocket is not open.
        """
        self._check_open()
        self._to_app.put_nowait({"type": "websocket.receive", "bytes": data})

    async def send_json(self, data: Any) -> None:
        """Send `data` encoded as JSON, in a text frame."""
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
        """The next text frame the app sent.

        Raises:
            WebSocketClosed: the app closed the connection instead.
            AssertionError: the next frame is binary, or none came within the timeout.
        """
        return str(await self._frame("text", timeout))

    async def receive_bytes(self, timeout: float | None = None) -> bytes:
        """The next binary frame the app sent.

        Raises:
            WebSocketClosed: the app closed the connection instead.
            AssertionError: the next frame is text, or none came within the timeout.
        """
        return bytes(await self._frame("bytes", timeout))

    async def _frame(self, kind: str, timeout: float | None) -> Any:
        """The payload of the next frame, which must be of `kind` ("text" or "bytes")."""
        message = await self.receive(timeout)
        if message["type"] == "websocket.close":
            raise WebSocketClosed(self.close_code or 1000, self.close_reason)
        if message.get(kind) is None:
            frame = "text" if kind == "text" else "binary"
            raise AssertionError(f"expected a {frame} frame, got {message!r}")
        return message[kind]

    async def receive_json(self, timeout: float | None = None) -> Any:
        """The next text frame the app sent, decoded from JSON."""
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
