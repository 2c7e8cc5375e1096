"""A Django Tasks backend on rtframe's task engine: Django's standard `@task` functions run
on `rtframe worker`, at least once, with their results readable through Django.

    # settings.py
    TASKS = {"default": {
        "BACKEND": "rtframe.django.tasks.RtframeTaskBackend",
        "OPTIONS": {"TASKS": "myproject.realtime.tasks"},   # a rtframe.tasks.Tasks
    }}

    # myproject/realtime.py
    tasks = Tasks.redis(REDIS_URL, app=app)
    register(tasks)            # so `rtframe worker myproject.realtime:tasks` runs them too

Built against the API of Django 6's `django.tasks` and of its backport for Django 4.2-5.x
(the `django-tasks` package), whichever is installed. Every Django task is enqueued as
one rtframe task (`RUNNER`) whose arguments name it (its module path) and carry its JSON
arguments; the worker imports it and calls it (a sync function in a thread). Statuses,
times, errors (exception path and traceback) and worker ids come from rtframe's status
record. `run_after` is supported (a delayed task); priorities are not.

Django's `enqueue` has no place to name a connection, so `notify(conn)` does it around
the call: `with notify(conn): await summarise.aenqueue(room)` pushes the task's
`task_progress` frames (each `current_task().progress()`, then its outcome) to `conn`,
from whichever worker runs it. The frames name the rtframe task that runs Django tasks
(`RUNNER`); their `task_id` is the Django result's id.
"""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any

from django.utils.module_loading import import_string

if TYPE_CHECKING:  # typed against Django 6 (django-stubs knows django.tasks)
    from django.tasks import TaskContext, TaskResult, TaskResultStatus
    from django.tasks.backends.base import BaseTaskBackend
    from django.tasks.base import Task, TaskError
    from django.tasks.exceptions import TaskResultDoesNotExist
else:
    try:  # Django 6
        from django.tasks import TaskContext, TaskResult, TaskResultStatus
        from django.tasks.backends.base import BaseTaskBackend
        from django.tasks.base import Task, TaskError
        from django.tasks.exceptions import TaskResultDoesNotExist
    except ImportError:  # Django 4.2-5.x with the django-tasks backport
        from django_tasks import TaskContext, TaskResult, TaskResultStatus
        from django_tasks.backends.base import BaseTaskBackend
        from django_tasks.base import Task, TaskError
        from django_tasks.exceptions import TaskResultDoesNotExist

from ..tasks import Tasks, TaskStatus, current_task
from ..tasks.records import TaskInfo, TaskNotFoundError

__all__ = ["RUNNER", "RtframeTaskBackend", "notify", "register", "run_django_task"]

#: The rtframe task that runs Django tasks.
RUNNER = "rtframe.django.tasks.run"

_STATUS = {
    TaskStatus.READY: TaskResultStatus.READY,
    TaskStatus.RUNNING: TaskResultStatus.RUNNING,
    TaskStatus.SUCCESSFUL: TaskResultStatus.SUCCESSFUL,
    TaskStatus.FAILED: TaskResultStatus.FAILED,
}


#: the connection (or its id) that Django tasks enqueued in this context report to
_asker: ContextVar[Any] = ContextVar("rtframe_django_tasks_notify", default=None)


@contextmanager
def notify(connection: Any) -> Iterator[None]:
    """Within the block, Django tasks enqueued on this backend push their `task_progress`
    frames to `connection` (a `Connection` or a connection id), as
    `Task.using(notify=connection)` does for rtframe's own tasks."""
    token = _asker.set(connection)
    try:
        yield
    finally:
        _asker.reset(token)


def register(tasks: Tasks, *, retries: int = 0) -> None:
    """Let `tasks` (and the workers that run it) run Django's `@task` functions.

    `retries` applies to every Django task (Django's API has no retries of its own).
    Registering twice does nothing.
    """
    if tasks.find(RUNNER) is None:
        tasks.task(name=RUNNER, retries=retries)(run_django_task)


