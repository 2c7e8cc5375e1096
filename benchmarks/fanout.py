"""Fan-out benchmark: one publisher, a group of 1000 members over real WebSockets.

    python -m benchmarks.fanout [--quick] [--members 1000] [--apps bare,rtframe,channels]

The publisher sends the next message only after every member received the previous one.
bare: a module-level set of `send` callables and a sequential `await send(...)` loop;
rtframe: `@group.broadcast` on the /pub receive handler (in-memory layer);
channels: `channel_layer.group_send` on the InMemoryChannelLayer.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import APPS, IMPLS, machine, raise_fd_limit, serve, table
from benchmarks._loadgen import fanout_worker
from benchmarks._runner import (
    OtherLoad,
    Outcome,
    for_each_case,
    generators,
    medians,
    merge,
    ratio_rows,
    sleep_until,
)


def run(args: argparse.Namespace) -> dict[tuple[str, str], list[Outcome]]:
    raise_fd_limit()
    apps, impls = args.apps.split(","), args.ws.split(",")
    with generators(1) as pool:

        def case(app: str, impl: str) -> Outcome:
            with serve(app, "fanout", impl) as server:
                # connecting 1000 members takes a moment; the warm-up starts after that
                start_at = time.time() + 3.0 + args.warmup
                end_at = start_at + args.duration
                future = pool.submit(fanout_worker, server.port, args.members, start_at, end_at,
                                     server.proc.pid)  # fmt: skip
                other = OtherLoad(server.proc.pid)
                sleep_until(start_at)
                other.mark()
                sleep_until(end_at)
                load = other.since_mark()
                result = future.result(timeout=args.duration + 180)
                return merge(app, impl, [result], load)

        return for_each_case(apps, impls, args.repeat, case)


def report(runs: dict[tuple[str, str], list[Outcome]], args: argparse.Namespace) -> str:
    outcomes = medians(runs)
    rows = [
        [o.impl, o.app, o.rate, o.p50_ms, o.p99_ms, o.server_ms_per_1k, o.server_user_ms_per_1k, o.server_cores,
         o.generator_cores, o.other_cores]
        for o in outcomes
    ]  # fmt: skip
    out = [
        f"## Fan-out: 1 publisher, {args.members} members, {args.duration:g} s window after "
        f"{args.warmup:g} s warm-up, median of {args.repeat}",
        "",
        table(
            [
                "--ws",
                "server",
                "deliveries/s",
                "p50 ms",
                "p99 ms",
                "server CPU ms/1k deliveries",
                "of which user",
                "server cores",
                "generator cores",
                "other load (cores)",
            ],
            rows,
        ),
        "",
        "Ratios pair run i of each server with run i of the bare app (they ran back to back):",
        "median over the runs, lowest-highest in brackets.",
        "",
        table(
            ["--ws", "ratio", "deliveries/s", "server CPU per delivery", "user CPU per delivery"],
            ratio_rows(runs),
        ),
    ]
    errors = [f"{o.impl}/{o.app}: {e}" for o in outcomes for e in o.errors]
    if errors:
        out += ["", "Errors:", *errors]
    return "\n".join(out)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--apps", default=",".join(APPS), help="comma-separated: bare,rtframe,channels")
    p.add_argument("--ws", default=",".join(IMPLS), help="uvicorn --ws implementations")
    p.add_argument("--members", type=int, default=1000)
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--duration", type=float, default=8.0, help="measured seconds per case")
    p.add_argument("--repeat", type=int, default=1, help="runs per case; the median is shown")
    p.add_argument("--quick", action="store_true", help="short runs (1 s warm-up, 3 s window)")
    return p


def main(argv: list[str] | None = None) -> str:
    args = parser().parse_args(argv)
    if args.quick:
        args.warmup, args.duration = 1.0, 3.0
    print(machine(), file=sys.stderr)
    text = report(run(args), args)
    print(text, flush=True)
    return text


if __name__ == "__main__":
    main()
