"""Start real servers for end-to-end tests: uvicorn, and every server of the matrix."""

from __future__ import annotations

import atexit
import contextlib
import functools
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = proc.stdout.read().decode() if proc.stdout else ""
            raise RuntimeError(f"uvicorn exited with {proc.returncode} before listening:\n{output}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"uvicorn did not listen on port {port} within {timeout}s")


def with_env(changes: Mapping[str, str | None] | None) -> dict[str, str]:
    """This process's environment with `changes` applied (None: remove the variable)."""
    env = dict(os.environ)
    for name, value in (changes or {}).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


@contextmanager
def uvicorn_process(
    app: str, *, env: Mapping[str, str | None] | None = None, args: tuple[str, ...] = ()
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """Run `uvicorn <app>` on a free loopback port; yields (port, process), stops it afterwards.

    Its environment is this process's updated with `env`, where None removes a variable
    (REDIS_URL, which scripts/test exports, for a server meant to run in memory). The
    process is exposed so a test can kill it the hard way; stopping an already dead
    process is fine.
    """
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
               "--log-level", "warning", *args]  # fmt: skip
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        env=with_env(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        yield port, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdout:
            proc.stdout.close()


@contextmanager
def uvicorn_server(
    app: str, *, env: Mapping[str, str | None] | None = None, args: tuple[str, ...] = ()
) -> Iterator[int]:
    """Run `uvicorn <app>` on a free loopback port; yields the port."""
    with uvicorn_process(app, env=env, args=args) as (port, _):
        yield port


# -- every ASGI server of the matrix (tests/matrix) ----------------------------------------


@dataclass(frozen=True)
class ServerKind:
    """One entry of the server matrix: a server, its WebSocket implementation, its transport.

    Attributes:
        name: the matrix id (`uvicorn-sansio`, `hypercorn-h2`, ...).
        family: uvicorn, hypercorn, daphne or granian.
        ws: uvicorn's `--ws` implementation (None for the other servers).
        tls: serves HTTPS/WSS with a self-signed certificate (`self_signed_cert`), where
            HTTP clients that offer h2 through ALPN get HTTP/2.
    """

    name: str
    family: str
    ws: str | None = None
    tls: bool = False


#: The matrix: every server rtframe is tested on (docs/servers.md).
SERVER_KINDS = {
    kind.name: kind
    for kind in (
        ServerKind("uvicorn-sansio", "uvicorn", ws="websockets-sansio"),
        ServerKind("uvicorn-websockets", "uvicorn", ws="websockets"),
        ServerKind("uvicorn-wsproto", "uvicorn", ws="wsproto"),
        ServerKind("hypercorn", "hypercorn"),
        ServerKind("hypercorn-h2", "hypercorn", tls=True),
        ServerKind("daphne", "daphne"),
        ServerKind("granian", "granian"),
    )
}


@functools.cache
def self_signed_cert() -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, made once per test process by `openssl`."""
    folder = Path(tempfile.mkdtemp(prefix="rtframe-tls-"))
    atexit.register(shutil.rmtree, folder, True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return cert, key


def client_ssl_context() -> ssl.SSLContext:
    """A new client context that trusts `self_signed_cert()`.

    A new one each time: httpx sets its ALPN protocols on the context it is given (h2
    with `http2=True`), and a WebSocket client handed that context would be answered in
    HTTP/2, which it does not speak.
    """
    return ssl.create_default_context(cafile=str(self_signed_cert()[0]))


def server_command(kind: ServerKind, app: str, port: int, args: Sequence[str] = ()) -> list[str]:
    """The command line that serves `app` (module:attr) with `kind` on 127.0.0.1:`port`."""
    python = [sys.executable, "-m"]
    if kind.family == "uvicorn":
        assert kind.ws is not None
        command = [*python, "uvicorn", app, "--host", HOST, "--port", str(port),
                   "--ws", kind.ws, "--log-level", "warning"]  # fmt: skip
    elif kind.family == "hypercorn":
        command = [*python, "hypercorn", app, "--bind", f"{HOST}:{port}", "--log-level", "warning"]
        if kind.tls:
            cert, key = self_signed_cert()
            command += ["--certfile", str(cert), "--keyfile", str(key)]
    elif kind.family == "daphne":
        # verbosity 0: no access log on stdout, errors still logged
        command = [*python, "daphne", "-b", HOST, "-p", str(port), "-v", "0", app]
    elif kind.family == "granian":
        command = [*python, "granian", "--interface", "asgi", "--host", HOST, "--port", str(port),
                   "--log-level", "warning", app]  # fmt: skip
    else:
        raise ValueError(f"unknown server family {kind.family!r}")
    return [*command, *args]


def draining_command(kind: ServerKind, app: str, port: int, args: Sequence[str] = ()) -> list[str]:
    """Like `server_command`, but the app drains on SIGTERM before the server closes anything.

    uvicorn: `rtframe run`; the others: the recipes of docs/servers.md, run by
    `tests.matrix.launch`. `args` take the drain's options (`--drain-window 1`).
    """
    python = [sys.executable, "-m"]
    if kind.family == "uvicorn":
        assert kind.ws is not None
        return [*python, "rtframe", "run", app, "--host", HOST, "--port", str(port),
                "--ws", kind.ws, "--log-level", "info", *args]  # fmt: skip
    command = [
        *python,
        "tests.matrix.launch",
        kind.family,
        app,
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    if kind.tls:
        command += ["--tls", *map(str, self_signed_cert())]
    return [*command, *args]


@dataclass
class RunningServer:
    """A server process of the matrix, listening on 127.0.0.1:`port`, its output in `log`."""

    kind: ServerKind
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def name(self) -> str:
        return self.kind.name

    def url(self, path: str) -> str:
        return f"{'https' if self.kind.tls else 'http'}://{HOST}:{self.port}{path}"

    def ws_url(self, path: str) -> str:
        return f"{'wss' if self.kind.tls else 'ws'}://{HOST}:{self.port}{path}"

    @property
    def ssl(self) -> ssl.SSLContext | None:
        """The client TLS context for this server (None: plain TCP)."""
        return client_ssl_context() if self.kind.tls else None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """Kill the whole process group at once (a server may run worker processes)."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


@contextmanager
def asgi_server(
    kind: ServerKind | str,
    app: str,
    *,
    env: Mapping[str, str] | None = None,
    args: Sequence[str] = (),
    draining: bool = False,
    timeout: float = 20.0,
) -> Iterator[RunningServer]:
    """Serve `app` with one server of the matrix on a free loopback port.

    `draining`: run it so that SIGTERM drains the app first (`draining_command`).

    Yields once the server answers HTTP (a server that accepts TCP before its worker runs,
    granian, is not ready then). The process runs in its own process group, so stopping it
    reaches its workers too: SIGTERM, then SIGKILL after 10 s. If it does not start, the
    error carries its output.
    """
    kind = SERVER_KINDS[kind] if isinstance(kind, str) else kind
    port = free_port()
    log = Path(tempfile.mkstemp(prefix=f"rtframe-{kind.name}-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            (draining_command if draining else server_command)(kind, app, port, args),
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RunningServer(kind, port, proc, log)
    try:
        _wait_serving(server, timeout)
        yield server
    finally:
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
        # a worker left behind by a main process that exited on its own
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        log.unlink(missing_ok=True)


def _wait_serving(server: RunningServer, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    verify: ssl.SSLContext | bool = server.ssl or False
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"{server.name} exited with {server.proc.returncode} before serving:\n"
                f"{server.output()}"
            )
        try:
            # any answer will do: the app's 404 says the worker runs it
            httpx.get(server.url("/"), timeout=1.0, verify=verify)
            return
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(
        f"{server.name} did not serve on {server.port} within {timeout}s:\n{server.output()}"
    )
