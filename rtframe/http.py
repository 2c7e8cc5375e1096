"""HTTP requests and responses: what an HTTP route handler receives and returns.

A `Request` is a `Connection` (the per-request object of the dependency injection), so
a dependency written for WebSocket handlers (one that reads headers, cookies, path or
query parameters, the Django user and session) serves HTTP routes unchanged. What only a
WebSocket can do (`accept`, `send`) raises `ConnectionStateError` on a request; `close`
ends the request's streaming response, if it has one.

Responses are plain ASGI callables: `Response` (a complete body), `JSONResponse`,
`HTMLResponse`, and `StreamingResponse` (a body produced by an async iterator, stopped
when the client disconnects). Raise `HTTPError` to answer with an error status.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from pydantic_core import to_json

from .connection import Connection, ConnectionState
from .exceptions import ConnectionStateError
from .messages import error_frame

if TYPE_CHECKING:
    from .hub import Hub
    from .types import Message, Receive, Scope, Send

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "ClientDisconnectedError",
    "Endpoint",
    "HTMLResponse",
    "HTTPError",
    "JSONResponse",
    "Request",
    "Response",
    "StreamingResponse",
    "error_response",
    "method_not_allowed",
    "not_found",
]

logger = logging.getLogger("rtframe.http")

#: The largest request body read by default (bytes); bigger ones are answered with 413.
DEFAULT_MAX_BODY_SIZE = 1024 * 1024


async def _nothing_to_receive() -> Message:
    return {"type": "http.disconnect"}


async def _cannot_send(message: Message) -> None:
    raise ConnectionStateError("this Request was made without an ASGI send callable")


class ClientDisconnectedError(ConnectionStateError):
    """The client went away before its request body was complete."""


class HTTPError(Exception):
    """Raise it from an HTTP handler or a dependency to answer with an error status.

    The client gets `{"type": "error", "code": code, "detail": detail, "errors": []}`
    with `status`; `code` defaults to the status phrase in snake case ("not_found"), and
    `detail` to the phrase. Both reach the client verbatim: keep secrets out.
    """

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        phrase = _phrase(status)
        super().__init__(detail or phrase)
        self.status = status
        self.detail = detail or phrase
        self.code = code or phrase.lower().replace(" ", "_").replace("-", "_")
        self.headers = dict(headers or {})

    def __repr__(self) -> str:
        return f"HTTPError(status={self.status}, detail={self.detail!r})"

    def response(self) -> Response:
        return error_response(self.status, self.code, self.detail, headers=self.headers)


def _too_large(limit: int) -> HTTPError:
    # named here: the phrase of 413 differs between Python versions (RFC 9110 renamed it)
    return HTTPError(
        413, f"The request body is larger than {limit} bytes", code="content_too_large"
    )


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class Request(Connection):
    """One HTTP request: its method, path, headers, query and body.

    Handlers receive it by annotating a parameter with `Request`; dependencies annotated
    with `Connection` receive it too. `path_params` holds the converted path parameters.
    """

    __slots__ = ("_body", "_ended", "max_body_size")

    def __init__(
        self,
        scope: Scope,
        receive: Receive = _nothing_to_receive,
        send: Send = _cannot_send,
        *,
        hub: Hub | None = None,
        path_params: dict[str, Any] | None = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
    ) -> None:
        super().__init__(scope, receive, send, hub=hub, path_params=path_params)
        self.max_body_size = max_body_size
        self._body: bytes | None = None
        self._ended: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path!r}>"

    @property
    def method(self) -> str:
        return str(self.scope.get("method", "GET"))

    async def body(self) -> bytes:
        """The whole request body, read once (later calls return the same bytes).

        Raises:
            HTTPError: 413 when it is bigger than `max_body_size`.
            ClientDisconnectedError: the client went away before sending all of it.
        """
        if self._body is not None:
            return self._body
        limit = self.max_body_size
        declared = self.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise _too_large(limit)
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientDisconnectedError(f"{self!r}: the client left during the body")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:  # no (or a false) Content-Length: counted as it arrives
                raise _too_large(limit)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        self._body = b"".join(chunks)
        return self._body

    # -- what only a WebSocket can do ---------------------------------------------------

    async def accept(
        self, subprotocol: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        raise ConnectionStateError(f"{self!r} is an HTTP request: return a Response instead")

    async def send(self, message: Any) -> None:
        raise ConnectionStateError(f"{self!r} is an HTTP request: return a Response instead")

    async def send_text(self, text: str) -> None:
        await self.send(text)

    async def send_bytes(self, data: bytes) -> None:
        await self.send(data)

    def deliver(self, data: str | bytes) -> None:
        """A request is no group member: frames for it are dropped (use an SSE stream)."""

    # -- ending ---------------------------------------------------------------------------

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """End the request's streaming response now (its body ends cleanly); a no-op for
        a buffered one. Called by the Django integration when the user's session ends."""
        if self.state_ is ConnectionState.CLOSED:
            return
        logger.info("ending %r: %s (code %d)", self, reason or "closed", code)
        self.mark_disconnected(code)

    async def abort(self, code: int, reason: str, timeout: float = 1.0) -> None:
        await self.close(code, reason)

    def mark_disconnected(self, code: int | None) -> None:
        if self.close_code is None:
            self.close_code = code
        self.state_ = ConnectionState.CLOSED
        if self._ended is not None:
            self._ended.set()

    @property
    def ended(self) -> bool:
        """True once the request was closed (`close`) or its client disconnected."""
        return self.state_ is ConnectionState.CLOSED

    async def receive_until_ended(self) -> Message:
        """The next ASGI message, or `http.disconnect` as soon as the request is closed."""
        if self._ended is None:
            self._ended = asyncio.Event()
        if self.state_ is ConnectionState.CLOSED:
            return {"type": "http.disconnect"}
        reading = asyncio.ensure_future(self.receive())
        ending = asyncio.ensure_future(self._ended.wait())
        try:
            await asyncio.wait((reading, ending), return_when=asyncio.FIRST_COMPLETED)
        finally:
            ending.cancel()
            if not reading.done():
                reading.cancel()
        if reading.done() and not reading.cancelled():
            message = reading.result()
            if message["type"] == "http.disconnect":
                self.mark_disconnected(None)
            return message
        return {"type": "http.disconnect"}


