"""A history group and a plain group over Redis, for the outage and recovery tests.

Configured from the environment: REDIS_URL, RTFRAME_PREFIX. The layer notices an outage
within a second (ping every 0.3 s) and retries fast, so the tests stay short.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel

from rtframe import Connection, Group, HistoryPolicy, RealtimeApp, RedisLayer, WebSocketRouter
from rtframe.limits import NO_LIMITS

kept = Group("kept.{room}", history=HistoryPolicy(size=5000, ttl=300))
plain = Group("plain.{room}")
ws = WebSocketRouter()
layer = RedisLayer(
    os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    prefix=os.environ.get("RTFRAME_PREFIX", "rtframe-hist"),
    ping_interval=0.3,
    reconnect_backoff=(0.05, 0.3),
)


class Say(BaseModel):
    type: Literal["say"] = "say"
    text: str


class Said(BaseModel):
    type: Literal["said"] = "said"
    text: str
    pid: int


@ws.route("/kept/{room}")
async def join_kept(conn: Connection) -> None:
    await kept.add(conn)
    await conn.accept()


@ws.on_receive("/kept/{room}")
@kept.broadcast
async def say_kept(msg: Say) -> Said:
    return Said(text=msg.text, pid=os.getpid())


@ws.route("/plain/{room}")
async def join_plain(conn: Connection) -> None:
    await plain.add(conn)
    await conn.accept()


@ws.on_receive("/plain/{room}")
@plain.broadcast
async def say_plain(msg: Say) -> Said:
    return Said(text=msg.text, pid=os.getpid())


app = RealtimeApp([ws], layer=layer, limits=NO_LIMITS, rate_limit=None)
