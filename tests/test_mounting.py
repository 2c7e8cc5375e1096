"""Mounting other ASGI apps: by path prefix, by scope type, and their lifespans."""

import asyncio
import logging
from typing import Any

import pytest

from rtframe import ConfigurationError
from rtframe.http import JSONResponse
from rtframe.mounting import MountError, Mounts, route_path
from rtframe.testing import TestClient
from rtframe.types import Message, Receive, Scope, Send


def echo_app(name: str) -> Any:
    """A plain ASGI app answering with what it saw of the scope."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await send(
                {"type": "websocket.send", "text": f"{name} {scope['root_path']} {scope['path']}"}
            )
            await send({"type": "websocket.close", "code": 1000})
            return
        seen = {
            "app": name,
            "root_path": scope["root_path"],
            "path": scope["path"],
            "own": route_path(scope),
        }
        await JSONResponse(seen)(scope, receive, send)

    return app


class LifespanApp:
    """An ASGI app with a lifespan that records what happened (or fails on purpose)."""

    def __init__(self, name: str, events: list[str], fail: str | None = None) -> None:
        self.name, self.events, self.fail = name, events, fail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await JSONResponse({"state": sorted(scope.get("state", {}))})(scope, receive, send)
            return
        while True:
            message = await receive()
            step = message["type"].rpartition(".")[2]
            if self.fail == step:
                await send({"type": f"{message['type']}.failed", "message": f"{self.name} broke"})
                return
            self.events.append(f"{self.name} {step}")
            if step == "startup":
                scope["state"][self.name] = True
            await send({"type": f"{message['type']}.complete"})
            if step == "shutdown":
                return


async def no_lifespan(scope: Scope, receive: Receive, send: Send) -> None:
    """Like Django's ASGI handler: raises on any scope type but its own."""
    if scope["type"] != "http":
        raise ValueError(f"cannot handle {scope['type']}")
    await JSONResponse({"ok": True})(scope, receive, send)


async def test_a_prefix_mount_sees_root_path_extended_and_the_full_path() -> None:
    mounts = Mounts(default=echo_app("default"))
    mounts.mount("/api", echo_app("api"))
    mounts.mount("/api/v2", echo_app("v2"))
    client = TestClient(mounts)

    assert (await client.get("/api/users?x=1")).json() == {
        "app": "api",
        "root_path": "/api",
        "path": "/api/users",
        "own": "/users",
    }
    assert (await client.get("/api")).json()["own"] == "/"
    # the longest prefix wins, whatever the mount order
    assert (await client.get("/api/v2/x")).json()["app"] == "v2"
    # a prefix is whole path segments: /apis is not under /api
    assert (await client.get("/apis")).json()["app"] == "default"

    async with client.websocket("/api/v2/socket") as ws:
        assert await ws.receive_text() == "v2 /api/v2 /api/v2/socket"


async def test_mounts_nest_and_keep_the_servers_root_path() -> None:
    inner = Mounts()
    inner.mount("/deep", echo_app("deep"))
    outer = Mounts()
    outer.mount("/outer", inner)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    # behind `uvicorn --root-path /rt`: the path starts with the root path
    scope = {"type": "http", "method": "GET", "path": "/rt/outer/deep/x", "root_path": "/rt"}
    assert await outer.dispatch(scope, receive, send)
    assert b'"root_path":"/rt/outer/deep","path":"/rt/outer/deep/x","own":"/x"' in sent[-1]["body"]
    assert not await outer.dispatch({**scope, "path": "/rt/elsewhere"}, receive, send)


