"""Fixtures for the task tests: a key prefix per test, and real `rtframe worker` processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
import redis

from tests.layers.redis_servers import REDIS_URL, require_redis
from tests.servers import ROOT


@pytest.fixture
def prefix() -> Iterator[str]:
    """Keys of this test only; deleted afterwards from the shared Redis (never flushed)."""
    name = f"rtt-tasks-{uuid.uuid4().hex[:10]}"
    yield name
    try:
        with redis.Redis.from_url(REDIS_URL) as client:
            keys = list(client.scan_iter(f"{name}*", count=1000))
            if keys:
                client.delete(*keys)
    except redis.RedisError:
        pass


@pytest.fixture
def redis_url() -> str:
    require_redis()
    return REDIS_URL


class Worker:
    """A `rtframe worker` subprocess; its output is collected in `lines`."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def wait_for(self, text: str, timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in self.lines):
                return
            if self.proc.poll() is not None:
                time.sleep(0.2)  # let the reader catch the last lines
                raise AssertionError(f"worker exited ({self.proc.returncode}):\n{self.output}")
            time.sleep(0.02)
        raise AssertionError(f"worker did not print {text!r} in {timeout}s:\n{self.output}")

    def terminate(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


WorkerFactory = Callable[..., Worker]


@pytest.fixture
def start_worker() -> Iterator[WorkerFactory]:
    """Start `rtframe worker target` processes; each is stopped (or killed) afterwards."""
    made: list[Worker] = []

    def start(
        target: str = "tests.tasks.app:tasks", *args: str, env: dict[str, str] | None = None
    ) -> Worker:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rtframe", "worker", target, "--log-level", "warning", *args],
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        worker = Worker(proc)
        made.append(worker)
        worker.wait_for("rtframe worker: ready")
        return worker

    yield start
    for worker in made:
        try:
            worker.terminate(15)
        except subprocess.TimeoutExpired:
            worker.kill()
        worker.close()


@contextmanager
def env_for(url: str, prefix: str, **extra: str) -> Iterator[dict[str, str]]:
    yield {"REDIS_URL": url, "TASKS_PREFIX": prefix, **extra}
