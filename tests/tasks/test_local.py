"""The in-process engine (no Redis): the same behaviour as on Redis, in the serving
process; and the errors a misuse gets."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Literal

import pytest
from pydantic import BaseModel, ValidationError
from taskiq.brokers.inmemory_broker import InmemoryResultBackend
from taskiq.depends.progress_tracker import TaskProgress

from rtframe import Connection, RealtimeApp, WebSocketRouter
from rtframe._loader import CommandError
from rtframe.exceptions import ConfigurationError, RtframeError
from rtframe.tasks import (
    Backoff,
    TaskFailedError,
    TaskNotFoundError,
    Tasks,
    TaskStatus,
    current_task,
)
from rtframe.tasks.local import LocalBroker
from rtframe.tasks.worker import load_tasks, run_worker
from rtframe.testing import TestClient


class Summary(BaseModel):
    words: int


async def test_a_task_runs_in_process_with_validated_arguments_and_result() -> None:
    tasks = Tasks()

    @tasks.task
    async def count(text: str, bonus: int = 0) -> Summary:
        await current_task().progress(0.5)
        return Summary(words=len(text.split()) + bonus)

    handle = await count.aenqueue("a b c", bonus="1")  # type: ignore[arg-type]
    assert await handle.result(timeout=2) == Summary(words=4)
    info = await handle.info()
    assert (info.status, info.progress, info.attempts) == (TaskStatus.SUCCESSFUL, 0.5, 1)
    assert info.arguments == {"text": "a b c", "bonus": 1}
    with pytest.raises(ValidationError):
        await count.aenqueue("x", bonus="many")  # type: ignore[arg-type]
    with pytest.raises(TaskNotFoundError):
        await tasks.handle("nope").info()
    await tasks.shutdown()


async def test_failures_are_retried_with_backoff_then_dead_lettered() -> None:
    tasks = Tasks()
    tries: list[float] = []

    @tasks.task(retries=2, backoff=Backoff(base=0.05, factor=2, jitter=0))
    async def flaky(key: str) -> None:
        tries.append(time.monotonic())
        raise RuntimeError(f"{key} broke")

    handle = await flaky.aenqueue("k")
    with pytest.raises(TaskFailedError) as failed:
        await handle.result(timeout=3)
    assert failed.value.info.attempts == 3
    assert failed.value.info.error == "k broke"
    assert tries[1] - tries[0] >= 0.05 and tries[2] - tries[1] >= 0.1
    letters = await tasks.broker.dead_letters(tasks.queue_key("default"))  # type: ignore[attr-defined]
    assert [(d.task_id, d.attempts) for d in letters] == [(handle.id, 3)]
    await tasks.shutdown()


async def test_a_task_that_recovers_on_a_retry_succeeds() -> None:
    tasks = Tasks()
    seen: list[int] = []

    @tasks.task(retries=3, backoff=Backoff(base=0.01))
    async def second_time_lucky() -> int:
        seen.append(current_task().attempt)
        if len(seen) < 2:
            raise ConnectionError("flaky")
        return current_task().attempt

    assert await (await second_time_lucky.aenqueue()).result(timeout=2) == 2
    assert seen == [1, 2]
    await tasks.shutdown()


class RestartingRecords(InmemoryResultBackend[Any]):
    """A record store that refuses one write, as Redis does while it restarts."""

    refused = 0

    async def set_progress(self, task_id: str, progress: TaskProgress[Any]) -> None:
        if progress.state == "running" and not self.refused:
            self.refused += 1
            raise ConnectionError("the record store is restarting")
        await super().set_progress(task_id, progress)


async def test_a_failed_start_record_warns_and_the_task_still_runs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    records = RestartingRecords()
    tasks = Tasks(LocalBroker().with_result_backend(records))
    runs: list[int] = []

    @tasks.task(name="work")
    async def work(n: int) -> int:
        runs.append(current_task().attempt)
        return n * 2

    with caplog.at_level(logging.WARNING, logger="rtframe.tasks"):
        handle = await work.aenqueue(21)
        assert await handle.result(timeout=2) == 42
    assert records.refused == 1 and runs == [1]
    info = await handle.info()
    assert (info.status, info.attempts) == (TaskStatus.SUCCESSFUL, 1)
    assert info.started_at is not None
    assert "could not record that task work" in caplog.text
    assert "the record store is restarting" in caplog.text
    await tasks.shutdown()


async def test_delays_eta_and_sync_functions() -> None:
    from datetime import UTC, datetime, timedelta

    tasks = Tasks()

    @tasks.task
    def blocking(x: int) -> int:  # a sync task runs in a thread
        time.sleep(0.01)
        return x * 2

    start = time.monotonic()
    later = await blocking.using(delay=0.2).aenqueue(2)
    at = await blocking.using(eta=datetime.now(UTC) + timedelta(seconds=0.2)).aenqueue(3)
    await asyncio.sleep(0.1)
    assert await later.status() is TaskStatus.READY
    assert await later.result(timeout=2) == 4 and await at.result(timeout=2) == 6
    assert time.monotonic() - start >= 0.2
    with pytest.raises(ConfigurationError):
        blocking.using(delay=1, eta=datetime.now(UTC))
    with pytest.raises(ConfigurationError):
        blocking.using(eta=datetime.now())  # naive
    await tasks.shutdown()


async def test_sync_enqueue_from_a_thread_runs_on_the_serving_loop() -> None:
    tasks = Tasks()

    @tasks.task
    async def double(x: int) -> int:
        return 2 * x

    await tasks.startup()
    got: list[object] = []

    def view() -> None:
        handle = double.enqueue(21)
        got.append(handle.result_sync(timeout=2))

    await asyncio.to_thread(view)  # a thread of its own, as a sync view under ASGI
    assert got == [42]
    with pytest.raises(RtframeError, match="would block"):
        double.enqueue(1)  # on the loop itself
    await tasks.shutdown()


def test_sync_enqueue_with_no_loop_at_all_needs_a_shared_engine() -> None:
    tasks = Tasks()

    @tasks.task
    async def noop() -> None:
        return None

    with pytest.raises(RtframeError, match="serving process"):
        noop.enqueue()


class Go(BaseModel):
    type: Literal["go"] = "go"


async def test_progress_frames_reach_the_connection_in_process() -> None:
    ws = WebSocketRouter()
    app = RealtimeApp()
    tasks = Tasks(app=app)

    @tasks.task(name="work")
    async def work() -> str:
        await current_task().progress(0.25)
        return "ok"

    @ws.route("/ws")
    async def join(conn: Connection) -> None:
        await conn.accept()

    @ws.on_receive("/ws")
    async def go(msg: Go, conn: Connection) -> None:
        await work.using(notify=conn).aenqueue()

    app.include_router(ws)
    async with TestClient(app) as client, client.websocket("/ws") as sock:
        await sock.send_json({"type": "go"})
        frames = [await sock.receive_json(timeout=2) for _ in range(3)]
    assert [(f["status"], f["progress"], f.get("result")) for f in frames] == [
        ("running", None, None),
        ("running", 0.25, None),
        ("successful", 0.25, "ok"),
    ]
    assert {f["type"] for f in frames} == {"task_progress"}


async def test_notify_without_an_app_is_a_warning_not_a_silent_drop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    tasks = Tasks()

    @tasks.task
    async def quiet() -> int:
        return 1

    with caplog.at_level(logging.WARNING, logger="rtframe.tasks"):
        assert await (await quiet.using(notify="conn-1").aenqueue()).result(timeout=2) == 1
    assert "no app= to send task_progress frames" in caplog.text
    with pytest.raises(ConfigurationError, match="without app="):
        await _app_of_a_task(tasks)
    await tasks.shutdown()


async def _app_of_a_task(tasks: Tasks) -> None:
    @tasks.task(name="wants_app")
    async def wants_app() -> None:
        current_task().app  # noqa: B018

    handle = await wants_app.aenqueue()
    try:
        await handle.result(timeout=2)
    except TaskFailedError as exc:
        raise ConfigurationError(exc.info.error or "") from exc


def test_misuse_is_refused_with_clear_errors() -> None:
    tasks = Tasks()

    @tasks.task(name="one")
    async def one() -> None: ...

    with pytest.raises(ConfigurationError, match="registered already"):
        tasks.task(name="one")(one.fn)
    with pytest.raises(ConfigurationError, match="cannot be validated"):

        @tasks.task
        async def varargs(*items: int) -> None: ...

    with pytest.raises(ConfigurationError):
        Backoff(factor=0.5)
    with pytest.raises(RtframeError, match="outside a task"):
        current_task()
    with pytest.raises(CommandError, match="in-process engine"):
        asyncio.run(run_worker(tasks))
    with pytest.raises(CommandError, match="expected module:attribute"):
        load_tasks("nocolon")
    with pytest.raises(CommandError, match="neither a Tasks nor an app"):
        load_tasks("tests.tasks.test_local:Summary")


async def test_waiting_for_a_result_times_out_and_outcome_reads_both_states() -> None:
    tasks = Tasks()
    release = asyncio.Event()

    @tasks.task
    async def slow() -> int:
        await release.wait()
        return 7

    handle = await slow.aenqueue()
    assert repr(handle) == f"<TaskHandle {handle.id}>"
    with pytest.raises(TimeoutError, match="is still"):
        await handle.result(timeout=0.05)
    info, value = await handle.outcome()
    assert info.status in (TaskStatus.READY, TaskStatus.RUNNING) and value is None
    release.set()
    assert await handle.result(timeout=2) == 7
    info, value = await handle.outcome()
    assert (info.status, value) == (TaskStatus.SUCCESSFUL, 7)
    await tasks.shutdown()
