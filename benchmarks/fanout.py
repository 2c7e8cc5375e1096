"""Fan-out benchmark: one publisher, a group of 1000 members over real WebSockets.

    python -m benchmarks.fanout [--quick] [--members 1000] [--apps bare,rtframe,channels]
        [--servers uvicorn,hypercorn,daphne,granian]

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

from benchmarks._common import (
    add_server_arguments,
    add_window_arguments,
    base_parser,
    case_server,
    cases,
    raise_fd_limit,
    run_cli,
    serve,
    server_columns,
)
from benchmarks._loadgen import fanout_worker
from benchmarks._runner import (
    OtherLoad,
    Outcome,
    for_each_case,
    generators,
    median_outcomes,
    merge,
    sleep_until,
    throughput_report,
)

#: Seconds allowed to connect the members before the warm-up, by server (default 3).
CONNECT_TIME = {"daphne": 10.0}


def run(args: argparse.Namespace) -> dict[tuple[str, str], list[Outcome]]:
    raise_fd_limit()
    apps, impls = args.apps.split(","), cases(args)
    with generators(1) as pool:

        def case(app: str, impl: str) -> Outcome:
            kind, ws = case_server(impl)
            with serve(app, "fanout", ws, kind) as server:
                # connecting 1000 members takes a moment; the warm-up starts after that
                # (daphne's handshakes are the slowest: about 4 s for 1000 on 2 cores)
                start_at = time.time() + CONNECT_TIME.get(kind, 3.0) + args.warmup
                end_at = start_at + args.duration
                future = pool.submit(fanout_worker, server.port, args.members, start_at, end_at,
                                     server.proc.pid)  # fmt: skip
                other = OtherLoad(server.proc.pid)
                sleep_until(start_at)
                other.mark()
                sleep_until(end_at)
                load = other.since_mark()
                result = future.result(timeout=args.duration + 180)
                if result.count == 0 and not result.errors:
                    # the worker reports no error when its window ends before it connected
                    result.errors.append(
                        f"nothing measured: the {args.members} members were not connected "
                        f"before the window ended"
                    )
                return merge(app, impl, [result], load)

        return for_each_case(apps, impls, args.repeat, case)


def report(runs: dict[tuple[str, str], list[Outcome]], args: argparse.Namespace) -> str:
    text = throughput_report(
        (
            f"## Fan-out: 1 publisher, {args.members} members, {args.duration:g} s window after "
            f"{args.warmup:g} s warm-up, median of {args.repeat}"
        ),
        "deliveries/s",
        "deliveries",
        "delivery",
        runs,
    )
    if args.servers == "uvicorn":
        return text
    medians = {case: median_outcomes(outcomes) for case, outcomes in runs.items()}
    return text + "\n\n" + server_columns(medians, cases(args), "deliveries/s", "deliveries")


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__, "short runs (1 s warm-up, 3 s window)")
    p.add_argument("--members", type=int, default=1000)
    add_server_arguments(p)
    add_window_arguments(p)
    return p


def _quick(args: argparse.Namespace) -> None:
    args.warmup, args.duration = 1.0, 3.0


def main(argv: list[str] | None = None) -> str:
    return run_cli(parser(), argv, _quick, lambda args: report(run(args), args))


if __name__ == "__main__":
    main()
