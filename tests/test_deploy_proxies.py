"""The proxy configurations of docs/deploy.md, run for real in front of uvicorn.

The nginx and Caddy blocks are taken from the page as they are written there; only the
addresses are changed (a free port to listen on, the uvicorn under test as upstream,
files in a temporary folder). A WebSocket and an SSE stream of one room must work
through each proxy: the WebSocket needs the upgrade headers passed on, the stream
needs its events written through as they come.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from tests.servers import ROOT, free_port, uvicorn_server, wait_for_port

pytestmark = pytest.mark.e2e

DEPLOY_PAGE = ROOT / "docs" / "deploy.md"


def page_block(lang: str) -> str:
    """The one ```<lang> block of docs/deploy.md."""
    blocks = re.findall(rf"^```{lang}\n(.*?)^```", DEPLOY_PAGE.read_text(), re.M | re.S)
    assert len(blocks) == 1, f"docs/deploy.md should have one {lang} block, has {len(blocks)}"
    return str(blocks[0])


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, f"{old!r} should appear once in the page's config"
    return text.replace(old, new)


def require(tool: str, package: str) -> str:
    """The tool's path; fail under CI (scripts/test installs it), skip elsewhere."""
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/local/sbin")
    if path is not None:
        return path
    message = f"{tool} is not installed (Debian: apt-get install {package})"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@contextmanager
def running(
    command: list[str], port: int, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` until the block ends; it must listen on `port` first."""
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT
    )
    try:
        wait_for_port(port, proc)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout:
            proc.stdout.close()


@contextmanager
def nginx(upstreams: list[int], tmp: Path, page_conf: str | None = None) -> Iterator[int]:
    binary = require("nginx", "nginx-light")
    port = free_port()
    conf = page_block("nginx") if page_conf is None else page_conf
    servers = "\n        ".join(f"server 127.0.0.1:{upstream};" for upstream in upstreams)
    conf = replace_once(conf, "server 127.0.0.1:8000;", servers)
    conf = replace_once(conf, "listen 80;", f"listen 127.0.0.1:{port};")
    # logs and temporary files here, not in /var (the test may not run as root)
    files = "".join(
        f"    {directive} {tmp}/{name};\n"
        for directive, name in [
            ("access_log", "access.log"),
            ("client_body_temp_path", "body"),
            ("proxy_temp_path", "proxy"),
            ("fastcgi_temp_path", "fastcgi"),
            ("uwsgi_temp_path", "uwsgi"),
            ("scgi_temp_path", "scgi"),
        ]
    )
    conf = replace_once(conf, "http {\n", "http {\n" + files)
    (tmp / "nginx.conf").write_text(conf)
    settings = f"daemon off; pid {tmp}/nginx.pid; error_log stderr;"
    command = [binary, "-p", str(tmp), "-c", str(tmp / "nginx.conf"), "-g", settings]
    check = subprocess.run([*command, "-t"], capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
    with running(command, port):
        yield port


@contextmanager
def caddy(upstream: int, tmp: Path) -> Iterator[int]:
    binary = require("caddy", "caddy")
    port = free_port()
    conf = page_block("caddy")
    # plain HTTP on a free port, no admin endpoint: nothing here needs a certificate
    conf = replace_once(
        conf,
        "chat.example.com {",
        f"{{\n\tadmin off\n\tauto_https off\n}}\n\nhttp://127.0.0.1:{port} {{",
    )
    conf = replace_once(
        conf, "reverse_proxy 127.0.0.1:8000 {", f"reverse_proxy 127.0.0.1:{upstream} {{"
    )
    (tmp / "Caddyfile").write_text(conf)
    env = {**os.environ, "HOME": str(tmp), "XDG_DATA_HOME": str(tmp), "XDG_CONFIG_HOME": str(tmp)}
    command = [binary, "run", "--adapter", "caddyfile", "--config", str(tmp / "Caddyfile")]
    with running(command, port, env=env):
        yield port


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    # the room of tests/sse_app.py: /ws/{room} says things, /events/{room} follows them
    with uvicorn_server("tests.sse_app:app") as port:
        yield port


@pytest.mark.parametrize("proxy", ["nginx", "caddy"])
async def test_a_websocket_and_an_sse_stream_pass_through(
    proxy: str, upstream: int, tmp_path: Path
) -> None:
    proxied = nginx([upstream], tmp_path) if proxy == "nginx" else caddy(upstream, tmp_path)
    with proxied as port:
        async with httpx.AsyncClient(timeout=10) as http:
            async with http.stream("GET", f"http://127.0.0.1:{port}/events/lobby") as stream:
                assert stream.status_code == 200
                assert stream.headers["content-type"].startswith("text/event-stream")
                # the stream joined the room before its response started
                async with connect(f"ws://127.0.0.1:{port}/ws/lobby") as ws:
                    await ws.send(json.dumps({"type": "say", "text": f"through {proxy}"}))
                    said = json.loads(await asyncio.wait_for(ws.recv(), 10))
                    assert said["text"] == f"through {proxy}"
                    # the event must arrive while the stream is open: a proxy that
                    # buffered it would hold it until the response ended
                    async with asyncio.timeout(10):
                        async for line in stream.aiter_lines():
                            if line.startswith("data:"):
                                event = json.loads(line.removeprefix("data:").strip())
                                assert event["text"] == f"through {proxy}"
                                break
                        else:
                            raise AssertionError("the stream ended without the event")


async def test_without_the_upgrade_headers_nginx_refuses_the_websocket(
    upstream: int, tmp_path: Path
) -> None:
    """The Upgrade and Connection lines are what make the page's nginx pass a WebSocket on."""
    page = page_block("nginx")
    stripped = re.sub(
        r"^ *proxy_set_header (Upgrade|Connection \$connection_upgrade).*\n", "", page, flags=re.M
    )
    assert stripped.count("proxy_set_header") == page.count("proxy_set_header") - 2
    with nginx([upstream], tmp_path, stripped) as port:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"ws://127.0.0.1:{port}/ws/lobby"):
                pass
        # the handshake reached uvicorn as a plain GET, and the app has no such HTTP route
        assert refused.value.response.status_code == 404


