"""In-process framework cost: the apps driven without a server or a socket.

    python -m benchmarks.inprocess [--quick]

The network benchmarks measure whole servers, and on a shared 2-core machine their
numbers move with everything else that runs. This one isolates what a framework adds per
message: each app is called directly with ASGI `receive`/`send` callables shaped like
uvicorn's (a `send` coroutine that completes without suspending, a `receive` that waits on
an asyncio.Queue fed one frame per loop turn), in one process, under uvloop.

- echo: one connection, N frames; microseconds per frame.
- fan-out: 1000 members, one publish at a time; microseconds per delivery. The bare loop
  awaits each member's `send`; rtframe goes through `InMemoryLayer.fan_out` and
  `Connection.deliver` (the in-place send step of every member's outbox).

Each case is measured several times, alternating the apps; the table shows the fastest
run (the least disturbed by other processes) and the median.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop

from benchmarks._common import table
from benchmarks.apps import bare, rt

FRAME = json.dumps({"type": "echo", "seq": 1, "text": "hello, realtime world"})
NEWS = json.dumps({"type": "news", "seq": 1, "text": "breaking news"})


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "websocket",
        "path": path,
        "query_string": b"",
        "headers": [],
        "client": ("127.0.0.1", 1),
    }


class FakeSocket:
    """ASGI receive/send for one connection, shaped like uvicorn's."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.writable = asyncio.Event()
        self.writable.set()
        self.sent = 0
        self.on_send: Callable[[], None] = lambda: None
        self.queue.put_nowait({"type": "websocket.connect"})

    async def receive(self) -> dict[str, Any]:
        return await self.queue.get()

    async def send(self, message: dict[str, Any]) -> None:
        await self.writable.wait()  # what uvicorn's send does first
        self.sent += 1
        self.on_send()


async def echo_case(app: Any, frames: int) -> float:
    """Microseconds per echoed frame over one connection."""
    loop = asyncio.get_running_loop()
    sock = FakeSocket()
    message = {"type": "websocket.receive", "text": FRAME}

    def next_frame() -> None:
        if sock.sent > frames:  # the accept plus `frames` echoes
            loop.call_soon(sock.queue.put_nowait, {"type": "websocket.disconnect", "code": 1000})
        else:
            loop.call_soon(sock.queue.put_nowait, message)

    sock.on_send = next_frame
    started = time.perf_counter()
    await app(_scope("/echo"), sock.receive, sock.send)
    return (time.perf_counter() - started) / frames * 1e6


async def fanout_case(app: Any, members: int, publishes: int) -> float:
    """Microseconds per delivery, one publish after the other to `members` members."""
    subs = [FakeSocket() for _ in range(members)]
    tasks = [asyncio.ensure_future(app(_scope("/sub"), s.receive, s.send)) for s in subs]
    pub = FakeSocket()
    pub_task = asyncio.ensure_future(app(_scope("/pub"), pub.receive, pub.send))
    await asyncio.sleep(0.05)  # every member accepted and registered
    if sum(s.sent for s in subs) != members:
        raise RuntimeError("not every member was accepted")
    frame = {"type": "websocket.receive", "text": NEWS}
    started = time.perf_counter()
    for _ in range(publishes):
        pub.queue.put_nowait(frame)
        await asyncio.sleep(0)  # the publisher's task runs the whole fan-out in this turn
        await asyncio.sleep(0)
    elapsed = time.perf_counter() - started
    delivered = sum(s.sent for s in subs) - members
    if delivered != members * publishes:
        raise RuntimeError(f"{delivered} deliveries, expected {members * publishes}")
    pub.queue.put_nowait({"type": "websocket.disconnect", "code": 1000})
    for s in subs:
        s.queue.put_nowait({"type": "websocket.disconnect", "code": 1000})
    await asyncio.gather(pub_task, *tasks)
    return elapsed / delivered * 1e6


async def measure(rounds: int, frames: int, publishes: int) -> dict[str, list[float]]:
    results: dict[str, list[float]] = {}
    apps = {"bare": (bare.echo, bare.fanout), "rtframe": (rt.echo, rt.fanout)}
    for _ in range(rounds):
        for name, (echo_app, fanout_app) in apps.items():
            results.setdefault(f"echo/{name}", []).append(await echo_case(echo_app, frames))
            results.setdefault(f"fanout/{name}", []).append(
                await fanout_case(fanout_app, 1000, publishes)
            )
    return results


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--frames", type=int, default=100_000, help="echo frames per round")
    p.add_argument("--publishes", type=int, default=100, help="fan-out publishes per round")
    p.add_argument("--quick", action="store_true", help="3 rounds of a third of the work")
    p.add_argument("--repeat", type=int, help=argparse.SUPPRESS)  # accepted from run_all
    p.add_argument("--ws", help=argparse.SUPPRESS)  # no server here: accepted and ignored
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.frames, args.publishes = 3, 30_000, 30
    results = uvloop.run(measure(args.rounds, args.frames, args.publishes))
    rows = []
    for case in ("echo", "fanout"):
        base_best = min(results[f"{case}/bare"])
        base_mid = statistics.median(results[f"{case}/bare"])
        for name in ("bare", "rtframe"):
            runs = results[f"{case}/{name}"]
            best, mid = min(runs), statistics.median(runs)
            rows.append([case, name, best, mid, best - base_best, mid - base_mid, base_best / best])
    unit = "us per frame (echo) or per delivery (fan-out)"
    text = "\n".join(
        [
            f"## In-process framework cost ({args.rounds} rounds; {unit})",
            "",
            table(
                [
                    "case",
                    "app",
                    "fastest",
                    "median",
                    "added (fastest)",
                    "added (median)",
                    "bare/app speed (fastest)",
                ],
                rows,
            ),
        ]
    )
    print(text, flush=True)
    return text


if __name__ == "__main__":
    main()
