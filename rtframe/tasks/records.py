"""What rtframe keeps about a task: its status record, its frames, its failures.

A task's status record (`TaskInfo`) is written at each step of its life (enqueued, running,
retrying, finished) into the engine's result store, next to its result; any process can
read it by the task's id. `task_progress` frames (`TaskProgressFrame`) carry the same
steps to the WebSocket connection that asked for the task.

Statuses follow Django's `TaskResultStatus`: READY (enqueued, or waiting for a retry),
RUNNING, SUCCESSFUL, FAILED.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, Field

from ..exceptions import RtframeError

__all__ = [
    "DeadLetter",
    "TaskFailedError",
    "TaskInfo",
    "TaskNotFoundError",
    "TaskProgressFrame",
    "TaskStatus",
]


class TaskStatus(enum.StrEnum):
    """Where a task is in its life (the values of Django's `TaskResultStatus`, lowercased)."""

    READY = "ready"
    RUNNING = "running"
    SUCCESSFUL = "successful"
    FAILED = "failed"

    @property
    def finished(self) -> bool:
        return self in (TaskStatus.SUCCESSFUL, TaskStatus.FAILED)


@dataclass(frozen=True, slots=True)
class TaskInfo:
    """A task's status record, as any process reads it.

    Times are Unix timestamps (seconds). `attempts` counts the runs started so far (a run
    cut short by a dead worker and taken over by another counts once: the record is
    written by whoever runs it). `error_type` is the exception's import path, `error` its
    message, `traceback` its formatted traceback (kept for operators: never sent to a
    client). `progress` is the last value the task reported (`TaskContext.progress`).
    """

    id: str
    name: str
    status: TaskStatus
    attempts: int = 0
    enqueued_at: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    progress: float | None = None
    error_type: str | None = None
    error: str | None = None
    traceback: str | None = None
    workers: tuple[str, ...] = ()
    notify: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["status"] = self.status.value
        data["workers"] = list(self.workers)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TaskInfo:
        values = dict(data)
        values["status"] = TaskStatus(values["status"])
        values["workers"] = tuple(values.get("workers") or ())
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in values.items() if k in known})


class TaskProgressFrame(BaseModel):
    """The frame a connection that enqueued a task (`notify=`) receives at each step.

    `status` is a `TaskStatus` value; `progress` the last reported progress (None: none
    reported); `attempt` the run it is about; `result` is set once the task
    succeeded (its JSON value); `error` names the exception class once it failed for
    good (never its message or traceback: those stay in the status record).
    """

    type: Literal["task_progress"] = "task_progress"
    task_id: str = Field(description="The task's id: the same for every attempt.")
    task: str = Field(description="The task's registered name.")
    status: Literal["ready", "running", "successful", "failed"] = Field(
        description="`ready`: waiting for a retry; `running`: an attempt runs; "
        "`successful` and `failed` are final."
    )
    progress: float | None = Field(
        default=None, description="The last value the task reported; null: none yet."
    )
    attempt: int = Field(default=1, ge=1, description="The attempt this frame is about (1 first).")
    result: Any = Field(
        default=None, description="The task's JSON return value once `successful`; else null."
    )
    error: str | None = Field(
        default=None,
        description="The exception's class name once `failed`; else null (no message, no "
        "traceback: they stay in the task's status record).",
    )


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A task that failed every attempt, as kept in its queue's dead-letter place."""

    id: str  # the dead-letter entry's id (a stream id on Redis)
    task_id: str
    name: str
    attempts: int
    error_type: str
    error: str
    failed_at: float
    message: bytes  # the engine's message, as it was sent, for a later requeue


class TaskNotFoundError(RtframeError):
    """No status record exists for this task id (never enqueued, or expired)."""


class TaskFailedError(RtframeError):
    """The task failed for good; `info` holds its status record (error, traceback)."""

    def __init__(self, info: TaskInfo) -> None:
        self.info = info
        super().__init__(
            f"task {info.name} ({info.id}) failed after {info.attempts} attempt(s): "
            f"{info.error_type}: {info.error}"
        )
