"""What the matrix tests share: the servers' known limitations and the clients.

A server that cannot do something the suite checks is listed in `LIMITATIONS` with the
reason (docs/servers.md has the same table); the test asserts that the limitation is
real, where that is cheap, and then skips with the reason. Nothing is skipped silently.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from ..servers import RunningServer

APP = "tests.matrix.app:asgi"

#: What each server cannot do: feature -> server name or family -> why.
LIMITATIONS: dict[str, dict[str, str]] = {
    "protocol_close_codes": {
        "daphne": "autobahn lets an application close only with 1000 or 3000-4999: rtframe "
        "sends 4000 + (code - 1000) instead of 1009, 1011, 1012 and 1013",
    },
    "close_reason": {
        "daphne": "daphne sends the application's close code without its reason "
        "(autobahn's sendClose gets the code only)",
    },
    "http2": {
        "uvicorn": "uvicorn speaks HTTP/1.1 only (h11 or httptools): no HTTP/2 at all",
        "daphne": "daphne speaks HTTP/2 only over TLS (Twisted's h2 support), not over cleartext",
    },
    "lifespan": {
        "daphne": "daphne sends no lifespan events: the app starts on its first request or "
        "connection and its shutdown hooks never run",
    },
    "http_response_extension": {
        "daphne": "daphne offers no `websocket.http.response` extension: a handshake refused "
        "'try again later' is accepted and closed with 1013 (4013 there), not answered with "
        "HTTP 503 and Retry-After",
    },
}


def limited(server: RunningServer, feature: str) -> str | None:
    """Why `server` cannot do `feature`, or None if it can."""
    reasons = LIMITATIONS[feature]
    return reasons.get(server.name) or reasons.get(server.kind.family)


def close_code(server: RunningServer, code: int) -> int:
    """The code a client of `server` sees when rtframe closes with `code` (1009, 1012...)."""
    if 1000 < code < 3000 and limited(server, "protocol_close_codes"):
        return 4000 + code - 1000
    return code


def skip_limited(server: RunningServer, feature: str) -> None:
    """Skip the test, with the documented reason, if `server` cannot do `feature`."""
    why = limited(server, feature)
    if why is not None:
        pytest.skip(f"{server.name}: {why}")


# -- clients --------------------------------------------------------------------------------


def ws_connect(server: RunningServer, path: str, **kwargs: Any) -> connect:
    """A `websockets` client connection to `path` on `server` (TLS where it serves TLS)."""
    return connect(server.ws_url(path), ssl=server.ssl, open_timeout=5, **kwargs)


def http_client(server: RunningServer, *, http2: bool = False) -> httpx.AsyncClient:
    """An httpx client for `server`; `http2`: offer h2 (ALPN over TLS, prior knowledge otherwise)."""
    if http2 and not server.kind.tls:
        return httpx.AsyncClient(http1=False, http2=True, timeout=5)
    return httpx.AsyncClient(http2=http2, verify=server.ssl or True, timeout=5)


async def recv_json(sock: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(sock.recv(), timeout))  # type: ignore[no-any-return]


async def joined(sock: ClientConnection) -> str:
    """Read the greeting of a room connection; its connection id."""
    hello = await recv_json(sock)
    assert hello["type"] == "hello", hello
    return str(hello["id"])


async def nothing_arrives(sock: ClientConnection, within: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sock.recv(), within)
