"""Progress frames cross processes: a handler in a uvicorn process enqueues a task, a
`rtframe worker` process runs it, and the `task_progress` frames reach the WebSocket
that asked (through the app's RedisLayer), with the broadcast the task made."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.servers import uvicorn_server

from .conftest import WorkerFactory

pytestmark = [pytest.mark.redis, pytest.mark.e2e]


async def recv(sock: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(await asyncio.wait_for(sock.recv(), timeout))
    return data


async def test_progress_frames_reach_the_socket_that_asked_from_a_worker_process(
    prefix: str, redis_url: str, start_worker: WorkerFactory
) -> None:
    env = {"REDIS_URL": redis_url, "TASKS_PREFIX": prefix}
    worker = start_worker(env=env)
    with uvicorn_server("tests.tasks.app:app", env=env) as port:
        async with (
            connect(f"ws://127.0.0.1:{port}/ws/tasks/r1") as asker,
            connect(f"ws://127.0.0.1:{port}/ws/tasks/r1") as other,
        ):
            hello = await recv(asker)
            assert hello["pid"] != worker.pid
            await recv(other)
            await asker.send(json.dumps({"type": "start", "n": 3, "room": "r1"}))
            started = await recv(asker)
            assert started["type"] == "started"
            frames: list[dict[str, Any]] = []
            seen_done = False
            while not frames or frames[-1].get("status") not in ("successful", "failed"):
                frame = await recv(asker)
                if frame["type"] == "done":
                    seen_done = True
                    continue
                frames.append(frame)
            assert all(f["type"] == "task_progress" for f in frames)
            assert all(f["task_id"] == started["task_id"] for f in frames)
            assert [(f["status"], f["progress"]) for f in frames] == [
                ("running", None),
                ("running", pytest.approx(1 / 3)),
                ("running", pytest.approx(2 / 3)),
                ("running", 1.0),
                ("successful", 1.0),
            ]
            assert frames[-1]["result"] == 3 and frames[-1]["task"] == "steps"
            # the task's broadcast reached the room's members; progress went to the asker only
            if not seen_done:
                assert (await recv(asker))["type"] == "done"
            assert await recv(other) == {"type": "done", "n": 3}
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(other.recv(), 0.3)
