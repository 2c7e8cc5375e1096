"""Broadcasts over RedisLayer with history on and off: throughput, round trips, CPU.

    python -m benchmarks.history_redis [--quick] [--repeat N] [--parts fanout,publish]
                                       [--members 100,1000] [--concurrency 1,10,100]

Two parts, each case on a private redis-server on a free loopback port:

- **fanout**: what an app sees. `fanout_redis.py`'s set-up and measurement (two uvicorn
  processes, members split evenly, one publisher that sends the next frame once every
  member got the previous one) on `_history_redis_app`, whose group keeps history
  (`HistoryPolicy(size=300, ttl=120)`: one EVALSHA per broadcast, and a `$pos` stamped
  into every frame) or not (one PUBLISH).
- **publish**: the layer alone, the worst case for history (no fan-out to amortize the
  script over). One publishing RedisLayer and one subscribed RedisLayer (another
  "process", in this one, so every frame crosses Redis and is unpacked);
  `concurrency` coroutines each awaiting its broadcasts one after another. Off:
  `layer.publish(channel, frame)`; on: `layer.publish(channel, frame, policy)`.
  Columns: broadcasts acknowledged per second; Redis round trips per broadcast (the
  publisher's pipelined batches, `layer.stats.batches`); latency of one publish;
  CPU per 1,000 broadcasts of redis-server and of this process (publisher and
  subscriber together). The subscriber must receive every broadcast, with consecutive
  offsets when history is on, or the case is reported as an error.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psutil
import uvloop

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import fanout_redis
from benchmarks.fanout_redis import HOST, ROOT, cpu, free_port, redis_server, table, wait_listening
from rtframe.layers.base import HistoryPolicy, Position
from rtframe.layers.redis import RedisLayer

POLICY = HistoryPolicy(size=300, ttl=120)


class Counter:
    """The subscriber's receiver: counts frames, checks offsets follow each other."""

    def __init__(self) -> None:
        self.frames = 0
        self.last = 0
        self.gaps = 0

    def deliver_group(
        self, channel: str, data: str | bytes, position: Position | None = None
    ) -> None:
        self.frames += 1
        if position is not None:
            if position.offset != self.last + 1:
                self.gaps += 1
            self.last = position.offset

    def deliver_direct(self, member_id: str, data: str | bytes) -> bool:
        return False


@dataclass
class Outcome:
    history: bool
    concurrency: int
    broadcasts: int = 0
    window: float = 0.0
    batches: int = 0
    latencies: list[float] = field(default_factory=list)
    redis_cpu: float = 0.0
    own_cpu: float = 0.0
    errors: list[str] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.broadcasts / self.window if self.window else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        s = sorted(self.latencies)
        return s[min(len(s) - 1, round(q * (len(s) - 1)))] * 1e6

    def per_1k(self, seconds: float) -> float:
        return seconds * 1e6 / self.broadcasts if self.broadcasts else float("nan")


async def measure(
    url: str, redis: psutil.Process, history: bool, concurrency: int, args: argparse.Namespace
) -> Outcome:
    out = Outcome(history, concurrency)
    prefix = f"bench{os.getpid()}"
    channel = f"room.{'on' if history else 'off'}.{concurrency}"
    policy = POLICY if history else None
    frame = '{"type":"news","text":"' + "x" * max(0, args.frame_bytes - 26) + '"}'
    pub, sub = RedisLayer(url, prefix=prefix), RedisLayer(url, prefix=prefix)
    counter = Counter()
    pub.bind(Counter())
    sub.bind(counter)
    await pub.start()
    await sub.start()
    await sub.subscribe(channel)
    perf = time.perf_counter
    me = psutil.Process()
    state = {"measure": False, "stop": False}
    counts = [0] * concurrency

    async def publisher(i: int) -> None:
        latencies = out.latencies
        while not state["stop"]:
            t = perf()
            await pub.publish(channel, frame, policy)
            if state["measure"]:
                latencies.append(perf() - t)
                counts[i] += 1

    tasks = [asyncio.ensure_future(publisher(i)) for i in range(concurrency)]
    await asyncio.sleep(args.warmup)
    batches0 = pub.stats.batches
    t0, red0, own0 = perf(), cpu([redis]), cpu([me])
    state["measure"] = True
    await asyncio.sleep(args.duration)
    state["measure"] = False
    out.window = perf() - t0
    out.redis_cpu, out.own_cpu = cpu([redis]) - red0, cpu([me]) - own0
    out.batches = pub.stats.batches - batches0
    out.broadcasts = sum(counts)
    state["stop"] = True
    await asyncio.gather(*tasks)
    total = pub.stats.published
    deadline = perf() + 10
    while counter.frames < total and perf() < deadline:  # noqa: ASYNC110 - a bounded poll
        await asyncio.sleep(0.01)
    if counter.frames != total:
        out.errors.append(f"the subscriber got {counter.frames} of {total} broadcasts")
    if history and (counter.gaps or counter.last != total):
        out.errors.append(f"offsets: {counter.gaps} gaps, last {counter.last} of {total}")
    await pub.stop()
    await sub.stop()
    return out


