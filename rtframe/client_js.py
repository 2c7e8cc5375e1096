"""Serve `rtframe.js`, the browser client, from the app's own HTTP routes.

    from rtframe.client_js import serve_client

    serve_client(app)            # GET /rtframe/rtframe.js (and its vendored socket)

then, in a page:

    <script type="module">
      import { connect } from "/rtframe/rtframe.js";
      const rt = connect("/ws/chat/lobby", { on: { said: (msg) => show(msg) } });
    </script>

The files are package data under `rtframe/static/` (`STATIC_DIR`), laid out as they are
served: `rtframe.js` imports `./vendor/partysocket/ws.js`, so the directory can as well
be served as it is by any static file server (nginx, Django's staticfiles, a CDN of
your own). docs/client.md describes the client.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .http import Request, Response

if TYPE_CHECKING:
    from .app import RealtimeApp

__all__ = ["CLIENT_FILES", "STATIC_DIR", "ClientFile", "serve_client"]

#: Where the client's files are, inside the installed package.
STATIC_DIR = Path(__file__).parent / "static"

_JS = "text/javascript; charset=utf-8"  # RFC 9239
#: The files `serve_client` serves, by path under its prefix, with their media types.
CLIENT_FILES = {
    "rtframe.js": _JS,
    "rtframe.d.ts": "text/plain; charset=utf-8",
    "vendor/partysocket/ws.js": _JS,
    "vendor/partysocket/LICENSE.txt": "text/plain; charset=utf-8",
}


@dataclass(frozen=True, slots=True)
class ClientFile:
    """One served file: its bytes, read once, and the validator browsers revalidate with."""

    body: bytes
    media_type: str
    etag: str

    @classmethod
    def read(cls, name: str, media_type: str) -> ClientFile:
        body = (STATIC_DIR / name).read_bytes()
        return cls(body, media_type, f'"{hashlib.sha256(body).hexdigest()[:32]}"')

    def response(self, request: Request) -> Response:
        # Browsers revalidate every use (no-cache) and get a 304 while the file is the
        # same: an upgraded rtframe is picked up at once, and costs no body otherwise.
        headers = {"etag": self.etag, "cache-control": "no-cache"}
        if self.etag in request.headers.get("if-none-match", ""):
            return Response(b"", status=304, headers=headers, media_type=self.media_type)
        return Response(self.body, headers=headers, media_type=self.media_type)


def serve_client(app: RealtimeApp, prefix: str = "/rtframe") -> str:
    """Serve the browser client's files under `prefix`; returns the URL of `rtframe.js`.

    The files are read once, now: a missing file (a broken install) fails here, not on
    the first request.

    Raises:
        ValueError: `prefix` does not start with "/".
        FileNotFoundError: the package data is missing.
    """
    if not prefix.startswith("/"):
        raise ValueError(f"serve_client prefix must start with '/', not {prefix!r}")
    prefix = prefix.rstrip("/")
    for name, media_type in CLIENT_FILES.items():
        served = ClientFile.read(name, media_type)

        async def endpoint(request: Request, served: ClientFile = served) -> Response:
            return served.response(request)

        app.add_http_route(f"{prefix}/{name}", endpoint)
    return f"{prefix}/rtframe.js"
