"""Recovery after a server restart: N clients of a history group, their server killed
with SIGKILL while another server keeps publishing, then started again.

    python -m benchmarks.recovery [--clients 1000] [--rate 100] [--down 2]

A private redis-server on a free loopback port; two uvicorn processes of
`_history_redis_app` (its group keeps history: HistoryPolicy(size=300, ttl=120)). The
publisher talks to server A, the N clients to server B. B is killed, A publishes for
`--down` seconds, B starts again on the same port, and each client reconnects after its
own random delay of 0-1 s (a reconnecting client's jitter) with `$since` = the last
position it saw. Measured: time from B listening again until every client got its
`$recovery`, and until each had caught up with the publisher; that every client ended
with every offset exactly once; and redis-server's CPU during the recovery.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process on port {port} exited with {proc.returncode}")
        try:
            with socket.create_connection((HOST, port), 0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"nothing listens on {port} after {timeout}s")


def start_redis(port: int, workdir: str) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", HOST, "--save", "",
         "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_listening(port, proc)
    return proc


def start_server(port: int, redis_url: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BENCH_HISTORY": "1",
        "BENCH_REDIS_URL": redis_url,
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "benchmarks._history_redis_app:app",
         "--host", HOST, "--port", str(port), "--loop", "uvloop", "--http", "httptools",
         "--ws", "websockets-sansio", "--log-level", "warning", "--backlog", "4096"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    wait_listening(port, proc)
    return proc


class Client:
    """One member: keeps every offset it got and the last one, reconnects with $since."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.offsets: list[int] = []
        self.epoch: str | None = None
        self.recovery: dict[str, Any] | None = None
        self.recovered_at: float | None = None
        self.caught_up_at: float | None = None
        self.sock: ClientConnection | None = None
        self.target = 0  # the offset that counts as caught up
        self.on_caught_up: Callable[[], None] = lambda: None

    def url(self) -> str:
        base = f"ws://{HOST}:{self.port}/sub"
        if not self.offsets or self.epoch is None:
            return base
        since = {"bench": {"epoch": self.epoch, "offset": self.offsets[-1]}}
        return f"{base}?{quote('$since')}={quote(json.dumps(since))}"

    async def run(self, connected: asyncio.Event | None = None) -> None:
        # no client pings: 1,000 clients share this process's loop, busy while recovering
        # no client pings: 1,000 clients share this process's loop, busy while recovering;
        # no permessage-deflate, as in the other benchmarks: compressing each frame for
        # each member cost the server 3/4 of its CPU here (uvicorn's cost, not rtframe's)
        async with connect(
            self.url(), max_queue=None, open_timeout=60, ping_interval=None, compression=None
        ) as sock:
            self.sock = sock
            if connected is not None:
                connected.set()
            try:
                async for frame_data in sock:
                    raw = frame_data if isinstance(frame_data, str) else frame_data.decode()
                    # the position is the frame's last member: read it without parsing
                    # the whole frame (this process plays 1,000 clients on a shared CPU)
                    at = raw.rfind('"$pos":')
                    if at < 0:
                        frame = json.loads(raw)
                        if frame.get("type") == "$recovery":
                            self.recovery = frame
                            self.recovered_at = time.monotonic()
                        continue
                    pos = json.loads(raw[at + 7 : -1])
                    self.epoch = pos["epoch"]
                    offset = pos["offset"]
                    self.offsets.append(offset)
                    if self.target and offset >= self.target and not self.caught_up_at:
                        self.caught_up_at = time.monotonic()
                        self.on_caught_up()
            except ConnectionClosed:
                pass


async def publish(port: int, rate: float, stop: asyncio.Event, sent: list[int]) -> None:
    async with connect(f"ws://{HOST}:{port}/pub", ping_interval=None, compression=None) as pub:
        n = 0
        while not stop.is_set():
            n += 1
            await pub.send(json.dumps({"type": "news", "seq": n, "text": "x" * 32}))
            sent.append(n)
            await asyncio.sleep(1 / rate)


