"""The same two servers written with rtframe."""

from __future__ import annotations

from rtframe import Connection, Group, RealtimeApp, WebSocketRouter

from .schema import Echo, News

ws = WebSocketRouter()


@ws.on_receive("/echo")
async def echo_back(msg: Echo) -> Echo:
    return msg


echo = RealtimeApp(routers=[ws])

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


fanout = RealtimeApp(routers=[fan])
