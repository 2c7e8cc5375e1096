"""Idle-memory benchmark: server RSS growth per open, idle WebSocket connection.

    python -m benchmarks.idle [--quick] [--connections 5000] [--apps bare,rtframe,channels]

Each server is the echo app of `benchmarks.echo`. After a warm-up (50 connections that
each echo one frame and close), the script records the server's RSS, opens the idle
connections (100 handshakes at a time), waits for the server to settle and records RSS
again: (after - before) / connections.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import statistics
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop

from benchmarks._client import connect_many
from benchmarks._common import HOST, Server, base_parser, raise_fd_limit, run_cli, serve, table
from benchmarks._loadgen import echo_frame

Row = tuple[str, str, float, float, float]  # impl, app, KiB/conn, RSS before, RSS after (MiB)


def _answer(fut: asyncio.Future[bytes], payload: bytes) -> None:
    if not fut.done():
        fut.set_result(payload)


async def _measure(server: Server, connections: int, settle: float) -> tuple[int, int]:
    warm = await connect_many(HOST, server.port, "/echo", 50)
    answered = [asyncio.get_running_loop().create_future() for _ in warm]
    for conn, fut in zip(warm, answered, strict=True):
        conn.on_frame = functools.partial(_answer, fut)
        conn.send_text(echo_frame(1))
    await asyncio.wait_for(asyncio.gather(*answered), 20)
    for conn in warm:
        conn.close()
    await asyncio.sleep(settle)
    before = server.rss()
    idle = await connect_many(HOST, server.port, "/echo", connections)
    await asyncio.sleep(settle)
    after = server.rss()
    if sum(1 for c in idle if not c.closed.done()) != connections:
        raise RuntimeError("some idle connections were closed by the server")
    for conn in idle:
        conn.close()
    await asyncio.sleep(0.5)
    return before, after


def run(args: argparse.Namespace) -> list[Row]:
    limit = raise_fd_limit(args.connections * 2 + 1000)
    if limit < args.connections + 200:
        raise SystemExit(f"open-files limit {limit} is too low for {args.connections} connections")
    runs: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for r in range(args.repeat):
        for impl in args.ws.split(","):
            for app in args.apps.split(","):
                with serve(app, "echo", impl) as server:
                    gc.collect()
                    before, after = uvloop.run(_measure(server, args.connections, args.settle))
                runs.setdefault((impl, app), []).append((before, after))
                per = (after - before) / args.connections / 1024
                print(f"  [{r + 1}/{args.repeat}] {impl:17} {app:8} {per:6.1f} KiB/conn "
                      f"(RSS {before / 2**20:.1f} -> {after / 2**20:.1f} MiB)", file=sys.stderr, flush=True)  # fmt: skip
    rows: list[Row] = []
    for (impl, app), samples in runs.items():
        per = [(a - b) / args.connections / 1024 for b, a in samples]
        mid = statistics.median(per)
        b, a = samples[min(range(len(per)), key=lambda i: abs(per[i] - mid))]
        rows.append((impl, app, mid, b / 2**20, a / 2**20))
    return rows


def report(rows: list[Row], args: argparse.Namespace) -> str:
    base = {impl: per for impl, app, per, _, _ in rows if app == "bare"}
    table_rows = [
        [impl, app, per, per - base[impl] if impl in base else float("nan"), before, after]
        for impl, app, per, before, after in rows
    ]
    return "\n".join([
        f"## Idle memory: {args.connections} idle connections, median of {args.repeat}",
        "",
        table(["--ws", "server", "KiB per connection", "KiB over bare", "RSS before (MiB)",
               "RSS after (MiB)"], table_rows),
    ])  # fmt: skip


def parser() -> argparse.ArgumentParser:
    p = base_parser(__doc__, "1000 connections, 1 s settle")
    p.add_argument("--connections", type=int, default=5000)
    p.add_argument("--settle", type=float, default=2.0, help="seconds to wait before reading RSS")
    return p


def _quick(args: argparse.Namespace) -> None:
    args.connections, args.settle = 1000, 1.0


def main(argv: list[str] | None = None) -> str:
    return run_cli(parser(), argv, _quick, lambda args: report(run(args), args))


if __name__ == "__main__":
    main()