async def test_scope_types_go_to_their_app() -> None:
    seen: list[dict[str, Any]] = []

    async def webtransport(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(dict(scope))
        await send({"type": "webtransport.accept"})

    mounts = Mounts()
    mounts.mount_protocol("webtransport", webtransport)
    answers: list[Message] = []

    async def send(message: Message) -> None:
        answers.append(message)

    async def receive() -> Message:
        return {"type": "webtransport.connect"}

    scope = {"type": "webtransport", "path": "/wt", "root_path": ""}
    assert await mounts.dispatch(scope, receive, send)
    assert seen == [scope] and answers == [{"type": "webtransport.accept"}]
    assert not await mounts.dispatch({"type": "other", "path": "/"}, receive, send)

    standalone = Mounts()
    with pytest.raises(RuntimeError, match="no app serves 'other' scopes"):
        await standalone({"type": "other"}, receive, send)


def test_mounting_mistakes_are_refused() -> None:
    mounts = Mounts()
    for prefix in ("api", "/api/", "/items/{id}"):
        with pytest.raises(ConfigurationError, match="must start with '/'"):
            mounts.mount(prefix, no_lifespan)
    mounts.mount("/api", no_lifespan)
    with pytest.raises(ConfigurationError, match="mounted at '/api' already"):
        mounts.mount("/api", no_lifespan)
    with pytest.raises(ConfigurationError, match="mount_beside"):
        mounts.mount_protocol("http", no_lifespan)
    with pytest.raises(ConfigurationError, match="forwarded"):
        mounts.mount_protocol("lifespan", no_lifespan)
    mounts.mount_protocol("webtransport", no_lifespan)
    with pytest.raises(ConfigurationError, match="have an app already"):
        mounts.mount_protocol("webtransport", no_lifespan)
    assert [m.prefix or m.scope_type for m in mounts] == ["/api", "webtransport"]


async def test_lifespan_forwarded_in_order_with_shared_state(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []
    mounts = Mounts(default=LifespanApp("default", events))
    mounts.mount("/a", LifespanApp("a", events))
    mounts.mount("/django", no_lifespan)  # raises on lifespan: assumed not to support it
    mounts.mount_protocol("webtransport", LifespanApp("wt", events))
    mounts.mount("/quiet", LifespanApp("quiet", events), lifespan=False)
    with caplog.at_level(logging.INFO, "rtframe.mounting"):
        async with TestClient(mounts) as client:
            assert events == ["default startup", "a startup", "wt startup"]
            # what the mounted apps kept in the lifespan state reaches their requests
            assert (await client.get("/a/x")).json() == {"state": ["a", "default", "wt"]}
            assert (await client.get("/django/")).json() == {"ok": True}
    assert events[3:] == ["wt shutdown", "a shutdown", "default shutdown"]
    assert "no_lifespan at /django does not support lifespan" in caplog.text
    assert "ValueError('cannot handle lifespan')" in caplog.text


async def test_a_failed_startup_fails_and_shuts_down_the_started_ones() -> None:
    events: list[str] = []
    mounts = Mounts()
    mounts.mount("/a", LifespanApp("a", events))
    mounts.mount("/b", LifespanApp("b", events, fail="startup"))
    mounts.mount("/c", LifespanApp("c", events))
    with pytest.raises(AssertionError, match=r"app startup failed: .*b broke"):
        async with TestClient(mounts):
            pass
    assert events == ["a startup", "a shutdown"]
    with pytest.raises(MountError, match="b broke"):
        await mounts.startup()


async def test_a_failed_shutdown_is_reported_after_every_app_shut_down() -> None:
    events: list[str] = []
    mounts = Mounts()
    mounts.mount("/a", LifespanApp("a", events))
    mounts.mount("/b", LifespanApp("b", events, fail="shutdown"))
    await mounts.startup()
    with pytest.raises(MountError, match="b broke"):
        await mounts.shutdown()
    assert events == ["a startup", "b startup", "a shutdown"]


async def test_an_app_that_dies_after_starting_fails_the_shutdown() -> None:
    stop = asyncio.Event()

    async def fragile(scope: Scope, receive: Receive, send: Send) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await stop.wait()
        raise RuntimeError("crashed while serving")

    mounts = Mounts()
    mounts.mount("/f", fragile)
    await mounts.startup()
    stop.set()
    with pytest.raises(MountError, match=r"ended without finishing its shutdown.*crashed"):
        await mounts.shutdown()
