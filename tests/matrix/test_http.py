"""HTTP on every server: the app's routes, its refusals, its AsyncAPI document, HTTP/2."""

from __future__ import annotations

import httpx
import pytest

from ..servers import RunningServer
from .support import http_client, limited

pytestmark = pytest.mark.e2e


async def test_the_apps_routes_answer(server: RunningServer) -> None:
    async with http_client(server) as http:
        hello = await http.get(server.url("/hello"))
        missing = await http.get(server.url("/nowhere"))
        asyncapi = await http.get(server.url("/asyncapi.json"))
        # last: a server may close a keep-alive connection whose request body the app did
        # not read, and a request racing that close fails (fits a failure seen once)
        posted = await http.post(server.url("/hello"), content=b"{}")
    assert hello.status_code == 200
    assert hello.json() == {"hello": "world", "http_version": "1.1"}
    assert missing.status_code == 404
    assert posted.status_code == 405
    assert asyncapi.status_code == 200
    assert asyncapi.json()["info"]["title"] == "matrix"


async def test_http2_where_the_server_speaks_it(server: RunningServer) -> None:
    # over TLS the client offers h2 through ALPN; in cleartext it assumes h2 (prior
    # knowledge, "h2c"), which hypercorn and granian accept on their usual port
    why = limited(server, "http2")
    async with http_client(server, http2=True) as http:
        if why is not None:
            with pytest.raises(httpx.RemoteProtocolError):  # the limitation is real
                await http.get(server.url("/hello"))
            pytest.skip(f"{server.name}: {why}")
        hello = await http.get(server.url("/hello"))
    assert hello.http_version == "HTTP/2"
    assert hello.json() == {"hello": "world", "http_version": "2"}


async def test_the_server_runs_the_lifespan(server: RunningServer) -> None:
    async with http_client(server) as http:
        stats = (await http.get(server.url("/stats"))).json()
    why = limited(server, "lifespan")
    if why is not None:
        assert stats["lifespan"] is False  # the limitation is real
        pytest.skip(f"{server.name}: {why}")
    assert stats["lifespan"] is True
