"""Load-generator processes: each runs its own uvloop event loop and reports back."""

from __future__ import annotations

import asyncio
import json
import time
from array import array
from dataclasses import dataclass, field
from typing import Any

import psutil
import uvloop

from ._client import WSClient, connect_many
from ._common import HOST


@dataclass
class Report:
    """What one generator process saw inside the measurement window."""

    count: int = 0
    latencies: array[float] = field(default_factory=lambda: array("d"))
    window: float = 0.0  # seconds actually measured
    own_cpu: float = 0.0  # this process's CPU seconds inside the window
    server_cpu: float | None = None  # the server's CPU seconds inside the window (process 0)
    server_user: float | None = None  # the user-mode part of it: the Python code's share
    errors: list[str] = field(default_factory=list)


class Window:
    """Wall-clock window shared by every process, mapped to this process's perf_counter."""

    def __init__(self, start_at: float, end_at: float) -> None:
        offset = time.time() - time.perf_counter()
        self.start = start_at - offset
        self.end = end_at - offset


class _Meter:
    """Snapshots the CPU of this process (and of the server) at the window's edges."""

    def __init__(self, window: Window, server_pid: int | None) -> None:
        self.server = psutil.Process(server_pid) if server_pid else None
        self.me = psutil.Process()
        self.t0 = self.t1 = 0.0
        self.cpu0 = self.cpu1 = 0.0
        self.srv0 = self.srv1 = 0.0
        self.usr0 = self.usr1 = 0.0
        loop = asyncio.get_running_loop()
        delta = time.perf_counter() - loop.time()
        loop.call_at(window.start - delta, self._begin)
        loop.call_at(window.end - delta, self._finish)
        self.done = loop.create_future()

    def _cpu(self, proc: psutil.Process) -> float:
        t = proc.cpu_times()
        return float(t.user + t.system)

    def _begin(self) -> None:
        self.t0 = time.perf_counter()
        self.cpu0 = self._cpu(self.me)
        if self.server:
            self.srv0 = self._cpu(self.server)
            self.usr0 = self.server.cpu_times().user

    def _finish(self) -> None:
        self.t1 = time.perf_counter()
        self.cpu1 = self._cpu(self.me)
        if self.server:
            self.srv1 = self._cpu(self.server)
            self.usr1 = self.server.cpu_times().user
        self.done.set_result(None)

    def fill(self, report: Report) -> None:
        report.window = self.t1 - self.t0
        report.own_cpu = self.cpu1 - self.cpu0
        if self.server:
            report.server_cpu = self.srv1 - self.srv0
            report.server_user = self.usr1 - self.usr0


# -- echo ---------------------------------------------------------------------------------


def echo_worker(
    port: int, clients: int, first_seq: int, start_at: float, end_at: float,
    server_pid: int | None, client_kind: str,
) -> Report:  # fmt: skip
    """Run `clients` echo clients until `end_at`; count round trips inside the window."""
    return uvloop.run(
        _echo(port, clients, first_seq, Window(start_at, end_at), server_pid, client_kind)
    )


def echo_frame(seq: int) -> bytes:
    return json.dumps({"type": "echo", "seq": seq, "text": "hello, realtime world"}).encode()


async def _echo(
    port: int,
    clients: int,
    first_seq: int,
    window: Window,
    server_pid: int | None,
    client_kind: str,
) -> Report:
    report = Report()
    lat = report.latencies
    start, end = window.start, window.end
    perf = time.perf_counter

    if client_kind == "websockets":
        return await _echo_websockets(port, clients, first_seq, window, server_pid, report)

    conns = await connect_many(HOST, port, "/echo", clients)
    meter = _Meter(window, server_pid)
    stop = False

    def drive(conn: WSClient, seq: int) -> None:
        frame = echo_frame(seq)
        expected = json.loads(frame)
        sent = 0.0
        checked = False

        def on_frame(payload: bytes) -> None:
            nonlocal sent, checked
            t = perf()
            if not checked:  # the first answer must be the echo, not an error frame
                checked = True
                if json.loads(payload) != expected:
                    report.errors.append(f"unexpected answer {payload[:200]!r}")
            if start <= t <= end:
                report.count += 1
                lat.append(t - sent)
            if not stop:
                sent = perf()
                conn.send_text(frame)

        conn.on_frame = on_frame
        sent = perf()
        conn.send_text(frame)

    for i, conn in enumerate(conns):
        drive(conn, first_seq + i)
    await meter.done
    stop = True
    meter.fill(report)
    await asyncio.sleep(0.2)
    for conn in conns:
        conn.close()
    await asyncio.sleep(0.1)
    return report


