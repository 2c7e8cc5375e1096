"""A server that misbehaves on request, for rtframe.js's tests (tests/test_client_js.py).

Each route plays one situation the browser client must handle: a close it must not
retry, a gate that refuses until opened, frames stamped with positions, `$dropped` and
`$reconnect` notices. What the server saw is read back over HTTP, since uvicorn runs it
in another process.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel

from rtframe import (
    Connection,
    Heartbeat,
    JSONResponse,
    RealtimeApp,
    Reject,
    Request,
    WebSocketRouter,
)
from rtframe.client_js import serve_client

ws = WebSocketRouter()
#: handshakes seen, by route name
hits: dict[str, int] = {}
#: the `$since` query value of every handshake, by route name ("" when absent)
since: dict[str, list[str]] = {}
#: notes received through the gate, by tag
received: dict[str, list[int]] = {}
#: tags whose gate lets connections stay open
open_gates: set[str] = set()


class Note(BaseModel):
    type: Literal["note"] = "note"
    tag: str = ""
    n: int


def _count(name: str, conn: Connection) -> int:
    hits[name] = hits.get(name, 0) + 1
    since.setdefault(name, []).append(conn.query_params.get("$since", ""))
    return hits[name]


@ws.route("/ws/echo")
async def echo_join(conn: Connection) -> None:
    _count("echo", conn)


@ws.on_receive("/ws/echo")
async def echo(msg: Note) -> Note:
    return msg


@ws.route("/ws/close/{code:int}")
async def close_at_once(conn: Connection, code: int) -> None:
    """Accept, then close with `code` (the client sees the code, unlike a refusal)."""
    _count(f"close/{code}", conn)
    await conn.accept()
    await conn.close(code, f"closed with {code} on purpose")


@ws.route("/ws/gate/{tag}")
async def gate(conn: Connection, tag: str) -> None:
    """Closed (1013, try again later) until GET /open?tag=... opens it."""
    _count(f"gate/{tag}", conn)
    if tag not in open_gates:  # refused before accept: the browser sees a failed handshake
        raise Reject(1013, "gate closed")


@ws.on_receive("/ws/gate/{tag}")
async def note(msg: Note, tag: str) -> None:
    received.setdefault(tag, []).append(msg.n)


def _stamped(n: int, offset: int) -> dict[str, object]:
    return {"type": "tick", "n": n, "$pos": {"group": "g", "epoch": "e1", "offset": offset}}


@ws.route("/ws/stamped")
async def stamped(conn: Connection) -> None:
    """Two stamped frames then a restart close; on the next visit, a failed recovery."""
    visit = _count("stamped", conn)
    await conn.accept()
    if visit == 1:
        await conn.send(_stamped(1, 4))
        await conn.send(_stamped(2, 5))
        await conn.close(1012, "restarting")
    else:
        await conn.send(
            {
                "type": "$recovery",
                "group": "g",
                "recovered": False,
                "replayed": 0,
                "epoch": "e2",
                "offset": 9,
            }
        )


@ws.route("/ws/dropped")
async def dropped(conn: Connection) -> None:
    """Frames 7 and 11 then `$dropped` (8-10 were dropped, as under drop_oldest): the
    client should come back with `$since` at 7, the last offset it has every frame up to."""
    if _count("dropped", conn) == 1:
        await conn.accept()
        await conn.send(_stamped(1, 7))
        await conn.send(_stamped(1, 11))
        await conn.send({"type": "$dropped", "count": 3})
    else:  # the replay after $since 7, then a live frame
        await conn.accept()
        for offset in (8, 9, 10, 11, 12):
            await conn.send(_stamped(2, offset))


@ws.route("/ws/drain")
async def drain(conn: Connection) -> None:
    """Announce a restart in 200 ms but never close: the client leaves by itself."""
    if _count("drain", conn) == 1:
        await conn.accept()
        await conn.send({"type": "$reconnect", "after_ms": 200})


@ws.route("/ws/presence")
async def presence(conn: Connection) -> None:
    """Two members join, one leaves; then a frame that is not JSON, and one whose
    position is malformed."""
    await conn.accept()
    ada = {"id": "c1", "user": "ada", "connected_at": 1.0, "meta": {}}
    bob = {"id": "c2", "user": "bob", "connected_at": 2.0, "meta": {"away": True}}
    await conn.send({"type": "$presence", "group": "room", "joined": [ada, bob], "left": []})
    await conn.send({"type": "$presence", "group": "room", "joined": [], "left": ["c1"]})
    await conn.send_text("this is not JSON")
    await conn.send({"type": "tick", "n": 1, "$pos": {"group": "g", "epoch": 5, "offset": -1}})


# Fast heartbeats, so the tests see several in a second; CLIENT_JS_HEARTBEAT=off serves a
# server that never pings (it still answers a client's `$ping`).
heartbeat = None if os.environ.get("CLIENT_JS_HEARTBEAT") == "off" else Heartbeat(0.3, 0.5)
app = RealtimeApp([ws], heartbeat=heartbeat, rate_limit=None)
serve_client(app)


@app.get("/")
async def index(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


@app.get("/seen")
async def seen(request: Request) -> JSONResponse:
    return JSONResponse({"hits": hits, "since": since, "received": received})


@app.get("/open")
async def open_gate(request: Request) -> JSONResponse:
    open_gates.add(request.query_params["tag"])
    return JSONResponse({"open": sorted(open_gates)})
