"""Run every benchmark (in-process cost, echo, fan-out, idle memory) and print the tables.

    python -m benchmarks.run_all            # full run, about 5 minutes on 2 cores
    python -m benchmarks.run_all --quick    # short windows, 1000 idle connections (~2 min)
    python -m benchmarks.run_all --repeat 5 --out /tmp/results.md   # as in RESULTS.md

Each script also runs alone (`python -m benchmarks.echo --help`).
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import echo, fanout, idle, inprocess
from benchmarks._common import IMPLS, machine


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--quick", action="store_true", help="short runs for a smoke check")
    p.add_argument("--repeat", type=int, default=1, help="runs per case; medians are shown")
    p.add_argument(
        "--idle-repeat", type=int, default=1, help="runs of the idle-memory case (it is stable)"
    )
    p.add_argument("--ws", default=",".join(IMPLS), help="uvicorn --ws implementations")
    p.add_argument("--out", type=Path, help="also write the tables to this Markdown file")
    args = p.parse_args(argv)
    common = ["--ws", args.ws, "--repeat", str(args.repeat), *(["--quick"] if args.quick else [])]
    started = datetime.datetime.now(datetime.UTC)
    header = [
        f"# rtframe benchmarks, {started:%Y-%m-%d %H:%M} UTC",
        "",
        f"Command: `python -m benchmarks.run_all {' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        f"Machine: {machine()}",
        "",
    ]
    print("\n".join(header), flush=True)
    sections = []
    cases = (("in-process", inprocess), ("echo", echo), ("fan-out", fanout), ("idle", idle))
    for name, module in cases:
        print(f"running {name}...", file=sys.stderr, flush=True)
        argv_ = common if module is not idle else [*common, "--repeat", str(args.idle_repeat)]
        sections.append(module.main(argv_))
        print(flush=True)
    if args.out:
        args.out.write_text("\n".join(header) + "\n" + "\n\n".join(sections) + "\n")


if __name__ == "__main__":
    main()
