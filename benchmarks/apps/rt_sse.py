"""The fan-out server of `rt` with an SSE endpoint beside the WebSocket one: members join
"bench" through `/sub` (WebSocket) or `/events` (SSE), `/pub` broadcasts (issue 11)."""

from __future__ import annotations

from rtframe import Connection, Group, RealtimeApp, SSERouter, Stream, WebSocketRouter
from rtframe.limits import NO_LIMITS

from .rt import ws
from .schema import News

fan = WebSocketRouter()
sse = SSERouter()
members = Group("bench")


@fan.route("/sub")
async def subscribe(conn: Connection) -> None:
    await members.add(conn)
    await conn.accept()


@sse.route("/events")
async def follow(stream: Stream) -> None:
    await members.add(stream)


@fan.on_receive("/pub")
@members.broadcast
async def publish(msg: News) -> News:
    return msg


echo = RealtimeApp(routers=[ws], rate_limit=None, limits=NO_LIMITS)
fanout = RealtimeApp(routers=[fan, sse], rate_limit=None, limits=NO_LIMITS)
