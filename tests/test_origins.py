"""The Origin allow-list of a plain (non-Django) app: `RealtimeApp(allowed_origins=[...])`."""

from __future__ import annotations

import logging

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from rtframe import ConfigurationError, Connection, RealtimeApp, WebSocketRouter
from rtframe.origins import AllowedOrigins, own_origin
from rtframe.testing import HandshakeRejected, TestClient

from .servers import uvicorn_server

ws = WebSocketRouter()


@ws.route("/ws")
async def hello(conn: Connection) -> None:
    await conn.accept()
    await conn.send({"ok": True})


async def opens(app: RealtimeApp, origin: str | None, host: str = "testserver") -> bool:
    """Whether a handshake from a page of `origin` to `host` is accepted."""
    async with TestClient(app) as client:
        client.headers["host"] = host
        if origin is None:
            del client.headers["origin"]
        else:
            client.headers["origin"] = origin
        try:
            async with client.websocket("/ws") as conn:
                assert await conn.receive_json() == {"ok": True}
        except HandshakeRejected as exc:
            assert exc.code == 1008
            return False
        return True


async def test_no_check_unless_asked() -> None:
    assert await opens(RealtimeApp([ws]), "https://evil.example")


async def test_an_empty_list_allows_the_apps_own_origin_only(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = RealtimeApp([ws], allowed_origins=[])
    assert await opens(app, "http://testserver")
    assert await opens(app, "http://127.0.0.1:8000", host="127.0.0.1:8000")
    assert await opens(app, "HTTP://TestServer")
    caplog.set_level(logging.WARNING, "rtframe")
    assert not await opens(app, "http://127.0.0.1:8001", host="127.0.0.1:8000")  # port
    assert "Origin 'http://127.0.0.1:8001' is not allowed" in caplog.text
    assert not await opens(app, "http://127.0.0.1", host="127.0.0.1:8000")
    assert not await opens(app, "https://testserver")  # scheme: a ws:// handshake
    assert not await opens(app, "https://evil.example")
    assert not await opens(app, "null")
    assert await opens(app, None)  # no Origin: not a browser, no visitor's cookie at stake


async def test_listed_origins_and_patterns() -> None:
    app = RealtimeApp(
        [ws], allowed_origins=["https://app.example.com", "https://*.example.org:8443"]
    )
    assert await opens(app, "https://app.example.com")
    assert await opens(app, "https://chat.example.org:8443")
    assert await opens(app, "https://example.org:8443")
    assert await opens(app, "http://testserver")  # and still its own page
    assert not await opens(app, "https://app.example.com:444")
    assert not await opens(app, "http://app.example.com")
    assert not await opens(app, "https://chat.example.org")
    assert not await opens(app, "https://evilexample.org:8443")
    assert await opens(RealtimeApp([ws], allowed_origins=["*"]), "https://anything.example")


def test_the_check_itself() -> None:
    check = AllowedOrigins([], same_origin=False, allow_missing=False)
    assert not check.allows("http://testserver", "http://testserver")
    assert AllowedOrigins().allows("https://x.example", "https://x.example")
    assert "same_origin=True" in repr(AllowedOrigins(["https://a.example"]))
    scope = {"scheme": "wss", "headers": [(b"host", b"Example.com:8443")]}
    assert own_origin(scope) == "https://example.com:8443"
    assert own_origin({"scheme": "ws", "headers": []}) is None


async def test_a_missing_origin_can_be_refused() -> None:
    app = RealtimeApp([ws])
    app.add_handshake_check(AllowedOrigins(allow_missing=False))
    assert not await opens(app, None)
    assert await opens(app, "http://testserver")


@pytest.mark.parametrize("bad", ["https://a.example", ["example.com"], ["https://a.example/path"]])
def test_bad_lists_fail_at_construction(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="allowed"):
        RealtimeApp([ws], allowed_origins=bad)  # type: ignore[arg-type]


@pytest.mark.e2e
async def test_the_example_chat_refuses_another_port_and_serves_its_own_page() -> None:
    with uvicorn_server("examples.chat.app:app", env={"REDIS_URL": ""}) as port:
        url = f"ws://127.0.0.1:{port}/ws/chat/lobby?nick=ada"
        async with connect(url, origin=f"http://127.0.0.1:{port}") as sock:  # type: ignore[arg-type]
            assert '"welcome"' in str(await sock.recv())
        for origin in (f"http://127.0.0.1:{port + 1}", "https://evil.example"):
            with pytest.raises(InvalidStatus) as refused:
                async with connect(url, origin=origin):  # type: ignore[arg-type]
                    pass
            assert refused.value.response.status_code == 403
        async with connect(url) as sock:  # no Origin: a script, not a page
            assert '"welcome"' in str(await sock.recv())
