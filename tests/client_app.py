"""The app uvicorn serves to the Python client's end-to-end tests (tests/test_client.py).

With REDIS_URL set it runs on a Redis layer (prefix RTFRAME_PREFIX), so two processes
share the rooms' history; else on the in-memory layer, whose history dies with the
process. OUTBOX_LIMIT sets the outbox of a connection (the `$dropped` test), CONNECTIONS
the connections one process takes (past it: HTTP 503 with Retry-After), and DENY=1 makes
every handshake fail with HTTP 403. BUSY=1 serves `served` answering the first handshake
with HTTP 503 and `Retry-After: 1`, as a draining or full server does.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, Field

from rtframe import Connection, Group, Heartbeat, Limits, RealtimeApp, Reject, WebSocketRouter
from rtframe.history import HistoryPolicy
from rtframe.layers.base import Layer

ws = WebSocketRouter()
rooms = Group("room.{room}", history=HistoryPolicy(size=1000, ttl=60))


class Echo(BaseModel):
    type: Literal["echo"] = "echo"
    text: str


class Close(BaseModel):
    """Ask the server to close this connection with `code`."""

    type: Literal["close"] = "close"
    code: int
    reason: str = ""


class Drain(BaseModel):
    """Do to this connection what a draining server does: `$reconnect`, then 1012
    (unless `close` is false: a server that announced a restart and then hung)."""

    type: Literal["drain"] = "drain"
    close: bool = True


class Text(BaseModel):
    """Answer with `text` as a text frame of its own (not JSON)."""

    type: Literal["text"] = "text"
    text: str


class Say(BaseModel):
    type: Literal["say"] = "say"
    text: str


class Said(BaseModel):
    type: Literal["said"] = "said"
    text: str
    pid: int


class Flood(BaseModel):
    """Broadcast `count` messages of `size` characters to the room at once."""

    type: Literal["flood"] = "flood"
    count: int = Field(ge=1, le=10_000)
    size: int = Field(ge=0, le=1_000_000)


@ws.route("/echo")
async def open_echo(conn: Connection) -> None:
    if conn.query_params.get("deny") or conn.headers.get("x-deny") or os.environ.get("DENY"):
        raise Reject(1008, "denied")
    await conn.accept()


@ws.on_receive("/echo")
async def echo(msg: Echo) -> Echo:
    return msg


@ws.on_receive("/echo")
async def close(msg: Close, conn: Connection) -> None:
    await conn.close(msg.code, msg.reason)


@ws.on_receive("/echo")
async def drain(msg: Drain, conn: Connection) -> None:
    await conn.send({"type": "$reconnect", "after_ms": 0})
    if msg.close:
        await conn.close(1012, "restarting")


@ws.on_receive("/echo")
async def text(msg: Text, conn: Connection) -> None:
    await conn.send(msg.text)


@ws.on_receive("/echo")
async def binary(data: bytes, conn: Connection) -> None:
    await conn.send(data[::-1])  # a binary frame


# a heartbeat quick enough for a test to see pings, and to see a silent client closed
@ws.route("/beat", heartbeat=Heartbeat(interval=0.2, timeout=0.4))
async def open_beat(conn: Connection) -> None:
    await conn.accept()


@ws.on_receive("/beat")
async def beat_echo(msg: Echo) -> Echo:
    return msg


@ws.route("/room/{room}")
async def join(conn: Connection) -> None:
    await rooms.add(conn)  # before accept: the socket that opens is in the room
    await conn.accept()


@ws.on_receive("/room/{room}")
@rooms.broadcast
async def say(msg: Say) -> Said:
    return Said(text=msg.text, pid=os.getpid())


@ws.on_receive("/room/{room}")
async def flood(msg: Flood, room: str) -> None:
    pad = "x" * msg.size
    for i in range(msg.count):
        await rooms.broadcast(Said(text=f"{i} {pad}", pid=os.getpid()), room=room)


def _layer() -> Layer | None:
    url = os.environ.get("REDIS_URL")
    if not url:
        return None
    from rtframe import RedisLayer

    return RedisLayer(url, prefix=os.environ.get("RTFRAME_PREFIX", "rtframe-client"))


app = RealtimeApp(
    [ws],
    layer=_layer(),
    rate_limit=None,
    heartbeat=None,
    outbox_limit=int(os.environ.get("OUTBOX_LIMIT", "256")),
    limits=Limits(connections=int(os.environ.get("CONNECTIONS", "10000"))),
)


class BusyFirst:
    """Answers the first WebSocket handshake with HTTP 503 and `Retry-After: 1`."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.refused = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "websocket" and not self.refused:
            self.refused += 1
            await receive()  # websocket.connect
            headers = [(b"retry-after", b"1"), (b"content-length", b"0")]
            await send({"type": "websocket.http.response.start", "status": 503, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": b""})
            return
        await self.inner(scope, receive, send)


served: Any = BusyFirst(app) if os.environ.get("BUSY") else app
