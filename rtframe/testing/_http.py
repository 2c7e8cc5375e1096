"""The client side of one in-process HTTP request."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from ..types import ASGIApp, Message
from ._wait import next_from_app, run_app

__all__ = ["HTTPResult", "HTTPStream"]


class HTTPResult:
    """Status, headers and body of one in-process HTTP request."""

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    @property
    def text(self) -> str:
        return self.body.decode()

    def json(self) -> Any:
        return json.loads(self.body)


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
        return await next_from_app(
            self._from_app, self._task, self.timeout, waiting_for, self.scope
        )

    async def __aenter__(self) -> HTTPStream:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.disconnect()

    async def start(self) -> None:
        self._task = asyncio.create_task(run_app(self.app(self.scope, self._receive, self._send)))
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
