"""Users, sessions and guards from the handshake's session cookie (in-process)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any, Literal

import pytest
from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.test import override_settings
from pydantic import BaseModel

import rtframe.django as rd
from rtframe import ConfigurationError, Connection, RealtimeApp, WebSocketRouter
from rtframe.testing import HandshakeRejected, TestClient

from .conftest import session_cookie, session_key

pytestmark = pytest.mark.django_db(transaction=True)

ws = WebSocketRouter()


class Put(BaseModel):
    type: Literal["put"] = "put"
    key: str
    value: str


class Get(BaseModel):
    type: Literal["get"] = "get"
    key: str


class Value(BaseModel):
    key: str
    value: Any


@ws.route("/ws/whoami")
async def whoami(conn: Connection, user: rd.CurrentUser) -> None:
    await conn.accept()
    await conn.send({"username": user.get_username(), "authenticated": user.is_authenticated})


@ws.route("/ws/private")
async def private(conn: Connection, user: rd.LoginRequired) -> None:
    await conn.accept()
    await conn.send({"username": user.get_username()})


@ws.route("/ws/staff")
async def staff(
    conn: Connection,
    user: Annotated[AbstractBaseUser, rd.permission_required("chat.add_message")],
) -> None:
    await conn.accept()
    await conn.send({"username": user.get_username()})


@ws.on_receive("/ws/session")
async def put(msg: Put, session: rd.Session) -> Value:
    session[msg.key] = msg.value
    return Value(key=msg.key, value=msg.value)


@ws.on_receive("/ws/session")
async def get(msg: Get, session: rd.Session) -> Value:
    return Value(key=msg.key, value=session.get(msg.key))


class Ping(BaseModel):
    n: int


@ws.on_receive("/ws/ping")
async def ping(msg: Ping, user: rd.CurrentUser) -> dict[str, Any]:
    return {"n": msg.n, "user": user.get_username()}


@ws.on_receive("/ws/verified")
async def verified_ping(msg: Ping, user: rd.VerifiedUser) -> dict[str, Any]:
    return {"n": msg.n, "user": user.get_username()}


app = rd.mount(RealtimeApp([ws]), django_app=None)


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with TestClient(app) as c:
        yield c


def stored_session(key: str) -> dict[str, Any]:
    from importlib import import_module

    store = import_module(settings.SESSION_ENGINE).SessionStore(key)
    return dict(store.items())


async def test_logged_in_user_arrives_in_the_handler(
    client: TestClient, make_user: Callable[..., Any]
) -> None:
    cookies = await sync_to_async(session_cookie)(await sync_to_async(make_user)("ada"))
    async with client.websocket("/ws/whoami", headers=cookies) as conn:
        assert await conn.receive_json() == {"username": "ada", "authenticated": True}


async def test_no_cookie_gives_the_anonymous_user(client: TestClient) -> None:
    async with client.websocket("/ws/whoami") as conn:
        assert await conn.receive_json() == {"username": "", "authenticated": False}


async def test_unknown_session_key_gives_the_anonymous_user(client: TestClient) -> None:
    cookies = {settings.SESSION_COOKIE_NAME: "no-such-session-key-0123456789"}
    async with client.websocket("/ws/whoami", cookies=cookies) as conn:
        assert await conn.receive_json() == {"username": "", "authenticated": False}


async def test_session_of_a_changed_password_is_no_longer_trusted(
    client: TestClient, make_user: Callable[..., Any]
) -> None:
    user = await sync_to_async(make_user)("ada")
    cookies = await sync_to_async(session_cookie)(user)

    def change_password() -> None:
        user.set_password("another one")
        user.save()

    await sync_to_async(change_password)()
    async with client.websocket("/ws/whoami", headers=cookies) as conn:
        assert await conn.receive_json() == {"username": "", "authenticated": False}
    # Django's get_user flushed the stale session, as it does for HTTP requests
    assert await sync_to_async(stored_session)(session_key(cookies)) == {}


async def test_login_required_refuses_an_anonymous_handshake(client: TestClient) -> None:
    with pytest.raises(HandshakeRejected) as refused:
        async with client.websocket("/ws/private"):
            pass
    assert refused.value.code == rd.CLOSE_LOGIN_REQUIRED


async def test_login_required_lets_a_user_in(
    client: TestClient, make_user: Callable[..., Any]
) -> None:
    cookies = await sync_to_async(session_cookie)(await sync_to_async(make_user)("ada"))
    async with client.websocket("/ws/private", headers=cookies) as conn:
        assert await conn.receive_json() == {"username": "ada"}


async def test_permission_required_refuses_a_user_without_it(
    client: TestClient, make_user: Callable[..., Any]
) -> None:
    cookies = await sync_to_async(session_cookie)(await sync_to_async(make_user)("ada"))
    with pytest.raises(HandshakeRejected) as refused:
        async with client.websocket("/ws/staff", headers=cookies):
            pass
    assert refused.value.code == rd.CLOSE_PERMISSION_DENIED


async def test_permission_required_refuses_an_anonymous_user(client: TestClient) -> None:
    with pytest.raises(HandshakeRejected) as refused:
        async with client.websocket("/ws/staff"):
            pass
    assert refused.value.code == rd.CLOSE_LOGIN_REQUIRED


async def test_permission_required_lets_a_user_with_it_in(
    client: TestClient, make_user: Callable[..., Any]
) -> None:
    user = await sync_to_async(make_user)("grace", perms=("chat.add_message",))
    cookies = await sync_to_async(session_cookie)(user)
    async with client.websocket("/ws/staff", headers=cookies) as conn:
        assert await conn.receive_json() == {"username": "grace"}


def test_permission_required_checks_its_arguments() -> None:
    with pytest.raises(ConfigurationError, match="at least one"):
        rd.permission_required()
    with pytest.raises(ConfigurationError, match=r"app_label\.codename"):
        rd.permission_required("add_message")


def test_guards_carry_the_security_marker() -> None:
    scheme = {"type": "httpApiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME}
    marker = rd.permission_required("chat.add_message")
    guards: list[Any] = [rd.require_login, rd.verified_user, marker.dependency]
    for guard in guards:
        assert guard.__rtframe_security__() == scheme
    with override_settings(SESSION_COOKIE_NAME="chatsession"):
        assert rd.require_login.__rtframe_security__()["name"] == "chatsession"  # type: ignore[attr-defined]


async def test_session_write_is_saved_after_the_handler(
    client: TestClient, make_user: Callable[..., Any]
) -> None:
    cookies = await sync_to_async(session_cookie)(await sync_to_async(make_user)("ada"))
    key = session_key(cookies)
    async with client.websocket("/ws/session", headers=cookies) as conn:
        await conn.send_json({"type": "put", "key": "colour", "value": "teal"})
        assert await conn.receive_json() == {"key": "colour", "value": "teal"}
        # saved while the connection is still open, so Django views see it at once
        assert (await sync_to_async(stored_session)(key))["colour"] == "teal"
    async with client.websocket("/ws/session", headers=cookies) as conn:
        await conn.send_json({"type": "get", "key": "colour"})
        assert await conn.receive_json() == {"key": "colour", "value": "teal"}


async def test_session_reads_what_django_views_wrote(
    client: TestClient, make_user: Callable[..., Any]
) -> None:
    cookies = await sync_to_async(session_cookie)(await sync_to_async(make_user)("ada"))

    def write() -> None:
        from importlib import import_module

        store = import_module(settings.SESSION_ENGINE).SessionStore(session_key(cookies))
        store["cart"] = "3 items"
        store.save()

    await sync_to_async(write)()
    async with client.websocket("/ws/session", headers=cookies) as conn:
        await conn.send_json({"type": "get", "key": "cart"})
        assert await conn.receive_json() == {"key": "cart", "value": "3 items"}


async def test_session_write_without_a_cookie_is_dropped_with_a_warning(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "rtframe.django")
    async with client.websocket("/ws/session") as conn:
        await conn.send_json({"type": "put", "key": "colour", "value": "teal"})
        assert await conn.receive_json() == {"key": "colour", "value": "teal"}
    assert "no valid session cookie" in caplog.text


async def test_session_deleted_meanwhile_is_not_resurrected(
    client: TestClient, make_user: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "rtframe.django")
    cookies = await sync_to_async(session_cookie)(await sync_to_async(make_user)("ada"))
    key = session_key(cookies)

    def log_out_elsewhere() -> None:
        from django.contrib.sessions.models import Session

        Session.objects.filter(session_key=key).delete()

    async with client.websocket("/ws/session", headers=cookies) as conn:
        await conn.send_json({"type": "get", "key": "x"})
        await conn.receive_json()
        await sync_to_async(log_out_elsewhere)()
        await conn.send_json({"type": "put", "key": "colour", "value": "teal"})
        assert await conn.receive_json() == {"key": "colour", "value": "teal"}
    assert "deleted meanwhile" in caplog.text
    assert await sync_to_async(stored_session)(key) == {}


@pytest.mark.parametrize(
    "engine",
    [
        "django.contrib.sessions.backends.db",
        "django.contrib.sessions.backends.cache",
        "django.contrib.sessions.backends.cached_db",
        "django.contrib.sessions.backends.signed_cookies",
    ],
)
async def test_every_session_engine_gives_the_user(
    engine: str, make_user: Callable[..., Any]
) -> None:
    with override_settings(SESSION_ENGINE=engine):
        cookies = await sync_to_async(session_cookie)(await sync_to_async(make_user)("ada"))
        async with TestClient(app) as client:
            async with client.websocket("/ws/whoami", headers=cookies) as conn:
                assert await conn.receive_json() == {"username": "ada", "authenticated": True}


async def test_signed_cookie_session_write_is_dropped_with_a_warning(
    make_user: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "rtframe.django")
    with override_settings(SESSION_ENGINE="django.contrib.sessions.backends.signed_cookies"):
        cookies = await sync_to_async(session_cookie)(await sync_to_async(make_user)("ada"))
        async with TestClient(app) as client:
            async with client.websocket("/ws/session", headers=cookies) as conn:
                await conn.send_json({"type": "put", "key": "colour", "value": "teal"})
                assert await conn.receive_json() == {"key": "colour", "value": "teal"}
                # the connection's own copy keeps the value for its later handlers
                await conn.send_json({"type": "get", "key": "colour"})
                assert await conn.receive_json() == {"key": "colour", "value": "teal"}
    assert "stores the session in the browser's cookie" in caplog.text


async def test_the_user_is_read_once_per_connection(
    client: TestClient, make_user: Callable[..., Any]
) -> None:
    cookies = await sync_to_async(session_cookie)(await sync_to_async(make_user)("ada"))

    async with client.websocket("/ws/ping", headers=cookies) as conn:
        await conn.send_json({"n": 1})
        assert await conn.receive_json() == {"n": 1, "user": "ada"}
        await sync_to_async(end_session)(session_key(cookies))  # logged out elsewhere
        # documented: an open connection keeps the user it was opened with
        await conn.send_json({"n": 2})
        assert await conn.receive_json() == {"n": 2, "user": "ada"}
    async with client.websocket("/ws/ping", headers=cookies) as conn:
        await conn.send_json({"n": 3})
        assert await conn.receive_json() == {"n": 3, "user": ""}


def test_importing_the_integration_needs_no_configured_django() -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", "import rtframe.django; print(rtframe.django.CurrentUser)"],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr


def end_session(key: str) -> None:
    from django.contrib.sessions.models import Session

    Session.objects.filter(session_key=key).delete()


async def test_verified_user_closes_a_connection_whose_session_ended(
    client: TestClient, make_user: Callable[..., Any]
) -> None:
    cookies = await sync_to_async(session_cookie)(await sync_to_async(make_user)("ada"))
    with override_settings(RTFRAME={"USER_RECHECK_SECONDS": 0}):
        async with client.websocket("/ws/verified", headers=cookies) as conn:
            await conn.send_json({"n": 1})
            assert await conn.receive_json() == {"n": 1, "user": "ada"}
            await sync_to_async(end_session)(session_key(cookies))
            await conn.send_json({"n": 2})
            await conn.expect_close(rd.CLOSE_LOGIN_REQUIRED)


async def test_verified_user_closes_a_deactivated_user(
    client: TestClient, make_user: Callable[..., Any]
) -> None:
    user = await sync_to_async(make_user)("ada")
    cookies = await sync_to_async(session_cookie)(user)

    def deactivate() -> None:
        user.is_active = False
        user.save()

    with override_settings(RTFRAME={"USER_RECHECK_SECONDS": 0}):
        async with client.websocket("/ws/verified", headers=cookies) as conn:
            await conn.send_json({"n": 1})
            assert await conn.receive_json() == {"n": 1, "user": "ada"}
            await sync_to_async(deactivate)()
            await conn.send_json({"n": 2})
            await conn.expect_close(rd.CLOSE_LOGIN_REQUIRED)


async def test_verified_user_rechecks_only_after_the_interval(
    client: TestClient, make_user: Callable[..., Any]
) -> None:
    cookies = await sync_to_async(session_cookie)(await sync_to_async(make_user)("ada"))
    with override_settings(RTFRAME={"USER_RECHECK_SECONDS": 3600}):
        async with client.websocket("/ws/verified", headers=cookies) as conn:
            await conn.send_json({"n": 1})
            assert await conn.receive_json() == {"n": 1, "user": "ada"}
            await sync_to_async(end_session)(session_key(cookies))
            await conn.send_json({"n": 2})  # within the hour: not re-read yet
            assert await conn.receive_json() == {"n": 2, "user": "ada"}


async def test_verified_user_refuses_anonymous_users(client: TestClient) -> None:
    async with client.websocket("/ws/verified") as conn:
        await conn.send_json({"n": 1})
        await conn.expect_close(rd.CLOSE_LOGIN_REQUIRED)