async def _echo_websockets(
    port: int, clients: int, first_seq: int, window: Window, server_pid: int | None, report: Report
) -> Report:
    from websockets.asyncio.client import connect

    perf = time.perf_counter
    meter = _Meter(window, server_pid)
    ready = asyncio.Event()

    async def one(seq: int) -> None:
        frame = echo_frame(seq).decode()
        async with connect(f"ws://{HOST}:{port}/echo", compression=None, max_queue=None) as ws:
            await ready.wait()
            while not meter.done.done():
                sent = perf()
                await ws.send(frame)
                await ws.recv()
                t = perf()
                if window.start <= t <= window.end:
                    report.count += 1
                    report.latencies.append(t - sent)

    tasks = [asyncio.create_task(one(first_seq + i)) for i in range(clients)]
    ready.set()
    await asyncio.gather(*tasks)
    meter.fill(report)
    return report


# -- fan-out ------------------------------------------------------------------------------


def fanout_worker(
    port: int, members: int, start_at: float, end_at: float, server_pid: int | None
) -> Report:
    """One publisher, `members` subscribers; publish the next frame when all got the last."""
    return uvloop.run(_fanout(port, members, Window(start_at, end_at), server_pid))


async def _fanout(port: int, members: int, window: Window, server_pid: int | None) -> Report:
    report = Report()
    lat = report.latencies
    perf = time.perf_counter
    subs = await connect_many(HOST, port, "/sub", members)
    (pub,) = await connect_many(HOST, port, "/pub", 1)
    await asyncio.sleep(0.5)  # let the server register every member
    loop = asyncio.get_running_loop()
    state: dict[str, Any] = {"got": 0, "sent": 0.0, "seq": 0, "measure": False}
    all_in: asyncio.Future[None] = loop.create_future()

    def on_frame(payload: bytes) -> None:
        t = perf()
        state["got"] += 1
        if state["measure"]:
            lat.append(t - state["sent"])
        if state["got"] == members and not all_in.done():
            all_in.set_result(None)

    for sub in subs:
        sub.on_frame = on_frame
    # Check once that what arrives is the published message (not an error frame).
    first: list[bytes] = []
    def keep_first(payload: bytes) -> None:
        first.append(payload)
        on_frame(payload)

    subs[0].on_frame = keep_first

    server = psutil.Process(server_pid) if server_pid else None
    me = psutil.Process()

    def cpu(proc: psutil.Process | None) -> float:
        if proc is None:
            return 0.0
        t = proc.cpu_times()
        return float(t.user + t.system)

    # Warm up until the window opens, then measure whole messages: from the first
    # publish at or after `start` to the completion of the last one published before `end`.
    measured = 0
    t0 = cpu0 = srv0 = usr0 = 0.0
    while True:
        now = perf()
        if now >= window.end:
            break
        if not state["measure"] and now >= window.start:
            state["measure"] = True
            t0, cpu0, srv0 = perf(), cpu(me), cpu(server)
            usr0 = server.cpu_times().user if server else 0.0
        all_in = loop.create_future()
        state["got"] = 0
        state["seq"] += 1
        frame = json.dumps({"type": "news", "seq": state["seq"], "text": "breaking news"}).encode()
        state["sent"] = perf()
        pub.send_text(frame)
        try:
            await asyncio.wait_for(all_in, 15)
        except TimeoutError:
            report.errors.append(
                f"stalled: {state['got']}/{members} members got message {state['seq']} in 15 s"
            )
            break
        if state["measure"]:
            measured += 1
        if state["seq"] == 1 and (not first or json.loads(first[0]).get("seq") != 1):
            report.errors.append(f"unexpected delivery {first[:1]!r}")
    if state["measure"]:
        report.window = perf() - t0
        report.own_cpu = cpu(me) - cpu0
        report.server_cpu = cpu(server) - srv0 if server else None
        report.server_user = server.cpu_times().user - usr0 if server else None
    report.count = measured * members
    for conn in (*subs, pub):
        conn.close()
    await asyncio.sleep(0.2)
    return report
