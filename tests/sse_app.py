"""A room served over both WebSockets and SSE, for the end-to-end SSE tests.

/ws/{room}: a WebSocket member that says things; /events/{room}: an SSE stream of the
same room (history kept, so a stream resumes with Last-Event-ID); /page: a page whose
EventSource follows the room; /kick: closes every SSE stream (as a restart would).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from rtframe import (
    Connection,
    Group,
    HistoryPolicy,
    HTMLResponse,
    JSONResponse,
    RealtimeApp,
    Request,
    SSERouter,
    Stream,
    WebSocketRouter,
)

rooms = Group("room.{room}", history=HistoryPolicy(size=100, ttl=60))
ws = WebSocketRouter()
sse = SSERouter()


class Say(BaseModel):
    type: Literal["say"] = "say"
    text: str


class Said(BaseModel):
    type: Literal["said"] = "said"
    text: str


@ws.route("/ws/{room}")
async def join(conn: Connection) -> None:
    await rooms.add(conn)
    await conn.accept()


@ws.on_receive("/ws/{room}")
@rooms.broadcast
async def say(msg: Say) -> Said:
    return Said(text=msg.text)


@sse.route("/events/{room}", retry=0.3)
async def follow(stream: Stream) -> None:
    await rooms.add(stream)


app = RealtimeApp([ws, sse])

PAGE = """<!doctype html><meta charset="utf-8"><title>sse</title>
<script>
window.got = []; window.opens = 0;
const source = new EventSource("/events/lobby");
source.onopen = () => { window.opens += 1; };
source.onmessage = (event) => {
  const data = JSON.parse(event.data);
  if (data.type === "said") window.got.push(data.text);
};
</script>"""


@app.get("/page")
async def page(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


@app.get("/kick")
async def kick(request: Request) -> JSONResponse:
    streams = [s for s in app.sessions if isinstance(s.conn, Stream)]
    for session in streams:
        await session.close(1012, "restarting")
    return JSONResponse({"closed": len(streams)})
