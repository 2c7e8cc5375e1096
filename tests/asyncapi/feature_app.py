"""An app using every feature the AsyncAPI document describes; its document is asserted
field by field in test_document.py and judged by the official parser."""

from __future__ import annotations

import enum
import uuid
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from rtframe import Connection, Depends, Group, Heartbeat, RealtimeApp, Reject, WebSocketRouter
from rtframe.asyncapi import sends
from rtframe.history import HistoryPolicy

ws = WebSocketRouter()
rooms = Group("room.{room_id}")
# a history group: `$recovery`, `$since` and `$pos` on the lobby's channel
lobby = Group("lobby", history=HistoryPolicy(size=100, ttl=60))

BOARD = "/ws/rooms/{room_id:int}/board"
LOBBY = "/ws/lobby"
DOCS = "/ws/docs/{doc_id:uuid}/{section}"


class Color(enum.StrEnum):
    red = "red"
    blue = "blue"


class Point(BaseModel):
    """A position on the board."""

    x: int = Field(ge=0, description="Column, from the left")
    y: int = Field(ge=0)


class Draw(BaseModel):
    """Draw a stroke on the board."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"type": "draw", "points": [{"x": 1, "y": 2}], "color": "blue", "size": [3, "px"]}
            ]
        }
    )

    type: Literal["draw"] = "draw"
    points: list[Point] = Field(min_length=1)
    color: Color = Color.red
    size: tuple[int, Literal["px", "em"]] = (1, "px")
    origin: Point | None = Field(default=None, description="Where the stroke starts")


class Ping(BaseModel):
    """Check that the connection is alive."""

    type: Literal["ping"] = "ping"
    nonce: int


class Pong(BaseModel):
    """The answer to a ping, with the same nonce."""

    model_config = ConfigDict(json_schema_extra={"examples": [{"type": "pong", "nonce": 7}]})

    type: Literal["pong"] = "pong"
    nonce: int


class Stroke(BaseModel):
    """A stroke, as every member of the room sees it."""

    type: Literal["stroke"] = "stroke"
    by: str
    points: list[Point]


class Hello(BaseModel):
    """Sent to a newcomer right after the handshake."""

    type: Literal["hello"] = "hello"
    user: str


class Joined(BaseModel):
    """Someone joined the room."""

    type: Literal["joined"] = "joined"
    user: str


class Receipt(BaseModel):
    """How many bytes of an upload arrived."""

    type: Literal["receipt"] = "receipt"
    size: int


class Chat(BaseModel):
    type: Literal["chat"] = "chat"
    text: str = Field(max_length=500)


class Chatted(BaseModel):
    """A lobby message, as everyone in the lobby sees it."""

    type: Literal["chatted"] = "chatted"
    text: str


class History(BaseModel):
    """Ask for the last messages of the lobby."""

    type: Literal["history"] = "history"
    limit: int = Field(default=10, ge=1, le=100)


class Edit(BaseModel):
    """Replace the text of a document section."""

    type: Literal["edit"] = "edit"
    text: str


def current_user(conn: Connection) -> str:
    """The logged-in user; the handshake is refused without a session."""
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


@ws.route(BOARD, heartbeat=Heartbeat(interval=20, timeout=5))
@sends(Hello)
@sends(Joined, group=rooms)
async def join(
    conn: Connection, room_id: int, user: User, token: str, mode: Literal["draw", "watch"] = "draw"
) -> None:
    """Join a room's drawing board.

    Only logged-in users may join; they receive a greeting and the room hears about them.

    Args:
        room_id: the room's number
        token: the invitation token of the room
        mode: draw, or only watch
    """
    await conn.accept()
    await conn.send(Hello(user=user))
    await rooms.add(conn)
    await rooms.broadcast(Joined(user=user), room_id=room_id)


@ws.on_receive(BOARD)
@rooms.broadcast
async def draw(msg: Draw, user: User) -> Stroke:
    """Everyone in the room, the sender included, sees the stroke."""
    return Stroke(by=user, points=msg.points)


@ws.on_receive(BOARD)
async def ping(msg: Ping) -> Pong:
    """Answer the sender at once."""
    return Pong(nonce=msg.nonce)


@ws.on_receive(BOARD)
async def upload(data: bytes) -> Receipt:
    """Accept an image as a binary frame."""
    return Receipt(size=len(data))


@ws.on_disconnect(BOARD)
async def leave(conn: Connection) -> None:
    await rooms.discard(conn)


@ws.on_receive(LOBBY)
@lobby.broadcast
async def chat(msg: Chat) -> Chatted:
    """Say something to the whole lobby."""
    return Chatted(text=msg.text)


@ws.on_receive(LOBBY)
async def history(msg: History) -> list[Chatted]:
    """The last messages, oldest first."""
    return []


@ws.on_receive(DOCS)
async def edit(
    msg: Edit,
    doc_id: uuid.UUID,
    section: Annotated[str, Field(description="Slug of the section being edited")],
) -> Edit | None:
    """Echo the edit back, or nothing when the text is unchanged."""
    return msg if msg.text else None


app = RealtimeApp(
    routers=[ws],
    heartbeat=None,  # only the board route has heartbeats, so the document shows both kinds
    title="Feature board",
    version="2.1.0",
    description="Every feature of the AsyncAPI generator in one app.",
)