async def run_case(history: bool, concurrency: int, args: argparse.Namespace) -> Outcome:
    with redis_server() as (url, redis):
        return await measure(url, redis, history, concurrency, args)


# -- fan-out through two uvicorn processes -----------------------------------------------


@contextlib.contextmanager
def uvicorn(history: bool, redis_url: str) -> Iterator[tuple[int, psutil.Process]]:
    port = free_port()
    cmd = [
        sys.executable, "-m", "uvicorn", "benchmarks._history_redis_app:app",
        "--host", HOST, "--port", str(port), "--loop", "uvloop", "--http", "httptools",
        "--ws", "websockets-sansio", "--log-level", "warning", "--no-access-log",
        "--backlog", "4096",
    ]  # fmt: skip
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
        "BENCH_HISTORY": "1" if history else "0",
        "BENCH_REDIS_URL": redis_url,
    }
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=log)
        try:
            try:
                wait_listening(port, proc, "uvicorn")
            except RuntimeError:
                log.seek(0)
                raise RuntimeError(log.read().decode()[-2000:]) from None
            yield port, psutil.Process(proc.pid)
        finally:
            log.seek(0)
            errors = log.read().decode()
            if "Traceback" in errors or "ERROR" in errors:
                print(f"uvicorn logged errors:\n{errors[-3000:]}", file=sys.stderr)
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def fanout_case(history: bool, members: int, args: argparse.Namespace) -> fanout_redis.Outcome:
    label = "history on" if history else "history off"
    with redis_server() as (url, redis), uvicorn(history, url) as a, uvicorn(history, url) as b:
        return uvloop.run(
            fanout_redis.measure(
                label, members, (a[0], b[0]), [a[1], b[1]], redis, args.warmup, args.duration
            )
        )


FANOUT_COLUMNS = ["members", "history", "deliveries/s", "p50 ms", "p99 ms",
                  "server CPU ms/1k deliveries", "Redis CPU ms/1k deliveries"]  # fmt: skip
FANOUT_RATIOS = ["members", "pairs", "deliveries/s on/off (x)", "p99 on/off (x)",
                 "server CPU on/off (x)"]  # fmt: skip
COLUMNS = ["concurrency", "history", "broadcasts/s", "round trips/broadcast", "p50 µs",
           "p99 µs", "Redis CPU ms/1k", "process CPU ms/1k"]  # fmt: skip
RATIO_COLUMNS = ["concurrency", "pairs", "broadcasts/s on/off (x)", "Redis CPU on/off (x)",
                 "process CPU on/off (x)"]  # fmt: skip

#: runs by (group size or concurrency, history on): run i of "on" is paired with run i of "off"
Runs = dict[tuple[int, bool], list[Any]]


