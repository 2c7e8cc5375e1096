"""SSE fan-out against WebSocket fan-out, on the same uvicorn and the same app.

    python -m benchmarks.sse_fanout [--members 1000] [--duration 6] [--repeat 1]

One app (`benchmarks.apps.rt_sse`): members join the group "bench" over a WebSocket
(`/sub`) or an SSE stream (`/events`), a publisher broadcasts through `/pub`. As in
`fanout.py`, the publisher sends the next message only once every member got the
previous one. Both kinds of member are lean clients (asyncio protocols that parse frames
or events in `data_received`), so the load generator costs much less than the server.
Printed: deliveries per second, latency, and server CPU per 1,000 deliveries.
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

import psutil

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._client import connect_many
from benchmarks._common import HOST, raise_fd_limit, serve


class SSEMember(asyncio.Protocol):
    """One SSE stream; `on_frame(payload)` for each `data:` event (keep-alives skipped)."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode()
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buffer = b""
        self.body = b""
        self.started = False
        self.on_frame: Callable[[bytes], None] = lambda payload: None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        transport.write(self.request)  # type: ignore[attr-defined]  # a stream transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"stream lost before it started: {exc}"))

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data
        if not self.started:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buf
                return
            if b" 200 " not in buf[: buf.find(b"\r\n")]:
                self.opened.set_exception(ConnectionError(f"refused: {buf[:40]!r}"))
                return
            self.started = True
            self.opened.set_result(None)
            buf = buf[end + 4 :]
        # the body is chunked: <size in hex>\r\n<bytes>\r\n ...
        pos = 0
        while True:
            line_end = buf.find(b"\r\n", pos)
            if line_end < 0:
                break
            size = int(buf[pos:line_end], 16)
            start = line_end + 2
            if len(buf) < start + size + 2:
                break
            self.body += buf[start : start + size]
            pos = start + size + 2
        self.buffer = buf[pos:]
        events = self.body.split(b"\n\n")
        self.body = events.pop()
        for event in events:
            for line in event.split(b"\n"):
                if line.startswith(b"data: "):
                    self.on_frame(line[6:])

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def sse_members(port: int, count: int) -> list[SSEMember]:
    loop = asyncio.get_running_loop()
    members: list[SSEMember] = []
    while len(members) < count:
        batch = []
        for _ in range(min(100, count - len(members))):
            _, proto = await loop.create_connection(
                lambda: SSEMember(HOST, port, "/events"), HOST, port
            )
            batch.append(proto)
        await asyncio.gather(*(m.opened for m in batch))
        members.extend(batch)
    return members


async def measure(port: int, pid: int, kind: str, count: int, duration: float) -> dict[str, float]:
    subs: list[Any]
    if kind == "sse":
        subs = await sse_members(port, count)
    else:
        subs = list(await connect_many(HOST, port, "/sub", count))
    (pub,) = await connect_many(HOST, port, "/pub", 1)
    await asyncio.sleep(0.5)
    loop = asyncio.get_running_loop()
    got = 0
    done: asyncio.Future[None] = loop.create_future()

    def on_frame(payload: bytes) -> None:
        nonlocal got
        got += 1
        if got == count and not done.done():
            done.set_result(None)

    for sub in subs:
        sub.on_frame = on_frame
    server = psutil.Process(pid)
    latencies: list[float] = []
    seq = 0
    # one warm-up second, then the measured window
    t_end = time.perf_counter() + 1.0 + duration
    t0 = cpu0 = 0.0
    measured = 0
    while time.perf_counter() < t_end:
        if not t0 and time.perf_counter() >= t_end - duration:
            t0, cpu0, measured = time.perf_counter(), sum(server.cpu_times()[:2]), 0
        got, done = 0, loop.create_future()
        seq += 1
        sent = time.perf_counter()
        pub.send_text(json.dumps({"type": "news", "seq": seq, "text": "breaking news"}).encode())
        await asyncio.wait_for(done, 30)
        if t0:
            latencies.append(time.perf_counter() - sent)
            measured += 1
    elapsed = time.perf_counter() - t0
    cpu = sum(server.cpu_times()[:2]) - cpu0
    for sub in subs:
        sub.close()
    pub.close()
    deliveries = measured * count
    latencies.sort()
    return {
        "deliveries/s": deliveries / elapsed,
        "p50 ms": statistics.median(latencies) * 1000,
        "p99 ms": latencies[int(len(latencies) * 0.99) - 1] * 1000,
        "server CPU ms/1k": cpu / deliveries * 1e6,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--ws", default="websockets-sansio", help="uvicorn's --ws")
    args = parser.parse_args()
    raise_fd_limit()
    rows: dict[str, list[dict[str, float]]] = {"websocket": [], "sse": []}
    for _ in range(args.repeat):
        for kind in ("websocket", "sse"):
            with serve("rtframe-sse", "fanout", args.ws) as server:
                rows[kind].append(
                    asyncio.run(
                        measure(server.port, server.proc.pid, kind, args.members, args.duration)
                    )
                )
    print(f"## Fan-out to {args.members} members: WebSocket vs SSE (uvicorn --ws {args.ws}, "
          f"median of {args.repeat})\n")  # fmt: skip
    keys = list(rows["sse"][0])
    print("| members are | " + " | ".join(keys) + " |")
    print("|---|" + "---:|" * len(keys))
    for kind, runs in rows.items():
        cells = [f"{statistics.median(r[k] for r in runs):,.2f}" for k in keys]
        print(f"| {kind} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
