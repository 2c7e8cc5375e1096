"""Running cases in fresh servers with warm load-generator processes, and summarising."""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import psutil

from ._common import percentile, table
from ._loadgen import Report


def _noop(_: int) -> int:
    return os.getpid()


@contextlib.contextmanager
def generators(count: int) -> Iterator[ProcessPoolExecutor]:
    """`count` spawned load-generator processes, started before any measurement."""
    pool = ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("spawn"))
    try:
        list(pool.map(_noop, range(count * 4)))  # make sure every worker is up
        yield pool
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


class OtherLoad:
    """CPU used by processes outside this benchmark's tree, in cores, between two marks."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    def _ours(self) -> float:
        total = 0.0
        procs = [psutil.Process(), *psutil.Process().children(recursive=True)]
        with contextlib.suppress(psutil.Error):
            procs.append(psutil.Process(self.server_pid))
        for proc in {p.pid: p for p in procs}.values():
            with contextlib.suppress(psutil.Error):
                t = proc.cpu_times()
                total += t.user + t.system + t.children_user + t.children_system
        return total

    def _busy(self) -> float:
        t = psutil.cpu_times()
        return float(t.user + t.system + t.nice + getattr(t, "irq", 0) + getattr(t, "softirq", 0))

    def mark(self) -> None:
        self.t, self.busy, self.ours = time.monotonic(), self._busy(), self._ours()

    def since_mark(self) -> float:
        dt = time.monotonic() - self.t
        other = (self._busy() - self.busy) - (self._ours() - self.ours)
        return max(0.0, other / dt) if dt > 0 else 0.0


def sleep_until(wall: float) -> None:
    delay = wall - time.time()
    if delay > 0:
        time.sleep(delay)


@dataclass
class Outcome:
    """One measured case: a (server, implementation) pair, merged over its generators."""

    app: str
    impl: str
    rate: float  # round trips or deliveries per second
    p50_ms: float
    p99_ms: float
    server_ms_per_1k: float
    server_user_ms_per_1k: float  # user-mode only: the Python code, without the kernel's share
    server_cores: float
    generator_cores: float
    other_cores: float
    errors: list[str] = field(default_factory=list)


def merge(app: str, impl: str, reports: Sequence[Report], other: float) -> Outcome:
    count = sum(r.count for r in reports)
    window = reports[0].window or float("nan")
    lat = sorted(x for r in reports for x in r.latencies)
    server_cpu = next((r.server_cpu for r in reports if r.server_cpu is not None), float("nan"))
    user = next((r.server_user for r in reports if r.server_user is not None), float("nan"))
    return Outcome(
        app=app,
        impl=impl,
        rate=count / window if count else 0.0,
        p50_ms=percentile(lat, 0.50) * 1000,
        p99_ms=percentile(lat, 0.99) * 1000,
        server_ms_per_1k=server_cpu * 1000 / (count / 1000) if count else float("nan"),
        server_user_ms_per_1k=user * 1000 / (count / 1000) if count else float("nan"),
        server_cores=server_cpu / window,
        generator_cores=sum(r.own_cpu for r in reports) / window,
        other_cores=other,
        errors=[e for r in reports for e in r.errors],
    )


def median_outcomes(runs: Sequence[Outcome]) -> Outcome:
    """The run with the median rate (so its latencies and CPU belong to the same run)."""
    ordered = sorted(runs, key=lambda o: o.rate)
    return ordered[(len(ordered) - 1) // 2]


def ratio_rows(runs: dict[tuple[str, str], list[Outcome]]) -> list[list[Any]]:
    """Ratios against the bare app, paired run by run.

    Run i of every server of one `--ws` implementation happened back to back, so the
    ratio of run i to the bare app's run i shares its machine load; the median over runs
    (and the lowest and highest) is what the table shows.
    """
    rows: list[list[Any]] = []
    for (app, impl), outcomes in runs.items():
        base = runs.get(("bare", impl))
        if app == "bare" or not base:
            continue
        rate = [o.rate / b.rate for o, b in zip(outcomes, base, strict=True) if b.rate]
        cpu = [
            o.server_ms_per_1k / b.server_ms_per_1k
            for o, b in zip(outcomes, base, strict=True)
            if b.server_ms_per_1k
        ]
        user = [
            o.server_user_ms_per_1k / b.server_user_ms_per_1k
            for o, b in zip(outcomes, base, strict=True)
            if b.server_user_ms_per_1k
        ]
        rows.append(
            [impl, f"{app}/bare", _median_range(rate), _median_range(cpu), _median_range(user)]
        )
    return rows


def _median_range(values: Sequence[float]) -> str:
    if not values:
        return "-"
    mid = statistics.median(values)
    if len(values) == 1:
        return f"{mid:.2f}"
    return f"{mid:.2f} ({min(values):.2f}-{max(values):.2f})"


def for_each_case(
    apps: Sequence[str], impls: Sequence[str], repeat: int, run: Callable[[str, str], Outcome]
) -> dict[tuple[str, str], list[Outcome]]:
    """Run every case `repeat` times, interleaving apps so drift in machine load is shared."""
    results: dict[tuple[str, str], list[Outcome]] = {
        (app, impl): [] for impl in impls for app in apps
    }
    for r in range(repeat):
        for impl in impls:
            for app in apps:
                outcome = run(app, impl)
                results[(app, impl)].append(outcome)
                note = f" ERRORS: {outcome.errors}" if outcome.errors else ""
                print(
                    f"  [{r + 1}/{repeat}] {impl:17} {app:8} {outcome.rate:10,.0f}/s "
                    f"p50 {outcome.p50_ms:7.2f} ms  p99 {outcome.p99_ms:7.2f} ms  "
                    f"server {outcome.server_ms_per_1k:6.1f} ms/1k (user {outcome.server_user_ms_per_1k:5.1f})  "
                    f"gen {outcome.generator_cores:.2f} cores  other {outcome.other_cores:.2f}{note}",
                    file=sys.stderr,
                    flush=True,
                )
    return results


def medians(runs: dict[tuple[str, str], list[Outcome]]) -> list[Outcome]:
    return [median_outcomes(outcomes) for outcomes in runs.values()]


def throughput_report(
    title: str, rate: str, plural: str, singular: str, runs: dict[tuple[str, str], list[Outcome]]
) -> str:
    """The table of medians, the paired ratios and any errors of an echo or fan-out run."""
    outcomes = medians(runs)
    rows = [
        [o.impl, o.app, o.rate, o.p50_ms, o.p99_ms, o.server_ms_per_1k, o.server_user_ms_per_1k, o.server_cores,
         o.generator_cores, o.other_cores]
        for o in outcomes
    ]  # fmt: skip
    out = [
        title,
        "",
        table(
            ["--ws", "server", rate, "p50 ms", "p99 ms", f"server CPU ms/1k {plural}",
             "of which user", "server cores", "generator cores", "other load (cores)"],
            rows,
        ),
        "",
        "Ratios pair run i of each server with run i of the bare app (they ran back to back):",
        "median over the runs, lowest-highest in brackets.",
        "",
        table(
            ["--ws", "ratio", rate, f"server CPU per {singular}", f"user CPU per {singular}"],
            ratio_rows(runs),
        ),
    ]  # fmt: skip
    errors = [f"{o.impl}/{o.app}: {e}" for o in outcomes for e in o.errors]
    if errors:
        out += ["", "Errors:", *errors]
    return "\n".join(out)