async def run_django_task(
    path: str, args: list[Any], kwargs: dict[str, Any], backend: str = "default"
) -> Any:
    """Run the Django task at `path` (on the worker); returns its JSON-normalised value."""
    task = import_string(path)
    if not isinstance(task, Task):
        raise TypeError(f"{path} is a {type(task).__name__}, not a Django task")
    if task.takes_context:
        info = current_task().info
        context: Any = TaskContext(task_result=_result_of(task, backend, info, None))
        value = await task.acall(context, *args, **kwargs)
    else:
        value = await task.acall(*args, **kwargs)
    return value


def _time(stamp: float | None) -> datetime.datetime | None:
    if stamp is None:
        return None
    return datetime.datetime.fromtimestamp(stamp, tz=datetime.UTC)


def _result_of(task: Any, backend: str, info: TaskInfo, value: Any) -> Any:
    arguments = info.arguments
    errors = []
    if info.status is TaskStatus.FAILED or (info.error_type and info.status.finished):
        errors.append(
            TaskError(
                exception_class_path=info.error_type or "builtins.Exception",
                traceback=info.traceback or "",
            )
        )
    result: Any = TaskResult(
        task=task,
        id=info.id,
        status=_STATUS[info.status],
        enqueued_at=_time(info.enqueued_at),
        started_at=_time(info.started_at),
        finished_at=_time(info.finished_at),
        last_attempted_at=_time(info.started_at),
        args=list(arguments.get("args") or []),
        kwargs=dict(arguments.get("kwargs") or {}),
        backend=backend,
        errors=errors,
        worker_ids=list(info.workers),
    )
    if info.status is TaskStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", value)
    return result


class RtframeTaskBackend(BaseTaskBackend):
    """Django Tasks on rtframe's engine; OPTIONS["TASKS"] is the dotted path of a `Tasks`."""

    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = False

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        path = self.options.get("TASKS")
        if not isinstance(path, str):
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(
                f"TASKS[{alias!r}]['OPTIONS']['TASKS'] must be the dotted path of a "
                "rtframe.tasks.Tasks (e.g. 'myproject.realtime.tasks')"
            )
        self._path: str = path
        self._tasks: Tasks | None = None

    @property
    def tasks(self) -> Tasks:
        """The rtframe `Tasks` the Django tasks travel through (imported on first use)."""
        if self._tasks is None:
            tasks = import_string(self._path)
            if not isinstance(tasks, Tasks):
                raise TypeError(f"{self._path} is a {type(tasks).__name__}, not a Tasks")
            register(tasks)
            self._tasks = tasks
        return self._tasks

    def _call(self, task: Any) -> Any:
        runner = self.tasks.tasks[RUNNER]
        return runner.using(eta=task.run_after, queue=task.queue_name, notify=_asker.get())

    def enqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        handle = self._call(task).enqueue(task.module_path, list(args), dict(kwargs), self.alias)
        return self.get_result(handle.id)

    async def aenqueue(self, task: Any, args: Any, kwargs: Any) -> Any:
        self.validate_task(task)
        call = self._call(task)
        handle = await call.aenqueue(task.module_path, list(args), dict(kwargs), self.alias)
        return await self.aget_result(handle.id)

    def get_result(self, result_id: str) -> Any:
        try:
            info, value = self.tasks.handle(result_id).outcome_sync()
        except TaskNotFoundError as exc:
            raise TaskResultDoesNotExist(result_id) from exc
        return self._convert(info, value)

    async def aget_result(self, result_id: str) -> Any:
        try:
            info, value = await self.tasks.handle(result_id).outcome()
        except TaskNotFoundError as exc:
            raise TaskResultDoesNotExist(result_id) from exc
        return self._convert(info, value)

    def _convert(self, info: TaskInfo, value: Any) -> Any:
        if info.name != RUNNER:
            raise TaskResultDoesNotExist(info.id)
        task = import_string(info.arguments["path"])
        return _result_of(task, self.alias, info, value)
