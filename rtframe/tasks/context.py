"""The running task's own view: its id, attempt, progress reports and the app's messaging.

Inside a task `current_task()` returns its `TaskContext`; outside one it raises. The
context names the app explicitly (the `Tasks`' `app=`), so a task in a worker process
broadcasts through that app's layer without guessing and without event-loop juggling:
the task already runs on the worker's loop, where the app was started.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..exceptions import ConfigurationError, RtframeError
from .records import TaskInfo, TaskProgressFrame, TaskStatus

if TYPE_CHECKING:
    from taskiq import AsyncBroker

    from ..app import RealtimeApp
    from ..groups import Group
    from ..layers.base import Position
    from .stats import Key, WorkerStats

__all__ = ["Delivery", "TaskContext", "TaskHost", "current_task", "delivery", "worker_id"]

R = TypeVar("R")

logger = logging.getLogger("rtframe.tasks")

_current: ContextVar[TaskContext | None] = ContextVar("rtframe_current_task", default=None)


class Delivery:
    """One delivery of a message to a worker, as its acknowledgement sees it.

    Taskiq acknowledges a message after *trying* to save its outcome, also when that
    failed (Redis restarting): the task would be done, its result lost and its record
    left RUNNING. The lifecycle marks a delivery unsaved until its outcome is written;
    the broker then releases an unsaved message instead of acknowledging it, so it is
    taken over after idle_timeout and runs again (at least once).
    """

    __slots__ = ("acked", "saved")

    def __init__(self) -> None:
        self.saved = True
        self.acked = False


#: the delivery being handled (set per message by `rtframe worker`'s receiver)
delivery: ContextVar[Delivery | None] = ContextVar("rtframe_task_delivery", default=None)


def worker_id() -> str:
    """This process, as the status records name it: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def current_task() -> TaskContext:
    """The context of the task whose code is running.

    Raises:
        RtframeError: called outside a task.
    """
    ctx = _current.get()
    if ctx is None:
        raise RtframeError("current_task() was called outside a task")
    return ctx


class TaskHost(Protocol):
    """What tasks, handles and the lifecycle middleware use of their `Tasks`
    (`rtframe.tasks.core`); named here so that none of them imports it."""

    broker: AsyncBroker
    app: RealtimeApp | None
    stats: WorkerStats
    _running: dict[str, TaskContext]

    def find(self, name: str) -> Any: ...

    def stat_key(self, name: str, labels: dict[str, Any]) -> Key: ...

    def queue_key(self, queue: str) -> str: ...

    def run_sync(self, fn: Callable[[AsyncBroker], Awaitable[R]], timeout: float = ...) -> R: ...

    async def _ensure_started(self) -> None: ...

    async def _record(self, info: TaskInfo, broker: AsyncBroker | None = None) -> None: ...

    async def _info(self, task_id: str, broker: AsyncBroker | None = None) -> TaskInfo: ...

    async def _result(self, task_id: str, broker: AsyncBroker | None = None) -> Any: ...

    async def _notify(self, info: TaskInfo, result: Any = None) -> None: ...

    def _take(self, task_id: str) -> TaskContext | None: ...


class TaskContext:
    """One run of one task: what it may read and do besides computing its result.

    `id` is the same for every attempt and every redelivery of the task, so it is the
    natural idempotency key (delivery is at least once: see docs/tasks.md).
    """

    __slots__ = ("_info", "_tasks", "attempt", "id", "name", "notify")

    def __init__(self, tasks: TaskHost, info: TaskInfo) -> None:
        self._tasks = tasks
        self._info = info
        self.id = info.id
        self.name = info.name
        self.attempt = info.attempts
        #: the connection id that gets this task's `task_progress` frames, if any
        self.notify = info.notify

    @property
    def info(self) -> TaskInfo:
        """This run's status record as it stands (RUNNING, with the last progress)."""
        return self._info

    @property
    def app(self) -> RealtimeApp:
        """The app whose layer the task's messages travel through.

        Raises:
            ConfigurationError: the `Tasks` was made without `app=`.
        """
        app = self._tasks.app
        if app is None:
            raise ConfigurationError(
                f"task {self.name} wants the app, but its Tasks was made without app=: "
                "Tasks(..., app=app)"
            )
        return app

    async def progress(self, value: float | None) -> None:
        """Record how far the task got (e.g. 0.0 to 1.0) and tell the connection that asked.

        The record is readable through the task's handle at once; the frame is sent
        only when the task was enqueued with `notify=`.
        """
        self._info = _replace(self._info, progress=value)
        await self._tasks._record(self._info)
        await self._tasks._notify(self._info)

    async def broadcast(self, group: Group | str, message: Any, **params: Any) -> Position | None:
        """`app.broadcast(...)` of the task's app: every member of the group, every process."""
        return await self.app.broadcast(group, message, **params)

    async def send_to(self, connection_id: str, message: Any) -> None:
        """`app.send_to(...)` of the task's app: one connection, in whatever process."""
        await self.app.send_to(connection_id, message)


def _replace(info: TaskInfo, **changes: Any) -> TaskInfo:
    values = {name: getattr(info, name) for name in info.__dataclass_fields__}
    values.update(changes)
    return TaskInfo(**values)


def frame_of(info: TaskInfo, result: Any = None) -> TaskProgressFrame:
    """The `task_progress` frame telling a connection about `info`."""
    return TaskProgressFrame(
        task_id=info.id,
        task=info.name,
        status=info.status.value,
        progress=info.progress,
        attempt=max(info.attempts, 1),
        result=result if info.status is TaskStatus.SUCCESSFUL else None,
        error=info.error_type.rsplit(".", 1)[-1]
        if info.status is TaskStatus.FAILED and info.error_type
        else None,
    )


def started(info: TaskInfo, attempt: int) -> TaskInfo:
    """`info` once attempt number `attempt` starts in this process."""
    return _replace(
        info,
        status=TaskStatus.RUNNING,
        attempts=attempt,
        started_at=info.started_at or time.time(),
        workers=(*info.workers, worker_id()),
    )


def enter(ctx: TaskContext) -> object:
    return _current.set(ctx)


def leave(token: object) -> None:
    _current.reset(token)  # type: ignore[arg-type]


replace = _replace
