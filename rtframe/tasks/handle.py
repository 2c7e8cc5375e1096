"""A handle on one enqueued task: its status record, its result, awaited or polled."""

from __future__ import annotations

import asyncio
import functools
import time
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from .records import TaskFailedError, TaskInfo, TaskStatus

if TYPE_CHECKING:
    from pydantic import TypeAdapter

    from .context import TaskHost

__all__ = ["TaskHandle"]

R = TypeVar("R")

_FIRST_POLL, _LONGEST_POLL = 0.01, 0.25


class TaskHandle(Generic[R]):
    """What `enqueue` returns; any process can make one from the id (`tasks.handle(id)`).

    Async methods run on the caller's loop; the `_sync` ones are for sync code (see
    `Tasks.run_sync`).
    """

    __slots__ = ("_returns", "_tasks", "id")

    def __init__(self, tasks: TaskHost, task_id: str, returns: TypeAdapter[Any] | None) -> None:
        self._tasks = tasks
        self._returns = returns
        self.id = task_id

    def __repr__(self) -> str:
        return f"<TaskHandle {self.id}>"

    async def info(self) -> TaskInfo:
        """The task's status record now.

        Raises:
            TaskNotFoundError: no record (never enqueued, or expired).
        """
        await self._tasks._ensure_started()
        return await self._tasks._info(self.id)

    async def status(self) -> TaskStatus:
        return (await self.info()).status

    async def result(self, timeout: float | None = None) -> R:
        """Wait until the task finished and return its result.

        Raises:
            TaskFailedError: it failed for good (its record is `.info`).
            TaskNotFoundError: no record (never enqueued, or expired).
            TimeoutError: not finished within `timeout` seconds.
        """
        await self._tasks._ensure_started()
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = _FIRST_POLL
        while True:
            info = await self._tasks._info(self.id)
            if info.status.finished:
                return await self._finish(info, None)
            if deadline is not None and time.monotonic() + pause > deadline:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"task {info.name} ({self.id}) is still {info.status.value}")
                pause = left
            await asyncio.sleep(pause)
            pause = min(pause * 2, _LONGEST_POLL)

    async def _finish(self, info: TaskInfo, broker: Any) -> R:
        if info.status is TaskStatus.FAILED:
            raise TaskFailedError(info)
        value = await self._tasks._result(self.id, broker)
        result: R = value if self._returns is None else self._returns.validate_python(value)
        return result

    async def outcome(self) -> tuple[TaskInfo, Any]:
        """The status record now and, once SUCCESSFUL, the JSON result (else None): what a
        backend reporting on tasks (Django's) reads in one go."""
        info = await self.info()
        if info.status is not TaskStatus.SUCCESSFUL:
            return info, None
        return info, await self._tasks._result(self.id)

    def outcome_sync(self) -> tuple[TaskInfo, Any]:
        """`outcome()` for sync code."""
        return self._tasks.run_sync(self._outcome)

    async def _outcome(self, broker: Any) -> tuple[TaskInfo, Any]:
        info = await self._tasks._info(self.id, broker)
        if info.status is not TaskStatus.SUCCESSFUL:
            return info, None
        return info, await self._tasks._result(self.id, broker)

    def info_sync(self) -> TaskInfo:
        """`info()` for sync code."""
        return self._tasks.run_sync(lambda broker: self._tasks._info(self.id, broker))

    def result_sync(self, timeout: float | None = None) -> R:
        """`result()` for sync code: polls from this thread, each read a short call."""
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = _FIRST_POLL
        while True:
            info = self.info_sync()
            if info.status.finished:
                return self._tasks.run_sync(functools.partial(self._finish, info))
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"task {info.name} ({self.id}) is still {info.status.value}")
            time.sleep(pause)
            pause = min(pause * 2, _LONGEST_POLL)
