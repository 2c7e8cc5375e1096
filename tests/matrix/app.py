"""The app every server of the matrix serves (tests/matrix): one of each thing the suite checks.

- `/ws/room/{room}`: greets with the connection's id, then echoes, broadcasts to the room,
  sends to one connection by id, closes itself with a code of the client's choosing, and
  takes its time when asked (a handler running during a drain);
- `/ws/beat`: heartbeats every 0.3 s, so the suite sees `$ping` without waiting 20 s;
- `/events/{room}`: an SSE stream of the same room (keep-alive every 0.5 s);
- HTTP: `/hello` (GET only, says which HTTP version served it), `/stats` (whether a
  lifespan came, live sessions, members of a room), and the AsyncAPI document.

Served as `tests.matrix.app:asgi`, which notes the lifespan scope and runs `app`.

Frames over 1,000 bytes are refused (1009) and there is no rate limit, so a flood comes
back whole.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Literal

from pydantic import BaseModel, Field

from rtframe import (
    Connection,
    Group,
    Heartbeat,
    JSONResponse,
    RealtimeApp,
    Reject,
    Request,
    SSERouter,
    Stream,
    WebSocketRouter,
)
from rtframe.types import Receive, Scope, Send

# the servers' own logging leaves rtframe's INFO lines (the drain's) unprinted: the
# suite reads them in the server's output to see what ran, and in which order
if os.environ.get("RTFRAME_TEST_LOG"):
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

ws = WebSocketRouter()
sse = SSERouter()
rooms = Group("room.{room}")
ROOM = "/ws/room/{room}"


class Echo(BaseModel):
    type: Literal["echo"] = "echo"
    text: str


class Say(BaseModel):
    type: Literal["say"] = "say"
    text: str


class Said(BaseModel):
    type: Literal["said"] = "said"
    room: str
    text: str


class Tell(BaseModel):
    """Send `text` to the connection `to` only."""

    type: Literal["tell"] = "tell"
    to: str
    text: str


class Bye(BaseModel):
    """Close this connection with `code` and `reason`."""

    type: Literal["bye"] = "bye"
    code: int = Field(ge=3000, le=4999)
    reason: str = ""


class Slow(BaseModel):
    """Answer `text` after `seconds`."""

    type: Literal["slow"] = "slow"
    seconds: float = Field(ge=0, le=30)
    text: str


@ws.route(ROOM)
async def join(conn: Connection, room: str) -> None:
    if conn.headers.get("x-deny"):
        raise Reject(4003, "denied")
    await rooms.add(conn, room=room)
    await conn.accept()
    await conn.send({"type": "hello", "id": conn.id, "room": room})


@ws.on_receive(ROOM)
async def echo(msg: Echo) -> Echo:
    return msg


@ws.on_receive(ROOM)
@rooms.broadcast
async def say(msg: Say, room: str) -> Said:
    return Said(room=room, text=msg.text)


@ws.on_receive(ROOM)
async def tell(msg: Tell, conn: Connection) -> None:
    await app.send_to(msg.to, {"type": "told", "by": conn.id, "text": msg.text})


@ws.on_receive(ROOM)
async def bye(msg: Bye, conn: Connection) -> None:
    await conn.close(msg.code, msg.reason)


@ws.on_receive(ROOM)
async def slow(msg: Slow) -> Echo:
    await asyncio.sleep(msg.seconds)
    return Echo(text=msg.text)


@ws.route("/ws/beat", heartbeat=Heartbeat(interval=0.3, timeout=0.3))
async def beat(conn: Connection) -> None:
    await conn.accept()


@ws.on_receive("/ws/beat")
async def beat_echo(msg: Echo) -> Echo:
    return msg


@sse.route("/events/{room}", keepalive=0.5, retry=0.5)
async def follow(stream: Stream, room: str) -> None:
    await rooms.add(stream, room=room)


app = RealtimeApp([ws, sse], max_message_size=1000, rate_limit=None, title="matrix")


@app.get("/hello")
async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"hello": "world", "http_version": request.scope.get("http_version")})


#: Whether the server sent a lifespan scope (daphne sends none; an HTTP route or the
#: first connection then starts the app).
lifespan: list[bool] = []


class LifespanSeen:
    """The app as the servers run it: the RealtimeApp, noting whether a lifespan came."""

    def __init__(self, app: RealtimeApp) -> None:
        self.app = app  # how `rtframe run` and tests/matrix/launch.py find the RealtimeApp

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            lifespan.append(True)
        await self.app(scope, receive, send)


asgi = LifespanSeen(app)


@app.get("/stats")
async def stats(request: Request) -> JSONResponse:
    room = request.query_params.get("room", "")
    return JSONResponse(
        {
            "lifespan": bool(lifespan),
            "sessions": len(app.sessions),
            "members": len(app.hub.registry.members(f"room.{room}")),
        }
    )
