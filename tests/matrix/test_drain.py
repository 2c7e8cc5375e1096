"""SIGTERM on every server: what the server does by itself, and the drain rtframe adds.

No server of the matrix lets the app act before it closes the WebSockets: uvicorn closes
them with 1012 at once, hypercorn waits for them (3 s) then cancels them (1011), daphne
and granian cut them (1006); the lifespan shutdown, where a RealtimeApp would drain,
comes after that. The first test pins each server's own behaviour (docs/servers.md
describes it). The second runs each server the way docs/servers.md says to (`rtframe
run` for uvicorn, the recipes in tests/matrix/launch.py for the others): every client
gets `$reconnect` then 1012, a running handler's reply arrives first, and a handshake
during the drain is refused.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidStatus

from ..servers import SERVER_KINDS, RunningServer, asgi_server
from .support import APP, close_code, http_client, joined, limited, ws_connect

pytestmark = pytest.mark.e2e

SERVERS = list(SERVER_KINDS)


@dataclass(frozen=True)
class Shutdown:
    """What a server's clients see when it gets SIGTERM, with no drain."""

    code: int  #: the close code every client gets (1006: no close frame)
    reply: bool  #: a handler running at the signal still gets its reply out
    within: tuple[float, float]  #: when the closes come, in seconds after the signal


PLAIN_SHUTDOWN = {
    "uvicorn": Shutdown(1012, reply=False, within=(0.0, 0.6)),
    # its graceful timeout (3 s by default) goes by, then it cancels the connections
    "hypercorn": Shutdown(1011, reply=True, within=(2.5, 4.5)),
    "daphne": Shutdown(1006, reply=False, within=(0.0, 0.6)),
    # idle connections are cut at once; one whose handler runs about 1 s after it returned
    "granian": Shutdown(1006, reply=False, within=(0.0, 2.5)),
}


@dataclass
class Client:
    sock: ClientConnection
    frames: list[dict[str, Any]] = field(default_factory=list)
    close_code: int | None = None
    closed_at: float = 0.0


async def follow(client: Client, t0: float) -> None:
    try:
        while True:
            client.frames.append(json.loads(await asyncio.wait_for(client.sock.recv(), 10)))
    except ConnectionClosed:
        client.close_code, client.closed_at = client.sock.close_code, time.monotonic() - t0


async def open_clients(server: RunningServer, n: int) -> list[Client]:
    clients = [Client(await ws_connect(server, "/ws/room/drain")) for _ in range(n)]
    for client in clients:
        await joined(client.sock)
    return clients


@contextmanager
def output_on_failure(server: RunningServer) -> Iterator[None]:
    try:
        yield
    except BaseException as exc:
        exc.add_note(f"--- {server.name} output ---\n{server.output()[-20000:]}")
        raise


@pytest.mark.parametrize("name", SERVERS)
async def test_sigterm_on_the_server_alone(name: str) -> None:
    expected = PLAIN_SHUTDOWN[SERVER_KINDS[name].family]
    with asgi_server(name, APP) as server, output_on_failure(server):
        busy, *_ = clients = await open_clients(server, 3)
        await busy.sock.send(json.dumps({"type": "slow", "seconds": 1.0, "text": "late"}))
        await asyncio.sleep(0.1)
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*(follow(c, t0) for c in clients)), 10)
        await asyncio.to_thread(server.proc.wait, 10)
    low, high = expected.within
    for client in clients:
        assert client.close_code == expected.code, (name, client)
        assert low <= client.closed_at <= high, (name, client)
        assert all(frame["type"] != "$reconnect" for frame in client.frames), client
    assert busy.frames == ([{"type": "echo", "text": "late"}] if expected.reply else [])


@pytest.mark.parametrize("name", SERVERS)
async def test_sigterm_drains_first_under_rtframe_run_or_the_recipe(name: str) -> None:
    window = 1.0
    args = ("--drain-window", str(window), "--drain-max-share", "1")
    with asgi_server(name, APP, draining=True, args=args) as server, output_on_failure(server):
        busy, *_ = clients = await open_clients(server, 4)
        stream = asyncio.create_task(sse_events(server))
        # it returns 1.3 s after the signal, past the window: its close waits for the reply
        await busy.sock.send(json.dumps({"type": "slow", "seconds": 1.5, "text": "late"}))
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        following = [asyncio.create_task(follow(c, t0)) for c in clients]
        await asyncio.sleep(0.2)
        refusal = await refused_handshake(server)
        await asyncio.wait_for(asyncio.gather(*following), 10)
        streamed = await asyncio.wait_for(stream, 10)
        status = await asyncio.to_thread(server.proc.wait, 10)
        output = server.output()
    restart = close_code(server, 1012)
    for client in clients:
        assert client.close_code == restart, client
        notice, *rest = client.frames
        assert notice["type"] == "$reconnect" and 0 <= notice["after_ms"] <= window * 1000
        if client is not busy:
            assert rest == [], client
            assert abs(client.closed_at - notice["after_ms"] / 1000) < 0.4, client
    assert busy.frames[1:] == [{"type": "echo", "text": "late"}]
    assert busy.closed_at >= 1.2
    if limited(server, "http_response_extension"):
        assert refusal == close_code(server, 1013)
    else:
        assert refusal == 503
    # the SSE stream is drained like a WebSocket: the notice, then a last `$close` event
    # (a stream has no close code of its own: 1012 on every server)
    reconnect, closing = streamed
    assert reconnect["type"] == "$reconnect" and 0 <= reconnect["after_ms"] <= window * 1000
    assert closing == {"type": "$close", "code": 1012, "reason": "server restarting"}
    assert status in (0, -signal.SIGTERM), output
    assert "5 notified, 5 closed with 1012 (1 after their handler returned, 0 cut off" in output


async def sse_events(server: RunningServer) -> list[dict[str, Any]]:
    """The data events of an SSE stream of the drained room, until its response ends."""
    got: list[dict[str, Any]] = []
    async with (
        http_client(server) as http,
        http.stream("GET", server.url("/events/drain")) as response,
    ):
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                got.append(json.loads(line.removeprefix("data: ")))
    return got


async def refused_handshake(server: RunningServer) -> int:
    """The HTTP status of a handshake refused during a drain, or its close code if accepted."""
    try:
        async with ws_connect(server, "/ws/room/late") as sock:
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(sock.recv(), 5)
            assert sock.close_code is not None
            return sock.close_code
    except InvalidStatus as exc:
        return exc.response.status_code
