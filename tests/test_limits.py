"""Floods: per-connection rate limits."""

from typing import Literal

import pytest
from pydantic import BaseModel

from rtframe import ConfigurationError, Connection, RateLimit, RealtimeApp, WebSocketRouter
from rtframe.testing import TestClient


class Ping(BaseModel):
    type: Literal["ping"] = "ping"
    n: int


def app(limit: RateLimit, per_route: bool = False) -> RealtimeApp:
    ws = WebSocketRouter()

    if per_route:

        @ws.route("/r", rate_limit=limit)
        async def connect(conn: Connection) -> None: ...

    @ws.on_receive("/r")
    async def ping(msg: Ping) -> dict[str, int]:
        return {"n": msg.n}

    return RealtimeApp([ws], rate_limit=None if per_route else limit)


@pytest.mark.parametrize("per_route", [False, True])
async def test_a_flood_over_the_limit_is_refused_frame_by_frame(per_route: bool) -> None:
    # a refill of one frame per 1000 s: nothing comes back during the test
    async with TestClient(app(RateLimit(messages=1, per=1000, burst=3), per_route)).websocket("/r") as sock:
        for n in range(5):
            await sock.send_json({"n": n})
        replies = [await sock.receive_json() for _ in range(5)]
    assert replies[:3] == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert [r["code"] for r in replies[3:]] == ["rate_limited", "rate_limited"]


async def test_the_bucket_refills() -> None:
    async with TestClient(app(RateLimit(messages=1000, per=1, burst=1))).websocket("/r") as sock:
        await sock.send_json({"n": 1})
        assert await sock.receive_json() == {"n": 1}
        await sock.receive_nothing(0.01)  # 10 ms refill 10 tokens at 1000/s
        await sock.send_json({"n": 2})
        assert await sock.receive_json() == {"n": 2}


async def test_close_action_closes_with_1008() -> None:
    async with TestClient(app(RateLimit(messages=1, per=1000, action="close"))).websocket("/r") as sock:
        await sock.send_json({"n": 1})
        await sock.send_json({"n": 2})
        assert await sock.receive_json() == {"n": 1}
        await sock.expect_close(1008)
        assert sock.close_reason == "rate limit exceeded"


@pytest.mark.parametrize("kwargs", [{"messages": 0}, {"messages": 1, "per": 0}, {"messages": 1, "burst": 0}, {"messages": 1, "action": "drop"}])
def test_bad_limits_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        RateLimit(**kwargs)  # type: ignore[arg-type]
