"""Server-Sent Events: one-way streams that are members like WebSocket connections.

    sse = SSERouter()

    @sse.route("/events/{room}")
    async def follow(stream: Stream, room: str) -> None:
        await rooms.add(stream)  # group broadcasts now reach this stream

An SSE endpoint is the connect handler of a stream: the same dependency injection as
`@ws.route` (path and query parameters, the Django user and session, `Depends`, handshake
checks such as the Origin allow-list), joining groups before the response starts. After
it returns, group broadcasts and direct messages reach the stream as `data:` events,
exactly as they reach WebSocket members.

The stream runs through the same `Session` as a WebSocket connection, behind an ASGI
translation (`SSEChannel`): the response starts where a WebSocket is accepted, a frame
is an event, the heartbeat ping is a keep-alive comment (a write that succeeds counts
as the pong: an SSE client cannot answer), the close is a last `$close` event. So the
outbox, limits, heartbeat, drain and teardown are the WebSocket ones.

Resuming: a frame of a history group carries its `$pos`; the stream's event `id` is the
positions of every history group it got frames of, as the `$since` JSON. The browser
sends it back as `Last-Event-ID` when it reconnects by itself, and the stream is
recovered like a WebSocket with `$since`: a `$recovery` event, the missed messages, live
ones. A slow stream is closed (`$close` 4008) rather than having frames dropped, so its
reconnection recovers every frame it missed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import quote

from .connection import Connection
from .history import SINCE_PARAM, parse_since
from .messages import close_event
from .routing import RouteSpec, WebSocketRouter
from .timing import PING, Heartbeat, Timeouts
from .types import Message, Receive, Scope, Send

__all__ = ["SSEChannel", "SSEOptions", "SSERouter", "Stream", "last_event_scope"]

logger = logging.getLogger("rtframe")

F = TypeVar("F", bound=Callable[..., Any])

#: The headers of every stream: the type, and what proxies need not to cache or buffer it.
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]
#: What the session reads after a keep-alive comment was written (see `SSEChannel`).
_PONG: Message = {"type": "websocket.receive", "text": '{"type":"$pong"}'}
_POS = '"$pos":'


class Stream(Connection):
    """One SSE stream: a `Connection` that only sends. Annotate a parameter with it (or
    with `Connection`) to receive it; `accept()` starts the response (a connect handler
    that returns without closing accepts, as on a WebSocket)."""

    __slots__ = ()


@dataclass(frozen=True, slots=True)
class SSEOptions:
    """How a route's streams behave.

    Args:
        keepalive: seconds between keep-alive comments on a quiet stream (proxies close
            idle responses, commonly after 60 s).
        retry: the reconnection delay the browser is told, seconds; each stream gets its
            own, between half and one and a half of it, so a restart's reconnections
            spread out.
    """

    keepalive: float = 15.0
    retry: float = 2.0


class SSERouter:
    """Collects SSE endpoints by path; include it in a `RealtimeApp` like a WebSocketRouter."""

    def __init__(self, prefix: str = "") -> None:
        self._router = WebSocketRouter(prefix)
        self.options: dict[str, SSEOptions] = {}

    @property
    def routes(self) -> list[RouteSpec]:
        return self._router.routes

    def add_route(
        self,
        path: str,
        fn: Callable[..., Any],
        *,
        keepalive: float = 15.0,
        retry: float = 2.0,
        timeouts: Timeouts | None = None,
    ) -> None:
        """Register `fn` as the endpoint of `path`: it runs when a client opens the stream."""
        if keepalive <= 0 or retry <= 0:
            raise ValueError("keepalive and retry must be positive seconds")
        self._router.add_connect_handler(
            path, fn, heartbeat=Heartbeat(interval=keepalive, timeout=keepalive), timeouts=timeouts
        )
        self.options[self._router.prefix + path] = SSEOptions(keepalive, retry)

    def route(
        self,
        path: str,
        *,
        keepalive: float = 15.0,
        retry: float = 2.0,
        timeouts: Timeouts | None = None,
    ) -> Callable[[F], F]:
        """Decorate the endpoint of `path` (see `add_route`)."""

        def decorator(fn: F) -> F:
            self.add_route(path, fn, keepalive=keepalive, retry=retry, timeouts=timeouts)
            return fn

        return decorator


def last_event_scope(scope: Scope) -> Scope:
    """The scope with the browser's `Last-Event-ID` turned into `$since` (when it has one
    and the query names no `$since` itself); a malformed id is logged and ignored."""
    last: bytes | None = None
    for name, value in scope.get("headers", ()):
        if name.lower() == b"last-event-id":
            last = value
    if not last or b"since" in scope.get("query_string", b""):
        return scope
    text = last.decode("latin-1")
    try:
        parse_since(text)
    except ValueError as exc:
        logger.warning(
            "ignored the Last-Event-ID of a stream on %s (%s): it starts without a position",
            scope.get("path"),
            exc,
        )
        return scope
    query = scope.get("query_string", b"")
    extra = f"{quote(SINCE_PARAM)}={quote(text)}".encode()
    return {**scope, "query_string": query + b"&" + extra if query else extra}


class SSEChannel:
    """Speaks the WebSocket side of ASGI to a `Session`, and HTTP to the server."""

    __slots__ = (
        "_connected",
        "_ended",
        "_pong",
        "_positions",
        "_reading",
        "_receive",
        "_send",
        "_started",
        "_wake",
        "options",
    )

    def __init__(self, receive: Receive, send: Send, options: SSEOptions | None = None) -> None:
        self._receive = receive
        self._send = send
        self.options = options or SSEOptions()
        self._connected = self._started = self._ended = self._pong = False
        self._positions: dict[str, dict[str, Any]] = {}
        self._reading: asyncio.Task[Message] | None = None
        self._wake: asyncio.Future[None] | None = None

    # -- what the session reads ---------------------------------------------------------

    async def receive(self) -> Message:
        if not self._connected:
            self._connected = True
            return {"type": "websocket.connect"}
        while True:
            if self._pong and not self._ended:
                self._pong = False
                return _PONG
            if self._ended:  # the response is complete: the stream is over
                if self._reading is not None:
                    self._reading.cancel()
                    self._reading = None
                return {"type": "websocket.disconnect", "code": 1000}
            if self._reading is None:
                self._reading = asyncio.ensure_future(self._receive())
            self._wake = asyncio.get_running_loop().create_future()
            await asyncio.wait((self._reading, self._wake), return_when=asyncio.FIRST_COMPLETED)
            self._wake = None
            if self._reading.done():
                message = self._reading.result()
                self._reading = None
                if message["type"] == "http.disconnect":
                    return {"type": "websocket.disconnect", "code": 1001}
                # a request body on a stream: read and forgotten

    # -- what the session sends ---------------------------------------------------------

    async def send(self, message: Message) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            text = message.get("text")
            if text is None:
                logger.warning("a binary frame cannot go out on an SSE stream; not sent")
                return
            await self._event(text)
        elif kind == "websocket.accept":
            self._started = True
            retry = int(self.options.retry * 1000 * (0.5 + random.random()))
            await self._send({"type": "http.response.start", "status": 200, "headers": HEADERS})
            await self._body(b"retry: %d\n\n" % retry)
        elif kind == "websocket.close":
            await self._close(message.get("code", 1000), message.get("reason") or "")
        elif kind == "websocket.http.response.start":
            await self._send({**message, "type": "http.response.start"})
        elif kind == "websocket.http.response.body":
            self._ended = not message.get("more_body", False)
            await self._send({**message, "type": "http.response.body"})

    async def _event(self, text: str) -> None:
        if text == PING:  # the heartbeat: a comment, and its successful write the pong
            await self._body(b": ping\n\n")
            self._pong = True
            if self._wake is not None and not self._wake.done():
                self._wake.set_result(None)
            return
        lines = []
        at = text.rfind(_POS)
        if at > 0 or text.startswith('{"type":"$recovery"'):
            self._remember(text, at)
            lines.append("id: " + json.dumps(self._positions, separators=(",", ":")))
        if text.startswith('{"type":"$reconnect"'):  # a drain: come back after this delay
            lines.append(f"retry: {json.loads(text).get('after_ms', 0)}")
        lines.extend("data: " + line for line in text.split("\n"))
        await self._body(("\n".join(lines) + "\n\n").encode())

    def _remember(self, text: str, at: int) -> None:
        try:
            if at > 0:
                pos = json.loads(text[at + len(_POS) : -1])
            else:  # recovered: false moves the stream to where the group is now
                pos = json.loads(text)
            self._positions[pos["group"]] = {"epoch": pos["epoch"], "offset": pos["offset"]}
        except (ValueError, KeyError, TypeError):
            logger.warning("a frame with a malformed position on an SSE stream: %.80r", text)

    async def _close(self, code: int, reason: str) -> None:
        if self._ended:
            return
        if not self._started:  # refused before the response started
            status = 403 if code != 1013 else 503
            await self._send({"type": "http.response.start", "status": status, "headers": []})
            self._ended = True
            await self._send({"type": "http.response.body", "body": b""})
            return
        frame = close_event(code, reason)
        self._ended = True
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)
        await self._send(
            {
                "type": "http.response.body",
                "body": f"data: {frame}\n\n".encode(),
                "more_body": False,
            }
        )

    async def _body(self, body: bytes) -> None:
        await self._send({"type": "http.response.body", "body": body, "more_body": True})
