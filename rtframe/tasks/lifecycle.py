"""The Taskiq middleware that gives rtframe tasks their life: retries with backoff, the
final status record, the dead-letter place, and the frames that tell the connection.

Per run, Taskiq calls `on_error` when the task raised, then `post_execute`, then saves
the result (unless the error was replaced by `NoResultError`), then calls `post_save`,
then acknowledges the message (ack `when_saved`: a worker that dies before this point
leaves the message to be taken over, so delivery is at least once). Taskiq acknowledges
also when saving failed; `post_execute` and `post_save` mark the `Delivery`, so that the
broker releases such a message rather than acknowledging it.

- A failed attempt with retries left: its record goes back to READY (with the error),
  the same task id is sent again with `delay` = the task's backoff, and no result is
  saved for this attempt.
- The last failed attempt: the record becomes FAILED, the message goes to the queue's
  dead-letter place, the connection gets a `failed` frame.
- A success: SUCCESSFUL, and the connection gets the result.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import ValidationError
from taskiq import TaskiqMessage, TaskiqMiddleware, TaskiqResult
from taskiq.exceptions import NoResultError
from taskiq.kicker import AsyncKicker

from .context import TaskContext, TaskHost, delivery, logger, replace, worker_id
from .records import TaskInfo, TaskStatus
from .stats import count
from .task import ATTEMPT, ENQUEUED, NOTIFY, WORKERS, error_fields

__all__ = ["Lifecycle"]


class Lifecycle(TaskiqMiddleware):
    """Retries, dead letters, final records and frames for the tasks of one `Tasks`."""

    def __init__(self, tasks: TaskHost) -> None:
        super().__init__()
        self.tasks = tasks

    def _info(self, message: TaskiqMessage, ctx: TaskContext | None) -> TaskInfo:
        if ctx is not None:
            return ctx._info
        # the run failed before the task's own code was reached (e.g. Taskiq refused
        # the message's arguments): describe it from the message alone
        labels = message.labels
        return TaskInfo(
            id=message.task_id,
            name=message.task_name,
            status=TaskStatus.RUNNING,
            attempts=int(labels.get(ATTEMPT) or 1),
            enqueued_at=float(labels.get(ENQUEUED) or 0) or None,
            started_at=time.time(),
            notify=labels.get(NOTIFY) or None,
            arguments=dict(message.kwargs.get("arguments") or {}),
            workers=(worker_id(),),
        )

    async def pre_execute(self, message: TaskiqMessage) -> TaskiqMessage:
        if self.tasks.find(message.task_name) is not None:
            count(self.tasks.stats.received, self._key(message))
        return message

    def _key(self, message: TaskiqMessage) -> tuple[str, str]:
        return self.tasks.stat_key(message.task_name, message.labels)

    async def on_error(
        self, message: TaskiqMessage, result: TaskiqResult[Any], exception: BaseException
    ) -> None:
        task = self.tasks.find(message.task_name)
        if task is None or isinstance(exception, NoResultError):
            return
        ctx = self.tasks._running.get(message.task_id)
        info = replace(self._info(message, ctx), **error_fields(exception))
        attempt = info.attempts
        retryable = not isinstance(exception, ValidationError | TypeError)
        if not retryable or attempt > task.retries:
            if ctx is not None:
                ctx._info = info  # post_save writes it as FAILED
            else:
                self.tasks._running[message.task_id] = TaskContext(self.tasks, info)
            return
        self.tasks._take(message.task_id)
        delay = task.backoff.delay(attempt)
        logger.warning(
            "task %s (%s) failed on attempt %d of %d (%s: %s); retrying in %.2fs",
            task.name,
            message.task_id,
            attempt,
            task.retries + 1,
            info.error_type,
            info.error,
            delay,
        )
        waiting = replace(info, status=TaskStatus.READY)
        await self.tasks._record(waiting, self.broker)
        await self.tasks._notify(waiting)
        labels = dict(message.labels)
        labels.update({ATTEMPT: str(attempt + 1), WORKERS: ",".join(info.workers)})
        labels["delay"] = delay
        kicker: AsyncKicker[Any, Any] = AsyncKicker(message.task_name, self.broker, labels)
        await kicker.with_task_id(message.task_id).kiq(*message.args, **message.kwargs)
        count(self.tasks.stats.retried, self._key(message))
        result.error = NoResultError()  # no result for this attempt: the next one decides

    async def post_execute(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        current = delivery.get()
        # a retry's outcome (NoResultError) is the message on_error already sent
        if current is not None and not isinstance(result.error, NoResultError):
            current.saved = False

    async def post_save(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        if self.tasks.find(message.task_name) is not None:
            await self._finish(message, result)
        current = delivery.get()
        if current is not None:
            current.saved = True  # result and record written: the message may be acknowledged

    async def _finish(self, message: TaskiqMessage, result: TaskiqResult[Any]) -> None:
        ctx = self.tasks._take(message.task_id)
        info = self._info(message, ctx)
        now = time.time()
        if result.is_err:
            info = replace(info, status=TaskStatus.FAILED, finished_at=now)
            logger.warning(
                "task %s (%s) failed for good after %d attempt(s) (%s: %s)",
                info.name,
                info.id,
                info.attempts,
                info.error_type,
                info.error,
            )
            count(self.tasks.stats.failed, self._key(message))
            await self._dead_letter(message, info)
        else:
            info = replace(info, status=TaskStatus.SUCCESSFUL, finished_at=now)
            count(self.tasks.stats.succeeded, self._key(message))
        await self.tasks._record(info, self.broker)
        await self.tasks._notify(info, result.return_value)

    async def _dead_letter(self, message: TaskiqMessage, info: TaskInfo) -> None:
        keep = getattr(self.broker, "dead_letter", None)
        if keep is None:
            logger.warning(
                "%s keeps no dead letters: task %s (%s) is only in its FAILED record",
                type(self.broker).__name__,
                info.name,
                info.id,
            )
            return
        queue = str(message.labels.get("queue_name") or "")
        await keep(queue, self.broker.formatter.dumps(message).message, info)
        count(self.tasks.stats.dead_lettered, self._key(message))
