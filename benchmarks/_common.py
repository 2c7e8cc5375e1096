"""Shared plumbing: start a server under test, measure it, print tables."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # benchmarks only ever talk to loopback

#: uvicorn's two websockets-based implementations (`uvicorn --help`, option `--ws`).
IMPLS = ("websockets-sansio", "websockets")
#: The ASGI servers the echo and fan-out benchmarks can run on (`--servers`); uvicorn runs
#: once per `--ws` implementation, the others with their own WebSocket code.
SERVERS = ("uvicorn", "hypercorn", "daphne", "granian")

#: The servers under test: name -> module in benchmarks.apps.
APPS = {
    "bare": "benchmarks.apps.bare",
    "rtframe": "benchmarks.apps.rt",
    "channels": "benchmarks.apps.chan",
}
#: More servers, run only when named in --apps: rtframe with its Prometheus metrics on,
#: rtframe with its fan-out group keeping history.
VARIANTS = {
    "rtframe-metrics": "benchmarks.apps.rt_metrics",
    "rtframe-history": "benchmarks.apps.rt_history",
    "rtframe-sse": "benchmarks.apps.rt_sse",
}


def app_module(app: str) -> str:
    """The module in benchmarks.apps of a server in `APPS` or `VARIANTS`."""
    return APPS[app] if app in APPS else VARIANTS[app]


def raise_fd_limit(wanted: int = 20000) -> int:
    """Lift the soft open-files limit (inherited by the servers we start)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = min(wanted, hard) if hard != resource.RLIM_INFINITY else wanted
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    app: str
    impl: str
    port: int
    proc: psutil.Process

    def cpu(self) -> float:
        times = self.proc.cpu_times()
        return float(times.user + times.system)

    def rss(self) -> int:
        return int(self.proc.memory_info().rss)


def server_command(module: str, port: int, server: str, impl: str) -> list[str]:
    """The command serving `module` (module:attr) with `server` on HOST:`port`.

    Each runs one process of the app on uvloop where it can choose (daphne runs on
    Twisted's asyncio reactor), without access log, with a long listen backlog.
    """
    python = [sys.executable, "-m"]
    if server == "uvicorn":
        return [
            *python, "uvicorn", module, "--host", HOST, "--port", str(port),
            "--loop", "uvloop", "--http", "httptools", "--ws", impl,
            "--log-level", "warning", "--no-access-log", "--backlog", "4096",
        ]  # fmt: skip
    if server == "hypercorn":
        return [*python, "hypercorn", module, "--bind", f"{HOST}:{port}", "--worker-class",
                "uvloop", "--log-level", "warning", "--backlog", "4096"]  # fmt: skip
    if server == "daphne":
        return [*python, "daphne", "-b", HOST, "-p", str(port), "-v", "0", module]
    if server == "granian":
        return [*python, "granian", "--interface", "asgi", "--host", HOST, "--port", str(port),
                "--loop", "uvloop", "--log-level", "warning", "--backlog", "4096", module]  # fmt: skip
    raise ValueError(f"unknown server {server!r}: one of {', '.join(SERVERS)}")


def worker_process(pid: int) -> psutil.Process:
    """The process that runs the app: `pid`, or its one worker (hypercorn, granian).

    hypercorn and granian run the app in a worker process their main process supervises
    (hypercorn also starts multiprocessing's resource tracker), so the CPU to measure is
    the worker's.
    """
    main = psutil.Process(pid)
    workers = [
        child
        for child in main.children(recursive=True)
        if "resource_tracker" not in " ".join(child.cmdline())
    ]
    return workers[0] if len(workers) == 1 else main


@contextlib.contextmanager
def serve(app: str, attr: str, impl: str, server: str = "uvicorn") -> Iterator[Server]:
    """Run `benchmarks.apps.<app>:<attr>` with `server` (uvicorn: uvloop, httptools, `--ws impl`)."""
    port = free_port()
    cmd = server_command(f"{app_module(app)}:{attr}", port, server, impl)
    name = f"{app}/{server}{'/' + impl if server == 'uvicorn' else ''}"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    with tempfile.TemporaryFile() as log:
        # a session of its own: stopping it stops its workers too
        popen = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=log, stderr=log, start_new_session=True
        )
        try:
            deadline = time.monotonic() + 30
            while True:
                if popen.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"server {name} died:\n{log.read().decode()}")
                with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server {name} did not listen within 30 s")
                time.sleep(0.1)
            if server in ("hypercorn", "granian"):
                # their supervisor listens before the worker runs the app: wait until it
                # answers (with the app's answer, or the server's 500 for an app that
                # serves no HTTP); daphne would leave such a request unanswered
                _wait_http(port, deadline, popen, name)
            yield Server(
                app, impl if server == "uvicorn" else server, port, worker_process(popen.pid)
            )
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(popen.pid, signal.SIGTERM)
            try:
                popen.wait(10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()


def _wait_http(port: int, deadline: float, popen: subprocess.Popen[bytes], name: str) -> None:
    """Wait until the server answers an HTTP request (any status)."""
    while True:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 1.0) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
            if sock.recv(16).startswith(b"HTTP/"):
                return
        if popen.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"server {name} does not answer HTTP")
        time.sleep(0.1)


def percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table (readable in a terminal too)."""
    cells = [[str(h) for h in headers], *[[_fmt(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = [
        "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    lines.insert(1, "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    return "\n".join(lines)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value != value:
            return "-"
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def machine() -> str:
    load = os.getloadavg()
    servers = ", ".join(f"{name} {_version(name)}" for name in SERVERS[1:])
    return (
        f"{platform.node()}: nproc={os.cpu_count()}, {platform.machine()}, "
        f"Python {platform.python_version()}, uvicorn {version('uvicorn')}, "
        f"websockets {version('websockets')}, uvloop {version('uvloop')}, "
        f"httptools {version('httptools')}, pydantic {version('pydantic')}, "
        f"channels {version('channels')}, Django {version('django')}, {servers}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


def _version(package: str) -> str:
    try:
        return version(package)
    except PackageNotFoundError:
        return "(not installed)"


def base_parser(doc: str | None, quick_help: str) -> argparse.ArgumentParser:
    """The options every network benchmark takes."""
    p = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--apps",
        default=",".join(APPS),
        help="comma-separated: bare,rtframe,channels (or rtframe-metrics)",
    )
    p.add_argument("--ws", default=",".join(IMPLS), help="uvicorn --ws implementations")
    p.add_argument("--repeat", type=int, default=1, help="runs per case; the median is shown")
    p.add_argument("--quick", action="store_true", help=quick_help)
    return p


def add_server_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--servers",
        default="uvicorn",
        help=f"comma-separated ASGI servers: {','.join(SERVERS)} (uvicorn once per --ws); "
        "with more than one, a table with a column per server follows",
    )


def cases(args: argparse.Namespace) -> list[str]:
    """The server cases of a run: uvicorn's `--ws` implementations, then the other servers.

    With uvicorn alone a case is named by its implementation, as before `--servers`;
    otherwise `uvicorn/<impl>`, `hypercorn`, `daphne`, `granian`.
    """
    servers: list[str] = args.servers.split(",")
    impls: list[str] = args.ws.split(",")
    unknown = sorted(set(servers) - set(SERVERS))
    if unknown:
        raise SystemExit(f"unknown server(s) {', '.join(unknown)}: one of {', '.join(SERVERS)}")
    if servers == ["uvicorn"]:
        return impls
    named = [f"uvicorn/{impl}" for impl in impls] if "uvicorn" in servers else []
    return named + [s for s in servers if s != "uvicorn"]


def case_server(case: str) -> tuple[str, str]:
    """(server, uvicorn `--ws` implementation) of a case named by `cases`."""
    if case.startswith("uvicorn/"):
        return "uvicorn", case.removeprefix("uvicorn/")
    if case in SERVERS:
        return case, ""
    return "uvicorn", case


def server_columns(
    medians: dict[tuple[str, str], Any], columns: Sequence[str], rate: str, plural: str
) -> str:
    """Two tables with an app per row and a server case per column: rate, server CPU.

    `medians` maps (app, case) to an outcome with `rate` and `server_ms_per_1k`.
    """
    apps = list(dict.fromkeys(app for app, _ in medians))

    def cell(app: str, case: str, attr: str) -> Any:
        outcome = medians.get((app, case))
        return getattr(outcome, attr) if outcome is not None else float("nan")

    return "\n".join(
        [
            f"Per server: {rate}",
            "",
            table(["app", *columns], [[a, *(cell(a, c, "rate") for c in columns)] for a in apps]),
            "",
            f"Per server: server CPU ms per 1k {plural}",
            "",
            table(
                ["app", *columns],
                [[a, *(cell(a, c, "server_ms_per_1k") for c in columns)] for a in apps],
            ),
        ]
    )


def add_window_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds per case")


def run_cli(
    parser: argparse.ArgumentParser,
    argv: list[str] | None,
    quick: Callable[[argparse.Namespace], None],
    run_and_report: Callable[[argparse.Namespace], str],
) -> str:
    """Parse, apply --quick, print the machine to stderr and the report to stdout."""
    args = parser.parse_args(argv)
    if args.quick:
        quick(args)
    print(machine(), file=sys.stderr)
    text = run_and_report(args)
    print(text, flush=True)
    return text
