"""An app with fast heartbeats, served by uvicorn in tests/test_heartbeat.py."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from rtframe import (
    Connection,
    Group,
    Heartbeat,
    JSONResponse,
    RealtimeApp,
    Request,
    WebSocketRouter,
)

ws = WebSocketRouter()
room = Group("room")


class Say(BaseModel):
    type: Literal["say"] = "say"
    text: str


@ws.route("/room")
async def join(conn: Connection) -> None:
    await room.add(conn)


@ws.on_receive("/room")
@room.broadcast
async def say(msg: Say) -> Say:
    return msg


app = RealtimeApp([ws], heartbeat=Heartbeat(interval=0.3, timeout=0.3))


@app.get("/members")
async def members(request: Request) -> JSONResponse:
    """How many sockets this process holds in the room, and how many sessions are live."""
    return JSONResponse(
        {"room": len(app.hub.registry.members("room")), "sessions": len(app.sessions)}
    )
