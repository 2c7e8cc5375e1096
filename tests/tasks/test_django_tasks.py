"""Django's Tasks API on rtframe's engine: a `@task` enqueued from a view runs on a real
`rtframe worker` process, and its result is read back through Django's API."""

from __future__ import annotations

import importlib
import time
from collections.abc import Iterator
from typing import Any

import django
import pytest
from django.conf import settings
from django.test import RequestFactory, override_settings

from tests.tasks import django_settings

from .conftest import WorkerFactory

if not settings.configured:
    settings.configure(
        **{k: getattr(django_settings, k) for k in dir(django_settings) if k.isupper()}
    )
    django.setup()

pytestmark = pytest.mark.redis


@pytest.fixture
def jobs(
    prefix: str, redis_url: str, monkeypatch: pytest.MonkeyPatch, start_worker: WorkerFactory
) -> Iterator[Any]:
    import django_tasks
    import django_tasks.signals  # resets the backends when TASKS changes

    env = {
        "REDIS_URL": redis_url,
        "TASKS_PREFIX": prefix,
        "DJANGO_SETTINGS_MODULE": "tests.tasks.django_settings",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with override_settings(TASKS=django_settings.TASKS):
        from tests.tasks import django_app

        importlib.reload(django_app)  # this test's prefix
        module = importlib.reload(importlib.import_module("tests.tasks.django_jobs"))
        start_worker("tests.tasks.django_app:tasks", env=env)
        yield module
        backend = django_tasks.default_task_backend
        tasks = backend.tasks  # type: ignore[attr-defined]
        import asyncio

        asyncio.run(tasks.shutdown())


def wait_finished(result: Any, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while not result.is_finished:
        assert time.monotonic() < deadline, f"still {result.status} after {timeout}s"
        time.sleep(0.05)
        result.refresh()
    return result


def test_a_task_enqueued_from_a_view_runs_on_the_worker_and_its_result_is_readable(
    jobs: Any,
) -> None:
    from django_tasks import TaskResultStatus, default_task_backend

    response = jobs.start(RequestFactory().get("/start", {"a": 2, "b": 3}))
    assert response.status_code == 200
    import json

    body = json.loads(response.content)
    assert body["status"] in ("READY", "RUNNING", "SUCCESSFUL")
    result = wait_finished(jobs.add.get_result(body["id"]))
    assert result.status == TaskResultStatus.SUCCESSFUL
    assert result.return_value == 5
    assert result.args == [2, 3] and result.attempts == 1
    assert result.enqueued_at and result.started_at and result.finished_at
    assert result.enqueued_at <= result.started_at <= result.finished_at
    same = default_task_backend.get_result(body["id"])
    assert same.id == result.id and same.return_value == 5


def test_a_failing_task_is_failed_with_its_error_and_async_tasks_run(jobs: Any) -> None:
    from django_tasks import TaskResultStatus
    from django_tasks.exceptions import TaskResultDoesNotExist

    failed = wait_finished(jobs.explode.enqueue("no"))
    assert failed.status == TaskResultStatus.FAILED
    assert failed.errors[0].exception_class is ValueError
    assert "ValueError: no" in failed.errors[0].traceback
    with pytest.raises(ValueError, match="failed"):
        _ = failed.return_value
    greeted = wait_finished(jobs.greet.enqueue("ada"))
    assert greeted.return_value["hello"] == "ada"
    assert greeted.return_value["pid"] != __import__("os").getpid()  # ran on the worker
    assert wait_finished(jobs.attempt_of.enqueue()).return_value == 1
    with pytest.raises(TaskResultDoesNotExist):
        jobs.add.get_result("no-such-id")
