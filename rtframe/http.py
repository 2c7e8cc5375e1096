"""Just enough HTTP for a realtime app's own pages: exact-path GET routes and responses.

rtframe is not an HTTP framework; anything more belongs to the app it is mounted beside
(Django, Starlette, ...), which receives every HTTP request these routes do not match.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from pydantic_core import to_json

from ._scope import scope_headers, scope_query
from .types import Receive, Scope, Send


class Request:
    """The parts of an HTTP request scope an endpoint usually needs."""

    __slots__ = ("scope",)

    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    @property
    def path(self) -> str:
        return str(self.scope["path"])

    @property
    def method(self) -> str:
        return str(self.scope["method"])

    @property
    def query_params(self) -> dict[str, str]:
        return scope_query(self.scope)

    @property
    def headers(self) -> dict[str, str]:
        return scope_headers(self.scope)


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
        self.headers.setdefault("content-type", media_type or self.media_type)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in self.headers.items()]
        headers.append((b"content-length", str(len(self.body)).encode()))
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send(
            {
                "type": "http.response.body",
                "body": b"" if scope.get("method") == "HEAD" else self.body,
            }
        )


class HTMLResponse(Response):
    media_type = "text/html; charset=utf-8"


class JSONResponse(Response):
    media_type = "application/json"

    def __init__(
        self, content: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(to_json(content), status, headers)


Endpoint = Callable[[Request], Awaitable[Response]]


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    await Response("Not Found", status=404)(scope, receive, send)


async def method_not_allowed(scope: Scope, receive: Receive, send: Send) -> None:
    await Response("Method Not Allowed", status=405, headers={"allow": "GET, HEAD"})(
        scope, receive, send
    )


__all__ = [
    "Endpoint",
    "HTMLResponse",
    "JSONResponse",
    "Request",
    "Response",
    "method_not_allowed",
    "not_found",
]
