"""Redis restarted while a worker runs tasks: nothing Redis acknowledged is lost.

A private redis-server with append-only persistence (fsync always) is killed with
SIGKILL mid-run and started again on the same port; every task that was enqueued before
(its XADD answered) still finishes, on the same worker, which reconnects by itself.
"""

from __future__ import annotations

import asyncio

import pytest
import redis

from rtframe.tasks import TaskHandle
from tests.layers.redis_servers import redis_server
from tests.tasks import app as task_app

from .conftest import WorkerFactory

pytestmark = pytest.mark.redis


async def result_across_outage(handle: TaskHandle[str]) -> str:
    """The result, reading again when this client's pooled connection died with Redis."""
    for _ in range(50):
        try:
            return await handle.result(timeout=30)
        except redis.ConnectionError:
            await asyncio.sleep(0.1)
    raise AssertionError("Redis did not come back")


async def test_enqueued_tasks_survive_a_redis_restart(
    prefix: str, start_worker: WorkerFactory
) -> None:
    with redis_server("--appendonly", "yes", "--appendfsync", "always") as server:
        env = {"REDIS_URL": server.url, "TASKS_PREFIX": prefix, "TASKS_IDLE": "2"}
        worker = start_worker("tests.tasks.app:tasks", "--concurrency", "2", env=env)
        client = task_app.client(server.url, prefix)
        pause = client.tasks["pause"]  # no Redis of its own: only rtframe's writes can fail
        handles = [await pause.aenqueue(f"t{i}", seconds=0.1) for i in range(30)]
        await asyncio.sleep(0.4)  # some ran, some run now, most wait
        server.kill()
        await asyncio.sleep(1.0)
        server.start()
        try:
            results = [await result_across_outage(h) for h in handles]
        except Exception as exc:
            raise AssertionError(f"{exc!r}; the worker said:\n{worker.output}") from exc
        assert results == [f"t{i}" for i in range(30)]
        assert worker.proc.poll() is None  # it reconnected rather than died
        assert "lost its broker" in worker.output
        await client.shutdown()
