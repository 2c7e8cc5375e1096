"""A small app served by uvicorn in the end-to-end tests."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from rtframe import Connection, RealtimeApp, Reject, WebSocketRouter

ws = WebSocketRouter()


class Echo(BaseModel):
    type: Literal["echo"] = "echo"
    text: str


@ws.route("/echo")
async def connect(conn: Connection) -> None:
    if conn.headers.get("x-deny"):
        raise Reject(4003, "denied")
    await conn.accept()


@ws.on_receive("/echo")
async def echo(msg: Echo) -> Echo:
    return msg


# no rate limit: the flood test checks that 500 frames sent at once all come back in order
app = RealtimeApp([ws], max_message_size=1000, rate_limit=None)
