"""rtframe.client against real uvicorn servers (tests/client_app.py), and its parts alone.

The recovery tests restart a server on the same port while the client waits:

- on Redis, two processes share the rooms' history: messages said through one while the
  client's process is down are replayed to the client when it reconnects there, with
  `recovered: true`;
- on the in-memory layer the history dies with the process: the reconnecting client is
  told `recovered: false` (a new epoch) and carries on from the new position.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError
from websockets.asyncio.client import connect as raw_connect
from websockets.exceptions import ConnectionClosed

from rtframe.client import (
    Backoff,
    ClientClosed,
    Connected,
    ControlFrame,
    Disconnected,
    Event,
    HandshakeRefused,
    Position,
    RecoveryNotice,
    SendBufferFull,
    _client,
    _positions,
    connect,
    reconnects_after,
)
from rtframe.client._policy import parse_notice, retry_after, since_url
from rtframe.client._positions import Positions

from .client_app import Drain, Echo, Flood, Said, Say, Text
from .servers import ROOT, free_port, uvicorn_server, wait_for_port

APP = "tests.client_app:served"
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
FAST = Backoff(initial=0.05, maximum=0.2)


class Events(list[Event]):
    """Collects what `on_event` is called with; waits for one of a kind."""

    def __call__(self, event: Event) -> None:
        self.append(event)

    async def wait_for(self, kind: type[Any], timeout: float = 10.0, after: int = 0) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                for event in self[after:]:
                    if isinstance(event, kind):
                        return event
                await asyncio.sleep(0.01)

    def of(self, kind: type[Any]) -> list[Any]:
        return [e for e in self if isinstance(e, kind)]


@contextmanager
def uvicorn_on(port: int, env: dict[str, str] | None = None) -> Iterator[subprocess.Popen[bytes]]:
    """`uvicorn tests.client_app:app` on `port` (given, so a restart can reuse it)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            APP,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env={**os.environ, "REDIS_URL": "", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout:
            proc.stdout.close()


@asynccontextmanager
async def restartable(port: int, env: dict[str, str] | None = None) -> AsyncIterator[Any]:
    """A server on `port` that the test can kill (`await server.kill()`) and start again
    (`await server.start()`); started on entry, killed on exit."""

    class Server:
        proc: Any = None
        cm: Any = None

        async def start(self, more: dict[str, str] | None = None) -> None:
            self.cm = uvicorn_on(port, {**(env or {}), **(more or {})})
            self.proc = await asyncio.to_thread(self.cm.__enter__)

        async def kill(self) -> None:
            # SIGKILL: no close frame, no drain; the client sees the connection drop (1006)
            await asyncio.to_thread(self.cm.__exit__, None, None, None)

    server = Server()
    await server.start()
    try:
        yield server
    finally:
        if server.proc.poll() is None:
            await server.kill()


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    with uvicorn_server(APP, env={"REDIS_URL": ""}) as served:
        yield served


# -- the parts alone -----------------------------------------------------------------------


def test_import_rtframe_does_not_import_websockets() -> None:
    # the client is optional: `import rtframe` must work without websockets installed
    code = "import sys, rtframe; print('websockets' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_backoff_grows_to_its_maximum_with_jitter() -> None:
    backoff = Backoff(initial=1, maximum=8, factor=2, jitter=0.5)
    for attempt, ceiling in [(0, 1), (1, 2), (2, 4), (3, 8), (10, 8), (10_000, 8)]:
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 10  # spread, not one value
    assert Backoff(jitter=0).delay(0) == 0.5
    for bad in ({"initial": 0}, {"initial": 2, "maximum": 1}, {"factor": 0.5}, {"jitter": 2}):
        with pytest.raises(Exception, match="Backoff needs"):
            Backoff(**bad)


def test_close_codes_that_end_the_client_are_those_of_rtframe_js() -> None:
    for code in (1000, 1003, 1007, 1008, 4001, 4401, 4403, 4499):
        assert not reconnects_after(code), code
    for code in (1001, 1006, 1011, 1012, 1013, 1014, 4002, 4003, 4008, 4500):
        assert reconnects_after(code), code


def test_since_is_url_encoded_json_and_replaces_an_earlier_one() -> None:
    url = since_url(
        "ws://h/ws/chat/lobby?nick=ann&%24since=old&x=1",
        {"chat.lobby": Position("9f2c41aa", 17), "a b": Position("e", 0)},
    )
    query = parse_qs(urlsplit(url).query)
    assert query["nick"] == ["ann"] and query["x"] == ["1"]
    assert json.loads(query["$since"][0]) == {
        "a b": {"epoch": "e", "offset": 0},
        "chat.lobby": {"epoch": "9f2c41aa", "offset": 17},
    }
    assert "$since=%7B%22a%20b%22" in url  # the value is percent-encoded, the name is not
    assert since_url("ws://h/p?$since=old", {}) == "ws://h/p"


def test_retry_after_takes_seconds_only() -> None:
    assert retry_after("3") == 3.0
    assert retry_after(None) is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
    assert retry_after("-1") is None


def test_positions_drop_duplicates_and_remember_what_skipped_ahead() -> None:
    positions = Positions({"g": Position("e", 5)})

    def pos(offset: int, epoch: str = "e") -> dict[str, Any]:
        return {"group": "g", "epoch": epoch, "offset": offset}

    assert positions.take(pos(6))
    assert not positions.take(pos(6)) and not positions.take(pos(3))  # duplicates
    assert positions.take(pos(9)) and positions.take(pos(10))  # 7 and 8 are missing
    assert positions.gaps and positions.last["g"] == Position("e", 6)
    assert not positions.take(pos(9))  # a replay of what arrived past the gap
    assert positions.take(pos(7)) and positions.take(pos(8))
    assert not positions.gaps and positions.last["g"] == Position("e", 10)
    assert positions.take(pos(1, epoch="new"))  # a new epoch starts over
    assert positions.last["g"] == Position("new", 1)
    positions.take(pos(5, epoch="new"))
    positions.lost("g", Position("newer", 40))  # recovered: false
    assert not positions.gaps and positions.last["g"] == Position("newer", 40)


def test_a_gap_that_never_fills_is_given_up_and_logged(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_positions, "MAX_AHEAD", 3)
    positions = Positions({"g": Position("e", 1)})
    with caplog.at_level(logging.WARNING, "rtframe.client"):
        for offset in (5, 6, 7, 8):
            assert positions.take({"group": "g", "epoch": "e", "offset": offset})
    assert not positions.gaps and positions.last["g"] == Position("e", 8)
    assert "offsets 2 to 4 never arrived; giving them up as lost" in caplog.text


def test_a_malformed_pos_or_notice_is_passed_on_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    positions = Positions()
    with caplog.at_level(logging.WARNING, "rtframe.client"):
        assert positions.take({"group": "g", "epoch": "e", "offset": "7"})
        notice = parse_notice("$recovery", {"type": "$recovery", "group": "g"})
    assert positions.last == {}
    assert notice == ControlFrame("$recovery", {"type": "$recovery", "group": "g"})
    assert "malformed $pos" in caplog.text and "malformed $recovery" in caplog.text
    assert parse_notice("$presence", {"type": "$presence"}) == ControlFrame(
        "$presence", {"type": "$presence"}
    )


# -- against a server ----------------------------------------------------------------------


@pytest.mark.e2e
async def test_echo_with_dicts_models_and_typed_receive(port: int) -> None:
    async with connect(f"ws://127.0.0.1:{port}/echo") as client:
        await client.send({"type": "echo", "text": "a dict"})
        assert await client.receive(timeout=5) == {"type": "echo", "text": "a dict"}
        await client.send(Echo(text="a model"))
        echoed = await client.receive(Echo, timeout=5)
        assert echoed == Echo(text="a model")
        await client.send(Echo(text="not a Said"))
        with pytest.raises(ValidationError):
            await client.receive(Said, timeout=5)
        await client.send({"type": "nope"})
        error = await client.receive(timeout=5)  # rtframe's error frames are messages
        assert error["type"] == "error" and error["code"] == "unknown_type"
        await client.send('{"type":"echo","text":"raw text"}')
        assert (await client.receive(timeout=5))["text"] == "raw text"
        with pytest.raises(TimeoutError):
            await client.receive(timeout=0.1)
        assert client.connected and client.positions == {}


@pytest.mark.e2e
async def test_iteration_ends_when_the_client_is_closed(port: int) -> None:
    client = await connect(f"ws://127.0.0.1:{port}/echo")
    for n in range(3):
        await client.send(Echo(text=str(n)))
    got = []
    async for message in client:
        got.append(message["text"])
        if len(got) == 3:
            await client.close()
    assert got == ["0", "1", "2"]
    assert client.closed is not None and client.closed.code == 1000
    with pytest.raises(ClientClosed):
        await client.send(Echo(text="late"))


@pytest.mark.e2e
async def test_pings_are_answered_and_not_returned(port: int) -> None:
    events = Events()
    # the /beat route pings every 0.2 s and closes a client silent 0.4 s after a ping
    async with connect(f"ws://127.0.0.1:{port}/beat", on_event=events) as client:
        with pytest.raises(TimeoutError):
            await client.receive(timeout=1.5)  # the pings came, but are not messages
        await client.send(Echo(text="still here"))
        assert (await client.receive(Echo, timeout=5)).text == "still here"
        assert events.of(Disconnected) == []
    async with connect(f"ws://127.0.0.1:{port}/beat", control_frames=True) as client:
        assert await client.receive(timeout=5) == {"type": "$ping"}
    # a client that does not answer is closed: the answers above are what kept it open
    async with raw_connect(f"ws://127.0.0.1:{port}/beat") as raw:
        with pytest.raises(ConnectionClosed):
            async with asyncio.timeout(5):
                while True:
                    await raw.recv()
        assert raw.close_code == 4002


@pytest.mark.e2e
@pytest.mark.parametrize("code", [4002, 1011, 1012, 1013, 4008])
async def test_reconnects_after_a_close_that_invites_it(port: int, code: int) -> None:
    events = Events()
    async with connect(f"ws://127.0.0.1:{port}/echo", on_event=events, backoff=FAST) as client:
        await client.send({"type": "close", "code": code})
        gone = await events.wait_for(Disconnected)
        assert (gone.code, gone.reconnect_in is not None) == (code, True)
        again = await events.wait_for(Connected, after=1)
        assert again.reconnected
        await client.send(Echo(text="back"))
        assert (await client.receive(Echo, timeout=5)).text == "back"


@pytest.mark.e2e
@pytest.mark.parametrize("code", [4001, 1008, 1000, 4403])
async def test_no_reconnect_after_a_final_close(port: int, code: int) -> None:
    events = Events()
    async with connect(f"ws://127.0.0.1:{port}/echo", on_event=events, backoff=FAST) as client:
        await client.send(Echo(text="before"))
        await client.send({"type": "close", "code": code, "reason": "bye"})
        gone = await events.wait_for(Disconnected)
        assert (gone.code, gone.reason, gone.reconnect_in) == (code, "bye", None)
        # what arrived before the close is still read, then the close is raised
        assert (await client.receive(Echo, timeout=5)).text == "before"
        with pytest.raises(ClientClosed) as closed:
            await client.receive(timeout=5)
        assert (closed.value.code, closed.value.reason) == (code, "bye")
        with pytest.raises(ClientClosed):
            await client.send(Echo(text="after"))
        await asyncio.sleep(0.3)
        assert events.of(Connected) == [Connected(f"ws://127.0.0.1:{port}/echo", False)]


@pytest.mark.e2e
async def test_a_refused_handshake_raises_at_once(port: int) -> None:
    with pytest.raises(HandshakeRefused) as refused:
        await connect(f"ws://127.0.0.1:{port}/echo?deny=1").open()
    assert refused.value.status == 403
    with pytest.raises(OSError):
        await connect(f"ws://127.0.0.1:{free_port()}/echo").open()  # nothing listens


@pytest.mark.e2e
async def test_reconnects_after_a_restart_and_sends_what_was_buffered() -> None:
    events = Events()
    port = free_port()
    async with restartable(port) as server:
        url = f"ws://127.0.0.1:{port}/echo"
        async with connect(url, on_event=events, backoff=FAST, send_buffer=3) as client:
            await server.kill()
            gone = await events.wait_for(Disconnected)
            assert gone.code == 1006 and gone.reconnect_in is not None
            assert not client.connected
            for n in range(3):
                await client.send(Echo(text=str(n)))
            with pytest.raises(SendBufferFull):
                await client.send(Echo(text="one too many"))
            await server.start()
            assert (await events.wait_for(Connected, after=1)).reconnected
            assert [(await client.receive(Echo, timeout=10)).text for _ in range(3)] == [
                "0",
                "1",
                "2",
            ]


@pytest.mark.e2e
@pytest.mark.redis
async def test_recovers_what_another_server_broadcast_while_its_own_was_down() -> None:
    # two processes on one Redis share the room's history: the client's server dies,
    # the other one broadcasts, the client's server comes back and replays the gap
    env = {"REDIS_URL": REDIS_URL, "RTFRAME_PREFIX": f"rtframe-client-{uuid.uuid4().hex[:8]}"}
    room = uuid.uuid4().hex[:8]
    group = f"room.{room}"
    events = Events()
    port_a, port_b = free_port(), free_port()
    async with restartable(port_a, env) as a, restartable(port_b, env):
        async with (
            connect(
                f"ws://127.0.0.1:{port_a}/room/{room}", on_event=events, backoff=FAST
            ) as client,
            connect(f"ws://127.0.0.1:{port_b}/room/{room}") as sender,
        ):

            async def say(text: str) -> None:
                await sender.send(Say(text=text))  # published once the sender hears it
                assert (await sender.receive(Said, timeout=5)).text == text

            await say("1")
            first = await client.receive(timeout=5)
            assert first["text"] == "1"
            epoch = first["$pos"]["epoch"]
            assert first["$pos"] == {"group": group, "epoch": epoch, "offset": 1}
            assert client.positions == {group: Position(epoch, 1)}

            await a.kill()
            await events.wait_for(Disconnected)
            for text in ("2", "3", "4"):
                await say(text)
            await a.start()

            notice = await events.wait_for(RecoveryNotice)
            assert notice == RecoveryNotice(
                group=group, recovered=True, replayed=3, epoch=epoch, offset=4
            )
            replayed = [await client.receive(timeout=5) for _ in range(3)]
            assert [(m["text"], m["$pos"]["offset"]) for m in replayed] == [
                ("2", 2),
                ("3", 3),
                ("4", 4),
            ]
            await say("5")
            live = await client.receive(Said, timeout=5)
            assert live.text == "5"
            with pytest.raises(TimeoutError):
                await client.receive(timeout=0.3)  # nothing twice
            assert client.positions == {group: Position(epoch, 5)}
            reconnected = events.of(Connected)[-1]
            since = json.loads(parse_qs(urlsplit(reconnected.url).query)["$since"][0])
            assert since == {group: {"epoch": epoch, "offset": 1}}


@pytest.mark.e2e
async def test_told_not_recovered_when_the_history_was_lost() -> None:
    # the in-memory layer's history dies with its process: a new epoch after a restart
    events = Events()
    port = free_port()
    group = "room.r"
    async with restartable(port) as server:
        async with connect(
            f"ws://127.0.0.1:{port}/room/r", on_event=events, backoff=FAST
        ) as client:
            await client.send(Say(text="before"))
            before = await client.receive(timeout=5)
            old = Position(before["$pos"]["epoch"], before["$pos"]["offset"])
            await server.kill()
            await server.start()
            notice = await events.wait_for(RecoveryNotice)
            assert (notice.recovered, notice.replayed) == (False, 0)
            assert notice.epoch != old.epoch
            assert client.positions == {group: Position(notice.epoch, notice.offset)}
            await client.send(Say(text="after"))
            after = await client.receive(timeout=5)
            assert after["$pos"] == {
                "group": group,
                "epoch": notice.epoch,
                "offset": notice.offset + 1,
            }


@pytest.mark.e2e
async def test_frames_dropped_for_a_slow_client_are_recovered() -> None:
    # a client that stops reading: its server's outbox (4 frames) drops the oldest ones;
    # the client sees offsets skip, reconnects with $since and gets the missing ones
    events = Events()
    count, size = 200, 200_000
    with uvicorn_server(APP, env={"REDIS_URL": "", "OUTBOX_LIMIT": "4"}) as port:
        url = f"ws://127.0.0.1:{port}/room/slow"
        # max_queue=1: websockets itself stops reading the socket past one message; no
        # compression, or the padding would shrink to nothing on the wire
        options: dict[str, Any] = {
            "max_queue": 1,
            "receive_buffer": 1,
            "backoff": FAST,
            "compression": None,
        }
        async with connect(url, on_event=events, **options) as client:
            await client.send(Flood(count=count, size=size))
            await asyncio.sleep(2)  # reads nothing meanwhile: the socket buffers fill
            got: list[int] = []
            while len(got) < count:
                said = await client.receive(Said, timeout=10)
                got.append(int(said.text.split(" ", 1)[0]))
    assert sorted(got) == list(range(count))  # every one, none twice
    assert got != sorted(got)  # some came late, through the recovery
    recovering = [e for e in events.of(Disconnected) if e.reason == "recovering missed messages"]
    assert recovering and recovering[0].reconnect_in == 0
    assert any(e.recovered for e in events.of(RecoveryNotice))


@pytest.mark.e2e
async def test_binary_text_and_control_frames(port: int, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Event] = []

    async def on_event(event: Event) -> None:  # a coroutine function works too
        seen.append(event)
        raise RuntimeError("a broken handler")

    url = f"ws://127.0.0.1:{port}/echo"
    async with connect(url, on_event=on_event, control_frames=True) as client:
        assert repr(client) == f"<Client {url!r} connected>"
        await client.send(b"\x01\x02")
        assert await client.receive(timeout=5) == b"\x02\x01"
        await client.send(Text(text="not JSON"))
        assert await client.receive(timeout=5) == "not JSON"
        await client.send({"type": "$ping"})  # the server answers; only shown when asked
        assert await client.receive(timeout=5) == {"type": "$pong"}
    assert repr(client) == f"<Client {url!r} closed>"
    assert seen == [Connected(url, False)]
    assert "on_event raised on Connected" in caplog.text  # logged, and the client went on


@pytest.mark.e2e
async def test_headers_are_sent_with_the_handshake(port: int) -> None:
    with pytest.raises(HandshakeRefused) as refused:
        await connect(f"ws://127.0.0.1:{port}/echo", headers={"x-deny": "1"}).open()
    assert refused.value.status == 403


@pytest.mark.e2e
async def test_a_drain_notice_then_1012_reconnects_at_once(port: int) -> None:
    events = Events()
    slow = Backoff(initial=0.3, maximum=5)  # a plain 1012 could wait up to 0.3 s, then more
    async with connect(f"ws://127.0.0.1:{port}/echo", on_event=events, backoff=slow) as client:
        for _ in range(3):  # the attempts do not add up: each is answered within 0.3 s
            await client.send(Drain())
            gone = await events.wait_for(Disconnected, after=len(events))
            assert gone.code == 1012 and gone.reconnect_in is not None
            assert gone.reconnect_in <= 0.3
            await events.wait_for(Connected, after=len(events))
        kinds = [type(e).__name__ for e in events]
        assert kinds == ["Connected"] + ["ReconnectNotice", "Disconnected", "Connected"] * 3
        await client.send(Echo(text="after the drain"))
        assert (await client.receive(Echo, timeout=5)).text == "after the drain"


@pytest.mark.e2e
async def test_a_drain_notice_without_the_close_reconnects_after_the_grace(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    events = Events()
    async with connect(f"ws://127.0.0.1:{port}/echo", on_event=events, backoff=FAST) as client:
        started = asyncio.get_running_loop().time()
        await client.send(Drain(close=False))
        await events.wait_for(Disconnected, after=1)
        waited = asyncio.get_running_loop().time() - started
        again = await events.wait_for(Connected, after=1)
        assert again.reconnected
        # not before the time the server gave plus the grace (the server never closed)
        assert waited >= _client.RESTART_GRACE
        assert "announced a restart but did not close" in caplog.text
        await client.send(Echo(text="back"))
        assert (await client.receive(Echo, timeout=5)).text == "back"


@pytest.mark.e2e
async def test_a_drain_notice_followed_by_the_close_cancels_the_fallback(
    port: int, caplog: pytest.LogCaptureFixture
) -> None:
    events = Events()
    async with connect(f"ws://127.0.0.1:{port}/echo", on_event=events, backoff=FAST) as client:
        await client.send(Drain())
        await events.wait_for(Connected, after=1)
        # past the grace, the new connection is still the one in use: no second restart
        await asyncio.sleep(_client.RESTART_GRACE + 0.5)
        assert len(events.of(Connected)) == 2
        assert "announced a restart" not in caplog.text


@pytest.mark.e2e
async def test_gives_up_after_max_attempts_and_says_what_was_not_sent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events = Events()
    port = free_port()
    async with restartable(port) as server:
        url = f"ws://127.0.0.1:{port}/echo"
        async with connect(url, on_event=events, backoff=FAST, max_attempts=2) as client:
            await server.kill()
            await events.wait_for(Disconnected)
            await client.send(Echo(text="never sent"))
            final = await events.wait_for(
                Disconnected, after=events.index(events.of(Disconnected)[0]) + 1
            )
            assert (final.code, final.reconnect_in) == (1006, None)
            with pytest.raises(ClientClosed) as closed:
                await client.receive(timeout=5)
            assert "gave up reconnecting" in closed.value.reason
    assert "could not reconnect" in caplog.text
    assert "with 1 frames never sent" in caplog.text


@pytest.mark.e2e
async def test_a_reconnect_refused_with_http_403_is_final() -> None:
    events = Events()
    port = free_port()
    async with restartable(port) as server:
        url = f"ws://127.0.0.1:{port}/echo"
        async with connect(url, on_event=events, backoff=FAST) as client:
            await server.kill()
            await server.start({"DENY": "1"})
            refused = await events.wait_for(Disconnected, after=2)
            assert (refused.status, refused.reconnect_in) == (403, None)
            with pytest.raises(ClientClosed):
                await client.receive(timeout=5)


@pytest.mark.e2e
async def test_a_reconnect_refused_with_http_503_comes_back_after_retry_after() -> None:
    events = Events()
    port = free_port()
    async with restartable(port) as server:
        url = f"ws://127.0.0.1:{port}/echo"
        async with connect(url, on_event=events, backoff=FAST) as client:
            await server.kill()
            await server.start({"BUSY": "1"})  # the first handshake gets 503, Retry-After: 1
            started = asyncio.get_running_loop().time()
            assert (await events.wait_for(Connected, after=1)).reconnected
            assert asyncio.get_running_loop().time() - started >= 0.9
            assert [e.reconnect_in is None for e in events.of(Disconnected)] == [False]
            await client.send(Echo(text="in"))
            assert (await client.receive(Echo, timeout=5)).text == "in"


@pytest.mark.e2e
async def test_close_while_reconnecting_stops_at_once() -> None:
    events = Events()
    port = free_port()
    async with restartable(port) as server:
        client = await connect(f"ws://127.0.0.1:{port}/echo", on_event=events, backoff=FAST)
        await server.kill()
        await events.wait_for(Disconnected)
        await client.close()
        assert client.closed is not None and client.closed.code == 1000
        await server.start()
        await asyncio.sleep(0.5)
        assert events.of(Connected) == [Connected(f"ws://127.0.0.1:{port}/echo", False)]
