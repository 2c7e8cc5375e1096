"""A logout, a session flush or a password change closes the user's open sockets (in-process).

The app runs on the in-memory layer here: the end of a session is published on the app's
event loop from Django's sync code. Across processes (Redis) see test_django_e2e.py.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable
from importlib import import_module
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import auth
from django.contrib.auth.signals import user_logged_out
from django.http import HttpRequest, HttpResponse
from django.test import override_settings
from pydantic import BaseModel

import rtframe.django as rd
from rtframe import (
    Connection,
    HistoryPolicy,
    LayerUnavailableError,
    RealtimeApp,
    RedisLayer,
    WebSocketRouter,
)
from rtframe.django.logout import CONTROL_GROUP
from rtframe.layers.memory import InMemoryLayer
from rtframe.testing import TestClient
from rtframe.types import Message

from .conftest import session_cookie, session_key

pytestmark = pytest.mark.django_db(transaction=True)

ws = WebSocketRouter()


class Echo(BaseModel):
    n: int


@ws.route("/ws/me")
async def me(conn: Connection, user: rd.CurrentUser) -> None:
    await conn.accept()
    await conn.send({"user": user.get_username()})


handled: list[int] = []  # what the handler did: post a message, say


@ws.on_receive("/ws/me")
async def echo(msg: Echo, user: rd.CurrentUser) -> dict[str, Any]:
    handled.append(msg.n)
    return {"n": msg.n, "user": user.get_username()}


@ws.route("/ws/open")
async def open_route(conn: Connection) -> None:
    await conn.accept()


@ws.on_receive("/ws/open")
async def open_echo(msg: Echo) -> dict[str, Any]:
    return {"n": msg.n}


@pytest.fixture
async def app() -> AsyncIterator[RealtimeApp]:
    realtime = rd.mount(RealtimeApp([ws]), django_app=None)
    yield realtime


@pytest.fixture
async def client(app: RealtimeApp) -> AsyncIterator[TestClient]:
    async with TestClient(app) as c:
        yield c


async def login(make_user: Callable[..., Any], name: str) -> tuple[Any, dict[str, str]]:
    user = await sync_to_async(make_user)(name)
    return user, await sync_to_async(session_cookie)(user)


def request_with_session(cookies: dict[str, str], user: Any) -> HttpRequest:
    """A request as Django's middleware leaves it: the browser's session and user."""
    request = HttpRequest()
    key = session_key(cookies)
    request.COOKIES[settings.SESSION_COOKIE_NAME] = key
    request.session = import_module(settings.SESSION_ENGINE).SessionStore(key)
    request.user = user
    return request


async def still_open(conn: Any, n: int = 1) -> None:
    await conn.send_json({"n": n})
    assert (await conn.receive_json())["n"] == n


async def test_logout_closes_that_users_sockets_not_anothers(
    client: TestClient, make_user: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "rtframe.django")
    ada, ada_cookies = await login(make_user, "ada")
    ada_phone = await sync_to_async(session_cookie)(ada)  # a second browser
    _, bob_cookies = await login(make_user, "bob")
    async with (
        client.websocket("/ws/me", headers=ada_cookies) as one,
        client.websocket("/ws/me", headers=ada_phone) as two,
        client.websocket("/ws/me", headers=bob_cookies) as bob,
        client.websocket("/ws/open", headers=ada_cookies) as anonymous_route,
    ):
        for conn in (one, two, bob):
            await conn.receive_json()
        await sync_to_async(auth.logout)(request_with_session(ada_cookies, ada))
        for conn in (one, two):  # every socket of the user, whichever session
            assert await conn.expect_close(rd.CLOSE_SESSION_ENDED, timeout=1) == 4001
        assert one.close_reason == "logged out"
        await still_open(bob)
        await still_open(anonymous_route)  # never read a user: not Django-authenticated
    assert "closing" in caplog.text and "logged out (close code 4001)" in caplog.text


async def test_a_logged_out_socket_handles_no_more_messages(
    client: TestClient, make_user: Callable[..., Any]
) -> None:
    ada, cookies = await login(make_user, "ada")
    async with client.websocket("/ws/me", headers=cookies) as conn:
        await conn.receive_json()
        await sync_to_async(auth.logout)(request_with_session(cookies, ada))
        await conn.expect_close(4001, timeout=1)
        with pytest.raises(AssertionError):  # closed: the client cannot post any more
            await conn.send_json({"n": 1})


async def test_the_signal_sent_on_the_apps_own_loop(
    client: TestClient, make_user: Callable[..., Any]
) -> None:
    ada, cookies = await login(make_user, "ada")
    async with client.websocket("/ws/me", headers=cookies) as conn:
        await conn.receive_json()
        # sync code running on the event loop itself (no thread): scheduled, not awaited
        user_logged_out.send(sender=type(ada), request=HttpRequest(), user=ada)
        await conn.expect_close(4001, timeout=1)


async def test_an_anonymous_logout_closes_nothing(
    client: TestClient, make_user: Callable[..., Any]
) -> None:
    _, cookies = await login(make_user, "ada")
    async with client.websocket("/ws/me", headers=cookies) as conn:
        await conn.receive_json()
        user_logged_out.send(sender=None, request=HttpRequest(), user=None)
        await still_open(conn)


async def test_a_session_flushed_by_a_view_closes_that_sessions_sockets(
    client: TestClient, make_user: Callable[..., Any]
) -> None:
    ada, laptop = await login(make_user, "ada")
    phone = await sync_to_async(session_cookie)(ada)

    def view(request: HttpRequest) -> HttpResponse:
        request.session.flush()  # not a logout: no signal
        return HttpResponse()

    middleware = rd.SessionEndMiddleware(view)
    async with (
        client.websocket("/ws/me", headers=laptop) as flushed,
        client.websocket("/ws/me", headers=phone) as other,
    ):
        await flushed.receive_json()
        await other.receive_json()
        await sync_to_async(middleware)(request_with_session(laptop, ada))
        await flushed.expect_close(4001, timeout=1)
        assert flushed.close_reason == "session ended"
        await still_open(other)  # the user's other session is still valid


async def test_a_view_that_keeps_its_session_closes_nothing(
    client: TestClient, make_user: Callable[..., Any]
) -> None:
    ada, cookies = await login(make_user, "ada")

    def view(request: HttpRequest) -> HttpResponse:
        request.session["seen"] = True
        request.session.save()
        return HttpResponse()

    async with client.websocket("/ws/me", headers=cookies) as conn:
        await conn.receive_json()
        await sync_to_async(rd.SessionEndMiddleware(view))(request_with_session(cookies, ada))
        await still_open(conn)


async def test_logging_in_over_a_session_closes_its_sockets(
    client: TestClient, make_user: Callable[..., Any]
) -> None:
    ada, cookies = await login(make_user, "ada")
    bob = await sync_to_async(make_user)("bob")
    async with client.websocket("/ws/me", headers=cookies) as conn:
        await conn.receive_json()
        request = request_with_session(cookies, ada)
        # bob logs in on ada's browser: Django flushes her session first
        await sync_to_async(auth.login)(request, bob, "django.contrib.auth.backends.ModelBackend")
        await conn.expect_close(4001, timeout=1)


@pytest.mark.parametrize("how", ["set_password", "password_change_view"])
async def test_a_password_change_closes_every_socket_of_the_user(
    client: TestClient, make_user: Callable[..., Any], how: str
) -> None:
    ada, cookies = await login(make_user, "ada")
    _, bob_cookies = await login(make_user, "bob")

    def change_password() -> None:
        ada.set_password("another one")
        ada.save()
        if how == "password_change_view":  # what PasswordChangeView does after the save
            auth.update_session_auth_hash(request_with_session(cookies, ada), ada)

    async with (
        client.websocket("/ws/me", headers=cookies) as conn,
        client.websocket("/ws/me", headers=bob_cookies) as bob,
    ):
        await conn.receive_json()
        await bob.receive_json()
        await sync_to_async(change_password)()
        await conn.expect_close(4001, timeout=1)
        assert conn.close_reason == "password changed"
        await still_open(bob)


async def test_saving_a_user_without_a_new_password_closes_nothing(
    client: TestClient, make_user: Callable[..., Any]
) -> None:
    ada, cookies = await login(make_user, "ada")

    def rename() -> None:
        ada.first_name = "Ada"
        ada.save()

    async with client.websocket("/ws/me", headers=cookies) as conn:
        await conn.receive_json()
        await sync_to_async(rename)()
        await still_open(conn)


async def test_end_sessions_by_hand(client: TestClient, make_user: Callable[..., Any]) -> None:
    ada, cookies = await login(make_user, "ada")
    async with client.websocket("/ws/me", headers=cookies) as conn:
        await conn.receive_json()
        reached = await sync_to_async(rd.end_sessions)(user=ada.pk, reason="banned")
        assert reached == 1
        await conn.expect_close(4001, timeout=1)
        assert conn.close_reason == "banned"
    assert rd.end_sessions() == 0  # nobody named


async def test_the_control_group_is_left_with_the_last_socket(
    app: RealtimeApp, client: TestClient, make_user: Callable[..., Any]
) -> None:
    _, cookies = await login(make_user, "ada")
    async with client.websocket("/ws/me", headers=cookies) as conn:
        await conn.receive_json()
        assert app.hub.registry.has_group(CONTROL_GROUP)
        # the index is no member of the connection's own groups (nor counts against them)
        assert CONTROL_GROUP not in next(iter(app.sessions)).conn.groups
    for _ in range(50):
        if not app.hub.registry.has_group(CONTROL_GROUP):
            break
        await asyncio.sleep(0.01)
    assert not app.hub.registry.has_group(CONTROL_GROUP)
    assert CONTROL_GROUP not in app.layer.channels  # type: ignore[attr-defined]


async def test_a_stray_frame_on_the_control_group_is_ignored(
    app: RealtimeApp, client: TestClient, make_user: Callable[..., Any]
) -> None:
    _, cookies = await login(make_user, "ada")
    async with client.websocket("/ws/me", headers=cookies) as conn:
        await conn.receive_json()
        await app.broadcast(CONTROL_GROUP, {"type": "said", "text": "hi"})
        await app.broadcast(CONTROL_GROUP, "not json")
        await still_open(conn)
        await conn.receive_nothing()  # nothing reached the client either


async def test_without_a_running_app_nothing_is_reached(make_user: Callable[..., Any]) -> None:
    ada = await sync_to_async(make_user)("ada")
    with override_settings(RTFRAME={}):  # in-memory: no socket in any other process
        assert await sync_to_async(rd.end_sessions)(user=ada) == 0


async def test_a_frame_that_arrives_after_the_close_is_not_handled(
    make_user: Callable[..., Any],
) -> None:
    # A server may hand the app frames the client sent before it saw the close frame
    # (uvicorn does, during the closing handshake): a logged-out socket handles none.
    ada, cookies = await login(make_user, "ada")
    app = rd.mount(RealtimeApp([ws]), django_app=None)
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    sent: list[Message] = []
    opened = asyncio.Event()

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "websocket.send":
            opened.set()
        elif message["type"] == "websocket.close":
            inbox.put_nowait({"type": "websocket.receive", "text": '{"n": 2}'})
            inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})

    headers = [
        (b"host", b"testserver"),
        (b"origin", b"http://testserver"),
        (b"cookie", cookies["cookie"].encode()),
    ]
    scope = {
        "type": "websocket",
        "scheme": "ws",
        "path": "/ws/me",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
        "subprotocols": [],
    }
    inbox.put_nowait({"type": "websocket.connect"})
    served = asyncio.create_task(app(scope, inbox.get, send))
    try:
        await asyncio.wait_for(opened.wait(), 2)
        await sync_to_async(rd.end_sessions)(user=ada)
        await asyncio.wait_for(served, 2)
    finally:
        await app.shutdown()
    assert 2 not in handled
    kinds = [m["type"] for m in sent]
    assert kinds == ["websocket.accept", "websocket.send", "websocket.close"], sent
    assert sent[-1]["code"] == rd.CLOSE_SESSION_ENDED


@pytest.mark.redis
async def test_over_redis_and_from_a_process_running_no_app(
    make_user: Callable[..., Any],
) -> None:
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    layer = RedisLayer(url, prefix=prefix)
    app = rd.mount(RealtimeApp([ws], layer=layer), django_app=None)
    ada, cookies = await login(make_user, "ada")
    try:
        async with TestClient(app) as client:
            async with client.websocket("/ws/me", headers=cookies) as conn:
                await conn.receive_json()
                # published with the layer's sync client, received back through Redis
                await sync_to_async(auth.logout)(request_with_session(cookies, ada))
                await conn.expect_close(4001, timeout=1)
            async with client.websocket("/ws/me", headers=cookies) as conn:
                await conn.receive_json()  # the session is gone: anonymous now
        # no app runs here any more: the Redis layer of settings.RTFRAME is used
        conf = {"LAYER": {"URL": url, "OPTIONS": {"prefix": prefix}}}
        with override_settings(RTFRAME=conf):
            assert await sync_to_async(rd.end_sessions)(user=ada) == 1
    finally:
        layer.sync_publisher().close()


class DownLayer(InMemoryLayer):
    """A cross-process layer whose backend is unreachable."""

    async def subscribe(self, channel: str) -> None:
        raise LayerUnavailableError("the backend is down")

    async def publish(
        self, channel: str, data: str | bytes, history: HistoryPolicy | None = None
    ) -> None:
        raise LayerUnavailableError("the backend is down")


async def test_an_outage_neither_refuses_the_handshake_nor_spares_local_sockets(
    make_user: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "rtframe.django")
    ada, cookies = await login(make_user, "ada")
    app = rd.mount(RealtimeApp([ws], layer=DownLayer()), django_app=None)
    async with TestClient(app) as client:
        async with client.websocket("/ws/me", headers=cookies) as conn:
            assert (await conn.receive_json())["user"] == "ada"
            assert "may not hear of its session's end in other processes" in caplog.text
            await sync_to_async(auth.logout)(request_with_session(cookies, ada))
            await conn.expect_close(4001, timeout=1)  # this process's sockets still close
    assert "reached this process only" in caplog.text
