"""Background tasks on Taskiq: plain functions, validated arguments, at least once on
Redis Streams, progress pushed to the WebSocket that asked (docs/tasks.md).

Needs the `tasks` extra: `pip install 'rtframe[tasks]'` (taskiq, taskiq-redis).
"""

from __future__ import annotations

from .context import TaskContext, current_task
from .core import Tasks
from .handle import TaskHandle
from .local import LocalBroker
from .records import (
    DeadLetter,
    TaskFailedError,
    TaskInfo,
    TaskNotFoundError,
    TaskProgressFrame,
    TaskStatus,
)
from .task import Backoff, Task, TaskCall

__all__ = [
    "Backoff",
    "DeadLetter",
    "LocalBroker",
    "Task",
    "TaskCall",
    "TaskContext",
    "TaskFailedError",
    "TaskHandle",
    "TaskInfo",
    "TaskNotFoundError",
    "TaskProgressFrame",
    "TaskStatus",
    "Tasks",
    "current_task",
]
