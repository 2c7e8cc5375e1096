"""The app `tests/test_scale.py` serves with uvicorn: one big room, its publisher, an echo.

- `/big`: joins the group `big` (before the handshake completes, so an open socket is a
  member) and never sends anything itself.
- `/pub`: every `blast` frame received is broadcast to `big` as a `news` frame carrying
  the same `seq` (the publisher is not a member).
- `/echo`: every `echo` frame comes back to its sender.

`RTFRAME_SCALE_UNCHUNKED=1` sets `rtframe.members.FANOUT_INLINE` to 10**9 so that every
fan-out, however big, is served inline in one go without yielding to the loop: that is
how to show the 5,000-member test fails without chunking (it is not set by the tests).
`RTFRAME_SCALE_CHUNK=N` sets the chunk size to N instead, to measure other sizes.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel

import rtframe.members
from rtframe import Connection, Group, RealtimeApp, WebSocketRouter
from rtframe.limits import NO_LIMITS

if os.environ.get("RTFRAME_SCALE_UNCHUNKED"):  # to show the test fails without chunking
    rtframe.members.FANOUT_INLINE = 10**9
elif os.environ.get("RTFRAME_SCALE_CHUNK"):  # to measure another chunk size
    rtframe.members.FANOUT_CHUNK = int(os.environ["RTFRAME_SCALE_CHUNK"])

ws = WebSocketRouter()
big = Group("big")

#: Makes a news frame about 200 bytes long, like a short chat line with its envelope.
PAD = "x" * 160


class Blast(BaseModel):
    type: Literal["blast"] = "blast"
    seq: int


class News(BaseModel):
    type: Literal["news"] = "news"
    seq: int
    text: str


class Echo(BaseModel):
    type: Literal["echo"] = "echo"
    seq: int


@ws.route("/big")
async def join_big(conn: Connection) -> None:
    await big.add(conn)
    await conn.accept()


@ws.on_receive("/pub")
@big.broadcast
async def blast(msg: Blast) -> News:
    return News(seq=msg.seq, text=PAD)


@ws.on_receive("/echo")
async def echo(msg: Echo) -> Echo:
    return msg


# No limits and no rate limit: 5,000 members connect from one loopback address, and the
# tests measure fan-out and latency, not the limits.
app = RealtimeApp([ws], asyncapi_path=None, docs_path=None, rate_limit=None, limits=NO_LIMITS)