async def open_through(port: int, count: int) -> list[int]:
    """Open `count` WebSockets to the drain app through the proxy; the status of each."""
    statuses = []
    for n in range(count):
        try:
            async with connect(f"ws://127.0.0.1:{port}/ws") as ws:
                await ws.send(json.dumps({"type": "echo", "text": str(n)}))
                assert json.loads(await asyncio.wait_for(ws.recv(), 10))["text"] == str(n)
                statuses.append(101)
        except InvalidStatus as refused:
            statuses.append(refused.response.status_code)
    return statuses


@pytest.mark.parametrize("retry_on_503", [True, False], ids=["page", "without-http_503"])
async def test_a_draining_process_hands_new_sockets_to_the_next(
    retry_on_503: bool, tmp_path: Path
) -> None:
    """nginx's `proxy_next_upstream ... http_503` moves a handshake off a draining process.

    Two upstreams: one `rtframe run` that got SIGTERM and is draining (it answers every
    handshake with 503 while its one client's handler runs), one plain uvicorn.
    """
    page = page_block("nginx")
    if not retry_on_503:
        page = replace_once(page, " http_503;", ";")
    draining_port = free_port()
    command = [sys.executable, "-m", "rtframe", "run", "tests.drain_app:app",
               "--port", str(draining_port), "--drain-window", "1", "--drain-grace", "60",
               "--log-level", "warning"]  # fmt: skip
    with running(command, draining_port) as draining:
        with uvicorn_server("tests.drain_app:app") as live_port:
            async with connect(f"ws://127.0.0.1:{draining_port}/ws") as held:
                # a handler that runs for a minute keeps the drain going
                await held.send(json.dumps({"type": "slow", "seconds": 60, "text": "held"}))
                draining.send_signal(signal.SIGTERM)
                assert json.loads(await asyncio.wait_for(held.recv(), 10))["type"] == "$reconnect"
                with pytest.raises(InvalidStatus) as refused:
                    async with connect(f"ws://127.0.0.1:{draining_port}/ws"):
                        pass
                assert refused.value.response.status_code == 503
                with nginx([draining_port, live_port], tmp_path, page) as port:
                    statuses = await open_through(port, 6)
                draining.kill()  # rather than wait for the drain to end
    if retry_on_503:
        assert statuses == [101] * 6
    else:  # the counter-check: without the retry, round robin hands some to the drain
        assert 503 in statuses and 101 in statuses
