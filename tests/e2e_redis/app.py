"""The app two uvicorn processes serve in the Redis end-to-end tests.

Configured from the environment: REDIS_URL, RTFRAME_PREFIX, OUTBOX_LIMIT, OVERFLOW.
"""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, Field

from rtframe import (
    Connection,
    Group,
    JSONResponse,
    RealtimeApp,
    RedisLayer,
    Request,
    WebSocketRouter,
    send_to_connection,
)

ROOM = "/ws/{room}"
rooms = Group("room.{room}")
ws = WebSocketRouter()
layer = RedisLayer(
    os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    prefix=os.environ.get("RTFRAME_PREFIX", "rtframe-e2e"),
)


class Say(BaseModel):
    type: Literal["say"] = "say"
    text: str


class Direct(BaseModel):
    type: Literal["direct"] = "direct"
    to: str
    text: str


class Flood(BaseModel):
    type: Literal["flood"] = "flood"
    count: int = Field(ge=1, le=10_000)
    size: int = Field(ge=0, le=1_000_000)


class Said(BaseModel):
    type: Literal["said"] = "said"
    text: str
    pid: int


@ws.route(ROOM)
async def join(conn: Connection) -> None:
    await conn.accept()
    await rooms.add(conn)
    await conn.send({"type": "hello", "id": conn.id, "pid": os.getpid()})


@ws.on_receive(ROOM)
@rooms.broadcast
async def say(msg: Say) -> Said:
    return Said(text=msg.text, pid=os.getpid())


@ws.on_receive(ROOM)
async def direct(msg: Direct, conn: Connection) -> None:
    await send_to_connection(msg.to, {"type": "direct", "text": msg.text, "from": conn.id})


@ws.on_receive(ROOM)
async def flood(msg: Flood, room: str) -> dict[str, Any]:
    pad = "x" * msg.size
    for i in range(msg.count):
        await rooms.broadcast({"type": "flood", "i": i, "pad": pad}, room=room)
    return {"type": "flooded", "count": msg.count}


app = RealtimeApp(
    routers=[ws],
    layer=layer,
    outbox_limit=int(os.environ.get("OUTBOX_LIMIT", "256")),
    overflow="close" if os.environ.get("OVERFLOW") == "close" else "drop_oldest",
)


@app.get("/stats")
async def stats(request: Request) -> JSONResponse:
    return JSONResponse(
        {
            "node": layer.node_id,
            "available": layer.available,
            "groups": layer.local_groups(),
            "published": layer.stats.published,
            "received": layer.stats.received,
        }
    )
