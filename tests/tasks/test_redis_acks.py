"""Acknowledgement on Redis Streams, with the worker in this process (`run_worker`) so a
test can make one step fail: a message is acknowledged only once its run's outcome is
saved; otherwise it is released and runs again, never acknowledged without a result nor
held by a live worker for good."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import redis
from taskiq import TaskiqResult
from taskiq.message import BrokerMessage
from taskiq.serializers import JSONSerializer
from taskiq_redis import RedisAsyncResultBackend

from rtframe.tasks import Backoff, Tasks
from rtframe.tasks.redis import StreamBroker
from rtframe.tasks.worker import run_worker

pytestmark = pytest.mark.redis

IDLE = 0.5  # seconds: the takeover comes within IDLE plus one 2 s read


class RefusingResults(RedisAsyncResultBackend[Any]):
    """Refuses the first result, as Redis does while it restarts."""

    refused = 0

    async def set_result(self, task_id: str, result: TaskiqResult[Any]) -> None:
        if not self.refused:
            self.refused += 1
            raise redis.ConnectionError("Redis is restarting")
        await super().set_result(task_id, result)


class RefusingRetries(StreamBroker):
    """Refuses to enqueue the first retry (a delayed message), as Redis restarting does."""

    refused = 0

    async def kick(self, message: BrokerMessage) -> None:
        if message.labels.get("delay") and not self.refused:
            self.refused += 1
            raise redis.ConnectionError("Redis is restarting")
        await super().kick(message)


def make_tasks(
    url: str, prefix: str, broker_type: type[StreamBroker] = StreamBroker
) -> tuple[Tasks, RefusingResults]:
    backend = RefusingResults(url, serializer=JSONSerializer(), prefix_str=f"{prefix}:result")
    broker = broker_type(
        url, queue_name=f"{prefix}:default", idle_timeout=int(IDLE * 1000), poll_interval=0.05
    )
    return Tasks(broker.with_result_backend(backend), prefix=prefix), backend


@asynccontextmanager
async def worker(tasks: Tasks) -> AsyncIterator[None]:
    stop = asyncio.Event()
    running = asyncio.create_task(run_worker(tasks, concurrency=2, grace=1, stop=stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(running, 10)
        await tasks.shutdown()


def stream_length(url: str, key: str) -> int:
    with redis.Redis.from_url(url) as r:
        return int(r.xlen(key))


async def test_a_run_whose_result_was_not_saved_is_not_acknowledged_and_runs_again(
    prefix: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    tasks, backend = make_tasks(redis_url, prefix)
    runs: list[int] = []

    @tasks.task(name="double")
    async def double(n: int) -> int:
        runs.append(n)
        return 2 * n

    with caplog.at_level(logging.WARNING, logger="rtframe.tasks"):
        async with worker(tasks):
            handle = await double.aenqueue(21)
            # the takeover comes after IDLE and one 2 s read; 20 s spare for a loaded CI
            assert await handle.result(timeout=IDLE + 2 + 20) == 42
            info = await handle.info()
    # acknowledged after the failed save, the task would be done with no result and a
    # record left RUNNING; released instead, it ran again and its outcome was saved
    assert backend.refused == 1 and runs == [21, 21]
    assert info.status.value == "successful"
    assert "is not acknowledged: its run's outcome was not saved" in caplog.text
    assert stream_length(redis_url, tasks.queue_key("default")) == 0


async def test_a_retry_that_could_not_be_enqueued_leaves_the_message_to_run_again(
    prefix: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    tasks, backend = make_tasks(redis_url, prefix, RefusingRetries)
    backend.refused = 1  # results are saved: only the retry's enqueue fails
    runs: list[int] = []

    @tasks.task(name="second_time", retries=1, backoff=Backoff(base=0.01))
    async def second_time(n: int) -> int:
        runs.append(n)
        if len(runs) == 1:
            raise RuntimeError("first run fails")
        return n

    broker: Any = tasks.broker
    with caplog.at_level(logging.WARNING, logger="rtframe.tasks"):
        async with worker(tasks):
            handle = await second_time.aenqueue(7)
            # the first run failed and its retry could not be sent: the message, neither
            # acknowledged nor renewed, is taken over (here, by the same worker)
            assert await handle.result(timeout=IDLE + 2 + 20) == 7
            assert sum(len(ids) for ids in broker.held.values()) == 0
    assert broker.refused == 1 and runs == [7, 7]
    assert "handling a task message failed" in caplog.text
    assert "taking over task message" in caplog.text
    assert stream_length(redis_url, tasks.queue_key("default")) == 0


class AbsorbingChores(StreamBroker):
    """A chore that swallows the first cancel, as a Redis command interrupted mid-reply can."""

    chores_run = 0
    absorbed = False
    running: asyncio.Event

    async def move_due(self) -> int:
        self.chores_run += 1
        self.running.set()
        try:
            await asyncio.sleep(0.2)
        except asyncio.CancelledError:
            if self.absorbed:
                raise
            self.absorbed = True
        return 0


async def test_shutdown_ends_the_chores_even_when_a_command_absorbs_the_cancel(
    redis_url: str, prefix: str
) -> None:
    broker = AbsorbingChores(
        redis_url, queue_name=f"{prefix}:default", idle_timeout=10_000, poll_interval=0.01
    )
    broker.is_worker_process = True
    broker.running = asyncio.Event()
    await broker.startup()
    await asyncio.wait_for(broker.running.wait(), 5)
    # a cancel alone would leave the loop going, and shutdown waiting for it
    stopping = asyncio.ensure_future(broker.shutdown())
    done, _ = await asyncio.wait({stopping}, timeout=5)
    assert stopping in done, "shutdown is still waiting for the chores"
    runs = broker.chores_run
    await asyncio.sleep(0.3)
    assert broker.chores_run == runs  # and nothing runs after it