async def scenario(args: argparse.Namespace) -> dict[str, Any]:
    workdir = tempfile.mkdtemp(prefix="rtframe-bench-redis-")
    redis_port, port_a, port_b = free_port(), free_port(), free_port()
    redis = start_redis(redis_port, workdir)
    redis_url = f"redis://{HOST}:{redis_port}/0"
    server_a = start_server(port_a, redis_url)
    server_b = start_server(port_b, redis_url)
    try:
        clients = [Client(port_b) for _ in range(args.clients)]
        tasks = []
        for i in range(0, len(clients), 100):  # connect in waves: the backlog holds
            wave = clients[i : i + 100]
            ready = [asyncio.Event() for _ in wave]
            tasks += [asyncio.create_task(c.run(e)) for c, e in zip(wave, ready, strict=True)]
            await asyncio.wait_for(asyncio.gather(*(e.wait() for e in ready)), 60)
        stop, sent = asyncio.Event(), list[int]()
        publisher = asyncio.create_task(publish(port_a, args.rate, stop, sent))
        await asyncio.sleep(1.0)
        os.kill(server_b.pid, signal.SIGKILL)
        server_b.wait()
        await asyncio.gather(*tasks)  # every client saw its connection drop
        await asyncio.sleep(args.down)
        server_b = start_server(port_b, redis_url)
        restarted = time.monotonic()
        redis_cpu = psutil.Process(redis.pid)
        server_cpu = psutil.Process(server_b.pid)
        me = psutil.Process()
        cpu_before = sum(redis_cpu.cpu_times()[:2])
        me_before = sum(me.cpu_times()[:2])
        target = len(sent)  # offsets equal sequence numbers: one group, one publisher

        everyone = asyncio.Event()
        waiting = len(clients)

        def caught_up() -> None:
            nonlocal waiting
            waiting -= 1
            if waiting == 0:
                everyone.set()

        for c in clients:
            c.on_caught_up = caught_up

        async def come_back(client: Client) -> None:
            await asyncio.sleep(random.random())
            client.target = target
            await client.run()

        tasks = [asyncio.create_task(come_back(c)) for c in clients]
        with contextlib.suppress(TimeoutError):  # a client that never catches up shows
            await asyncio.wait_for(everyone.wait(), 60)
        cpu_used = sum(redis_cpu.cpu_times()[:2]) - cpu_before
        server_used = sum(server_cpu.cpu_times()[:2])
        me_used = sum(me.cpu_times()[:2]) - me_before
        stop.set()
        await publisher
        await asyncio.sleep(1.0)  # the last frames arrive
        for c in clients:
            if c.sock is not None:
                await c.sock.close()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for proc in (server_a, server_b, redis):
            proc.kill()
            proc.wait()
    recovered = [c for c in clients if c.recovery and c.recovery["recovered"]]
    whole = [c for c in clients if c.offsets == list(range(c.offsets[0], c.offsets[-1] + 1))]
    told = [c.recovered_at - restarted for c in clients if c.recovered_at]
    caught = [c.caught_up_at - restarted for c in clients if c.caught_up_at]
    replayed = [c.recovery["replayed"] for c in recovered if c.recovery]
    return {
        "clients": len(clients),
        "published": len(sent),
        "recovered": len(recovered),
        "every offset once": len(whole),
        "replayed p50": statistics.median(replayed) if replayed else 0,
        "told p50 s": statistics.median(told) if told else float("nan"),
        "told max s": max(told) if told else float("nan"),
        "caught up max s": max(caught) if caught else float("nan"),
        "redis CPU ms": cpu_used * 1000,
        "server CPU ms": server_used * 1000,
        "clients' CPU ms": me_used * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="broadcasts per second")
    parser.add_argument("--down", type=float, default=2.0, help="seconds the server is down")
    args = parser.parse_args()
    result = asyncio.run(scenario(args))
    print(f"## Recovery of {args.clients} clients after a SIGKILLed server restarts\n")
    print(f"{args.rate:g} broadcasts/s from the other server; down for {args.down:g} s; each "
          "client reconnects after a random 0-1 s\n")  # fmt: skip
    print("| " + " | ".join(result) + " |")
    print("|" + "---:|" * len(result))
    cells = [f"{v:.2f}" if isinstance(v, float) else str(v) for v in result.values()]
    print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
