"""Echo benchmark: 50 clients, each sends a JSON frame, waits for the echo, repeats.

    python -m benchmarks.echo [--quick] [--apps bare,rtframe,channels] [--ws websockets-sansio]
        [--servers uvicorn,hypercorn,daphne,granian]

Each server validates every frame with one Pydantic model and sends it back.
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
from benchmarks._loadgen import echo_worker
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


def run(args: argparse.Namespace) -> dict[tuple[str, str], list[Outcome]]:
    raise_fd_limit()
    apps, impls = args.apps.split(","), cases(args)
    split = [
        args.clients // args.procs + (i < args.clients % args.procs) for i in range(args.procs)
    ]
    with generators(args.procs) as pool:

        def case(app: str, impl: str) -> Outcome:
            kind, ws = case_server(impl)
            with serve(app, "echo", ws, kind) as server:
                start_at = time.time() + 1.0 + args.warmup
                end_at = start_at + args.duration
                futures = [
                    pool.submit(echo_worker, server.port, n, sum(split[:i]), start_at, end_at,
                                server.proc.pid if i == 0 else None, args.client)
                    for i, n in enumerate(split)
                ]  # fmt: skip
                other = OtherLoad(server.proc.pid)
                sleep_until(start_at)
                other.mark()
                sleep_until(end_at)
                load = other.since_mark()
                reports = [f.result(timeout=args.duration + 120) for f in futures]
                return merge(app, impl, reports, load)

        return for_each_case(apps, impls, args.repeat, case)


def report(runs: dict[tuple[str, str], list[Outcome]], args: argparse.Namespace) -> str:
    text = throughput_report(
        (
            f"## Echo: {args.clients} clients, {args.duration:g} s window after {args.warmup:g} s "
            f"warm-up, {args.procs} generator process(es), client={args.client}, "
            f"median of {args.repeat}"
        ),
        "round trips/s",
        "msgs",
        "msg",
        runs,
    )
    if args.servers == "uvicorn":
        return text
    medians = {case: median_outcomes(outcomes) for case, outcomes in runs.items()}
    return text + "\n\n" + server_columns(medians, cases(args), "round trips/s", "msgs")


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__, "short runs (1 s warm-up, 3 s window)")
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--procs", type=int, default=1, help="load-generator processes")
    p.add_argument("--client", choices=("raw", "websockets"), default="raw",
                   help="raw: the lean protocol client; websockets: the websockets library")  # fmt: skip
    add_server_arguments(p)
    add_window_arguments(p)
    return p


def _quick(args: argparse.Namespace) -> None:
    args.warmup, args.duration = 1.0, 3.0


def main(argv: list[str] | None = None) -> str:
    return run_cli(parser(), argv, _quick, lambda args: report(run(args), args))


if __name__ == "__main__":
    main()
