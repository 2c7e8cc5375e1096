"""Shared plumbing: start a server under test, measure it, print tables."""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # benchmarks only ever talk to loopback

#: uvicorn's two websockets-based implementations (`uvicorn --help`, option `--ws`).
IMPLS = ("websockets-sansio", "websockets")

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


@contextlib.contextmanager
def serve(app: str, attr: str, impl: str) -> Iterator[Server]:
    """Run `uvicorn benchmarks.apps.<app>:<attr>` (uvloop, httptools, `--ws impl`)."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", f"{app_module(app)}:{attr}",
        "--host", HOST, "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--ws", impl,
        "--log-level", "warning", "--no-access-log",
        "--backlog", "4096",
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore::DeprecationWarning"}
    with tempfile.TemporaryFile() as log:
        popen = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            deadline = time.monotonic() + 30
            while True:
                if popen.poll() is not None:
                    log.seek(0)
                    raise RuntimeError(f"server {app}/{impl} died:\n{log.read().decode()}")
                with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"server {app}/{impl} did not listen within 30 s")
                time.sleep(0.1)
            yield Server(app, impl, port, psutil.Process(popen.pid))
        finally:
            popen.terminate()
            try:
                popen.wait(10)
            except subprocess.TimeoutExpired:
                popen.kill()
                popen.wait()


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
    return (
        f"{platform.node()}: nproc={os.cpu_count()}, {platform.machine()}, "
        f"Python {platform.python_version()}, uvicorn {version('uvicorn')}, "
        f"websockets {version('websockets')}, uvloop {version('uvloop')}, "
        f"httptools {version('httptools')}, pydantic {version('pydantic')}, "
        f"channels {version('channels')}, Django {version('django')}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


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
