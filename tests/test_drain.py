"""Graceful drain (`RealtimeApp.drain`) and `rtframe run`, which drains on SIGTERM.

In-process through the test client: the notice, then 1012 at about the announced time,
spread and paced; a running handler's reply before its close; refusals (1013, HTTP 503);
one drain however often it is asked for; the drain on lifespan shutdown. On real
processes (`e2e`): SIGTERM on `rtframe run` with live clients, over both WebSocket
implementations that uvicorn offers the HTTP-response extension with, and with two
workers; plain uvicorn's shutdown for comparison. Then the command line's arguments.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from rtframe import ConfigurationError
from rtframe.cli import SERVER_HINT, build_parser, drain_window, main, uvicorn_options
from rtframe.run import DrainingServer, DrainOptions, serve
from rtframe.testing import TestClient, WebSocketSession
from rtframe.types import Message

from .drain_app import make_app
from .servers import ROOT, free_port, uvicorn_process

NOTICE = "$reconnect"


@dataclass
class Seen:
    """What one client saw: (seconds since the drain began, frame) and its close."""

    frames: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    close_code: int | None = None
    closed_at: float = 0.0

    @property
    def notice(self) -> dict[str, Any]:
        assert self.frames, "no frame before the close"
        first = self.frames[0][1]
        assert first["type"] == NOTICE, f"the first frame is not the notice: {first}"
        return first

    @property
    def announced(self) -> float:
        """When the notice said this client would be closed, in seconds since the drain."""
        return self.frames[0][0] + int(self.notice["after_ms"]) / 1000


async def watch(ws: WebSocketSession, t0: float, limit: float = 10.0) -> Seen:
    seen = Seen()
    while True:
        message: Message = await ws.receive(timeout=limit)
        now = time.monotonic() - t0
        if message["type"] == "websocket.close":
            seen.close_code, seen.closed_at = message.get("code", 1000), now
            return seen
        seen.frames.append((now, json.loads(message["text"])))


async def open_sessions(client: TestClient, n: int) -> list[WebSocketSession]:
    return [await client.websocket("/ws").__aenter__() for _ in range(n)]


# -- in-process -------------------------------------------------------------------------


async def test_every_client_gets_the_notice_then_1012_near_its_announced_time() -> None:
    app = make_app()
    async with TestClient(app) as client:
        sockets = await open_sessions(client, 40)
        t0 = time.monotonic()
        watching = [asyncio.create_task(watch(ws, t0)) for ws in sockets]
        summary = await app.drain(1.0, max_share_per_second=0.5)
        seen = await asyncio.gather(*watching)
    assert (summary.notified, summary.closed, summary.remaining) == (40, 40, 0)
    assert summary.cut_off == summary.waited_for_handler == 0
    assert 1.0 <= summary.duration < 1.5
    for one in seen:
        assert one.close_code == 1012
        assert [frame["type"] for _, frame in one.frames] == [NOTICE]
        assert 0 <= one.notice["after_ms"] <= 1000
        # closed in the batch after its time came (batches every 50 ms)
        assert -0.02 <= one.closed_at - one.announced <= 0.25, (one.closed_at, one.announced)


async def test_closes_are_spread_evenly_over_the_window() -> None:
    app = make_app()
    async with TestClient(app) as client:
        sockets = await open_sessions(client, 100)
        t0 = time.monotonic()
        watching = [asyncio.create_task(watch(ws, t0)) for ws in sockets]
        # 2 s rather than 1: a loaded machine's event-loop stalls (tens of ms) then move
        # few closes across a fifth's border
        await app.drain(2.0, max_share_per_second=0.5)
        seen = await asyncio.gather(*watching)
    closed = sorted(one.closed_at for one in seen)
    # one random point in its own slot per client: every fifth of the window closes a fifth
    per_fifth = [sum(1 for t in closed if k * 0.4 <= t < (k + 1) * 0.4) for k in range(5)]
    assert max(per_fifth) <= 32 and min(per_fifth[:4]) >= 10, per_fifth
    assert closed[-1] - closed[0] > 1.6


async def test_a_short_window_wins_over_the_share_and_a_long_one_is_used_whole() -> None:
    # at most 10 % a second would need 10 s: the 0.5 s window is the bound that holds
    app = make_app()
    async with TestClient(app) as client:
        sockets = await open_sessions(client, 10)
        t0 = time.monotonic()
        watching = [asyncio.create_task(watch(ws, t0)) for ws in sockets]
        summary = await app.drain(0.5, max_share_per_second=0.1)
        seen = await asyncio.gather(*watching)
    assert summary.duration < 1.0
    assert max(one.closed_at for one in seen) < 0.7


async def test_a_running_handler_finishes_and_its_reply_goes_before_the_close() -> None:
    app = make_app()
    async with TestClient(app) as client:
        busy, *idle = await open_sessions(client, 5)
        await busy.send_json({"type": "slow", "seconds": 0.6, "text": "late"})
        await asyncio.sleep(0.05)  # the handler is running
        t0 = time.monotonic()
        watching = [asyncio.create_task(watch(ws, t0)) for ws in (busy, *idle)]
        summary = await app.drain(0.3, max_share_per_second=1.0)
        seen_busy, *seen_idle = await asyncio.gather(*watching)
    assert [frame for _, frame in seen_busy.frames][1:] == [{"type": "echo", "text": "late"}]
    assert seen_busy.close_code == 1012
    assert seen_busy.closed_at >= seen_busy.frames[1][0] >= 0.45
    assert all(one.close_code == 1012 and one.closed_at < 0.45 for one in seen_idle)
    assert (summary.waited_for_handler, summary.cut_off, summary.closed) == (1, 0, 5)


async def test_a_handler_still_running_after_the_grace_is_cut_off() -> None:
    app = make_app()
    async with TestClient(app) as client:
        busy = (await open_sessions(client, 1))[0]
        await busy.send_json({"type": "slow", "seconds": 5, "text": "never"})
        await asyncio.sleep(0.05)
        t0 = time.monotonic()
        watching = asyncio.create_task(watch(busy, t0))
        summary = await app.drain(0.2, handler_grace=0.3, close_timeout=0.2)
        seen = await watching
    assert seen.close_code == 1012 and [f["type"] for _, f in seen.frames] == [NOTICE]
    assert 0.5 <= seen.closed_at < 0.7
    assert (summary.waited_for_handler, summary.cut_off) == (1, 1)
    assert summary.duration < 1.0


async def test_a_handshake_during_the_drain_is_accepted_then_closed_with_1013() -> None:
    # the test client, like some servers, offers no `websocket.http.response` extension
    app = make_app()
    async with TestClient(app) as client:
        (ws,) = await open_sessions(client, 1)
        draining = asyncio.create_task(app.drain(0.5))
        await asyncio.sleep(0.05)
        assert app.draining
        async with client.websocket("/ws") as late:
            assert await late.expect_close(1013) == 1013
            assert late.close_reason == "server draining"
        summary = await draining
        await ws.close()
    assert summary.refused == 1 and summary.notified == 1


async def test_a_handshake_during_the_drain_gets_http_503_where_the_server_can_send_it() -> None:
    app = make_app()
    await app.drain(2.0)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "websocket",
        "path": "/ws",
        "headers": [],
        "extensions": {"websocket.http.response": {}},
    }
    await app(scope, receive, send)
    start, body = sent
    assert start["type"] == "websocket.http.response.start" and start["status"] == 503
    headers = dict(start["headers"])
    assert 1 <= int(headers[b"retry-after"]) <= 2
    assert body["type"] == "websocket.http.response.body" and b"restarting" in body["body"]


async def test_a_handshake_under_way_when_the_drain_begins_is_drained_at_the_end() -> None:
    app = make_app()
    async with TestClient(app) as client:
        (early,) = await open_sessions(client, 1)
        late_ctx = client.websocket("/slow-handshake?delay=0.2")
        joining = asyncio.create_task(late_ctx.__aenter__())
        await asyncio.sleep(0.05)  # its connect handler runs: not refused, not yet open
        t0 = time.monotonic()

        async def watch_late() -> Seen:
            return await watch(await joining, t0)

        watching = [asyncio.create_task(watch(early, t0)), asyncio.create_task(watch_late())]
        summary = await app.drain(0.5, max_share_per_second=1.0)
        _, seen_late = await asyncio.gather(*watching)
    # told once it opened (about 0.15 s in), with a time in what was left of the window
    assert [frame["type"] for _, frame in seen_late.frames] == [NOTICE]
    assert 0.1 <= seen_late.frames[0][0] < 0.3 and seen_late.notice["after_ms"] <= 400
    assert seen_late.close_code == 1012 and seen_late.closed_at < 0.65
    assert -0.02 <= seen_late.closed_at - seen_late.announced <= 0.25
    assert (summary.notified, summary.closed, summary.remaining) == (2, 2, 0)


async def test_a_second_drain_waits_for_the_first_and_returns_its_summary() -> None:
    app = make_app()
    async with TestClient(app) as client:
        sockets = await open_sessions(client, 3)
        t0 = time.monotonic()
        watching = [asyncio.create_task(watch(ws, t0)) for ws in sockets]
        first, second = await asyncio.gather(app.drain(0.3), app.drain(5.0))
        seen = await asyncio.gather(*watching)
        again = await app.drain()
    assert first is second is again
    assert first.notified == 3 and first.duration < 1.0
    assert all(len(one.frames) == 1 for one in seen)  # one notice each


async def test_drain_with_nobody_connected_returns_at_once() -> None:
    app = make_app()
    summary = await app.drain(10.0)
    assert summary.notified == summary.closed == 0 and summary.duration < 0.2


async def test_drain_refuses_impossible_arguments() -> None:
    for kwargs in (
        {"window": -1.0},
        {"window": float("inf")},
        {"max_share_per_second": 0.0},
        {"handler_grace": -0.1},
    ):
        with pytest.raises(ConfigurationError):
            await make_app().drain(**kwargs)


async def test_lifespan_shutdown_drains_what_is_open_and_startup_accepts_again() -> None:
    app = make_app()
    client = TestClient(app)
    async with client:
        (ws,) = await open_sessions(client, 1)
        await ws.send_json({"type": "echo", "text": "hi"})
        assert await ws.receive_json() == {"type": "echo", "text": "hi"}
    # the lifespan shutdown told it and closed it, at once (window 0)
    assert (await ws.receive_json())["type"] == NOTICE
    assert await ws.expect_close(1012) == 1012
    assert app.draining
    async with TestClient(app) as client, client.websocket("/ws") as again:
        await again.send_json({"type": "echo", "text": "back"})
        assert await again.receive_json() == {"type": "echo", "text": "back"}


# -- real processes -----------------------------------------------------------------------


@contextmanager
def rtframe_run(*args: str, target: str = "tests.drain_app:app") -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    """`python -m rtframe run target` on a free port; yields (port, process, log file)."""
    port = free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"rtframe-run-{port}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rtframe", "run", target, "--host", "127.0.0.1",
             "--port", str(port), "--log-level", "info", *args],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        _wait_listening(port, proc, log)
        yield port, proc, log
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        log.unlink(missing_ok=True)


def _wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"rtframe run exited with {proc.returncode}:\n{log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"rtframe run did not listen on {port}:\n{log.read_text()}")


@dataclass
class Client:
    sock: ClientConnection
    frames: list[tuple[float, dict[str, Any]]] = field(default_factory=list)
    close_code: int | None = None
    closed_at: float = 0.0


async def follow(client: Client, t0: float) -> None:
    """Read every frame until the server closes; record the close code (1006: no close frame)."""
    try:
        while True:
            text = await asyncio.wait_for(client.sock.recv(), 15)
            client.frames.append((time.monotonic() - t0, json.loads(text)))
    except ConnectionClosed:
        client.closed_at = time.monotonic() - t0
        client.close_code = client.sock.close_code


async def connect_clients(port: int, n: int) -> list[Client]:
    return [Client(await connect(f"ws://127.0.0.1:{port}/ws")) for _ in range(n)]


def check_drained(client: Client, window: float) -> None:
    assert client.close_code == 1012, f"closed with {client.close_code}, not 1012 (1006: cut)"
    notice = client.frames[0][1]
    assert notice["type"] == NOTICE, client.frames
    assert 0 <= notice["after_ms"] <= window * 1000


@pytest.mark.e2e
@pytest.mark.parametrize("ws", ["websockets-sansio", "wsproto"])
async def test_sigterm_on_rtframe_run_drains_live_clients(ws: str) -> None:
    window = 2.0
    with rtframe_run("--ws", ws, "--drain-window", str(window), "--drain-max-share", "0.5") as (
        port,
        proc,
        log,
    ):
        clients = await connect_clients(port, 20)
        busy = clients[0]
        # longer than the window: its close waits for the reply
        await busy.sock.send(json.dumps({"type": "slow", "seconds": 2.5, "text": "late"}))
        await asyncio.sleep(0.2)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        following = [asyncio.create_task(follow(c, t0)) for c in clients]
        await asyncio.sleep(0.5)
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"ws://127.0.0.1:{port}/ws"):
                pass
        await asyncio.wait_for(asyncio.gather(*following), 15)
        status = await asyncio.to_thread(proc.wait, 15)
        output = log.read_text()

    response = refused.value.response
    assert response.status_code == 503
    assert 1 <= int(response.headers["Retry-After"]) <= window
    for client in clients:
        check_drained(client, window)
    idle = clients[1:]
    for client in idle:
        (at, notice), *rest = client.frames
        assert rest == []
        # closed at about the announced time (batches of 50 ms, loopback)
        assert abs(client.closed_at - (at + notice["after_ms"] / 1000)) < 0.4, (client.closed_at, at, notice)
    closes = sorted(c.closed_at for c in idle)
    assert closes[-1] - closes[0] > 0.3 * window, closes  # spread, not all at once
    assert [frame for _, frame in busy.frames][1:] == [{"type": "echo", "text": "late"}]
    assert busy.closed_at >= busy.frames[1][0] >= 2.2
    assert status in (0, -signal.SIGTERM), output
    assert "refused the WebSocket handshake for /ws: the server is draining (HTTP 503" in output
    assert "20 notified, 20 closed with 1012 (1 after their handler returned, 0 cut off" in output
    # the drain ran before uvicorn's shutdown, the lifespan shutdown after it
    assert output.index("drained in") < output.index("Finished server process")


@pytest.mark.e2e
async def test_sigterm_on_rtframe_run_with_two_workers_drains_each_worker() -> None:
    with rtframe_run("--workers", "2", "--drain-window", "1") as (port, proc, log):
        # the supervisor listens first: wait until both workers serve
        for _ in range(300):
            if log.read_text().count("Application startup complete") == 2:
                break
            await asyncio.sleep(0.05)
        clients = await connect_clients(port, 8)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)  # to the supervisor, which stops each worker
        await asyncio.wait_for(asyncio.gather(*(follow(c, t0) for c in clients)), 15)
        await asyncio.to_thread(proc.wait, 15)
        output = log.read_text()
    for client in clients:
        check_drained(client, 1.0)
    # each worker drains its own clients (a worker that got none drains quietly)
    assert output.count("Application startup complete") == 2, output
    drained = [line for line in output.splitlines() if "drained in" in line]
    assert 1 <= len(drained) <= 2, output
    assert sum(int(line.split(" notified")[0].rsplit(" ", 1)[1]) for line in drained) == 8


@pytest.mark.e2e
async def test_plain_uvicorn_closes_everyone_at_once_without_a_notice() -> None:
    # the behaviour `rtframe run` exists for, kept visible (docs/deploy.md)
    with uvicorn_process("tests.drain_app:app") as (port, proc):
        clients = await connect_clients(port, 10)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*(follow(c, t0) for c in clients)), 15)
    assert all(c.close_code == 1012 and c.frames == [] for c in clients)
    closes = [c.closed_at for c in clients]
    assert max(closes) - min(closes) < 0.3


# -- DrainingServer and serve() in this process, on real sockets -------------------------


async def start_in_process(server: DrainingServer) -> asyncio.Task[None]:
    serving = asyncio.create_task(server.serve())
    for _ in range(200):
        if server.started:
            return serving
        await asyncio.sleep(0.025)
    raise AssertionError("the server did not start within 5 s")


def in_process_config(app: Any, **options: Any) -> uvicorn.Config:
    # log_config=None: leave this process's logging (and pytest's capture) alone
    return uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_config=None, **options)


async def test_draining_server_drains_before_uvicorn_closes_the_sockets() -> None:
    config = in_process_config(make_app())
    server = DrainingServer(config, DrainOptions(window=0.4, max_share_per_second=1.0))
    serving = await start_in_process(server)
    clients = await connect_clients(config.port, 4)
    t0 = time.monotonic()
    server.should_exit = True  # what its SIGTERM and SIGINT handler does
    await asyncio.wait_for(asyncio.gather(*(follow(c, t0) for c in clients)), 10)
    await asyncio.wait_for(serving, 10)
    for client in clients:
        check_drained(client, 0.4)
    assert server.drain_summary is not None and server.drain_summary.closed == 4


async def test_a_second_ctrl_c_cuts_the_drain_short() -> None:
    config = in_process_config(make_app())
    server = DrainingServer(config, DrainOptions(window=30.0))
    serving = await start_in_process(server)
    clients = await connect_clients(config.port, 2)
    t0 = time.monotonic()
    server.should_exit = True
    await asyncio.sleep(0.3)
    server.force_exit = True  # what a second Ctrl+C does
    await asyncio.wait_for(asyncio.gather(*(follow(c, t0) for c in clients)), 10)
    await asyncio.wait_for(serving, 10)
    assert server.drain_summary is None
    # told, then closed by uvicorn itself well before the 30 s window
    assert all(c.frames[0][1]["type"] == NOTICE and c.closed_at < 2 for c in clients)


async def test_draining_server_without_a_realtime_app_warns_and_closes_as_uvicorn(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def plain(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    server = DrainingServer(in_process_config(plain, lifespan="off"))
    serving = await start_in_process(server)
    assert server.realtime_app is None
    assert "is not a RealtimeApp and wraps none" in caplog.text
    server.should_exit = True
    await asyncio.wait_for(serving, 10)
    assert server.drain_summary is None


async def test_serve_runs_uvicorn_and_drains_when_it_stops() -> None:
    # uvicorn stops by itself after `limit_max_requests` HTTP requests: no signal needed
    port = free_port()
    status: list[int] = []
    thread = threading.Thread(
        target=lambda: status.append(
            serve(
                "tests.drain_app:make_app",
                drain=DrainOptions(window=0.3, max_share_per_second=1.0),
                factory=True,
                host="127.0.0.1",
                port=port,
                log_config=None,
                limit_max_requests=1,
            )
        )
    )
    thread.start()
    try:
        for _ in range(200):
            try:
                clients = await connect_clients(port, 2)
                break
            except OSError:
                await asyncio.sleep(0.025)
        t0 = time.monotonic()
        async with httpx.AsyncClient() as http:
            assert (await http.get(f"http://127.0.0.1:{port}/asyncapi.json")).status_code == 200
        await asyncio.wait_for(asyncio.gather(*(follow(c, t0) for c in clients)), 10)
    finally:
        await asyncio.to_thread(thread.join, 10)
    assert status == [0]
    for client in clients:
        check_drained(client, 0.3)


# -- the command line -------------------------------------------------------------------


def test_run_passes_only_the_flags_given_to_uvicorn() -> None:
    args = build_parser().parse_args(
        ["run", "m:app", "--port", "9000", "--workers", "3", "--ws", "wsproto",
         "--no-access-log", "--reload-dir", "src", "--reload-dir", "lib",
         "--timeout-graceful-shutdown", "5", "--drain-window", "30", "--drain-max-share", "0.05"]
    )  # fmt: skip
    assert uvicorn_options(args) == {
        "port": 9000,
        "workers": 3,
        "ws": "wsproto",
        "access_log": False,
        "reload": False,
        "reload_dirs": ["src", "lib"],
        "timeout_graceful_shutdown": 5,
        "ws_per_message_deflate": False,  # rtframe run's default, unlike uvicorn's
    }
    assert (drain_window(args), args.drain_max_share) == (30.0, 0.05)
    assert (args.drain_grace, args.drain_close_timeout) == (5.0, 2.0)


@pytest.mark.e2e
@pytest.mark.parametrize(("flags", "compressed"), [([], False), (["--ws-per-message-deflate"], True)])
async def test_run_compresses_frames_only_when_asked(flags: list[str], compressed: bool) -> None:
    # a client offering permessage-deflate (websockets does by default, browsers too) gets
    # it from `rtframe run` only with the flag: off, the fan-out writes each frame as is
    with rtframe_run(*flags) as (port, _proc, _log):
        async with connect(f"ws://127.0.0.1:{port}/ws") as sock:
            assert sock.response is not None
            extensions = sock.response.headers.get("Sec-WebSocket-Extensions") or ""
            assert ("permessage-deflate" in extensions) is compressed, extensions


def test_drain_window_is_10_s_and_0_under_reload_unless_given() -> None:
    parse = build_parser().parse_args
    assert drain_window(parse(["run", "m:app"])) == 10.0
    assert drain_window(parse(["run", "m:app", "--reload"])) == 0.0
    assert drain_window(parse(["run", "m:app", "--reload", "--drain-window", "3"])) == 3.0


@pytest.mark.parametrize(
    "flags",
    [["--drain-window", "-1"], ["--drain-max-share", "0"], ["--drain-max-share", "1.5"],
     ["--drain-grace", "nan"], ["--log-level", "loud"]],
)  # fmt: skip
def test_run_refuses_impossible_drain_flags(flags: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["run", "m:app", *flags])
    assert exit_.value.code == 2
    assert f"error: argument {flags[0]}" in capsys.readouterr().err


def test_run_refuses_a_target_that_is_no_realtime_app(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "tests.drain_app:Echo"]) == 2
    assert "not a RealtimeApp" in capsys.readouterr().err


def test_run_refuses_an_unknown_websocket_implementation(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "tests.drain_app:app", "--ws", "carrier-pigeon"]) == 2
    assert "unknown ws 'carrier-pigeon'" in capsys.readouterr().err


def test_run_without_uvicorn_names_the_extra_to_install() -> None:
    code = (
        "import sys; sys.modules['uvicorn'] = None\n"  # as if uvicorn were not installed
        "from rtframe.cli import main\n"
        "raise SystemExit(main(['run', 'tests.drain_app:app']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == f"rtframe: error: {SERVER_HINT}"
