"""Background tasks: rtframe's Redis engine against Channels' runworker (issue 12).

    python -m benchmarks.tasks [--quick] [--tasks 2000] [--workers 1,2] [--samples 300]
                               [--sockets 1,10] [--frameworks rtframe,channels] [--repeat 1]

Every case gets a private redis-server on a free loopback port and real worker processes.

Throughput: the workers are started and warmed up, then this process enqueues `--tasks`
trivial tasks (`--inflight` enqueues at a time) and waits until every one was handled;
tasks/s is enqueue start to the last one done. Done means, for rtframe, that the task's
stream is empty (a message is deleted when it is acknowledged, after its result and
status record were saved); for Channels, that the consumers' counter reached the count.

rtframe:   `await noop.aenqueue(i)`; `rtframe worker benchmarks.apps.tasks_rt:tasks`
channels:  `await layer.send("bench-tasks", {...})` on channels_redis `RedisChannelLayer`;
           `python -m django runworker bench-tasks` with an `AsyncConsumer`

Latency: one uvicorn (uvloop, httptools, websockets-sansio) and one worker. Each socket
sends a start frame; the handler enqueues a task that reports progress once; the time is
from the send to the progress frame arriving at the same socket. rtframe:
`ping.using(notify=conn).aenqueue(seq)` and `current_task().progress(0.5)`; Channels: the
consumer sends to the worker channel with its `channel_name`, the worker sends back to it.
With several sockets, each sends its next start frame once its task is over.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil
import redis.asyncio as aioredis
import uvloop

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._client import WSClient, connect_many
from benchmarks.fanout_redis import HOST, ROOT, cpu, free_port, redis_server, table

FRAMEWORKS = ("rtframe", "channels")
PREFIX = "bench-tasks"  # rtframe's keys; the Redis is private anyway
WORKER_CHANNEL = "bench-tasks"  # benchmarks.apps.tasks_chan.WORKER_CHANNEL
DONE_KEY = "bench:done"  # benchmarks.apps.tasks_chan.DONE_KEY
CHANNELS_SETTINGS = "benchmarks.apps.tasks_chan_settings"
WARMUP_TASKS = 50


class Process:
    """A subprocess whose output is collected line by line (for its ready line, its errors)."""

    def __init__(self, cmd: list[str], env: dict[str, str], what: str) -> None:
        self.what = what
        self.popen = subprocess.Popen(
            cmd,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT),
                 "PYTHONWARNINGS": "ignore::DeprecationWarning", **env},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )  # fmt: skip
        self.proc = psutil.Process(self.popen.pid)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def output(self) -> str:
        return "\n".join(self.lines[-40:])

    def wait_for(self, text: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if self.popen.poll() is not None:
                time.sleep(0.2)  # let the reader catch the last lines
                raise RuntimeError(f"{self.what} exited ({self.popen.returncode}):\n{self.output}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{self.what} did not print {text!r} in {timeout:g}s")
            time.sleep(0.02)

    def wait_listening(self, port: int, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError), socket.create_connection((HOST, port), 0.2):
                return
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{self.what} does not listen on {port}:\n{self.output}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        self._reader.join(5)
        # a warning in a run is a failure the figures hide (a frame not sent, a task
        # retried); the worker's own warning about the SIGTERM that stops it is not
        troubles = [
            line for line in self.lines
            if any(mark in line for mark in ("Traceback", "ERROR", "WARNING"))
            and "SIGTERM" not in line
        ]  # fmt: skip
        if troubles:
            print(f"{self.what} logged problems:\n{self.output}", file=sys.stderr)

    def alive(self) -> bool:
        return self.popen.poll() is None


def environment(framework: str, url: str) -> dict[str, str]:
    env = {"BENCH_REDIS_URL": url, "BENCH_PREFIX": PREFIX}
    if framework == "channels":
        env["DJANGO_SETTINGS_MODULE"] = CHANNELS_SETTINGS
    return env


def start_worker(framework: str, url: str, concurrency: int, n: int) -> Process:
    """Worker number `n`, once it is ready to take work."""
    python = [sys.executable, "-m"]
    if framework == "rtframe":
        cmd = [*python, "rtframe", "worker", "benchmarks.apps.tasks_rt:tasks",
               "--concurrency", str(concurrency), "--log-level", "warning"]  # fmt: skip
        ready = "rtframe worker: ready"
    else:
        # runworker logs its start at INFO; the settings send django.channels.worker there
        cmd = [*python, "django", "runworker", WORKER_CHANNEL]
        ready = "Running worker for channels"
    worker = Process(cmd, environment(framework, url), f"{framework} worker {n}")
    try:
        worker.wait_for(ready)
    except BaseException:
        worker.stop()
        raise
    return worker


@contextlib.contextmanager
def workers(framework: str, url: str, count: int, concurrency: int) -> Iterator[list[Process]]:
    started: list[Process] = []
    try:
        for n in range(count):
            started.append(start_worker(framework, url, concurrency, n + 1))
        yield started
    finally:
        for worker in started:
            worker.stop()


@contextlib.contextmanager
def uvicorn(framework: str, url: str) -> Iterator[tuple[int, Process]]:
    module = {
        "rtframe": "benchmarks.apps.tasks_rt:app",
        "channels": "benchmarks.apps.tasks_chan:application",
    }[framework]
    port = free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", module, "--host", HOST, "--port", str(port),
        "--loop", "uvloop", "--http", "httptools", "--ws", "websockets-sansio",
        "--log-level", "warning", "--no-access-log",
    ]  # fmt: skip
    server = Process(cmd, environment(framework, url), f"uvicorn ({framework})")
    try:
        server.wait_listening(port)
        yield port, server
    finally:
        server.stop()


# -- the enqueuing side, one per framework -----------------------------------------------


class Enqueuer:
    """Enqueues the trivial task and says how many of those enqueued are still to run."""

    async def enqueue(self, n: int) -> None:
        raise NotImplementedError

    async def pending(self) -> int:
        raise NotImplementedError

    async def check(self) -> list[str]:
        """What went wrong, read once every task ran (nothing fails silently)."""
        return []

    async def notes(self) -> list[str]:
        """What is worth saying though nothing failed."""
        return []

    async def close(self) -> None:
        pass


class RtframeEnqueuer(Enqueuer):
    def __init__(self, url: str) -> None:
        from benchmarks.apps.tasks_rt import client

        self.tasks = client(url, PREFIX)
        self.noop = self.tasks.tasks["bench.noop"]
        self.stream = self.tasks.queue_key("default")
        self.redis = aioredis.Redis.from_url(url)
        self.last: list[Any] = []

    async def enqueue(self, n: int) -> None:
        handle = await self.noop.aenqueue(n)
        self.last = [*self.last[-2:], (handle, n)]

    async def pending(self) -> int:
        # acknowledged messages are deleted: what the stream still has is still to run
        return int(await self.redis.xlen(self.stream))

    async def check(self) -> list[str]:
        errors = []
        dead = int(await self.redis.xlen(f"{self.stream}:dead"))
        if dead:
            errors.append(f"{dead} task(s) failed (dead letters)")
        for handle, n in self.last:
            result = await handle.result(timeout=5)
            if result != n:
                errors.append(f"task {handle.id} returned {result!r}, not {n}")
        return errors

    async def close(self) -> None:
        await self.tasks.shutdown()
        await self.redis.aclose()


class ChannelsEnqueuer(Enqueuer):
    def __init__(self, url: str) -> None:
        from channels_redis.core import RedisChannelLayer  # type: ignore[import-untyped]

        # as in benchmarks/apps/tasks_chan_settings.py
        self.layer = RedisChannelLayer(
            hosts=[{"address": url, "socket_timeout": None}], capacity=1_000_000
        )
        self.redis = aioredis.Redis.from_url(url)
        self.sent = 0

    async def enqueue(self, n: int) -> None:
        await self.layer.send(WORKER_CHANNEL, {"type": "task.noop", "n": n})
        self.sent += 1

    async def pending(self) -> int:
        # a message handled twice (see `notes`) can hide one still waiting: the time is
        # then early by the handling of one trivial message
        return self.sent - int(await self.redis.get(DONE_KEY) or 0)

    async def check(self) -> list[str]:
        done = int(await self.redis.get(DONE_KEY) or 0)
        return [] if done >= self.sent else [f"{self.sent - done} of {self.sent} never handled"]

    async def notes(self) -> list[str]:
        done = int(await self.redis.get(DONE_KEY) or 0)
        if done <= self.sent:
            return []
        # channels_redis keeps a message being received in `<channel>$inflight`, one set
        # shared by every process on the channel, and each receive first moves that set
        # back into the channel: another worker's message in flight runs twice
        return [f"{done - self.sent} of {self.sent} messages were handled twice"]

    async def close(self) -> None:
        await self.layer.close_pools()
        await self.redis.aclose()


def enqueuer(framework: str, url: str) -> Enqueuer:
    return RtframeEnqueuer(url) if framework == "rtframe" else ChannelsEnqueuer(url)


async def enqueue_all(queue: Enqueuer, first: int, count: int, inflight: int) -> None:
    """Enqueue tasks first..first+count-1, `inflight` coroutines each taking the next."""
    numbers = iter(range(first, first + count))

    async def feed() -> None:
        for n in numbers:
            await queue.enqueue(n)

    await asyncio.gather(*(feed() for _ in range(min(inflight, count))))


async def wait_done(queue: Enqueuer, procs: Sequence[Process], timeout: float) -> str | None:
    """Wait until every task enqueued ran; what went wrong, if something did."""
    deadline = time.perf_counter() + timeout
    while (left := await queue.pending()) > 0:
        dead = [p.what for p in procs if not p.alive()]
        if dead:
            return f"{', '.join(dead)} exited with {left} task(s) left"
        if time.perf_counter() > deadline:
            return f"{left} task(s) not done after {timeout:g} s"
        await asyncio.sleep(0.002)
    return None


@dataclass
class Throughput:
    framework: str
    workers: int
    tasks: int = 0
    enqueue_s: float = 0.0  # enqueue start to the last enqueue returned
    total_s: float = 0.0  # enqueue start to the last task done
    worker_cpu: float = 0.0
    redis_cpu: float = 0.0
    enqueuer_cpu: float = 0.0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.tasks / self.total_s if self.total_s else 0.0

    def per_task_ms(self, seconds: float) -> float:
        return seconds * 1000 / self.tasks if self.tasks else float("nan")

    def summary(self) -> str:
        errors = f"  ERRORS: {self.errors}" if self.errors else ""
        return (
            f"{self.rate:6,.0f} tasks/s, worker {self.per_task_ms(self.worker_cpu):.2f} ms/task, "
            f"Redis {self.per_task_ms(self.redis_cpu):.2f}, enqueuer "
            f"{self.per_task_ms(self.enqueuer_cpu):.2f}{errors}"
        )


async def measure_throughput(
    framework: str,
    url: str,
    procs: list[Process],
    redis: psutil.Process,
    args: argparse.Namespace,
) -> Throughput:
    out = Throughput(framework, len(procs))
    queue = enqueuer(framework, url)
    try:
        # warm up every worker: imports, connections, Taskiq's and Pydantic's first calls
        await enqueue_all(queue, 0, WARMUP_TASKS * len(procs), args.inflight)
        failed = await wait_done(queue, procs, 30)
        if failed:
            out.errors.append(f"warm-up: {failed}")
            return out
        me = psutil.Process()
        workers_cpu = [w.proc for w in procs]
        w0, r0, e0 = cpu(workers_cpu), cpu([redis]), cpu([me])
        t0 = time.perf_counter()
        await enqueue_all(queue, WARMUP_TASKS * len(procs), args.tasks, args.inflight)
        out.enqueue_s = time.perf_counter() - t0
        failed = await wait_done(queue, procs, 120)
        out.total_s = time.perf_counter() - t0
        if failed:
            out.errors.append(failed)
            return out
        out.worker_cpu, out.redis_cpu = cpu(workers_cpu) - w0, cpu([redis]) - r0
        out.enqueuer_cpu = cpu([me]) - e0
        out.tasks = args.tasks
        out.errors += await queue.check()
        out.notes += await queue.notes()
    finally:
        await queue.close()
    return out


def throughput_case(framework: str, count: int, args: argparse.Namespace) -> Throughput:
    with redis_server() as (url, redis), workers(framework, url, count, args.concurrency) as procs:
        return uvloop.run(measure_throughput(framework, url, procs, redis, args))


# -- latency: enqueue from a socket's handler, progress frame back to that socket -------


@dataclass
class Latency:
    framework: str
    sockets: int
    latencies: list[float] = field(default_factory=list)
    window: float = 0.0
    server_cpu: float = 0.0
    worker_cpu: float = 0.0
    redis_cpu: float = 0.0
    errors: list[str] = field(default_factory=list)

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        s = sorted(self.latencies)
        return s[min(len(s) - 1, round(q * (len(s) - 1)))] * 1000

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.window if self.window else 0.0

    def per_task_ms(self, seconds: float) -> float:
        return seconds * 1000 / len(self.latencies) if self.latencies else float("nan")

    def summary(self) -> str:
        errors = f"  ERRORS: {self.errors}" if self.errors else ""
        return (
            f"p50 {self.pct(0.5):.2f} ms, p99 {self.pct(0.99):.2f} ms, {self.rate:,.0f} tasks/s, "
            f"worker {self.per_task_ms(self.worker_cpu):.2f} ms/task{errors}"
        )


class Asker:
    """One socket that starts a task, waits for its progress frame, then for its end."""

    def __init__(self, client: WSClient, framework: str) -> None:
        self.client = client
        # rtframe also sends `running` at the start and `successful` at the end: the next
        # task starts after the end, so tasks of one socket never overlap
        self.wait_end = framework == "rtframe"
        self.progress: asyncio.Future[float] | None = None
        self.end: asyncio.Future[None] | None = None
        self.errors: list[str] = []
        client.on_frame = self.on_frame

    def on_frame(self, payload: bytes) -> None:
        frame = json.loads(payload)
        if frame.get("type") != "task_progress":
            self.errors.append(f"unexpected frame {payload[:200]!r}")
            return
        if frame.get("progress") == 0.5 and frame.get("status", "running") == "running":
            if self.progress is not None and not self.progress.done():
                self.progress.set_result(time.perf_counter())
        if frame.get("status") in ("successful", "failed"):
            if frame["status"] == "failed":
                self.errors.append(f"task failed: {payload[:200]!r}")
            if self.end is not None and not self.end.done():
                self.end.set_result(None)

    async def one(self, seq: int) -> float:
        """Start task `seq`; the seconds from the send to its progress frame."""
        loop = asyncio.get_running_loop()
        self.progress = loop.create_future()
        self.end = loop.create_future() if self.wait_end else None
        sent = time.perf_counter()
        self.client.send_text(json.dumps({"type": "start", "seq": seq}).encode())
        arrived = await asyncio.wait_for(self.progress, 10)
        if self.end is not None:
            await asyncio.wait_for(self.end, 10)
        return arrived - sent


async def measure_latency(
    framework: str,
    port: int,
    sockets: int,
    samples: int,
    meters: tuple[list[psutil.Process], list[psutil.Process], psutil.Process],
) -> Latency:
    out = Latency(framework, sockets)
    clients = await connect_many(HOST, port, "/tasks", sockets)
    askers = [Asker(c, framework) for c in clients]
    per_socket = max(1, samples // sockets)
    seq = iter(range(10**9))

    async def run(asker: Asker, count: int, keep: bool) -> None:
        for _ in range(count):
            took = await asker.one(next(seq))
            if keep:
                out.latencies.append(took)

    server, worker, redis = meters
    try:
        await asyncio.gather(*(run(a, 10, False) for a in askers))  # warm-up
        s0, w0, r0 = cpu(server), cpu(worker), cpu([redis])
        t0 = time.perf_counter()
        await asyncio.gather(*(run(a, per_socket, True) for a in askers))
        out.window = time.perf_counter() - t0
        out.server_cpu, out.worker_cpu = cpu(server) - s0, cpu(worker) - w0
        out.redis_cpu = cpu([redis]) - r0
    except TimeoutError:
        out.errors.append("no progress frame (or end) within 10 s")
    finally:
        for client in clients:
            client.close()
    out.errors += [e for a in askers for e in a.errors]
    await asyncio.sleep(0.2)
    return out


def latency_cases(framework: str, args: argparse.Namespace) -> list[Latency]:
    with (
        redis_server() as (url, redis),
        workers(framework, url, 1, args.concurrency) as procs,
        uvicorn(framework, url) as (port, server),
    ):
        meters = ([server.proc], [w.proc for w in procs], redis)
        return [
            uvloop.run(measure_latency(framework, port, n, args.samples, meters))
            for n in args.socket_counts
        ]


# -- report ------------------------------------------------------------------------------


def median_by(runs: Sequence[Any], key: Callable[[Any], float]) -> Any:
    ordered = sorted(runs, key=key)
    return ordered[(len(ordered) - 1) // 2]


def spread(values: Sequence[float]) -> str:
    values = [v for v in values if v == v]
    if not values:
        return "-"
    mid = statistics.median(values)
    return f"{mid:.2f}" if len(values) == 1 else f"{mid:.2f} ({min(values):.2f}-{max(values):.2f})"


THROUGHPUT_COLUMNS = ["framework", "workers", "tasks", "enqueued/s", "tasks/s (enqueue → done)",
                      "worker CPU ms/task", "Redis CPU ms/task", "enqueuer CPU ms/task"]  # fmt: skip
THROUGHPUT_RATIOS = ["workers", "rtframe / channels: tasks/s", "worker CPU per task (x)",
                     "Redis CPU per task (x)"]  # fmt: skip
LATENCY_COLUMNS = ["framework", "sockets", "samples", "p50 ms", "p99 ms", "tasks/s",
                   "server CPU ms/task", "worker CPU ms/task", "Redis CPU ms/task"]  # fmt: skip
LATENCY_RATIOS = ["sockets", "rtframe / channels: p50 (x)", "p99 (x)"]
NOTE = (
    "The tasks do nothing: the framework's overhead is what is measured. rtframe is at least "
    "once: per task a status record at enqueue, start and end, a result and an "
    "acknowledgement (and a frame per state when notify= is set). Channels is at most once, "
    "without acknowledgement, result or status (a dead worker loses its message): it does "
    "less work by design. There is no bare-ASGI row: without a task engine there is nothing "
    "to compare."
)


def throughput_report(
    runs: dict[tuple[str, int], list[Throughput]], args: argparse.Namespace
) -> list[str]:
    rows = []
    for outcomes in runs.values():
        o = median_by(outcomes, lambda r: r.rate)
        rows.append([
            o.framework, o.workers, o.tasks,
            o.tasks / o.enqueue_s if o.enqueue_s else float("nan"), o.rate,
            o.per_task_ms(o.worker_cpu), o.per_task_ms(o.redis_cpu), o.per_task_ms(o.enqueuer_cpu),
        ])  # fmt: skip
    ratios = []
    for count in args.worker_counts:
        rt, ch = runs.get(("rtframe", count)), runs.get(("channels", count))
        if rt and ch:
            pairs = [(a, b) for a, b in zip(rt, ch, strict=True) if a.tasks and b.tasks and b.rate]
            ratios.append([
                count,
                spread([a.rate / b.rate for a, b in pairs]),
                spread([a.per_task_ms(a.worker_cpu) / b.per_task_ms(b.worker_cpu) for a, b in pairs]),
                spread([a.per_task_ms(a.redis_cpu) / b.per_task_ms(b.redis_cpu) for a, b in pairs]),
            ])  # fmt: skip
    text = [
        f"Throughput: {args.tasks:,} trivial tasks enqueued from one process ({args.inflight} at "
        f"a time), enqueue start to the last one done; an rtframe worker runs up to "
        f"{args.concurrency} at once (--concurrency), a Channels runworker one at a time",
        "",
        table(THROUGHPUT_COLUMNS, rows),
    ]
    return [*text, "", table(THROUGHPUT_RATIOS, ratios)] if ratios else text


def latency_report(
    runs: dict[tuple[str, int], list[Latency]], args: argparse.Namespace
) -> list[str]:
    rows = []
    for outcomes in runs.values():
        o = median_by(outcomes, lambda r: r.pct(0.5))
        rows.append([
            o.framework, o.sockets, len(o.latencies), o.pct(0.5), o.pct(0.99), o.rate,
            o.per_task_ms(o.server_cpu), o.per_task_ms(o.worker_cpu), o.per_task_ms(o.redis_cpu),
        ])  # fmt: skip
    ratios = []
    for n in args.socket_counts:
        rt, ch = runs.get(("rtframe", n)), runs.get(("channels", n))
        if rt and ch:
            pairs = list(zip(rt, ch, strict=True))
            ratios.append([
                n,
                spread([a.pct(0.5) / b.pct(0.5) for a, b in pairs]),
                spread([a.pct(0.99) / b.pct(0.99) for a, b in pairs]),
            ])  # fmt: skip
    text = [
        "Latency: a socket's start frame → the task's progress frame at that socket; one "
        "uvicorn, one worker; each socket starts its next task once the last one ended",
        "",
        table(LATENCY_COLUMNS, rows),
    ]
    return [*text, "", table(LATENCY_RATIOS, ratios)] if ratios else text


def report(
    throughput: dict[tuple[str, int], list[Throughput]],
    latency: dict[tuple[str, int], list[Latency]],
    args: argparse.Namespace,
) -> str:
    text: list[str] = []
    if throughput:
        text += [*throughput_report(throughput, args), ""]
    if latency:
        text += [*latency_report(latency, args), ""]
    text.append(NOTE)
    errors = [f"{o.framework} {o.workers} worker(s): {e}"
              for outcomes in throughput.values() for o in outcomes for e in o.errors]  # fmt: skip
    errors += [f"{o.framework} {o.sockets} socket(s): {e}"
               for outcomes in latency.values() for o in outcomes for e in o.errors]  # fmt: skip
    notes = [f"{o.framework} {o.workers} worker(s), run {i + 1}: {n}"
             for outcomes in throughput.values() for i, o in enumerate(outcomes) for n in o.notes]  # fmt: skip
    if notes:
        text += ["", "Notes:", *notes]
    if errors:
        text += ["", "Errors:", *errors[:50]]
    return "\n".join(text)


def machine() -> str:
    load = os.getloadavg()
    names = ("taskiq", "taskiq-redis", "channels", "channels_redis", "Django", "redis", "uvicorn")
    return (
        f"{platform.node()}: nproc={os.cpu_count()}, Python {platform.python_version()}, "
        + ", ".join(f"{n} {version(n)}" for n in names)
        + f"; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )


def each(
    frameworks: Sequence[str], values: Sequence[int], repeat: int, what: str,
    run: Callable[[str, int], Any],
) -> dict[tuple[str, int], list[Any]]:  # fmt: skip
    """`run(framework, value)` `repeat` times, frameworks interleaved (load drift is shared)."""
    results: dict[tuple[str, int], list[Any]] = {(f, v): [] for v in values for f in frameworks}
    for r in range(repeat):
        for v in values:
            for f in frameworks:
                outcome = run(f, v)
                results[(f, v)].append(outcome)
                print(f"  [{r + 1}/{repeat}] {what}: {f}, {v}: {outcome.summary()}",
                      file=sys.stderr, flush=True)  # fmt: skip
    return results


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--frameworks", default=",".join(FRAMEWORKS))
    p.add_argument("--tasks", type=int, default=2000, help="tasks per throughput case")
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    p.add_argument("--inflight", type=int, default=50, help="enqueues at a time")
    p.add_argument("--concurrency", type=int, default=10, help="rtframe worker --concurrency")
    p.add_argument("--samples", type=int, default=300, help="latency samples per case")
    p.add_argument("--sockets", default="1,10", help="comma-separated concurrent sockets")
    p.add_argument("--repeat", type=int, default=1, help="runs per case; the median is shown")
    p.add_argument("--skip", choices=("throughput", "latency"), help="leave one part out")
    p.add_argument("--quick", action="store_true", help="500 tasks, 100 samples (~30 s)")
    args = p.parse_args(argv)
    if args.quick:
        args.tasks, args.samples = min(args.tasks, 500), min(args.samples, 100)
    frameworks = [f for f in args.frameworks.split(",") if f]
    unknown = sorted(set(frameworks) - set(FRAMEWORKS))
    if unknown:
        raise SystemExit(f"unknown framework(s) {', '.join(unknown)}: {', '.join(FRAMEWORKS)}")
    args.worker_counts = [int(n) for n in args.workers.split(",")]
    args.socket_counts = [int(n) for n in args.sockets.split(",")]
    print(machine(), file=sys.stderr)
    throughput: dict[tuple[str, int], list[Throughput]] = {}
    latency: dict[tuple[str, int], list[Latency]] = {}
    if args.skip != "throughput":
        throughput = each(
            frameworks, args.worker_counts, args.repeat, "throughput",
            lambda f, n: throughput_case(f, n, args),
        )  # fmt: skip
    if args.skip != "latency":
        for r in range(args.repeat):
            for f in frameworks:
                for outcome in latency_cases(f, args):
                    latency.setdefault((f, outcome.sockets), []).append(outcome)
                    print(f"  [{r + 1}/{args.repeat}] latency: {f}, {outcome.sockets} "
                          f"socket(s): {outcome.summary()}", file=sys.stderr, flush=True)  # fmt: skip
    text = report(throughput, latency, args)
    print(text, flush=True)
    return text


if __name__ == "__main__":
    main()
