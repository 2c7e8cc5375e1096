"""Drive an app's SSE endpoint in-process: an ASGI HTTP request whose response body is
read event by event, and a disconnect the test decides."""

from __future__ import annotations

import asyncio
from typing import Any

from rtframe.types import ASGIApp, Message


class SSEClient:
    """One GET request to an SSE endpoint, served by `app` on this event loop."""

    def __init__(
        self,
        app: ASGIApp,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        send_gate: asyncio.Event | None = None,
    ) -> None:
        path, _, query = path.partition("?")
        self.scope: dict[str, Any] = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": query.encode(),
            "headers": [
                (k.encode(), v.encode())
                for k, v in {
                    "host": "testserver",
                    "origin": "http://testserver",
                    **{k.lower(): v for k, v in (headers or {}).items()},
                }.items()
            ],
            "client": ("127.0.0.1", 50000),
            "server": ("testserver", 80),
            "state": {},
        }
        self._inbox: asyncio.Queue[Message] = asyncio.Queue()
        self._out: asyncio.Queue[Message] = asyncio.Queue()
        self._gate = send_gate  # while cleared, the "network" does not take writes
        self._buffer = b""
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.ended = False
        self.task = asyncio.ensure_future(app(self.scope, self._inbox.get, self._send))

    async def _send(self, message: Message) -> None:
        if self._gate is not None:
            await self._gate.wait()
        await self._out.put(message)

    async def start(self, timeout: float = 2.0) -> int:
        message = await asyncio.wait_for(self._out.get(), timeout)
        assert message["type"] == "http.response.start", message
        self.status = message["status"]
        self.headers = {k.decode(): v.decode() for k, v in message.get("headers", [])}
        return self.status

    async def chunk(self, timeout: float = 2.0) -> bytes:
        message = await asyncio.wait_for(self._out.get(), timeout)
        assert message["type"] == "http.response.body", message
        if not message.get("more_body", False):
            self.ended = True
        return bytes(message.get("body", b""))

    async def event(self, timeout: float = 2.0) -> dict[str, str]:
        """The next event (comments included, as {"comment": ...}), fields by name."""
        while b"\n\n" not in self._buffer:
            if self.ended:
                raise EOFError("the stream ended")
            self._buffer += await self.chunk(timeout)
        raw, self._buffer = self._buffer.split(b"\n\n", 1)
        fields: dict[str, str] = {}
        for line in raw.decode().split("\n"):
            if line.startswith(":"):
                fields["comment"] = line[1:].strip()
                continue
            name, _, value = line.partition(": ")
            fields[name] = f"{fields[name]}\n{value}" if name in fields else value
        return fields

    async def nothing(self, within: float = 0.1) -> None:
        try:
            message = await asyncio.wait_for(self._out.get(), within)
        except TimeoutError:
            return
        raise AssertionError(f"unexpected {message!r}")

    async def disconnect(self) -> None:
        await self._inbox.put({"type": "http.disconnect"})
        await asyncio.wait_for(self.task, 2)
