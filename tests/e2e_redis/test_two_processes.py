"""End to end on the Redis layer: two uvicorn processes, real clients, real Redis."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.layers.redis_servers import REDIS_URL, require_redis
from tests.servers import uvicorn_process, uvicorn_server

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

APP = "tests.e2e_redis.app:app"


@contextmanager
def server(prefix: str, **env: str) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """`uvicorn` on the Redis layer; yields (port, process) so a test can also kill it."""
    with uvicorn_process(
        APP, env={"REDIS_URL": REDIS_URL, "RTFRAME_PREFIX": prefix, **env}
    ) as served:
        yield served


@pytest.fixture(scope="module")
def prefix() -> str:
    require_redis()
    return f"rte{uuid.uuid4().hex[:10]}"


@pytest.fixture(scope="module")
def ports(prefix: str) -> Iterator[tuple[int, int]]:
    # a small outbox with the "close" policy, so the flood test can overflow a slow client
    env = {"OUTBOX_LIMIT": "32", "OVERFLOW": "close"}
    with server(prefix, **env) as (port_a, _), server(prefix, **env) as (port_b, _):
        yield port_a, port_b


@pytest.fixture
def raw() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    yield client
    client.close()


async def recv(sock: ClientConnection, timeout: float = 5) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(sock.recv(), timeout))  # type: ignore[no-any-return]


async def nothing_arrives(sock: ClientConnection, within: float = 0.3) -> None:
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(sock.recv(), within)


async def hello(sock: ClientConnection) -> dict[str, Any]:
    message = await recv(sock)
    assert message["type"] == "hello"
    return message


def numsub(client: redis.Redis, channel: str) -> int:
    return int(client.pubsub_numsub(channel)[0][1])


async def eventually(probe: Any, expected: Any) -> None:
    for _ in range(200):
        if probe() == expected:
            return
        await asyncio.sleep(0.025)
    assert probe() == expected


async def test_broadcast_from_a_handler_reaches_both_processes(ports: tuple[int, int]) -> None:
    a, b = ports
    async with (
        connect(f"ws://127.0.0.1:{a}/ws/lobby") as a1,
        connect(f"ws://127.0.0.1:{a}/ws/lobby") as a2,
        connect(f"ws://127.0.0.1:{b}/ws/lobby") as b1,
        connect(f"ws://127.0.0.1:{b}/ws/other") as b_other,
    ):
        hellos = [await hello(s) for s in (a1, a2, b1, b_other)]
        assert hellos[0]["pid"] != hellos[2]["pid"]
        await a1.send(json.dumps({"type": "say", "text": "hi all"}))
        for sock in (a1, a2, b1):
            message = await recv(sock)
            assert message == {"type": "said", "text": "hi all", "pid": hellos[0]["pid"]}
        await nothing_arrives(b_other)


async def test_a_direct_message_crosses_processes(ports: tuple[int, int]) -> None:
    a, b = ports
    async with (
        connect(f"ws://127.0.0.1:{a}/ws/dm") as sender,
        connect(f"ws://127.0.0.1:{b}/ws/dm") as target,
        connect(f"ws://127.0.0.1:{b}/ws/dm") as bystander,
    ):
        sender_id = (await hello(sender))["id"]
        target_id = (await hello(target))["id"]
        await hello(bystander)
        await sender.send(json.dumps({"type": "direct", "to": target_id, "text": "psst"}))
        assert await recv(target) == {"type": "direct", "text": "psst", "from": sender_id}
        await nothing_arrives(bystander)
        await nothing_arrives(sender)


async def test_a_process_unsubscribes_when_its_last_member_leaves(
    ports: tuple[int, int], prefix: str, raw: redis.Redis
) -> None:
    a, b = ports
    channel = f"{prefix}:g:room.leaving"
    async with connect(f"ws://127.0.0.1:{a}/ws/leaving") as stay:
        await hello(stay)
        assert numsub(raw, channel) == 1
        async with (
            connect(f"ws://127.0.0.1:{b}/ws/leaving") as b1,
            connect(f"ws://127.0.0.1:{b}/ws/leaving") as b2,
        ):
            await hello(b1)
            await hello(b2)
            assert numsub(raw, channel) == 2  # one subscription per process, not per member
            await b1.close()
            await stay.send(json.dumps({"type": "say", "text": "still here?"}))
            assert (await recv(b2))["text"] == "still here?"
            assert (await recv(stay))["text"] == "still here?"
            assert numsub(raw, channel) == 2
        await eventually(lambda: numsub(raw, channel), 1)
        await stay.send(json.dumps({"type": "say", "text": "alone"}))
        assert (await recv(stay))["text"] == "alone"
    await eventually(lambda: numsub(raw, channel), 0)
    assert raw.pubsub_channels(f"{prefix}:g:*") == []  # nothing left subscribed to groups


async def test_the_slow_client_policy_holds_under_a_flood(ports: tuple[int, int]) -> None:
    a, b = ports
    count, size = 400, 16_000
    # A tiny receive buffer, no compression (the padding would shrink to nothing) and no
    # reading: the server's writes back up into the slow member's outbox.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", b))
    plain: dict[str, Any] = {"max_size": None, "compression": None}
    async with (
        connect(f"ws://127.0.0.1:{a}/ws/flood", **plain) as fast_a,
        connect(f"ws://127.0.0.1:{b}/ws/flood", **plain) as fast_b,
        connect(f"ws://127.0.0.1:{b}/ws/flood", sock=sock, max_queue=1, **plain) as slow,
    ):
        for s in (fast_a, fast_b, slow):
            await hello(s)
        slow.transport.pause_reading()

        async def drain(s: ClientConnection) -> list[int]:
            seen: list[int] = []
            while len(seen) < count:
                message = await recv(s, 20)
                if message["type"] == "flood":
                    seen.append(message["i"])
            return seen

        readers = [asyncio.ensure_future(drain(s)) for s in (fast_a, fast_b)]
        await fast_a.send(json.dumps({"type": "flood", "count": count, "size": size}))
        for reader in readers:  # the fast members got everything, in order
            assert await reader == list(range(count))
        # the slow one was cut off with the documented code instead of stalling anyone
        slow.transport.resume_reading()
        got = 0
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                await asyncio.wait_for(slow.recv(), 20)
                got += 1
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4008
        assert got < count


async def test_a_group_quiet_for_15_seconds_still_delivers(ports: tuple[int, int]) -> None:
    a, b = ports
    async with (
        connect(f"ws://127.0.0.1:{a}/ws/quiet") as speaker,
        connect(f"ws://127.0.0.1:{b}/ws/quiet") as listener,
    ):
        await hello(speaker)
        await hello(listener)
        await asyncio.sleep(15.5)  # three redis-py default socket timeouts of silence
        await speaker.send(json.dumps({"type": "say", "text": "still there"}))
        assert (await recv(listener))["text"] == "still there"


async def test_a_killed_process_leaves_nothing_that_grows(
    ports: tuple[int, int], prefix: str, raw: redis.Redis
) -> None:
    a, _ = ports
    channel = f"{prefix}:g:room.doomed"
    with server(prefix) as (port_c, proc_c):
        async with connect(f"ws://127.0.0.1:{a}/ws/doomed") as survivor:
            await hello(survivor)
            victim = await connect(f"ws://127.0.0.1:{port_c}/ws/doomed")
            victim_id = (await hello(victim))["id"]
            node_c = victim_id.partition(".")[0]
            assert numsub(raw, channel) == 2
            assert numsub(raw, f"{prefix}:p:{node_c}") == 1

            proc_c.send_signal(signal.SIGKILL)
            proc_c.wait(timeout=10)

            # Redis drops a dead process's subscriptions with its connections
            await eventually(lambda: numsub(raw, channel), 1)
            assert numsub(raw, f"{prefix}:p:{node_c}") == 0
            names = [c.get("name", "") for c in raw.client_list()]
            assert not any(node_c in name for name in names)
            # the layer writes no keys, so there is nothing to expire or clean up
            assert raw.keys(f"{prefix}*") == []
            # messages for the dead process's members go nowhere and pile up nowhere
            await survivor.send(json.dumps({"type": "direct", "to": victim_id, "text": "gone?"}))
            await survivor.send(json.dumps({"type": "say", "text": "after the crash"}))
            assert (await recv(survivor))["text"] == "after the crash"
            assert raw.keys(f"{prefix}*") == []
            try:
                await victim.close()
            except Exception:
                pass


async def test_the_chat_example_runs_on_two_processes(prefix: str) -> None:
    env = {"CHAT_REDIS_PREFIX": f"{prefix}-chat"}
    with chat_server(env) as a, chat_server(env) as b:
        async with (
            connect(f"ws://127.0.0.1:{a}/ws/chat/lobby?nick=ada") as ada,
            connect(f"ws://127.0.0.1:{b}/ws/chat/lobby?nick=bob") as bob,
        ):
            assert (await recv(ada))["type"] == "welcome"
            assert (await recv(bob))["type"] == "welcome"
            assert (await recv(ada))["text"] == "bob joined"  # from the other process
            await bob.send(json.dumps({"type": "say", "text": "hello from b"}))
            for sock in (ada, bob):
                said = await recv(sock)
                assert (said["nick"], said["text"]) == ("bob", "hello from b")


@contextmanager
def chat_server(env: dict[str, str]) -> Iterator[int]:
    with uvicorn_server("examples.chat.app:app", env={"REDIS_URL": REDIS_URL, **env}) as port:
        yield port


async def test_a_thousand_clients_sending_at_once_get_no_false_outage(
    ports: tuple[int, int],
) -> None:
    """Issue 8: 400 clients sending at the same instant to a healthy Redis got ~290
    `layer_unavailable` frames (the client pool ran out). 500 per process, in pairs
    across the two processes, all send at once: every frame arrives, no error frame."""
    a, b = ports
    pairs = 500
    socks: list[ClientConnection] = []
    try:
        for chunk in range(0, pairs, 100):  # connect in waves: the listen backlog is finite
            socks += await asyncio.gather(
                *(
                    connect(f"ws://127.0.0.1:{port}/ws/burst{i}")
                    for i in range(chunk, chunk + 100)
                    for port in (a, b)
                )
            )
        await asyncio.gather(*(hello(s) for s in socks))
        await asyncio.gather(
            *(s.send(json.dumps({"type": "say", "text": str(n)})) for n, s in enumerate(socks))
        )

        async def two_frames(s: ClientConnection) -> list[dict[str, Any]]:
            return [await recv(s, 20), await recv(s, 20)]

        received = await asyncio.gather(*(two_frames(s) for s in socks))
        for n, frames in enumerate(received):
            # its own frame and its partner's (in the other process), nothing else
            assert {f.get("type") for f in frames} == {"said"}, frames
            partner = n + 1 if n % 2 == 0 else n - 1
            assert sorted(f["text"] for f in frames) == sorted([str(n), str(partner)])
    finally:
        await asyncio.gather(*(s.close() for s in socks), return_exceptions=True)
