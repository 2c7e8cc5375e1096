"""Redis killed mid-stream, two uvicorn processes, real clients: members of a history
group recover every missed message (or are told they cannot), members of a plain group
are told of the gap. Nothing is lost without the client being told."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any
from urllib.parse import quote

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.layers.redis_servers import RedisServer, redis_server
from tests.servers import uvicorn_process

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

APP = "tests.e2e_redis.history_app:app"
#: every write on disk before it is acknowledged: a SIGKILLed Redis loses nothing
PERSISTENT = ("--appendonly", "yes", "--appendfsync", "always")


def two_servers(stack: ExitStack, redis: RedisServer) -> tuple[int, int]:
    env = {"REDIS_URL": redis.url, "RTFRAME_PREFIX": f"rth{uuid.uuid4().hex[:8]}"}
    port_a, _ = stack.enter_context(uvicorn_process(APP, env=env))
    port_b, _ = stack.enter_context(uvicorn_process(APP, env=env))
    return port_a, port_b


async def drain(sock: ClientConnection, quiet: float = 1.5) -> list[dict[str, Any]]:
    """Every frame until none came for `quiet` seconds."""
    got: list[dict[str, Any]] = []
    while True:
        try:
            got.append(json.loads(await asyncio.wait_for(sock.recv(), quiet)))
        except TimeoutError:
            return got


async def send_through_outage(
    sender: ClientConnection, redis: RedisServer, *, down_for: float = 1.0
) -> None:
    """Send a numbered message every 20 ms while Redis is killed and started again."""
    n = 0

    async def send_for(seconds: float) -> None:
        nonlocal n
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            n += 1
            await sender.send(json.dumps({"type": "say", "text": str(n)}))
            await asyncio.sleep(0.02)

    await send_for(0.5)
    redis.kill()
    await send_for(down_for)
    await asyncio.to_thread(redis.start)
    await send_for(1.5)


def stamped(frames: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [f for f in frames if f.get("type") == "said" and "$pos" in f]


@pytest.fixture
def persistent_redis() -> Iterator[RedisServer]:
    with redis_server(*PERSISTENT) as server:
        yield server


@pytest.fixture
def volatile_redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


async def test_history_members_recover_everything_when_redis_kept_its_data(
    persistent_redis: RedisServer,
) -> None:
    with ExitStack() as stack:
        port_a, port_b = two_servers(stack, persistent_redis)
        async with (
            connect(f"ws://127.0.0.1:{port_a}/kept/r") as sender,
            connect(f"ws://127.0.0.1:{port_b}/kept/r") as member,
        ):
            await send_through_outage(sender, persistent_redis)
            sent, got = await asyncio.gather(drain(sender), drain(member))
    # what the sender saw stamped is what reached the history; the rest failed and the
    # sender was told (`layer_unavailable`)
    published = [f["text"] for f in stamped(sent)]
    errors = [f for f in sent if f.get("type") == "error"]
    assert errors and all(e["code"] in ("layer_unavailable", "layer_busy") for e in errors)
    received = [f["text"] for f in stamped(got)]
    assert received == published  # every one, once, in order
    offsets = [f["$pos"]["offset"] for f in stamped(got)]
    assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))
    assert len({f["$pos"]["epoch"] for f in stamped(got)}) == 1  # Redis kept the epoch
    notices = [f for f in got if f.get("type") == "$recovery"]
    assert all(n["recovered"] for n in notices)


async def test_history_members_are_told_when_redis_lost_the_history(
    volatile_redis: RedisServer,
) -> None:
    with ExitStack() as stack:
        port_a, port_b = two_servers(stack, volatile_redis)
        async with (
            connect(f"ws://127.0.0.1:{port_a}/kept/r") as sender,
            connect(f"ws://127.0.0.1:{port_b}/kept/r") as member,
        ):
            await send_through_outage(sender, volatile_redis)
            results = await asyncio.gather(drain(sender), drain(member))
            got = results[1]
    epochs: list[str] = []
    for f in stamped(got):
        if not epochs or epochs[-1] != f["$pos"]["epoch"]:
            epochs.append(f["$pos"]["epoch"])
    assert len(epochs) == 2  # the history restarted with Redis
    told = [f for f in got if f.get("type") == "$recovery" and not f["recovered"]]
    assert told, "the member was not told that its messages could not be recovered"
    first_new = next(i for i, f in enumerate(got) if f.get("$pos", {}).get("epoch") == epochs[1])
    assert got.index(told[0]) < first_new  # told before the first message of the new history
    # after the notice, the new epoch arrives whole and in order
    after = [f["$pos"]["offset"] for f in stamped(got) if f["$pos"]["epoch"] == epochs[1]]
    assert after == list(range(after[0], after[0] + len(after)))


async def test_plain_group_members_get_a_gap_notice_after_an_outage(
    volatile_redis: RedisServer,
) -> None:
    with ExitStack() as stack:
        port_a, port_b = two_servers(stack, volatile_redis)
        async with (
            connect(f"ws://127.0.0.1:{port_a}/plain/r") as sender,
            connect(f"ws://127.0.0.1:{port_b}/plain/r") as member,
        ):
            await send_through_outage(sender, volatile_redis)
            results = await asyncio.gather(drain(sender), drain(member))
            got = results[1]
    gaps = [f for f in got if f.get("type") == "$gap"]
    assert gaps and gaps[0] == {"type": "$gap", "group": "plain.r", "reason": "layer_outage"}


async def test_a_client_that_reconnects_to_the_other_process_recovers(
    persistent_redis: RedisServer,
) -> None:
    """A member leaves one process and comes back on the other with its position."""
    with ExitStack() as stack:
        port_a, port_b = two_servers(stack, persistent_redis)
        async with connect(f"ws://127.0.0.1:{port_a}/kept/x") as sender:
            async with connect(f"ws://127.0.0.1:{port_b}/kept/x") as member:
                await sender.send(json.dumps({"type": "say", "text": "seen"}))
                last = json.loads(await asyncio.wait_for(member.recv(), 5))["$pos"]
            for n in range(20):
                await sender.send(json.dumps({"type": "say", "text": f"missed {n}"}))
            await drain(sender, quiet=0.5)
            since = {"kept.x": {"epoch": last["epoch"], "offset": last["offset"]}}
            url = f"ws://127.0.0.1:{port_a}/kept/x?{quote('$since')}={quote(json.dumps(since))}"
            async with connect(url) as back:
                got = await drain(back, quiet=0.5)
    assert got[0]["type"] == "$recovery" and got[0]["recovered"] is True
    assert got[0]["replayed"] == 20
    assert [f["text"] for f in got[1:]] == [f"missed {n}" for n in range(20)]
