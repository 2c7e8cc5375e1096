"""`rtframe worker --http-port`: /healthz, /readyz and /metrics of real worker processes on
real Redis (the shared one, or a private redis-server the test kills and restarts), and
the answers themselves (`rtframe.tasks.health.answer`, the exposition) as units."""

from __future__ import annotations

import asyncio
import http.client
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable

import pytest
import redis

from rtframe.cli import _worker_metrics, build_parser
from rtframe.metrics import worker_exposition
from rtframe.tasks import Tasks
from rtframe.tasks.health import METRICS_MISSING, answer
from rtframe.tasks.stats import WorkerState, WorkerStats
from rtframe.tasks.worker import run_worker
from tests.layers.redis_servers import redis_server
from tests.servers import ROOT
from tests.tasks import app as task_app

from .conftest import Worker, WorkerFactory

WORKER = (sys.executable, "-m", "rtframe", "worker")


@pytest.fixture
async def client(redis_url: str, prefix: str) -> AsyncIterator[Tasks]:
    made = task_app.client(redis_url, prefix)
    yield made
    await made.shutdown()


def health_url(worker: Worker) -> str:
    """The address the worker printed on its ready line (it was given --http-port 0)."""
    for line in worker.lines:
        found = re.search(r"health and metrics on (http://\S+)", line)
        if found:
            return found.group(1)
    raise AssertionError(f"no health address in the worker's output:\n{worker.output}")


def get(base: str, path: str) -> tuple[int, str]:
    host, port = base.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read().decode()
    finally:
        conn.close()


async def aget(base: str, path: str) -> tuple[int, str]:
    return await asyncio.to_thread(get, base, path)


