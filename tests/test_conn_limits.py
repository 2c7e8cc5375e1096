"""Limits on connections, handshakes, groups and messages: each refusal, its log line, its
counter, and that the limit frees up again (issue 9, item 4).

In-process for most; on a real uvicorn for the HTTP answers a browser sees (503 with
Retry-After for the process limit, 403 for the per-address limit).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal, get_args

import pytest
from pydantic import BaseModel
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from rtframe import (
    ConfigurationError,
    Connection,
    Group,
    LimitExceededError,
    Limits,
    RateLimit,
    RealtimeApp,
    Reject,
    RtframeError,
    WebSocketRouter,
)
from rtframe.limits import DEFAULT_RATE_LIMIT, NO_LIMITS
from rtframe.messages import ErrorCode
from rtframe.testing import HandshakeRejected, TestClient, WebSocketSession
from rtframe.types import Message

from .servers import uvicorn_server

ws = WebSocketRouter()


class Echo(BaseModel):
    type: Literal["echo"] = "echo"
    n: int


class Join(BaseModel):
    type: Literal["join"] = "join"
    group: str


class Leave(BaseModel):
    type: Literal["leave"] = "leave"
    group: str


@ws.route("/ws")
async def connect_handler(conn: Connection) -> None:
    user = conn.query_params.get("user")
    if user is not None:
        conn.state.user = user  # what a real app's auth dependency would find
    if conn.query_params.get("crash"):
        raise RuntimeError("the connect handler crashed")
    if conn.query_params.get("reject"):
        raise Reject(4000, "rejected by the app")


@ws.on_receive("/ws")
async def echo(msg: Echo) -> dict[str, int]:
    return {"n": msg.n}


@ws.on_receive("/ws")
async def join(msg: Join, conn: Connection) -> dict[str, Any]:
    await Group(msg.group).add(conn)
    return {"joined": msg.group, "groups": len(conn.groups)}


@ws.on_receive("/ws")
async def leave(msg: Leave, conn: Connection) -> dict[str, Any]:
    await Group(msg.group).discard(conn)
    return {"left": msg.group}


def user_of(conn: Connection) -> str | None:
    """The per-user key: what the connect handler found (here, from the query)."""
    return getattr(conn.state, "user", None)


def make_app(rate_limit: RateLimit | None = None, **limits: Any) -> RealtimeApp:
    options: dict[str, Any] = {"handshakes_per_second": None, **limits}
    return RealtimeApp([ws], limits=Limits(**options), rate_limit=rate_limit)


def counts(app: RealtimeApp) -> dict[str, Any]:
    return app._admission.counts()


ZERO = {"open": 0, "addresses": {}, "users": {}}


async def settled(app: RealtimeApp, still_open: int = 0) -> None:
    """Wait until the sessions of `app` but `still_open` finished their teardown."""
    for _ in range(200):
        if len(app.sessions) == counts(app)["open"] == still_open:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"{counts(app)} after 1 s, expected {still_open} open")


async def raw_handshake(
    app: RealtimeApp, client: tuple[str, int] = ("10.0.0.9", 1)
) -> list[Message]:
    """One handshake from a server offering `websocket.http.response` (as uvicorn does)."""
    sent: list[Message] = []
    incoming: list[Message] = [
        {"type": "websocket.disconnect", "code": 1000},
        {"type": "websocket.connect"},
    ]

    async def receive() -> Message:
        return incoming.pop() if incoming else {"type": "websocket.disconnect", "code": 1000}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/ws",
        "headers": [],
        "query_string": b"",
        "client": client,
        "extensions": {"websocket.http.response": {}},
    }
    await app(scope, receive, send)
    return sent


# -- configuration ---------------------------------------------------------------------


def test_the_defaults_are_documented_values() -> None:
    limits = Limits()
    assert (limits.connections, limits.per_address, limits.per_user) == (10_000, 1_000, 50)
    assert (limits.handshakes_per_second, limits.groups_per_connection) == (500, 128)
    assert limits.handshake_limit() == RateLimit(messages=500, burst=1000)
    assert limits.user_key is None
    assert DEFAULT_RATE_LIMIT == RateLimit(messages=50, per=1.0, burst=100, action="reject")
    app = RealtimeApp([ws])
    assert app.limits == Limits() and app.rate_limit == DEFAULT_RATE_LIMIT
    assert app.routes[0].rate_limit == DEFAULT_RATE_LIMIT
    assert RealtimeApp([ws], rate_limit=None).routes[0].rate_limit is None
    assert NO_LIMITS.handshake_limit() is None
    assert "limit_exceeded" in get_args(ErrorCode)
    assert issubclass(LimitExceededError, RtframeError)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"connections": 0},
        {"per_address": -1},
        {"per_user": 1.5},
        {"handshakes_per_second": 0},
        {"groups_per_connection": 0},
        {"retry_after": 0},
        {"user_key": "not callable"},
    ],
)
def test_bad_limits_are_refused(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        Limits(**kwargs)


# -- connections per process -------------------------------------------------------------


async def test_connections_per_process_refuse_the_excess_with_try_again_later(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(connections=2)
    async with TestClient(app) as client:
        async with client.websocket("/ws") as first, client.websocket("/ws"):
            with caplog.at_level(logging.WARNING, "rtframe"):
                # no HTTP answer possible in-process: accepted, then closed with 1013
                async with client.websocket("/ws") as third:
                    await third.expect_close(1013)
                    assert third.close_reason == "try again later"
            assert app.limit_stats.connections == 1
            assert "2 connections are open" in caplog.text
            assert "Limits.connections" in caplog.text
            assert "close code 1013" in caplog.text
            await first.close()
            await settled(app, still_open=1)
            async with client.websocket("/ws") as again:  # the limit freed up
                await again.send_json({"type": "echo", "n": 1})
                assert await again.receive_json() == {"n": 1}
        assert app.limit_stats.connections == 1


async def test_connections_per_process_answer_http_503_with_retry_after_when_possible(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(connections=1, retry_after=4)
    async with TestClient(app) as client, client.websocket("/ws"):
        with caplog.at_level(logging.WARNING, "rtframe"):
            start, body = await raw_handshake(app)
    assert start["type"] == "websocket.http.response.start" and start["status"] == 503
    assert 1 <= int(dict(start["headers"])[b"retry-after"]) <= 4
    assert body["type"] == "websocket.http.response.body" and b"busy" in body["body"]
    assert "HTTP 503, Retry-After" in caplog.text
    assert app.limit_stats.connections == 1


async def test_a_storm_of_refusals_is_logged_once_a_second_and_counted_in_full(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(connections=1)
    async with TestClient(app) as client, client.websocket("/ws"):
        with caplog.at_level(logging.WARNING, "rtframe"):
            for _ in range(20):
                assert (await raw_handshake(app))[0]["status"] == 503
            assert app.limit_stats.connections == 20
            assert caplog.text.count("refused the WebSocket handshake") == 1
            app._admission._logged["connections"] -= 1.0  # a second later
            await raw_handshake(app)
        assert "19 more refused since the last report" in caplog.text


async def test_no_connect_handler_runs_for_a_refused_handshake() -> None:
    calls: list[str] = []
    router = WebSocketRouter()

    @router.route("/ws")
    async def counted(conn: Connection) -> None:
        calls.append(conn.id)

    app = RealtimeApp([router], limits=Limits(connections=1))
    async with TestClient(app) as client, client.websocket("/ws"):
        async with client.websocket("/ws") as refused:
            await refused.expect_close(1013)
    assert len(calls) == 1


# -- per client address ----------------------------------------------------------------


async def test_per_address_refuses_the_excess_with_1008_and_frees_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(per_address=2)
    async with TestClient(app, client=("10.0.0.1", 1000)) as a:
        b = TestClient(app, client=("10.0.0.2", 1000))
        async with a.websocket("/ws") as first, a.websocket("/ws"):
            with (
                caplog.at_level(logging.WARNING, "rtframe"),
                pytest.raises(HandshakeRejected) as refused,
            ):
                async with a.websocket("/ws"):
                    pass
            assert refused.value.code == 1008
            assert refused.value.reason == "too many connections from this address"
            assert "10.0.0.1 has 2 connections open" in caplog.text
            assert "Limits.per_address" in caplog.text
            assert app.limit_stats.per_address == 1
            async with b.websocket("/ws"):  # another address is not affected
                assert counts(app)["addresses"] == {"10.0.0.1": 2, "10.0.0.2": 1}
            await first.close()
            await settled(app, still_open=1)
            async with a.websocket("/ws"):
                pass
    await settled(app)
    assert counts(app) == ZERO


# -- per user ----------------------------------------------------------------------------


async def test_per_user_refuses_the_excess_with_1008_and_frees_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(per_user=2, user_key=user_of)
    async with TestClient(app) as client:
        async with client.websocket("/ws?user=ada") as first, client.websocket("/ws?user=ada"):
            with (
                caplog.at_level(logging.WARNING, "rtframe"),
                pytest.raises(HandshakeRejected) as refused,
            ):
                async with client.websocket("/ws?user=ada"):
                    pass
            assert refused.value.code == 1008
            assert "too many connections for this user" in caplog.text
            assert "Limits.per_user" in caplog.text
            assert app.limit_stats.per_user == 1
            async with (
                client.websocket("/ws?user=bob"),
                client.websocket("/ws"),
                client.websocket("/ws"),
            ):
                # another user, and connections with no user (not counted), get in
                assert counts(app)["users"] == {"ada": 2, "bob": 1}
            await first.close()
            await settled(app, still_open=1)
            async with client.websocket("/ws?user=ada") as again:
                await again.send_json({"type": "echo", "n": 2})
                assert await again.receive_json() == {"n": 2}
    await settled(app)
    assert counts(app) == ZERO


async def test_per_user_closes_with_1008_when_the_connect_handler_accepted_itself() -> None:
    router = WebSocketRouter()

    @router.route("/ws")
    async def accepting(conn: Connection) -> None:
        await conn.accept()

    app = RealtimeApp([router], limits=Limits(per_user=1, user_key=lambda conn: "everyone"))
    async with TestClient(app) as client, client.websocket("/ws"):
        async with client.websocket("/ws") as late:
            await late.expect_close(1008)
    await settled(app)
    assert counts(app) == ZERO


# -- handshakes per second ---------------------------------------------------------------


async def test_handshakes_per_second_refuse_the_excess_until_the_bucket_refills(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(handshakes_per_second=20, handshake_burst=2)
    async with TestClient(app) as client:
        async with client.websocket("/ws"), client.websocket("/ws"):
            with caplog.at_level(logging.WARNING, "rtframe"):
                async with client.websocket("/ws") as third:
                    await third.expect_close(1013)
            assert app.limit_stats.handshakes == 1
            assert "more than 20 handshakes a second" in caplog.text
            await asyncio.sleep(0.12)  # 20 a second: two tokens back
            async with client.websocket("/ws") as later:
                await later.send_json({"type": "echo", "n": 3})
                assert await later.receive_json() == {"n": 3}
    assert app.limit_stats.handshakes == 1


# -- groups per connection ---------------------------------------------------------------


async def test_groups_per_connection_refuse_with_limit_exceeded_and_the_connection_stays_open(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(groups_per_connection=2)
    async with TestClient(app) as client, client.websocket("/ws") as sock:
        for name in ("a", "b"):
            await sock.send_json({"type": "join", "group": name})
            assert (await sock.receive_json())["joined"] == name
        with caplog.at_level(logging.WARNING, "rtframe"):
            await sock.send_json({"type": "join", "group": "c"})
            frame = await sock.receive_json()
        assert frame["type"] == "error" and frame["code"] == "limit_exceeded"
        assert "2 groups" in frame["detail"]
        assert "may not join group 'c'" in caplog.text
        assert "Limits.groups_per_connection" in caplog.text
        assert "Traceback" not in caplog.text and "internal_error" not in caplog.text
        assert app.limit_stats.groups == 1
        # joining a group it is in changes nothing and is allowed; the connection is open
        await sock.send_json({"type": "join", "group": "a"})
        assert await sock.receive_json() == {"joined": "a", "groups": 2}
        await sock.send_json({"type": "leave", "group": "b"})
        assert await sock.receive_json() == {"left": "b"}
        await sock.send_json({"type": "join", "group": "c"})  # room again
        assert await sock.receive_json() == {"joined": "c", "groups": 2}
    assert app.limit_stats.groups == 1


# -- message rate (on by default) --------------------------------------------------------


async def test_the_default_rate_limit_refuses_a_flood_and_spares_a_normal_client(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = RealtimeApp([ws], limits=Limits(handshakes_per_second=None))  # rate_limit: the default

    async def normal(sock: WebSocketSession) -> list[Any]:
        replies = []
        for n in range(10):  # 20 a second, a lively user
            await sock.send_json({"type": "echo", "n": n})
            replies.append(await sock.receive_json())
            await asyncio.sleep(0.05)
        return replies

    async with TestClient(app) as client:
        async with client.websocket("/ws") as flooder, client.websocket("/ws") as calm:
            calm_task = asyncio.create_task(normal(calm))
            with caplog.at_level(logging.WARNING, "rtframe"):
                for n in range(400):
                    await flooder.send_json({"type": "echo", "n": n})
                replies = [await flooder.receive_json() for _ in range(400)]
            assert await calm_task == [{"n": n} for n in range(10)]
    refused = [r for r in replies if r.get("code") == "rate_limited"]
    answered = [r for r in replies if "n" in r]
    assert len(answered) + len(refused) == 400
    assert 100 <= len(answered) < 200  # the burst, plus what 50 a second refilled meanwhile
    assert answered[:100] == [{"n": n} for n in range(100)]
    assert app.limit_stats.messages == len(refused)
    # one log line per connection, not one per refused frame
    assert caplog.text.count("over its rate limit") == 1


async def test_rate_limit_none_switches_the_default_off() -> None:
    app = RealtimeApp([ws], rate_limit=None)
    async with TestClient(app) as client, client.websocket("/ws") as sock:
        for n in range(400):
            await sock.send_json({"type": "echo", "n": n})
        replies = [await sock.receive_json() for _ in range(400)]
    assert replies == [{"n": n} for n in range(400)]
    assert app.limit_stats.messages == 0


# -- no leak -----------------------------------------------------------------------------


async def test_counts_are_back_to_zero_after_1000_connect_disconnect_cycles() -> None:
    app = make_app(per_address=3, per_user=2, user_key=user_of)
    paths = [
        "/ws?user=ada",  # counted under ada
        "/ws",  # no user
        "/ws?user=ada&crash=1",  # the connect handler crashes: 1011 before accept
        "/ws?user=bob&reject=1",  # the connect handler refuses: 4000
    ]
    async with TestClient(app, client=("10.0.0.5", 1)) as client:
        for i in range(250):
            for path in paths:
                try:
                    async with client.websocket(path) as sock:
                        if i % 2:
                            await sock.send_json({"type": "join", "group": f"g{i}"})
                            await sock.receive_json()
                except HandshakeRejected:
                    pass
        # refusals by the limits release too: fill an address and a user, go past both
        async with client.websocket("/ws?user=ada"), client.websocket("/ws?user=ada"):
            with pytest.raises(HandshakeRejected):
                async with client.websocket("/ws?user=ada"):
                    pass
            async with client.websocket("/ws"):
                with pytest.raises(HandshakeRejected):
                    async with client.websocket("/ws"):
                        pass
        await settled(app)
        assert counts(app) == ZERO
        assert len(app.sessions) == 0 and app.hub.registry.groups() == []
    assert app.limit_stats.per_user == 1 and app.limit_stats.per_address == 1


# -- a real server: what a browser sees ------------------------------------------------


@pytest.mark.e2e
async def test_uvicorn_answers_http_503_with_retry_after_past_the_process_limit() -> None:
    with uvicorn_server("tests.limits_app:app", env={"LIMIT_CONNECTIONS": "2"}) as port:
        url = f"ws://127.0.0.1:{port}/ws"
        async with connect(url), connect(url):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url):
                    pass
        response = refused.value.response
        assert response.status_code == 503
        assert 1 <= int(response.headers["Retry-After"]) <= 3
        async with connect(url) as again:  # both closed: room again
            await again.send('{"type": "$ping"}')
            assert await asyncio.wait_for(again.recv(), 5) == '{"type":"$pong"}'


@pytest.mark.e2e
async def test_uvicorn_answers_http_403_past_the_per_address_limit() -> None:
    with uvicorn_server("tests.limits_app:app", env={"LIMIT_PER_ADDRESS": "1"}) as port:
        url = f"ws://127.0.0.1:{port}/ws"
        async with connect(url):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url):
                    pass
        assert refused.value.response.status_code == 403
        async with connect(url):  # the first one closed: room again
            pass
