"""Serve an app's AsyncAPI document (`/asyncapi.json`) and its page (`/asyncapi`)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..exceptions import ConfigurationError
from ..http import HTMLResponse, JSONResponse, Request, Response
from .generate import generate, server, with_servers
from .page import render_page
from .schema import Document

if TYPE_CHECKING:
    from ..app import RealtimeApp


def serve(
    app: RealtimeApp,
    json_path: str | None = "/asyncapi.json",
    page_path: str | None = "/asyncapi",
) -> None:
    """Add GET routes for the document and its page to `app`; None leaves one out.

    The document describes the server the request reached: its `Host` header, `wss`
    when the request came over HTTPS, and the ASGI `root_path` as pathname. The rest is
    generated once and regenerated only when routes are added.
    """
    cache: dict[int, Document] = {}

    def document(request: Request) -> Document:
        count = len(app.routes)
        base = cache.get(count)
        if base is None:
            cache.clear()
            base = cache[count] = generate(app)
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
