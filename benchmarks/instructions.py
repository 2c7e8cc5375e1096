"""Instructions per message under callgrind: a noise-free comparison of the servers.

    python -m benchmarks.instructions [--cases echo,fanout] [--apps bare,rtframe]

Needs valgrind (`apt-get install valgrind`). Each server runs under
`valgrind --tool=callgrind` (50-100x slower, so the loads are small): after a warm-up
the counters are zeroed, a fixed load runs, and the user-space instructions the server
executed are divided by the messages it handled. Unlike CPU time this does not move with
other work on the machine, so it is the number to compare before and after a change to
rtframe's hot path. It leaves out the kernel's share (socket writes and wake-ups), which
is the same for every server, so ratios here are larger than the CPU-time ratios.

- echo: 10 clients in lock-step, 300 round trips each;
- fan-out: 1000 members, 20 publishes (20,000 deliveries).

PYTHONHASHSEED is fixed so that dict and set layouts, and so the counts, repeat.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `benchmarks` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import uvloop

from benchmarks._client import connect_many
from benchmarks._common import HOST, ROOT, app_module, free_port, table


async def _fanout(port: int, members: int = 1000, publishes: int = 20) -> int:
    subs = await connect_many(HOST, port, "/sub", members, batch=50)
    (pub,) = await connect_many(HOST, port, "/pub", 1)
    await asyncio.sleep(2)  # slow under valgrind: let every member register
    state = {"got": 0}
    done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def on_frame(payload: bytes) -> None:
        state["got"] += 1
        if state["got"] == members and not done.done():
            done.set_result(None)

    for sub in subs:
        sub.on_frame = on_frame

    async def publish(n: int) -> None:
        nonlocal done
        for seq in range(n):
            state["got"] = 0
            done = asyncio.get_running_loop().create_future()
            pub.send_text(
                json.dumps({"type": "news", "seq": seq, "text": "breaking news"}).encode()
            )
            await asyncio.wait_for(done, 120)

    await publish(3)
    _control("--zero")
    await publish(publishes)
    _control("--dump")
    return members * publishes


async def _echo(port: int, clients: int = 10, rounds: int = 300) -> int:
    conns = await connect_many(HOST, port, "/echo", clients)
    frame = json.dumps({"type": "echo", "seq": 1, "text": "hello, realtime world"}).encode()
    loop = asyncio.get_running_loop()

    async def run(n: int) -> None:
        for _ in range(n):
            answers = []
            for conn in conns:
                answer: asyncio.Future[bytes] = loop.create_future()
                conn.on_frame = lambda payload, f=answer: f.done() or f.set_result(payload)  # type: ignore[misc]
                answers.append(answer)
                conn.send_text(frame)
            await asyncio.wait_for(asyncio.gather(*answers), 60)

    await run(20)
    _control("--zero")
    await run(rounds)
    _control("--dump")
    return clients * rounds


_pid = 0


def _control(action: str) -> None:
    subprocess.run(["callgrind_control", action, str(_pid)], capture_output=True, check=True)


def measure(app: str, case: str) -> float:
    """User-space instructions per message for one server and case."""
    global _pid
    port = free_port()
    attr = "echo" if case == "echo" else "fanout"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONHASHSEED": "0",
               "PYTHONWARNINGS": "ignore::DeprecationWarning"}  # fmt: skip
        cmd = [
            "valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
            sys.executable, "-m", "uvicorn", f"{app_module(app)}:{attr}", "--host", HOST,
            "--port", str(port), "--loop", "uvloop", "--http", "httptools",
            "--ws", "websockets-sansio", "--log-level", "warning",
        ]  # fmt: skip
        server = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.DEVNULL)
        _pid = server.pid
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    socket.create_connection((HOST, port), 1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline or server.poll() is not None:
                        raise RuntimeError(f"{app} did not start under valgrind") from None
                    time.sleep(0.5)
            count = uvloop.run(_fanout(port) if case == "fanout" else _echo(port))
        finally:
            server.terminate()
            server.wait(60)
        dump = Path(f"{out}.1")
        total = int(dump.read_text().split("summary: ", 1)[1].split()[0])
    return total / count


def main(argv: list[str] | None = None) -> str:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--cases", default="echo,fanout")
    p.add_argument("--apps", default="bare,rtframe", help="channels works too, slowly")
    args = p.parse_args(argv)
    if shutil.which("valgrind") is None or shutil.which("callgrind_control") is None:
        raise SystemExit("valgrind is not installed (apt-get install valgrind)")
    rows = []
    for case in args.cases.split(","):
        base = None
        for app in args.apps.split(","):
            per = measure(app, case)
            base = per if app == "bare" else base
            rows.append([case, app, round(per), per / base if base else float("nan")])
            print(f"  {case:7} {app:8} {per:10,.0f} instructions per message", file=sys.stderr)
    text = "\n".join(
        [
            "## User-space instructions per message (callgrind, --ws websockets-sansio)",
            "",
            table(["case", "server", "instructions per message", "x bare"], rows),
        ]
    )
    print(text, flush=True)
    return text


if __name__ == "__main__":
    main()
