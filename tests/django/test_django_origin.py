"""The Origin check against cross-site WebSocket hijacking."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from django.test import override_settings

import rtframe.django as rd
from rtframe import ConfigurationError, Connection, RealtimeApp, WebSocketRouter
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
    ("host", "origin"),
    [
        ("testserver", "http://testserver"),
        ("127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("localhost", "HTTP://LOCALHOST"),
        ("[::1]:8443", "http://[::1]:8443"),
    ],
)
async def test_the_handshakes_own_origin_is_accepted(
    client: TestClient, host: str, origin: str
) -> None:
    async with client.websocket("/ws/open", headers={"host": host, "origin": origin}) as conn:
        assert await conn.receive_json() == {"ok": True}


@pytest.mark.parametrize(
    ("host", "origin"),
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8001"),  # the port is part of the origin
        ("127.0.0.1:8000", "http://127.0.0.1"),
        ("127.0.0.1", "http://127.0.0.1:8000"),
        ("testserver", "https://testserver"),  # so is the scheme (a ws:// handshake)
        ("testserver", "http://localhost"),  # another allowed host is another site
    ],
)
async def test_same_host_with_another_port_or_scheme_is_refused(
    client: TestClient, host: str, origin: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "rtframe.django")
    headers = {"host": host, "origin": origin}
    with pytest.raises(HandshakeRejected) as exc:
        async with client.websocket("/ws/open", headers=headers):
            pass
    assert exc.value.code == rd.CLOSE_FORBIDDEN_ORIGIN
    [line] = [
        r for r in caplog.records if r.levelno == logging.WARNING and r.name == "rtframe.django"
    ]
    assert f"Origin {origin!r} is not allowed" in line.getMessage()
    assert "scheme, host and port" in line.getMessage()


async def test_a_host_outside_allowed_hosts_is_no_origin_of_this_site(
    client: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "rtframe.django")
    headers = {"host": "evil.example", "origin": "http://evil.example"}
    with pytest.raises(HandshakeRejected):
        async with client.websocket("/ws/open", headers=headers):
            pass
    assert "the Host is not allowed" in caplog.text
    assert "ALLOWED_HOSTS" in caplog.text


async def test_csrf_trusted_origins_exact_and_wildcard(client: TestClient) -> None:
    trusted = ["https://app.example.com", "https://*.example.org", "http://*.example.net:8080"]
    with override_settings(CSRF_TRUSTED_ORIGINS=trusted):
        for origin in (
            "https://app.example.com",
            "https://chat.example.org",
            "https://a.b.example.org",
            "https://example.org",
            "http://chat.example.net:8080",
        ):
            async with client.websocket("/ws/open", headers={"origin": origin}):
                pass
        for origin in (
            "http://app.example.com",  # scheme
            "https://app.example.com:8443",  # port
            "https://other.example.com",  # exact entries allow no subdomain
            "http://chat.example.org",
            "https://chat.example.org:444",
            "https://notexample.org",
            "http://chat.example.net",  # the pattern's port is required
        ):
            assert await refused(client, "/ws/open", origin) == 1008, origin


def test_a_secure_handshake_has_an_https_origin() -> None:
    check = rd.OriginCheck()

    def scope(scheme: str, **headers: str) -> dict[str, object]:
        raw = [(k.encode(), v.encode()) for k, v in {"host": "testserver", **headers}.items()]
        return {"scheme": scheme, "headers": raw, "server": ("testserver", 443)}

    assert check.allows("https://testserver", scope("wss"))
    assert not check.allows("http://testserver", scope("wss"))
    assert not check.allows("https://testserver", scope("ws"))
    assert not check.allows("https://testserver")  # no handshake: nothing is same-origin
    # behind a proxy that terminates TLS, as Django's request.is_secure() decides
    proxied = scope("ws", **{"x-forwarded-proto": "https"})
    assert not check.allows("https://testserver", proxied)
    with override_settings(SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https")):
        assert check.allows("https://testserver", proxied)
    forwarded = scope("ws", **{"x-forwarded-host": "localhost:8000"})
    assert not check.allows("http://localhost:8000", forwarded)
    with override_settings(USE_X_FORWARDED_HOST=True):
        assert check.allows("http://localhost:8000", forwarded)


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
        headers = {"host": "chat.example.com", "origin": "http://chat.example.com"}
        async with client.websocket("/ws/open", headers=headers):
            pass
        client.headers["host"] = "chat.example.com"
        assert await refused(client, "/ws/open", "http://example.org") == 1008
        assert await refused(client, "/ws/open", "http://www.example.com") == 1008


async def test_explicit_allowed_origins_replace_allowed_hosts(client: TestClient) -> None:
    with override_settings(RTFRAME={"ALLOWED_ORIGINS": ["https://app.example.com"]}):
        async with client.websocket("/ws/open", headers={"origin": "https://app.example.com/"}):
            pass
        # the scheme and port are part of an origin
        assert await refused(client, "/ws/open", "http://app.example.com") == 1008
        assert await refused(client, "/ws/open", "https://app.example.com:444") == 1008
        # the list replaces Django's rules: the handshake's own origin is not implied
        assert await refused(client, "/ws/open", "http://testserver") == 1008
    with override_settings(RTFRAME={"ALLOWED_ORIGINS": ["https://*.example.com"]}):
        async with client.websocket("/ws/open", headers={"origin": "https://a.example.com"}):
            pass
        assert await refused(client, "/ws/open", "https://example.net") == 1008


def test_a_malformed_allowed_origin_fails_at_mount() -> None:
    with override_settings(RTFRAME={"ALLOWED_ORIGINS": ["app.example.com"]}):
        with pytest.raises(ConfigurationError, match="scheme://host"):
            rd.mount(RealtimeApp([ws]))


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
