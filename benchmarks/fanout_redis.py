"""Fan-out across two processes over Redis: rtframe's RedisLayer against channels_redis.

    python -m benchmarks.fanout_redis [--quick] [--members 100,1000]
                                      [--servers rtframe,channels-core,channels-pubsub]

For every server and group size: a private redis-server on a free loopback port, two
uvicorn processes (uvloop, httptools, --ws websockets-sansio) serving the same app on it,
half the members connected to each, one publisher connected to the first. The publisher
sends the next frame only after every member received the previous one; latency is from
the publisher's send to each member's receipt. CPU is measured inside the window for the
two servers together and for redis-server. Runs are bounded: a few seconds per case.

rtframe:          `@members.broadcast` on /pub, `RedisLayer` (one PUBLISH per broadcast)
channels-core:    `group_send` on channels_redis `RedisChannelLayer`
channels-pubsub:  `group_send` on channels_redis `RedisPubSubChannelLayer`
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil
import uvloop

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._client import WSClient, connect_many

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"  # loopback only
SERVERS = ("rtframe", "channels-core", "channels-pubsub")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + 30
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not listen on {port} within 30 s")
        time.sleep(0.05)


@contextlib.contextmanager
def redis_server() -> Iterator[tuple[str, psutil.Process]]:
    """A private redis-server, so other Redis users neither disturb nor get disturbed."""
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="rtframe-bench-redis-")
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", HOST, "--save", "", "--appendonly",
         "no", "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_listening(port, proc, "redis-server")
        yield f"redis://{HOST}:{port}/0", psutil.Process(proc.pid)
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.contextmanager
def uvicorn(kind: str, redis_url: str) -> Iterator[tuple[int, psutil.Process]]:
    port = free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", "benchmarks._redis_apps:app",
        "--host", HOST, "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--ws", "websockets-sansio", "--log-level", "warning", "--no-access-log",
        "--backlog", "4096",
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
        "BENCH_KIND": kind,
        "BENCH_REDIS_URL": redis_url,
    }
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            try:
                wait_listening(port, proc, f"uvicorn ({kind})")
            except RuntimeError:
                log.seek(0)
                raise RuntimeError(log.read().decode()[-2000:]) from None
            yield port, psutil.Process(proc.pid)
        finally:
            log.seek(0)
            errors = log.read().decode()
            if "Traceback" in errors or "ERROR" in errors:
                print(f"uvicorn ({kind}) logged errors:\n{errors[-3000:]}", file=sys.stderr)
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def cpu(procs: Sequence[psutil.Process]) -> float:
    total = 0.0
    for p in procs:
        t = p.cpu_times()
        total += t.user + t.system
    return total


@dataclass
class Outcome:
    server: str
    members: int
    deliveries: int = 0
    window: float = 0.0
    latencies: list[float] = field(default_factory=list)
    server_cpu: float = 0.0
    redis_cpu: float = 0.0
    generator_cpu: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.deliveries / self.window if self.window else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        s = sorted(self.latencies)
        return s[min(len(s) - 1, round(q * (len(s) - 1)))] * 1000

    def per_1k(self, seconds: float) -> float:
        return seconds * 1000 / self.deliveries * 1000 if self.deliveries else float("nan")


async def measure(
    kind: str,
    members: int,
    ports: tuple[int, int],
    servers: list[psutil.Process],
    redis: psutil.Process,
    warmup: float,
    duration: float,
) -> Outcome:
    out = Outcome(kind, members)
    half = members // 2
    subs: list[WSClient] = await connect_many(HOST, ports[0], "/sub", half)
    subs += await connect_many(HOST, ports[1], "/sub", members - half)
    (pub,) = await connect_many(HOST, ports[0], "/pub", 1)
    await asyncio.sleep(1.0)  # let both processes register (and subscribe) every member
    loop = asyncio.get_running_loop()
    perf = time.perf_counter
    state: dict[str, Any] = {"got": 0, "sent": 0.0, "measure": False}
    all_in: asyncio.Future[None] = loop.create_future()
    first: list[bytes] = []

    def on_frame(payload: bytes) -> None:
        state["got"] += 1
        if state["measure"]:
            out.latencies.append(perf() - state["sent"])
        if state["got"] == members and not all_in.done():
            all_in.set_result(None)

    for sub in subs:
        sub.on_frame = on_frame
    def keep_first(payload: bytes) -> None:
        first.append(payload)
        on_frame(payload)

    subs[-1].on_frame = keep_first

    me = psutil.Process()
    start = perf() + warmup
    end = start + duration
    seq = 0
    t0 = srv0 = red0 = gen0 = 0.0
    while perf() < end:
        if not state["measure"] and perf() >= start:
            state["measure"] = True
            t0, srv0, red0, gen0 = perf(), cpu(servers), cpu([redis]), cpu([me])
        all_in = loop.create_future()
        state["got"] = 0
        seq += 1
        frame = json.dumps({"type": "news", "seq": seq, "text": "breaking news"}).encode()
        state["sent"] = perf()
        pub.send_text(frame)
        try:
            await asyncio.wait_for(all_in, 15)
        except TimeoutError:
            out.errors.append(f"frame {seq}: {state['got']} of {members} members got it in 15 s")
            break
        if state["measure"]:
            out.deliveries += members
    if state["measure"]:
        out.window = perf() - t0
        out.server_cpu = cpu(servers) - srv0
        out.redis_cpu = cpu([redis]) - red0
        out.generator_cpu = cpu([me]) - gen0
    if first and json.loads(first[0]).get("type") != "news":
        out.errors.append(f"members got {first[0][:200]!r} instead of the news")
    for client in (*subs, pub):
        client.close()
    await asyncio.sleep(0.3)
    return out


def run_case(kind: str, members: int, warmup: float, duration: float) -> Outcome:
    with redis_server() as (url, redis), uvicorn(kind, url) as a, uvicorn(kind, url) as b:
        return uvloop.run(
            measure(kind, members, (a[0], b[0]), [a[1], b[1]], redis, warmup, duration)
        )


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}" if abs(v) >= 1 else f"{v:.3f}"
        return str(v)

    cells = [list(map(str, headers)), *[[fmt(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |"
             for r in cells]  # fmt: skip
    lines.insert(1, "|" + "|".join("-" * (w + 1) + ":" for w in widths) + "|")
    return "\n".join(lines)


COLUMNS = ["members", "server", "deliveries/s", "p50 ms", "p99 ms",
           "server CPU ms/1k deliveries", "Redis CPU ms/1k deliveries", "generator cores"]  # fmt: skip
RATIO_COLUMNS = ["members", "ratio", "deliveries/s (x)", "p99 latency (x lower)",
                 "server CPU per delivery (x lower)"]  # fmt: skip


def report(outcomes: list[Outcome], args: argparse.Namespace) -> str:
    rows = [
        [o.members, o.server, o.rate, o.pct(0.5), o.pct(0.99), o.per_1k(o.server_cpu),
         o.per_1k(o.redis_cpu), o.generator_cpu / o.window if o.window else float("nan")]
        for o in outcomes
    ]  # fmt: skip
    ratios = []
    for members in sorted({o.members for o in outcomes}):
        by = {o.server: o for o in outcomes if o.members == members}
        rt = by.get("rtframe")
        for other in ("channels-core", "channels-pubsub"):
            if rt and other in by and by[other].rate and rt.pct(0.99):
                ratios.append([
                    members, f"rtframe / {other}", rt.rate / by[other].rate,
                    by[other].pct(0.99) / rt.pct(0.99),
                    by[other].per_1k(by[other].server_cpu) / rt.per_1k(rt.server_cpu),
                ])  # fmt: skip
    text = [
        f"Fan-out over Redis, 2 uvicorn processes, members split evenly; {args.warmup:g} s "
        f"warm-up, {args.duration:g} s window per case",
        "",
        table(COLUMNS, rows),
        "",
        table(RATIO_COLUMNS, ratios),
    ]
    errors = [f"{o.members} {o.server}: {e}" for o in outcomes for e in o.errors]
    if errors:
        text += ["", "Errors:", *errors]
    return "\n".join(text)


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--servers", default=",".join(SERVERS))
    p.add_argument("--members", default="100,1000", help="comma-separated group sizes")
    p.add_argument("--warmup", type=float, default=1.5)
    p.add_argument("--duration", type=float, default=4.0, help="measured seconds per case")
    p.add_argument("--quick", action="store_true", help="1 s warm-up, 2 s window")
    args = p.parse_args(argv)
    if args.quick:
        args.warmup, args.duration = 1.0, 2.0
    load = os.getloadavg()
    print(
        f"{platform.node()}: nproc={os.cpu_count()}, Python {platform.python_version()}, "
        f"uvicorn {version('uvicorn')}, redis-py {version('redis')}, "
        f"hiredis {version('hiredis')}, channels_redis {version('channels_redis')}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        file=sys.stderr,
    )
    outcomes = []
    for members in (int(m) for m in args.members.split(",")):
        for kind in args.servers.split(","):
            print(f"  {members} members, {kind}...", file=sys.stderr, flush=True)
            outcomes.append(run_case(kind, members, args.warmup, args.duration))
    text = report(outcomes, args)
    print(text, flush=True)
    return text


if __name__ == "__main__":
    main()
