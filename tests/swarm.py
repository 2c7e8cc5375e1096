"""A swarm of WebSocket clients in its own process, for the scale tests.

The test process only measures; the thousands of sockets live here, on their own event
loop (uvloop) and CPU, read with the lean client of `benchmarks/_client.py` (a protocol
that parses frames in `data_received`, no coroutine per frame). Every event is one JSON
line on stdout; commands are lines on stdin. Only ever pointed at 127.0.0.1.

    python -m tests.swarm members PORT PATH COUNT
        connect COUNT members to PATH (100 handshakes at a time), then print
        {"event": "ready", ...}. Each member counts the frames it receives and checks
        that their `"seq":N` numbers run 1, 2, 3, ... with no gap or repeat. The command
        `expect N` waits (up to 20 s) until every member got N frames and prints
        {"event": "report", ...}. End of stdin closes everything and exits.

    python -m tests.swarm storm PORT PATH COUNT [CONCURRENCY ROUNDS LIMIT]
        print {"event": "start"}, then connect COUNT clients to PATH (`{i}` in it is
        replaced by the client's number) as fast as they can, at most CONCURRENCY
        handshakes in flight (default: all), each waiting for a frame containing
        `"welcome"`; print {"event": "done", "round": 1, ...} when all are welcomed (or
        any failed), then {"event": "settled", ...} once no client got a frame for
        `SETTLE` seconds (or LIMIT seconds passed, default 60: "settled": false); its
        "seconds" run from the start of the round to the last frame. Each further round
        (default: none) is a reconnect storm: every client closes at once and all
        reconnect straight away. Frames are read and discarded until end of stdin.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from contextlib import suppress
from dataclasses import dataclass, field

import uvloop

from benchmarks._client import WSClient

HOST = "127.0.0.1"
HANDSHAKE_TIMEOUT = 30.0
#: A storm is over once its room has been quiet (no frame to any client) this long.
SETTLE = 1.0


def emit(event: str, **fields: object) -> None:
    sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
    sys.stdout.flush()


async def stdin_lines() -> asyncio.StreamReader:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    return reader


async def open_client(port: int, client: WSClient) -> WSClient:
    """Connect `client` (its `on_frame` already set: frames may come with the handshake)."""
    loop = asyncio.get_running_loop()
    await asyncio.wait_for(loop.create_connection(lambda: client, HOST, port), HANDSHAKE_TIMEOUT)
    await asyncio.wait_for(client.opened, HANDSHAKE_TIMEOUT)
    return client


# -- members: a big room that counts what it receives ---------------------------------------


class Room:
    """What the members have received, and when all of them have `target` frames."""

    def __init__(self, count: int) -> None:
        self.count = count
        self.target = -1
        self.reached = 0
        self.all_in = asyncio.Event()

    def expect(self, target: int, members: list[Member]) -> None:
        self.target = target
        self.reached = sum(m.frames >= target for m in members)
        if self.reached == self.count:
            self.all_in.set()


@dataclass
class Member:
    room: Room
    frames: int = 0
    last_seq: int = 0
    disorder: int = 0  # frames whose seq was not the previous one plus one
    samples: list[bytes] = field(default_factory=list)

    def on_frame(self, payload: bytes) -> None:
        self.frames += 1
        at = payload.find(b'"seq":')
        end = payload.find(b",", at)
        seq = int(payload[at + 6 : end]) if at >= 0 and end > at else -1
        if seq != self.last_seq + 1:
            self.disorder += 1
            if len(self.samples) < 3:
                self.samples.append(payload[:120])
        self.last_seq = seq
        room = self.room
        if self.frames == room.target:
            room.reached += 1
            if room.reached == room.count:
                room.all_in.set()


async def members(port: int, path: str, count: int) -> None:
    started = time.perf_counter()
    room = Room(count)
    states = [Member(room) for _ in range(count)]
    clients: list[WSClient] = []
    for first in range(0, count, 100):
        batch = []
        for state in states[first : first + 100]:
            client = WSClient(HOST, port, path)
            client.on_frame = state.on_frame
            batch.append(open_client(port, client))
        clients.extend(await asyncio.gather(*batch))
    emit("ready", connected=len(clients), seconds=round(time.perf_counter() - started, 2))

    commands = await stdin_lines()
    while line := (await commands.readline()).decode().split():
        if line[0] == "expect":
            expected = int(line[1])
            room.expect(expected, states)
            with suppress(TimeoutError):
                await asyncio.wait_for(room.all_in.wait(), 20)
            frames = [s.frames for s in states]
            emit(
                "report",
                members=count,
                expected=expected,
                total=sum(frames),
                min=min(frames),
                max=max(frames),
                complete=sum(f == expected for f in frames),
                disorder=sum(s.disorder for s in states),
                closed=sum(c.closed.done() for c in clients),
                samples=[b.decode(errors="replace") for s in states for b in s.samples][:3],
            )
    for client in clients:
        client.close()
    await asyncio.sleep(0.2)


# -- storm: everyone joins one room at once -------------------------------------------------


async def until_quiet(last_frame: list[float], limit: float) -> bool:
    """Wait until no frame arrived for `SETTLE` seconds (True) or `limit` passed (False)."""
    loop = asyncio.get_running_loop()
    quiet = asyncio.Event()

    def check() -> None:
        idle = time.perf_counter() - last_frame[0]
        if idle >= SETTLE:
            quiet.set()
        else:
            loop.call_later(SETTLE - idle, check)

    check()
    with suppress(TimeoutError):
        await asyncio.wait_for(quiet.wait(), limit)
    return quiet.is_set()


async def storm(
    port: int, path: str, count: int, concurrency: int, rounds: int, settle_limit: float
) -> None:
    gate = asyncio.Semaphore(concurrency)
    loop = asyncio.get_running_loop()
    frames = [0]
    last_frame = [0.0]
    clients: list[WSClient] = []
    failures: list[str] = []
    slowest = [0.0]

    async def one(i: int) -> None:
        welcomed: asyncio.Future[None] = loop.create_future()

        def on_frame(payload: bytes) -> None:
            frames[0] += 1
            last_frame[0] = time.perf_counter()
            if not welcomed.done() and b'"welcome"' in payload:
                welcomed.set_result(None)

        url = path.replace("{i}", str(i))
        client = WSClient(HOST, port, url)
        client.on_frame = on_frame
        clients.append(client)
        async with gate:
            t0 = time.perf_counter()
            try:
                await open_client(port, client)
                await asyncio.wait_for(welcomed, HANDSHAKE_TIMEOUT)
            except Exception as exc:
                failures.append(f"client {i}: {exc!r}")
                return
            slowest[0] = max(slowest[0], time.perf_counter() - t0)

    emit("start")
    for round_ in range(1, rounds + 1):
        started = time.perf_counter()
        if clients:  # everyone drops at once and reconnects straight away
            for client in clients:
                client.close()
            clients.clear()
        frames[0], slowest[0] = 0, 0.0
        failures.clear()
        await asyncio.gather(*(one(i) for i in range(count)))
        emit(
            "done",
            round=round_,
            welcomed=count - len(failures),
            seconds=round(time.perf_counter() - started, 3),
            slowest_client=round(slowest[0], 3),
            frames=frames[0],
            failures=failures[:5],
        )
        # The storm is over when the room is quiet again: no frame for SETTLE seconds
        # (a server still fanning out a backlog of notices is not done with the storm).
        quiet = await until_quiet(last_frame, settle_limit)
        emit(
            "settled",
            round=round_,
            settled=quiet,
            seconds=round(last_frame[0] - started, 3),
            frames=frames[0],
        )
        if not quiet:
            break
    commands = await stdin_lines()
    await commands.read()  # until end of stdin
    for client in clients:
        client.close()
    await asyncio.sleep(0.2)


def main(argv: list[str]) -> None:
    mode, port, path, count, *rest = argv
    if mode == "members":
        uvloop.run(members(int(port), path, int(count)))
    elif mode == "storm":
        concurrency, rounds, limit = (
            (int(rest[0]), int(rest[1]), float(rest[2])) if rest else (int(count), 1, 60.0)
        )
        uvloop.run(storm(int(port), path, int(count), concurrency, rounds, limit))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
