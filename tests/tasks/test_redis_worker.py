"""Tasks on Redis Streams with real `rtframe worker` processes (the shared Redis, a key
prefix per test): results, takeover of a SIGKILLed worker's task, retries with backoff
into the dead-letter stream, delays, graceful stop, sync enqueue."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import AsyncIterator

import pytest
import redis

from rtframe.tasks import TaskFailedError, Tasks, TaskStatus
from tests.tasks import app as task_app

from .conftest import WorkerFactory

pytestmark = pytest.mark.redis


@pytest.fixture
async def client(redis_url: str, prefix: str) -> AsyncIterator[Tasks]:
    made = task_app.client(redis_url, prefix)
    yield made
    await made.shutdown()


def marks(redis_url: str, prefix: str, kind: str, key: str) -> list[str]:
    with redis.Redis.from_url(redis_url) as r:
        return [v.decode() for v in r.lrange(f"{prefix}:{kind}:{key}", 0, -1)]


async def until(probe, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


async def test_a_worker_runs_a_task_and_its_result_is_readable_anywhere(
    client: Tasks, prefix: str, redis_url: str, start_worker: WorkerFactory
) -> None:
    start_worker(env={"REDIS_URL": redis_url, "TASKS_PREFIX": prefix})
    handle = await client.tasks["slow"].aenqueue("a", seconds=0)
    assert await handle.result(timeout=10) == "a"
    info = await client.handle(handle.id).info()
    assert info.status is TaskStatus.SUCCESSFUL
    assert info.attempts == 1 and info.arguments == {"key": "a", "seconds": 0.0}
    assert info.enqueued_at and info.started_at and info.finished_at
    assert info.enqueued_at <= info.started_at <= info.finished_at
    # an acknowledged message is deleted: the stream does not grow with finished work
    # (acknowledged just after its result is saved, so a moment after it is readable)
    with redis.Redis.from_url(redis_url) as r:
        await until(lambda: r.xlen(f"{prefix}:default") == 0, 5, "the message's deletion")


async def test_bad_arguments_fail_in_the_caller_and_nothing_is_enqueued(
    client: Tasks, prefix: str, redis_url: str
) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        await client.tasks["slow"].aenqueue("a", seconds=-1)
    with pytest.raises(TypeError):
        await client.tasks["slow"].aenqueue("a", 1, 2)
    with redis.Redis.from_url(redis_url) as r:
        assert r.exists(f"{prefix}:default") == 0


def hold(redis_url: str, prefix: str, *keys: str) -> None:
    """Keep the `held` tasks of `keys` running until `release`."""
    with redis.Redis.from_url(redis_url) as r:
        for key in keys:
            r.set(f"{prefix}:hold:{key}", 1)


def release(redis_url: str, prefix: str, *keys: str) -> None:
    with redis.Redis.from_url(redis_url) as r:
        r.delete(*(f"{prefix}:hold:{key}" for key in keys))


def pids(redis_url: str, prefix: str, kind: str, key: str) -> list[str]:
    return [m.split()[0] for m in marks(redis_url, prefix, kind, key)]


async def test_a_sigkilled_workers_task_is_finished_by_another_within_the_bound(
    client: Tasks, prefix: str, redis_url: str, start_worker: WorkerFactory
) -> None:
    idle = 1.5
    env = {"REDIS_URL": redis_url, "TASKS_PREFIX": prefix, "TASKS_IDLE": str(idle)}
    # held until released below: a timed task could end before the kill when starting
    # the second worker is slow (a loaded machine), and then nothing is left to take over
    hold(redis_url, prefix, "k")
    first = start_worker(env=env)
    handle = await client.tasks["held"].aenqueue("k")
    await until(lambda: marks(redis_url, prefix, "started", "k"), 10, "the first start")
    second = start_worker(env=env)
    # well past idle_timeout: the live first worker renews its task, nobody takes it over
    await asyncio.sleep(2 * idle + 0.5)
    assert pids(redis_url, prefix, "started", "k") == [str(first.pid)]
    assert not marks(redis_url, prefix, "done", "k")
    first.kill()
    killed_at = time.time()
    # the documented bound: idle_timeout plus one read block (2 s); 3 s of slack for a
    # busy machine
    bound = idle + 2.0 + 3.0
    try:
        await until(lambda: len(marks(redis_url, prefix, "started", "k")) == 2, bound, "takeover")
    except AssertionError:
        raise AssertionError(f"no takeover within {bound}s:\n{second.output}") from None
    again = marks(redis_url, prefix, "started", "k")[1].split()
    assert again[0] == str(second.pid)
    assert float(again[1]) - killed_at <= bound
    release(redis_url, prefix, "k")
    assert await handle.result(timeout=15) == "k"
    assert pids(redis_url, prefix, "done", "k") == [str(second.pid)]
    assert "taking over task message" in second.output


async def test_messages_a_busy_worker_read_ahead_stay_with_it_while_it_lives(
    client: Tasks, prefix: str, redis_url: str, start_worker: WorkerFactory
) -> None:
    idle = 1.5
    env = {"REDIS_URL": redis_url, "TASKS_PREFIX": prefix, "TASKS_IDLE": str(idle)}
    hold(redis_url, prefix, "a", "b", "c")
    first = start_worker("tests.tasks.app:tasks", "--concurrency", "2", env=env)
    held = client.tasks["held"]
    handles = [await held.aenqueue(key) for key in ("a", "b")]
    for key in ("a", "b"):
        await until(lambda k=key: marks(redis_url, prefix, "started", k), 10, f"{key} started")
    # both slots busy: "c" and "d" wait in the stream, until "a" ends and frees a slot;
    # then one read takes both, "c" starts and "d" waits inside the first worker
    handles += [await held.aenqueue("c"), await client.tasks["slow"].aenqueue("d", seconds=0)]
    release(redis_url, prefix, "a")
    await until(lambda: marks(redis_url, prefix, "started", "c"), 10, "c started")
    second = start_worker(env=env)
    await asyncio.sleep(2 * idle + 2.5)  # past the takeover bound
    assert pids(redis_url, prefix, "started", "d") == [], second.output
    release(redis_url, prefix, "b", "c")
    assert [await h.result(timeout=10) for h in handles] == ["a", "b", "c", "d"]
    assert pids(redis_url, prefix, "started", "d") == [str(first.pid)]
    assert "taking over" not in second.output


async def test_a_task_that_always_fails_ends_in_the_dead_letter_stream_after_backoff(
    client: Tasks, prefix: str, redis_url: str, start_worker: WorkerFactory
) -> None:
    start_worker(env={"REDIS_URL": redis_url, "TASKS_PREFIX": prefix})
    handle = await client.tasks["fails"].aenqueue("x")
    with pytest.raises(TaskFailedError) as failed:
        await handle.result(timeout=15)
    info = failed.value.info
    assert info.status is TaskStatus.FAILED and info.attempts == 3
    assert info.error_type == "builtins.RuntimeError" and info.error == "x always fails"
    assert "RuntimeError" in (info.traceback or "")
    tries = [float(t) for t in marks(redis_url, prefix, "tries", "x")]
    assert len(tries) == 3
    gaps = [b - a for a, b in itertools.pairwise(tries)]
    assert gaps[0] >= 0.3 and gaps[1] >= 0.6, gaps  # Backoff(base=0.3, factor=2, jitter=0)
    letters = await client.broker.dead_letters(client.queue_key("default"))  # type: ignore[attr-defined]
    assert [(d.task_id, d.name, d.attempts, d.error_type) for d in letters] == [
        (handle.id, "fails", 3, "builtins.RuntimeError")
    ]
    assert b'"fails"' in letters[0].message


async def test_a_delayed_task_waits_for_its_time(
    client: Tasks, prefix: str, redis_url: str, start_worker: WorkerFactory
) -> None:
    start_worker(env={"REDIS_URL": redis_url, "TASKS_PREFIX": prefix})
    enqueued = time.time()
    handle = await client.tasks["slow"].using(delay=1.0).aenqueue("late", seconds=0)
    await asyncio.sleep(0.6)
    assert await handle.status() is TaskStatus.READY
    assert await handle.result(timeout=10) == "late"
    began = float(marks(redis_url, prefix, "started", "late")[0].split()[1])
    assert 1.0 <= began - enqueued < 2.0


async def test_sigterm_lets_the_running_task_finish_and_leaves_the_rest_to_others(
    client: Tasks, prefix: str, redis_url: str, start_worker: WorkerFactory
) -> None:
    env = {"REDIS_URL": redis_url, "TASKS_PREFIX": prefix}
    first = start_worker("tests.tasks.app:tasks", "--concurrency", "1", env=env)
    running = await client.tasks["slow"].aenqueue("running", seconds=1.5)
    await until(lambda: marks(redis_url, prefix, "started", "running"), 10, "the start")
    waiting = await client.tasks["slow"].aenqueue("waiting", seconds=0)
    await asyncio.sleep(0.2)
    status = await asyncio.to_thread(first.terminate, 20)
    assert status == 0, first.output
    assert await running.result(timeout=1) == "running"  # finished before the worker left
    assert await waiting.status() is TaskStatus.READY  # not taken: left for others
    second = start_worker(env=env)
    assert await waiting.result(timeout=10) == "waiting"
    assert marks(redis_url, prefix, "done", "waiting")[0].split()[0] == str(second.pid)


def test_sync_enqueue_from_a_thread_without_a_loop(
    prefix: str, redis_url: str, start_worker: WorkerFactory
) -> None:
    start_worker(env={"REDIS_URL": redis_url, "TASKS_PREFIX": prefix})
    tasks = task_app.client(redis_url, prefix)
    results: list[object] = []

    def view() -> None:  # what a Django view or a management command does
        handle = tasks.tasks["slow"].enqueue("sync", seconds=0)
        results.append(handle.result_sync(timeout=10))
        results.append(handle.info_sync().status)

    thread = threading.Thread(target=view)
    thread.start()
    thread.join(20)
    assert results == ["sync", TaskStatus.SUCCESSFUL]
    asyncio.run(tasks.shutdown())
