"""A room chat: nicknames, join/leave notices, and a page served by the app itself.

Run it with one command from the repository root:

    scripts/chat            # or: uvicorn examples.chat.app:app

then open http://127.0.0.1:8000/ in two browser tabs.

Two processes sharing one Redis (docs/redis.md), each tab on either port:

    REDIS_URL=redis://127.0.0.1:6379/0 uvicorn examples.chat.app:app --port 8000 &
    REDIS_URL=redis://127.0.0.1:6379/0 uvicorn examples.chat.app:app --port 8001
"""

from __future__ import annotations

import os
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from rtframe import (
    Connection,
    Group,
    HTMLResponse,
    LayerUnavailableError,
    RealtimeApp,
    RedisLayer,
    Request,
    WebSocketRouter,
    sends,
)

ws = WebSocketRouter()
rooms = Group("chat.{room}")

ROOM = "/ws/chat/{room}"


class Say(BaseModel):
    """A line of chat typed by a user."""

    type: Literal["say"] = "say"
    text: str = Field(min_length=1, max_length=2000)


class Rename(BaseModel):
    """Change the sender's nickname."""

    type: Literal["rename"] = "rename"
    nick: str = Field(min_length=1, max_length=32)


class Said(BaseModel):
    """A chat line, as every member of the room receives it."""

    type: Literal["said"] = "said"
    nick: str
    text: str
    at: datetime


class Notice(BaseModel):
    """Someone joined, left or changed their nickname."""

    type: Literal["notice"] = "notice"
    text: str


class Welcome(BaseModel):
    """Sent to a newcomer: who they are and where."""

    type: Literal["welcome"] = "welcome"
    nick: str
    room: str


@ws.route(ROOM)
@sends(Welcome)
@sends(Notice, group=rooms)
async def join(conn: Connection, room: str, nick: str = "guest") -> None:
    """Accept everyone; the nickname comes from the `nick` query parameter."""
    nick = nick.strip()[:32] or "guest"
    conn.state.nick = nick
    # Join and announce before accepting: a connection that is not open yet does not hear
    # its own notice, and once the handshake completes it is in the room in every process
    # (with the Redis layer, `add` returns when Redis confirmed the subscription).
    await rooms.add(conn)
    with suppress(LayerUnavailableError):  # Redis down: only this process hears the notice
        await rooms.broadcast(Notice(text=f"{nick} joined"), room=room)
    await conn.accept()
    await conn.send(Welcome(nick=nick, room=room))


@ws.on_receive(ROOM)
@rooms.broadcast
async def say(msg: Say, conn: Connection) -> Said:
    """Everyone in the room, the sender included, receives the line."""
    return Said(nick=conn.state.nick, text=msg.text, at=datetime.now(UTC))


@ws.on_receive(ROOM)
@rooms.broadcast
async def rename(msg: Rename, conn: Connection) -> Notice:
    old, conn.state.nick = conn.state.nick, msg.nick
    return Notice(text=f"{old} is now {msg.nick}")


@ws.on_disconnect(ROOM)
@sends(Notice, group=rooms)
async def leave(conn: Connection, room: str) -> None:
    await rooms.discard(conn)
    await rooms.broadcast(Notice(text=f"{conn.state.nick} left"), room=room)


# With REDIS_URL set, every process serving the chat shares its rooms through Redis.
layer = (
    RedisLayer(os.environ["REDIS_URL"], prefix=os.environ.get("CHAT_REDIS_PREFIX", "chat"))
    if os.environ.get("REDIS_URL")
    else None
)
app = RealtimeApp(routers=[ws], layer=layer, title="rtframe chat example", version="1.0.0")

PAGE = (Path(__file__).parent / "static" / "index.html").read_text()


@app.get("/")
async def index(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)
