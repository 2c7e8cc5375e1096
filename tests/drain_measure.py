"""Measure a drain (not a test): N clients on one of two processes, SIGTERM it.

    python -m tests.drain_measure [--clients 5000] [--window 10] [--share 0.2] [--plain]

Starts two servers on loopback, A and B (`rtframe run tests.drain_app:app`; with
`--plain`, A is plain `uvicorn` for comparison), connects every client to A (the lean
client of `benchmarks/_client.py`, uvloop), sends A SIGTERM and moves each client to B
as soon as A closes it (which `rtframe run` does at the client's announced `after_ms`).
Prints the close codes the clients saw (1006: the connection ended without a close
frame), and B's accept rate: per second and in its busiest 100 ms and 1 s, against the
average over the window (clients / window).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import struct
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack

import uvloop

from benchmarks._client import WSClient

from .servers import ROOT, free_port, wait_for_port

HOST = "127.0.0.1"


class Client(WSClient):
    """The lean client, recording the notice and the close code (replying to the close)."""

    def __init__(self, port: int) -> None:
        super().__init__(HOST, port, "/ws")
        self.after_ms: int | None = None
        self.close_code = 1006
        self.on_frame = self._frame

    def _frame(self, payload: bytes) -> None:
        message = json.loads(payload)
        if message.get("type") == "$reconnect":
            self.after_ms = message["after_ms"]

    def data_received(self, data: bytes) -> None:
        if self.handshaken:
            code = _close_code(self.buffer + data)
            if code is not None:  # note the code and answer the close, as a client should
                self.close_code = code
                self.write_frame(struct.pack("!H", code), 0x88)
        super().data_received(data)


def _close_code(buf: bytes) -> int | None:
    """The code of a close frame among the complete (unmasked) frames in `buf`, if any."""
    pos = 0
    while len(buf) - pos >= 2:
        opcode, n, start = buf[pos] & 0x0F, buf[pos + 1] & 0x7F, pos + 2
        if n == 126:
            n, start = int.from_bytes(buf[pos + 2 : pos + 4]), pos + 4
        elif n == 127:
            n, start = int.from_bytes(buf[pos + 2 : pos + 10]), pos + 10
        if len(buf) - start < n:
            return None
        if opcode == 8:
            return int.from_bytes(buf[start : start + 2]) if n >= 2 else 1005
        pos = start + n
    return None


async def open_client(port: int) -> Client:
    loop = asyncio.get_running_loop()
    _, client = await asyncio.wait_for(loop.create_connection(lambda: Client(port), HOST, port), 30)
    await asyncio.wait_for(client.opened, 30)
    return client


async def measure(port_a: int, port_b: int, server_a: subprocess.Popen[bytes], n: int, window: float) -> None:
    clients: list[Client] = []
    while len(clients) < n:
        clients += await asyncio.gather(*(open_client(port_a) for _ in range(min(100, n - len(clients)))))
    print(f"{n} clients on A", flush=True)
    await asyncio.sleep(1.0)
    accepted: list[float] = []
    failed: Counter[str] = Counter()
    t0 = time.perf_counter()
    server_a.send_signal(signal.SIGTERM)

    async def move(client: Client) -> None:
        await client.closed
        for _ in range(20):
            try:
                await open_client(port_b)
            except (OSError, ConnectionError, TimeoutError) as exc:
                failed[type(exc).__name__] += 1
                await asyncio.sleep(0.1)
                continue
            accepted.append(time.perf_counter() - t0)
            return

    await asyncio.wait_for(asyncio.gather(*(move(c) for c in clients)), window + 60)
    codes = Counter(c.close_code for c in clients)
    notified = sum(c.after_ms is not None for c in clients)
    accepted.sort()
    span = accepted[-1] - accepted[0]
    per_second = Counter(int(t) for t in accepted)
    busiest_100ms = max(Counter(int(t * 10) for t in accepted).values()) * 10
    busiest_1s = max(sum(1 for t in accepted if s <= t < s + 1.0) for s in accepted)
    average = n / window
    print(json.dumps({
        "clients": n,
        "close_codes": {str(k): v for k, v in sorted(codes.items())},
        "notified": notified,
        "reconnect_failures": dict(failed),
        "reconnected_on_B": len(accepted),
        "first_last_accept_s": [round(accepted[0], 3), round(accepted[-1], 3)],
        "accept_span_s": round(span, 3),
        "window_average_per_s": round(average, 1),
        "accepts_per_second": [per_second.get(s, 0) for s in range(int(accepted[-1]) + 1)],
        "busiest_1s_per_s": busiest_1s,
        "busiest_100ms_as_per_s": busiest_100ms,
        "busiest_1s_vs_average": round(busiest_1s / average, 2),
    }, indent=2), flush=True)  # fmt: skip


def start(command: list[str], port: int, stack: ExitStack) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*command, "--host", HOST, "--port", str(port), "--log-level", "warning"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )

    def stop() -> None:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    stack.callback(stop)
    wait_for_port(port, proc)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--clients", type=int, default=5000)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--share", type=float, default=0.2)
    parser.add_argument("--plain", action="store_true", help="A is plain uvicorn")
    args = parser.parse_args()
    port_a, port_b = free_port(), free_port()
    rtframe_run = [sys.executable, "-m", "rtframe", "run", "tests.drain_app:app"]
    drain = ["--drain-window", str(args.window), "--drain-max-share", str(args.share)]
    a = [sys.executable, "-m", "uvicorn", "tests.drain_app:app"] if args.plain else [*rtframe_run, *drain]
    with ExitStack() as stack:
        server_a = start(a, port_a, stack)
        start(rtframe_run, port_b, stack)
        uvloop.run(measure(port_a, port_b, server_a, args.clients, args.window))


if __name__ == "__main__":
    main()
