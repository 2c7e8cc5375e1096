"""The app of the drain tests (tests/test_drain.py): an echo, and an echo that takes its time."""

from __future__ import annotations

import asyncio
from typing import Literal

from pydantic import BaseModel

from rtframe import Connection, RealtimeApp, WebSocketRouter
from rtframe.limits import NO_LIMITS

ws = WebSocketRouter()


class Echo(BaseModel):
    type: Literal["echo"] = "echo"
    text: str


class Slow(BaseModel):
    type: Literal["slow"] = "slow"
    seconds: float
    text: str


@ws.on_receive("/ws")
async def echo(msg: Echo) -> Echo:
    return msg


@ws.on_receive("/ws")
async def slow(msg: Slow) -> Echo:
    await asyncio.sleep(msg.seconds)
    return Echo(text=msg.text)


@ws.route("/slow-handshake")
async def slow_handshake(conn: Connection) -> None:
    await asyncio.sleep(float(conn.query_params.get("delay", "0")))
    await conn.accept()


def make_app() -> RealtimeApp:
    # no connection limits: tests/drain_measure.py moves 5,000 clients of one loopback
    # address from server to server, and measures the drain's pacing, not the limits'
    return RealtimeApp([ws], limits=NO_LIMITS)


app = make_app()
