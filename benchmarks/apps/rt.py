"""The same two servers written with rtframe."""

from __future__ import annotations

from rtframe import Connection, Group, RealtimeApp, WebSocketRouter
from rtframe.limits import NO_LIMITS

from .schema import Echo, News

ws = WebSocketRouter()


@ws.on_receive("/echo")
async def echo_back(msg: Echo) -> Echo:
    return msg


# No limits and no rate limit: the benchmark measures the framework, not its limits
# (the load generator floods from one address, far past the default message rate).
echo = RealtimeApp(routers=[ws], rate_limit=None, limits=NO_LIMITS)

fan = WebSocketRouter()
members = Group("bench")


@fan.route("/sub")
async def subscribe(conn: Connection) -> None:
    await conn.accept()
    await members.add(conn)


@fan.on_receive("/pub")
@members.broadcast
async def publish(msg: News) -> News:
    return msg


fanout = RealtimeApp(routers=[fan], rate_limit=None, limits=NO_LIMITS)  # as `echo` above
