"""Serve an app's AsyncAPI document (`/asyncapi.json`) and its page (`/asyncapi`).

`serve(app)` needs only two things of the app (`ServableApp`): `describe()` for the
routes and `add_http_route(path, endpoint)` to answer GET requests. The document is
generated on the first request and again only when `describe()` returns a description
that differs from the one it was generated from (routes were added since); each response
then swaps in the server the request reached.
"""

from __future__ import annotations

from typing import Protocol

from ..description import AppDescription
from ..exceptions import ConfigurationError
from ..http import Endpoint, HTMLResponse, JSONResponse, Request, Response
from .generate import Describable, generate, server, with_servers
from .page import render_page
from .schema import Document

__all__ = ["ServableApp", "serve"]


class ServableApp(Describable, Protocol):
    """What `serve` needs of an app: its description and a way to add HTTP routes."""

    def add_http_route(self, path: str, endpoint: Endpoint) -> None: ...


def serve(
    app: ServableApp,
    json_path: str | None = "/asyncapi.json",
    page_path: str | None = "/asyncapi",
) -> None:
    """Add GET routes for the document and its page to `app`; None leaves one out.

    The document describes the server the request reached: its `Host` header, `wss`
    when the request came over HTTPS, and the ASGI `root_path` as pathname (with SSE
    endpoints, its `http`/`https` twin as well). The rest is
    generated once and regenerated only when the app's description changes.
    """
    cache: list[tuple[AppDescription, Document]] = []

    def document(request: Request) -> Document:
        description = app.describe()
        if not cache or (cache[0][0] is not description and cache[0][0] != description):
            cache[:] = [(description, generate(description))]
        base = cache[0][1]
        host = request.headers.get("host") or "localhost"
        secure = request.scope.get("scheme") in ("https", "wss")
        try:
            here = server(host, "wss" if secure else "ws", request.scope.get("root_path") or None)
        except ConfigurationError:
            # a Host header that is not host[:port] must not break the page
            here = server("localhost", "wss" if secure else "ws")
        return with_servers(base, {"default": here})

    if json_path is not None:

        async def asyncapi_json(request: Request) -> Response:
            return JSONResponse(document(request))

        app.add_http_route(json_path, asyncapi_json)

    if page_path is not None:

        async def asyncapi_page(request: Request) -> Response:
            root = request.scope.get("root_path") or ""
            link = root + json_path if json_path is not None else None
            return HTMLResponse(render_page(document(request), json_url=link))

        app.add_http_route(page_path, asyncapi_page)
