"""An app with SSE endpoints beside WebSocket routes: every stream feature the AsyncAPI
document describes. Asserted in test_streams.py, judged by the official parser with the
other apps (test_validation.py).

- `/ws/rooms/{room}`: a WebSocket route broadcasting to a history group with presence;
- `/events/rooms/{room}`: its SSE twin, following the room (`@sends(group=rooms)`),
  behind a login (security), with a query parameter and a greeting of its own;
- `/events/news`: a stream of a group without history, whose messages only this
  endpoint declares (they are broadcast from elsewhere, `app.broadcast`);
- `/live`: a WebSocket route and an SSE endpoint on one path (two channels).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, Field

from rtframe import (
    Connection,
    Depends,
    Group,
    HistoryPolicy,
    PresencePolicy,
    RealtimeApp,
    Reject,
    SSERouter,
    Stream,
    WebSocketRouter,
)
from rtframe.asyncapi import sends

ws = WebSocketRouter()
sse = SSERouter()
rooms = Group(
    "room.{room}", history=HistoryPolicy(size=50, ttl=60), presence=PresencePolicy(events=True)
)
news = Group("news")

ROOM_WS = "/ws/rooms/{room}"
ROOM_SSE = "/events/rooms/{room}"
NEWS = "/events/news"
LIVE = "/live"


class Say(BaseModel):
    """Say something to the room."""

    type: Literal["say"] = "say"
    text: str = Field(max_length=500)


class Said(BaseModel):
    """A line of the room, as every member sees it."""

    type: Literal["said"] = "said"
    by: str
    text: str


class Welcome(BaseModel):
    """The first event of a room's stream."""

    type: Literal["welcome"] = "welcome"
    room: str


class Headline(BaseModel):
    """A news headline."""

    type: Literal["headline"] = "headline"
    title: str


class Tick(BaseModel):
    type: Literal["tick"] = "tick"
    n: int


def current_user(conn: Connection) -> str:
    """The logged-in user; the stream is refused without a session."""
    user = conn.cookies.get("sessionid")
    if not user:
        raise Reject(4401, "login required")
    return user


current_user.__rtframe_security__ = {  # type: ignore[attr-defined]
    "type": "httpApiKey",
    "in": "cookie",
    "name": "sessionid",
}

User = Annotated[str, Depends(current_user)]


@ws.route(ROOM_WS)
async def enter(conn: Connection, room: str) -> None:
    await rooms.add(conn)
    await conn.accept()


@ws.on_receive(ROOM_WS)
@rooms.broadcast
async def say(msg: Say, room: str) -> Said:
    """Everyone in the room hears it, streams included."""
    return Said(by="someone", text=msg.text)


@sse.route(ROOM_SSE, keepalive=10, retry=3)
@sends(group=rooms)
@sends(Welcome)
async def follow(stream: Stream, room: str, user: User, lines: int = 20) -> None:
    """Follow a room without a WebSocket.

    The stream gets every line of the room, and resumes after a drop.

    Args:
        room: the room's name
        lines: how many earlier lines to show first
    """
    await rooms.add(stream)
    await stream.accept()
    await stream.send(Welcome(room=room))


@sse.route(NEWS)
@sends(Headline, group=news)
async def headlines(stream: Stream) -> None:
    """The news, as they come."""
    await news.add(stream)


@ws.route(LIVE)
async def live_socket(conn: Connection) -> None:
    await conn.accept()


@ws.on_receive(LIVE)
async def tick(msg: Tick) -> Tick:
    return msg


@sse.route(LIVE)
async def live_stream(stream: Stream) -> None:
    """A stream with nothing but rtframe's own events."""


app = RealtimeApp(
    routers=[ws, sse],
    title="Streams",
    version="1.0.0",
    description="SSE endpoints beside WebSocket routes.",
)
