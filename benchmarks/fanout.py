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

from benchmarks._common import add_window_arguments, base_parser, raise_fd_limit, run_cli, serve
from benchmarks._loadgen import fanout_worker
from benchmarks._runner import (
    OtherLoad,
    Outcome,
    for_each_case,
    generators,
    merge,
    sleep_until,
    throughput_report,
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
    return throughput_report(
        (
            f"## Fan-out: 1 publisher, {args.members} members, {args.duration:g} s window after "
            f"{args.warmup:g} s warm-up, median of {args.repeat}"
        ),
        "deliveries/s",
        "deliveries",
        "delivery",
        runs,
    )


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__, "short runs (1 s warm-up, 3 s window)")
    p.add_argument("--members", type=int, default=1000)
    add_window_arguments(p)
    return p


def _quick(args: argparse.Namespace) -> None:
    args.warmup, args.duration = 1.0, 3.0


def main(argv: list[str] | None = None) -> str:
    return run_cli(parser(), argv, _quick, lambda args: report(run(args), args))


if __name__ == "__main__":
    main()
