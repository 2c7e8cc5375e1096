"""The fan-out server of `rt` with its group keeping history (issue 10): every broadcast
gets a position stamped into the frame and each member's cursor checks it, so the
difference to `rtframe` is the cost of history on the in-memory layer."""

from __future__ import annotations

from rtframe import Connection, Group, HistoryPolicy, RealtimeApp, WebSocketRouter
from rtframe.limits import NO_LIMITS

from .rt import ws
from .schema import News

fan = WebSocketRouter()
members = Group("bench", history=HistoryPolicy(size=300, ttl=120))


@fan.route("/sub")
async def subscribe(conn: Connection) -> None:
    await members.add(conn)
    await conn.accept()


@fan.on_receive("/pub")
@members.broadcast
async def publish(msg: News) -> News:
    return msg


echo = RealtimeApp(routers=[ws], rate_limit=None, limits=NO_LIMITS)
fanout = RealtimeApp(routers=[fan], rate_limit=None, limits=NO_LIMITS)
