"""The fan-out server of `history_redis.py`: `_redis_apps`' rtframe server, its group
keeping history or not.

Chosen by environment variables, so two uvicorn processes serve the same app:
    BENCH_HISTORY    1: the group keeps history (HistoryPolicy(size=300, ttl=120)); 0: not
    BENCH_REDIS_URL  the Redis every process shares

/sub joins the "bench" group; each frame sent to /pub is broadcast to it.
"""

from __future__ import annotations

import os

from rtframe import Connection, Group, HistoryPolicy, RealtimeApp, RedisLayer, WebSocketRouter
from rtframe.limits import NO_LIMITS

from .apps.schema import News

HISTORY = os.environ.get("BENCH_HISTORY") == "1"
URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

ws = WebSocketRouter()
members = Group("bench", history=HistoryPolicy(size=300, ttl=120) if HISTORY else None)


@ws.route("/sub")
async def subscribe(conn: Connection) -> None:
    await members.add(conn)
    await conn.accept()


@ws.on_receive("/pub")
@members.broadcast
async def publish(msg: News) -> News:
    return msg


# no limits: the benchmark measures the framework, not its limits (one address floods)
app = RealtimeApp(
    routers=[ws], layer=RedisLayer(URL, prefix="bench"), rate_limit=None, limits=NO_LIMITS
)