def median_run(runs: list[Any]) -> Any:
    """The run of median throughput (what the table shows for a case)."""
    return sorted(runs, key=lambda o: o.rate)[len(runs) // 2]


def ratio(values: list[float]) -> str:
    """The median of the pairs' ratios, with their range when there are several."""
    values = sorted(v for v in values if v == v)  # NaN-free
    if not values:
        return "-"
    median = values[len(values) // 2]
    return f"{median:.2f}" + (f" ({values[0]:.2f}-{values[-1]:.2f})" if len(values) > 1 else "")


def ratio_rows(runs: Runs, measures: list[Any]) -> list[list[Any]]:
    rows = []
    for size in sorted({size for size, _ in runs}):
        pairs = list(zip(runs.get((size, False), []), runs.get((size, True), []), strict=False))
        if pairs:
            rows.append([size, len(pairs), *(ratio([m(on, off) for off, on in pairs])
                                             for m in measures)])  # fmt: skip
    return rows


def fanout_report(runs: Runs) -> list[str]:
    rows = []
    for (members, history), outcomes in sorted(runs.items()):
        o = median_run(outcomes)
        rows.append([members, "on" if history else "off", o.rate, o.pct(0.5), o.pct(0.99),
                     o.per_1k(o.server_cpu), o.per_1k(o.redis_cpu)])  # fmt: skip
    ratios = ratio_rows(runs, [
        lambda on, off: on.rate / off.rate if off.rate else float("nan"),
        lambda on, off: on.pct(0.99) / off.pct(0.99),
        lambda on, off: on.per_1k(on.server_cpu) / off.per_1k(off.server_cpu),
    ])  # fmt: skip
    text = ["Fan-out: 2 uvicorn processes, members split evenly, one publisher, "
            "HistoryPolicy(size=300) on or off (median run per case)", "",
            table(FANOUT_COLUMNS, rows), "", table(FANOUT_RATIOS, ratios)]  # fmt: skip
    errors = [f"{o.members} {o.server}: {e}" for rs in runs.values() for o in rs for e in o.errors]
    return text + (["", "Errors:", *errors] if errors else [])


def report(runs: Runs, args: argparse.Namespace) -> list[str]:
    rows: list[list[Any]] = []
    for (concurrency, history), outcomes in sorted(runs.items()):
        o = median_run(outcomes)
        rows.append([concurrency, "on" if history else "off", o.rate,
                     o.batches / o.broadcasts if o.broadcasts else float("nan"), o.pct(0.5),
                     o.pct(0.99), o.per_1k(o.redis_cpu), o.per_1k(o.own_cpu)])  # fmt: skip
    ratios = ratio_rows(runs, [
        lambda on, off: on.rate / off.rate if off.rate else float("nan"),
        lambda on, off: on.per_1k(on.redis_cpu) / off.per_1k(off.redis_cpu),
        lambda on, off: on.per_1k(on.own_cpu) / off.per_1k(off.own_cpu),
    ])  # fmt: skip
    text = [
        f"Publish only: RedisLayer broadcasts, history off vs on (size={POLICY.size}); "
        f"{args.frame_bytes}-byte frames, one subscribed layer (median run per case)",
        "",
        table(COLUMNS, rows),
        "",
        table(RATIO_COLUMNS, ratios),
    ]
    errors = [f"{o.concurrency} {'on' if o.history else 'off'}: {e}"
              for rs in runs.values() for o in rs for e in o.errors]  # fmt: skip
    if errors:
        text += ["", "Errors:", *errors]
    return text


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--parts", default="fanout,publish", help="fanout, publish or both")
    p.add_argument("--members", default="100,1000", help="fanout: comma-separated group sizes")
    p.add_argument("--concurrency", default="1,10,100", help="publish: publisher counts")
    p.add_argument("--frame-bytes", type=int, default=100)
    p.add_argument("--warmup", type=float, default=1.5)
    p.add_argument("--duration", type=float, default=4.0, help="measured seconds per case")
    p.add_argument("--repeat", type=int, default=1, help="off/on pairs per case (medians)")
    p.add_argument("--quick", action="store_true", help="1 s warm-up, 2 s window")
    args = p.parse_args(argv)
    if args.quick:
        args.warmup, args.duration = 1.0, 2.0
    parts = args.parts.split(",")
    load = os.getloadavg()
    print(
        f"{platform.node()}: nproc={os.cpu_count()}, Python {platform.python_version()}, "
        f"redis-py {version('redis')}, hiredis {version('hiredis')}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}",
        file=sys.stderr,
    )
    text = [f"{args.warmup:g} s warm-up, {args.duration:g} s window per case", ""]
    if "fanout" in parts:
        fanouts: Runs = {}
        for members in (int(m) for m in args.members.split(",")):
            for i in range(args.repeat):
                for history in (False, True):  # pairs: both halves see the same conditions
                    print(f"  fan-out to {members} members, history {'on' if history else 'off'}"
                          f", run {i + 1}...", file=sys.stderr, flush=True)  # fmt: skip
                    run = fanout_case(history, members, args)
                    fanouts.setdefault((members, history), []).append(run)
        text += [*fanout_report(fanouts), ""]
    if "publish" in parts:
        outcomes: Runs = {}
        for concurrency in (int(c) for c in args.concurrency.split(",")):
            for i in range(args.repeat):
                for history in (False, True):
                    print(f"  {concurrency} publishers, history {'on' if history else 'off'}, "
                          f"run {i + 1}...", file=sys.stderr, flush=True)  # fmt: skip
                    published = uvloop.run(run_case(history, concurrency, args))
                    outcomes.setdefault((concurrency, history), []).append(published)
        text += report(outcomes, args)
    print("\n".join(text), flush=True)
    return "\n".join(text)


if __name__ == "__main__":
    main()