def samples(text: str) -> dict[str, float]:
    """`name{labels}` -> value, from Prometheus text (labels as written, sorted by name)."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


async def until(probe: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


async def until_status(base: str, path: str, status: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        got, body = await aget(base, path)
        if got == status:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} stayed {got} ({body!r}), not {status}, for {timeout}s")
        await asyncio.sleep(0.05)


def hold(url: str, prefix: str, key: str) -> None:
    with redis.Redis.from_url(url) as r:
        r.set(f"{prefix}:hold:{key}", 1)


def release(url: str, prefix: str, key: str) -> None:
    with redis.Redis.from_url(url) as r:
        r.delete(f"{prefix}:hold:{key}")


def started(url: str, prefix: str, key: str) -> list[bytes]:
    with redis.Redis.from_url(url) as r:
        return list(r.lrange(f"{prefix}:started:{key}", 0, -1))


# -- real worker processes -------------------------------------------------------------


@pytest.mark.redis
async def test_a_ready_worker_counts_successes_failures_retries_and_dead_letters(
    client: Tasks, prefix: str, redis_url: str, start_worker: WorkerFactory
) -> None:
    env = {"REDIS_URL": redis_url, "TASKS_PREFIX": prefix}
    worker = start_worker(
        "tests.tasks.app:tasks", "--concurrency", "3", "--http-port", "0", env=env
    )
    base = health_url(worker)
    assert await aget(base, "/healthz") == (200, "alive\n")
    assert await aget(base, "/readyz") == (200, "ready\n")
    before = samples((await aget(base, "/metrics"))[1])
    assert before["rtframe_worker_concurrency"] == 3
    assert before["rtframe_worker_ready"] == 1
    assert not any(k.startswith("rtframe_tasks_received_total{") for k in before)

    ok = [await client.tasks["pause"].aenqueue(f"p{i}", seconds=0) for i in range(2)]
    bad = await client.tasks["fails"].aenqueue("f")  # retries=2: three attempts, then dead
    assert [await h.result(timeout=15) for h in ok] == ["p0", "p1"]
    with pytest.raises(Exception, match="always fails"):
        await bad.result(timeout=15)

    status, text = await aget(base, "/metrics")
    assert status == 200
    after = samples(text)
    pause, fails = '{queue="default",task="pause"}', '{queue="default",task="fails"}'
    assert after["rtframe_tasks_received_total" + pause] == 2
    assert after["rtframe_tasks_started_total" + pause] == 2
    assert after["rtframe_tasks_succeeded_total" + pause] == 2
    assert after["rtframe_tasks_received_total" + fails] == 3
    assert after["rtframe_tasks_started_total" + fails] == 3
    assert after["rtframe_tasks_retried_total" + fails] == 2
    assert after["rtframe_tasks_failed_total" + fails] == 1
    assert after["rtframe_tasks_dead_lettered_total" + fails] == 1
    assert "rtframe_tasks_succeeded_total" + fails not in after
    assert after["rtframe_task_duration_seconds_count" + fails] == 3
    assert after["rtframe_task_duration_seconds_count" + pause] == 2
    assert after["rtframe_tasks_running"] == 0
    assert after["rtframe_worker_broker_losses_total"] == 0
    assert "# TYPE rtframe_task_duration_seconds histogram" in text


@pytest.mark.redis
async def test_readyz_is_503_while_its_redis_is_down_and_200_once_it_is_back(
    prefix: str, start_worker: WorkerFactory
) -> None:
    with redis_server() as server:
        env = {"REDIS_URL": server.url, "TASKS_PREFIX": prefix}
        worker = start_worker("tests.tasks.app:tasks", "--http-port", "0", env=env)
        base = health_url(worker)
        assert (await aget(base, "/readyz"))[0] == 200
        server.kill()
        body = await until_status(base, "/readyz", 503, 10)
        assert body.startswith("not ready: broker disconnected:")
        assert (await aget(base, "/healthz"))[0] == 200  # alive all the same: do not restart it
        down = samples((await aget(base, "/metrics"))[1])
        assert down["rtframe_worker_ready"] == 0
        assert down["rtframe_worker_broker_losses_total"] >= 1
        server.start()
        await until_status(base, "/readyz", 200, 15)
        up = samples((await aget(base, "/metrics"))[1])
        assert up["rtframe_worker_broker_reconnects_total"] >= 1
        assert up["rtframe_worker_ready"] == 1
        # it takes tasks again, and counts them
        client = task_app.client(server.url, prefix)
        try:
            handle = await client.tasks["pause"].aenqueue("after", seconds=0)
            assert await handle.result(timeout=15) == "after"
        finally:
            await client.shutdown()
        assert worker.proc.poll() is None


@pytest.mark.redis
async def test_readyz_is_503_during_the_sigterm_grace_while_a_task_runs(
    client: Tasks, prefix: str, redis_url: str, start_worker: WorkerFactory
) -> None:
    env = {"REDIS_URL": redis_url, "TASKS_PREFIX": prefix}
    worker = start_worker("tests.tasks.app:tasks", "--http-port", "0", "--grace", "30", env=env)
    base = health_url(worker)
    hold(redis_url, prefix, "g")
    handle = await client.tasks["held"].aenqueue("g")
    await until(lambda: started(redis_url, prefix, "g"), 10, "the task's start")
    assert samples((await aget(base, "/metrics"))[1])["rtframe_tasks_running"] == 1
    worker.proc.send_signal(signal.SIGTERM)
    body = await until_status(base, "/readyz", 503, 10)
    assert body.startswith("not ready: draining")
    assert worker.proc.poll() is None  # still finishing its task
    during = samples((await aget(base, "/metrics"))[1])
    assert during["rtframe_worker_draining"] == 1
    assert during["rtframe_tasks_running"] == 1
    release(redis_url, prefix, "g")
    try:
        assert await asyncio.to_thread(worker.proc.wait, 20) == 0, worker.output
    except subprocess.TimeoutExpired:
        raise AssertionError(f"the worker did not stop:\n{worker.output}") from None
    assert await handle.result(timeout=5) == "g"


@pytest.mark.redis
async def test_a_taken_over_message_is_counted_by_the_worker_that_took_it(
    client: Tasks, prefix: str, redis_url: str, start_worker: WorkerFactory
) -> None:
    env = {"REDIS_URL": redis_url, "TASKS_PREFIX": prefix, "TASKS_IDLE": "1"}
    hold(redis_url, prefix, "t")
    first = start_worker(env=env)
    handle = await client.tasks["held"].aenqueue("t")
    await until(lambda: started(redis_url, prefix, "t"), 10, "the first start")
    second = start_worker("tests.tasks.app:tasks", "--http-port", "0", env=env)
    base = health_url(second)
    first.kill()
    await until(lambda: len(started(redis_url, prefix, "t")) == 2, 15, "the takeover")
    release(redis_url, prefix, "t")
    assert await handle.result(timeout=15) == "t"
    after = samples((await aget(base, "/metrics"))[1])
    assert after["rtframe_tasks_taken_over_total"] == 1
    assert after['rtframe_tasks_succeeded_total{queue="default",task="held"}'] == 1


@pytest.mark.redis
def test_a_port_in_use_is_a_clear_error_with_exit_code_2(prefix: str, redis_url: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [*WORKER, "tests.tasks.app:tasks", "--http-port", str(port)],
            cwd=ROOT,
            env={**os.environ, "REDIS_URL": redis_url, "TASKS_PREFIX": prefix},
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2, done.stderr
    assert f"127.0.0.1:{port}: the port is in use" in done.stderr
    assert "choose another --http-port" in done.stderr
    assert "rtframe worker: ready" not in done.stdout  # it stopped before starting anything


@pytest.mark.redis
async def test_without_an_exposition_metrics_answers_501_and_a_warning_says_so(
    prefix: str,
    redis_url: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    tasks = Tasks.redis(redis_url, prefix=prefix, poll_interval=0.05)

    @tasks.task(name="noop")
    async def noop() -> None: ...

    stop = asyncio.Event()
    caplog.set_level(logging.WARNING, "rtframe.tasks")
    running = asyncio.create_task(run_worker(tasks, stop=stop, http_port=0, metrics=None))
    out = ""

    def ready() -> bool:
        nonlocal out
        out += capsys.readouterr().out
        return "rtframe worker: ready" in out

    try:
        await until(ready, 20, "the worker's start")
        assert METRICS_MISSING in caplog.text
        base = re.search(r"health and metrics on (http://\S+)", out)
        assert base is not None
        status, body = await aget(base.group(1), "/metrics")
        assert status == 501
        assert "pip install 'rtframe[metrics]'" in body
        assert (await aget(base.group(1), "/readyz"))[0] == 200
    finally:
        stop.set()
        await asyncio.wait_for(running, 30)


# -- the answers, as units --------------------------------------------------------------


def test_metrics_answers_501_with_what_to_install_without_an_exposition() -> None:
    state = WorkerState(WorkerStats(), 4)
    state.started = True
    status, content_type, body = answer("GET", "/metrics", state, None)
    assert status == 501
    assert content_type.startswith("text/plain")
    assert b"pip install 'rtframe[metrics]'" in body


def test_readiness_says_why_it_is_not_ready() -> None:
    stats = WorkerStats()
    state = WorkerState(stats, 4)
    assert answer("GET", "/readyz", state, None)[0:3:2] == (
        503,
        b"not ready: starting: the app and the broker are not started yet\n",
    )
    state.started = True
    assert answer("GET", "/readyz?verbose", state, None)[0] == 200
    state.broker_down("ConnectionError: refused")
    state.broker_down("ConnectionError: refused")  # one loss, however often it is seen
    status, _, body = answer("GET", "/readyz", state, None)
    assert (status, body) == (503, b"not ready: broker disconnected: ConnectionError: refused\n")
    assert stats.broker_losses == 1
    state.broker_up()
    state.broker_up()
    assert answer("GET", "/readyz", state, None)[0] == 200
    assert stats.reconnects == 1
    state.draining = True
    assert answer("GET", "/readyz", state, None)[2].startswith(b"not ready: draining")
    assert answer("GET", "/healthz", state, None)[0] == 200  # alive while it drains


def test_other_methods_and_paths_are_refused() -> None:
    state = WorkerState(WorkerStats(), 1)
    assert answer("POST", "/readyz", state, None)[0] == 405
    assert answer("GET", "/", state, None)[0] == 404


def test_a_failing_exposition_answers_500_with_its_error() -> None:
    def broken() -> tuple[str, bytes]:
        raise RuntimeError("registry gone")

    status, _, body = answer("GET", "/metrics", WorkerState(WorkerStats(), 1), broken)
    assert status == 500
    assert b"RuntimeError: registry gone" in body


def test_the_exposition_reads_the_counters_at_each_scrape() -> None:
    stats = WorkerStats()
    state = WorkerState(stats, 2)
    expose = worker_exposition(state)
    content_type, first = expose()
    assert content_type.startswith("text/plain; version=")
    assert 'rtframe_tasks_received_total{queue="mail",task="send"}' not in first.decode()
    stats.received[("send", "mail")] = 5
    stats.observe(("send", "mail"), 0.3)
    stats.running = 1
    values = samples(expose()[1].decode())
    assert values['rtframe_tasks_received_total{queue="mail",task="send"}'] == 5
    assert values['rtframe_task_duration_seconds_bucket{le="0.5",queue="mail",task="send"}'] == 1
    assert values['rtframe_task_duration_seconds_bucket{le="0.25",queue="mail",task="send"}'] == 0
    assert values["rtframe_tasks_running"] == 1
    assert values["rtframe_worker_ready"] == 0  # never started


def test_the_cli_takes_a_port_and_finds_the_exposition() -> None:
    args = build_parser().parse_args(["worker", "m:tasks", "--http-port", "9100"])
    assert (args.http_port, args.http_host) == (9100, "127.0.0.1")
    assert build_parser().parse_args(["worker", "m:tasks"]).http_port is None
    assert _worker_metrics() is worker_exposition  # prometheus_client is installed here
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["worker", "m:tasks", "--http-port", "70000"])
    assert exited.value.code == 2
