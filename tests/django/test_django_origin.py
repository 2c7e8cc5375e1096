"""The Origin check against cross-site WebSocket hijacking."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from django.test import override_settings

import rtframe.django as rd
from rtframe import Connection, RealtimeApp, WebSocketRouter
from rtframe.testing import HandshakeRejected, TestClient

pytestmark = pytest.mark.django_db(transaction=True)  # a session cookie may be looked up

ws = WebSocketRouter()


@ws.route("/ws/open")
async def open_route(conn: Connection) -> None:
    await conn.accept()
    await conn.send({"ok": True})


@ws.route("/ws/user")
async def user_route(conn: Connection, user: rd.CurrentUser) -> None:
    await conn.accept()
    await conn.send({"user": user.get_username()})


@pytest.fixture
async def client() -> AsyncIterator[TestClient]:
    async with TestClient(rd.mount(RealtimeApp([ws]))) as c:
        yield c


async def refused(client: TestClient, path: str, origin: str | None) -> int:
    headers = {} if origin is None else {"origin": origin}
    if origin is None:
        del client.headers["origin"]
    with pytest.raises(HandshakeRejected) as exc:
        async with client.websocket(path, headers=headers):
            pass
    return exc.value.code


@pytest.mark.parametrize(
    "origin",
    ["http://testserver", "http://127.0.0.1:8000", "https://localhost", "HTTP://LOCALHOST:1"],
)
async def test_same_site_origins_are_accepted(client: TestClient, origin: str) -> None:
    async with client.websocket("/ws/open", headers={"origin": origin}) as conn:
        assert await conn.receive_json() == {"ok": True}


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example",
        "http://testserver.evil.example",
        "null",
        "file://",
        "ftp://testserver",
        "http://",
    ],
)
async def test_foreign_origins_are_refused(
    client: TestClient, origin: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "rtframe.django")
    assert await refused(client, "/ws/open", origin) == rd.CLOSE_FORBIDDEN_ORIGIN
    assert f"Origin {origin!r} is not allowed" in caplog.text


async def test_missing_origin_is_refused(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "rtframe.django")
    assert await refused(client, "/ws/open", None) == rd.CLOSE_FORBIDDEN_ORIGIN
    assert "no Origin header" in caplog.text


async def test_wildcard_allowed_hosts_pattern(client: TestClient) -> None:
    with override_settings(ALLOWED_HOSTS=[".example.com"]):
        async with client.websocket("/ws/open", headers={"origin": "https://chat.example.com"}):
            pass
        assert await refused(client, "/ws/open", "https://example.org") == 1008


async def test_explicit_allowed_origins_replace_allowed_hosts(client: TestClient) -> None:
    with override_settings(RTFRAME={"ALLOWED_ORIGINS": ["https://app.example.com"]}):
        async with client.websocket("/ws/open", headers={"origin": "https://app.example.com/"}):
            pass
        # the scheme and port are part of an origin
        assert await refused(client, "/ws/open", "http://app.example.com") == 1008
        assert await refused(client, "/ws/open", "http://testserver") == 1008


async def test_check_can_be_turned_off() -> None:
    with override_settings(RTFRAME={"CHECK_ORIGIN": False}):
        async with TestClient(rd.mount(RealtimeApp([ws]))) as client:
            async with client.websocket("/ws/user", headers={"origin": "https://evil.example"}):
                pass


async def test_session_is_not_read_for_a_foreign_origin_without_mount() -> None:
    # mounted without rtframe.django.mount: the session dependency still checks
    async with TestClient(RealtimeApp([ws])) as client:
        async with client.websocket("/ws/open", headers={"origin": "https://evil.example"}):
            pass  # no cookie read on this route, nothing to protect
        assert await refused(client, "/ws/user", "https://evil.example") == 1008
        async with client.websocket("/ws/user") as conn:
            assert await conn.receive_json() == {"user": ""}


def test_mount_adds_the_check_once() -> None:
    app = RealtimeApp([ws])
    rd.mount(rd.mount(app))
    assert sum(isinstance(c, rd.OriginCheck) for c in app.handshake_checks) == 1


def test_mount_rejects_a_string_as_allowed_origins() -> None:
    with override_settings(RTFRAME={"ALLOWED_ORIGINS": "https://app.example.com"}):
        with pytest.raises(TypeError, match="list of origins"):
            rd.mount(RealtimeApp([ws]))


def test_explicit_list_given_to_the_check() -> None:
    check = rd.OriginCheck(["https://a.example", "*"])
    assert check.allows("https://anything.example")
    assert rd.OriginCheck(["https://a.example"]).allows("HTTPS://A.EXAMPLE")
    assert not rd.OriginCheck(["https://a.example"]).allows("https://b.example")
