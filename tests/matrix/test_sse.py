"""SSE on every server: a stream follows a room a WebSocket member talks in; HTTP/2 too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import h2.connection
import h2.events
import httpx
import pytest
from h2.config import H2Configuration
from h2.errors import ErrorCodes

from ..servers import RunningServer
from .support import http_client, joined, recv_json, skip_limited, ws_connect

pytestmark = pytest.mark.e2e


async def events(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """The events of an SSE response, comments (keep-alives) left out."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if line == "":
            if fields:
                yield fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


async def next_data(stream: AsyncIterator[dict[str, str]]) -> dict[str, Any]:
    while True:
        event = await asyncio.wait_for(anext(stream), 5)
        if "data" in event:
            return json.loads(event["data"])  # type: ignore[no-any-return]


async def members(http: httpx.AsyncClient, server: RunningServer, room: str) -> int:
    stats = (await http.get(server.url("/stats"), params={"room": room})).json()
    return int(stats["members"])


async def follow_a_room(server: RunningServer, room: str, *, http2: bool) -> None:
    """An SSE stream and a WebSocket member share a room; the stream hears the member."""
    async with http_client(server) as stats, ws_connect(server, f"/ws/room/{room}") as sock:
        await joined(sock)
        # the stream ends with its client's connection: httpx over HTTP/2 sends no
        # RST_STREAM when a response is closed early (a browser's EventSource does), so
        # closing the response alone would leave the server a live stream
        async with (
            http_client(server, http2=http2) as http,
            http.stream("GET", server.url(f"/events/{room}")) as response,
        ):
            assert response.status_code == 200
            assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
            assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
            assert response.headers["cache-control"] == "no-cache"
            assert response.headers["x-accel-buffering"] == "no"
            stream = events(response)
            assert "retry" in await asyncio.wait_for(anext(stream), 5)
            for text in ("one", "two"):
                await sock.send(json.dumps({"type": "say", "text": text}))
                said = {"type": "said", "room": room, "text": text}
                assert await next_data(stream) == said
                assert await recv_json(sock) == said
            assert await members(stats, server, room) == 2
        # the app learns that the stream ended (the server tells it, or the next
        # keep-alive write fails) and the stream leaves the room
        for _ in range(60):
            if await members(stats, server, room) == 1:
                break
            await asyncio.sleep(0.05)
        assert await members(stats, server, room) == 1


async def test_an_sse_stream_hears_a_websocket_member_and_leaves_when_it_ends(
    server: RunningServer,
) -> None:
    await follow_a_room(server, f"sse-{server.name}", http2=False)


async def test_sse_over_http2(server: RunningServer) -> None:
    skip_limited(server, "http2")  # test_http.py asserts that the limitation is real
    await follow_a_room(server, f"sse2-{server.name}", http2=True)


class H2Stream:
    """One SSE request over a raw HTTP/2 connection (the `h2` library), to reset it the way
    a browser does when an EventSource is closed: RST_STREAM, the connection kept."""

    def __init__(self, server: RunningServer, path: str) -> None:
        self.server, self.path = server, path
        self.conn = h2.connection.H2Connection(H2Configuration(client_side=True))
        self.body = b""
        self.status: str | None = None
        self.stream_id = 1
        self._reading: asyncio.Task[None] | None = None

    async def open(self) -> None:
        context = self.server.ssl
        if context is not None:
            context.set_alpn_protocols(["h2"])
        self.reader, self.writer = await asyncio.open_connection(
            "127.0.0.1", self.server.port, ssl=context
        )
        self.conn.initiate_connection()
        self.conn.send_headers(
            self.stream_id,
            [
                (":method", "GET"),
                (":path", self.path),
                (":scheme", "https" if context else "http"),
                (":authority", f"127.0.0.1:{self.server.port}"),
            ],
            end_stream=True,
        )
        await self._flush()
        self._reading = asyncio.create_task(self._read())

    async def _read(self) -> None:
        while data := await self.reader.read(65536):
            for event in self.conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    self.status = dict(event.headers).get(b":status", b"").decode()
                elif isinstance(event, h2.events.DataReceived):
                    self.body += event.data
                    self.conn.acknowledge_received_data(
                        event.flow_controlled_length, event.stream_id
                    )
            await self._flush()

    async def _flush(self) -> None:
        self.writer.write(self.conn.data_to_send())
        await self.writer.drain()

    async def wait_for(self, text: bytes) -> None:
        for _ in range(100):
            if text in self.body:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{text!r} not in {self.body!r}")

    async def reset(self) -> None:
        self.conn.reset_stream(self.stream_id, ErrorCodes.CANCEL)
        await self._flush()

    async def close(self) -> None:
        if self._reading is not None:
            self._reading.cancel()
        self.writer.close()


async def test_an_http2_stream_reset_by_the_client_leaves_the_room(server: RunningServer) -> None:
    skip_limited(server, "http2")
    room = f"reset-{server.name}"
    async with http_client(server) as stats, ws_connect(server, f"/ws/room/{room}") as sock:
        await joined(sock)
        stream = H2Stream(server, f"/events/{room}")
        await stream.open()
        try:
            await stream.wait_for(b"retry: ")
            assert stream.status == "200"
            await sock.send(json.dumps({"type": "say", "text": "over h2"}))
            await stream.wait_for(b'"text":"over h2"')
            assert await members(stats, server, room) == 2
            await stream.reset()  # the connection stays open
            for _ in range(60):
                if await members(stats, server, room) == 1:
                    break
                await asyncio.sleep(0.05)
            assert await members(stats, server, room) == 1
            assert not stream.writer.is_closing()
        finally:
            await stream.close()