def _encode_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


class Response:
    """A complete HTTP response body with its status and headers."""

    media_type = "text/plain; charset=utf-8"

    def __init__(
        self,
        content: str | bytes = b"",
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str | None = None,
    ) -> None:
        self.body = content.encode() if isinstance(content, str) else content
        self.status = status
        self.headers = dict(headers or {})
        if status not in (204, 304) or media_type is not None:  # 204/304 carry no content
            self.headers.setdefault("content-type", media_type or self.media_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = _encode_headers(self.headers)
        if self.status >= 200 and self.status not in (204, 304):  # RFC 9110 8.6
            headers.append((b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send(
            {
                "type": "http.response.body",
                "body": b"" if scope.get("method") == "HEAD" else self.body,
            }
        )


#: What `add_http_route` takes: called with the request, returns a response.
Endpoint = Callable[[Request], Awaitable[Response]]


class HTMLResponse(Response):
    """A response whose body is HTML (`text/html; charset=utf-8`)."""

    media_type = "text/html; charset=utf-8"


class JSONResponse(Response):
    """A response whose body is `content` encoded as JSON (`application/json`)."""

    media_type = "application/json"

    def __init__(
        self, content: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(to_json(content), status, headers)


class StreamingResponse:
    """A response whose body comes from an async iterator of `bytes` or `str` chunks.

    Each chunk is sent as it is produced. When the client disconnects (or the request is
    closed) the iteration stops: the iterator's current `await` is cancelled and, for an
    async generator, its `finally` blocks run. A HEAD request gets the headers only; the
    iterator is closed without being started.
    """

    def __init__(
        self,
        content: AsyncIterable[bytes | str],
        status: int = 200,
        headers: Mapping[str, str] | None = None,
        media_type: str = "application/octet-stream",
    ) -> None:
        self.content = content
        self.status = status
        self.headers = dict(headers or {})
        self.headers.setdefault("content-type", media_type)
        self.media_type = self.headers["content-type"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {
                "type": "http.response.start",
                "status": self.status,
                "headers": _encode_headers(self.headers),
            }
        )
        if scope.get("method") == "HEAD":
            await self._close_iterator()
            await send({"type": "http.response.body", "body": b""})
            return
        streaming = asyncio.ensure_future(self._stream(send))
        listening = asyncio.ensure_future(_until_disconnect(receive))
        try:
            await asyncio.wait((streaming, listening), return_when=asyncio.FIRST_COMPLETED)
        finally:
            listening.cancel()
            if not streaming.done():  # the client left, the request was closed, or we were
                streaming.cancel()
                await asyncio.gather(streaming, return_exceptions=True)
                await self._close_iterator()  # a generator paused at `yield` runs its finally
        if not streaming.cancelled():
            streaming.result()  # a failure of the iterator reaches the server: it aborts
            return
        try:  # a closed request's client is still there: end its body cleanly
            await send({"type": "http.response.body", "body": b""})
        except Exception as exc:  # the client is gone, as servers report it (OSError)
            logger.debug("the end of a stopped stream was not sent: %r", exc)

    async def _stream(self, send: Send) -> None:
        async for chunk in self.content:
            data = chunk.encode() if isinstance(chunk, str) else chunk
            await send({"type": "http.response.body", "body": data, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def _close_iterator(self) -> None:
        close = getattr(self.content, "aclose", None)
        if close is not None:
            await close()


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass  # body chunks nobody read: dropped


def error_response(
    status: int,
    code: str,
    detail: str,
    errors: list[Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """A JSON error in the shape of the WebSocket error frame: type, code, detail, errors."""
    return Response(
        error_frame(code, detail, errors or ()), status, headers, media_type="application/json"
    )


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await Response("Not Found", status=404)(scope, receive, send)


async def method_not_allowed(scope: Scope, receive: Receive, send: Send) -> None:
    await Response("Method Not Allowed", status=405, headers={"allow": "GET, HEAD"})(
        scope, receive, send
    )
