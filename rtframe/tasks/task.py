"""A task: its validated signature, its enqueue options, and what runs it in a worker.

Arguments are validated (Pydantic, from the signature) when a task is enqueued, so a bad
call fails in the caller, and again when it runs; they travel as JSON. The return value
travels as JSON too and comes back validated against the return annotation.
"""

from __future__ import annotations

import asyncio
import inspect
import random
import time
import traceback
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, ParamSpec, TypeVar, get_type_hints

from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model
from taskiq import AsyncBroker, Context, TaskiqDepends
from taskiq.kicker import AsyncKicker

from ..exceptions import ConfigurationError
from . import context as _ctx
from .handle import TaskHandle
from .records import TaskInfo, TaskStatus
from .stats import count

__all__ = [
    "ATTEMPT",
    "ENQUEUED",
    "NOTIFY",
    "WORKERS",
    "Backoff",
    "Task",
    "TaskCall",
    "error_fields",
    "runner",
]

P = ParamSpec("P")
R = TypeVar("R")

#: Taskiq's dependency marker: the runner gets the message's Context (id, labels).
_CONTEXT: Any = TaskiqDepends()

#: Labels rtframe adds to Taskiq messages (the engine carries them, nothing else reads them).
ATTEMPT, ENQUEUED, NOTIFY, WORKERS = "rt_attempt", "rt_enqueued", "rt_notify", "rt_workers"


@dataclass(frozen=True, slots=True)
class Backoff:
    """The wait before retry number n: `base * factor**(n-1)`, at most `maximum`, ± jitter.

    `jitter` is a share of the wait (0.1: up to 10 % either way), so that many tasks that
    failed together do not all come back together.
    """

    base: float = 1.0
    factor: float = 2.0
    maximum: float = 300.0
    jitter: float = 0.1

    def __post_init__(self) -> None:
        if self.base < 0 or self.factor < 1 or self.maximum < 0 or not 0 <= self.jitter < 1:
            raise ConfigurationError(
                "Backoff needs base >= 0, factor >= 1, maximum >= 0 and 0 <= jitter < 1"
            )

    def delay(self, failed_attempt: int) -> float:
        """Seconds to wait after attempt number `failed_attempt` (1 for the first) failed."""
        wait = min(self.maximum, self.base * self.factor ** (failed_attempt - 1))
        return max(0.0, wait * (1 + self.jitter * (2 * random.random() - 1)))


class Task(Generic[P, R]):
    """A function registered with a `Tasks`: enqueue it, or call it directly (tests)."""

    def __init__(
        self,
        tasks: _ctx.TaskHost,
        fn: Callable[P, Awaitable[R]] | Callable[P, R],
        *,
        name: str,
        queue: str,
        retries: int,
        backoff: Backoff,
        timeout: float | None,
    ) -> None:
        if retries < 0 or (timeout is not None and timeout <= 0):
            raise ConfigurationError(f"task {name}: retries must be >= 0 and timeout > 0")
        self.tasks, self.fn, self.name, self.queue = tasks, fn, name, queue
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self.is_async = inspect.iscoroutinefunction(fn)
        self._signature = inspect.signature(fn)
        hints = get_type_hints(fn)
        fields: dict[str, Any] = {}
        for param in self._signature.parameters.values():
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
                raise ConfigurationError(
                    f"task {name}: *{param.name} / **{param.name} cannot be validated; "
                    "name every argument"
                )
            default = ... if param.default is param.empty else param.default
            fields[param.name] = (hints.get(param.name, Any), default)
        self._params = tuple(fields)
        self._model: type[BaseModel] = create_model(
            f"{name}.arguments", __config__=ConfigDict(extra="forbid"), **fields
        )
        self._returns: TypeAdapter[Any] = TypeAdapter(hints.get("return", Any))

    def __repr__(self) -> str:
        return f"<Task {self.name} queue={self.queue!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R] | R:
        """Call the function itself, here and now (no engine, no record)."""
        return self.fn(*args, **kwargs)

    def arguments(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The JSON arguments a call with `args` and `kwargs` travels as.

        Raises:
            TypeError: the arguments do not fit the signature.
            pydantic.ValidationError: a value does not fit its annotation.
        """
        bound = self._signature.bind(*args, **kwargs)
        model = self._model.model_validate(dict(bound.arguments))
        return model.model_dump(mode="json")

    def using(
        self,
        *,
        delay: float | None = None,
        eta: datetime | None = None,
        notify: Any = None,
        task_id: str | None = None,
        queue: str | None = None,
    ) -> TaskCall[P, R]:
        """Options for one enqueue: run after `delay` seconds or at `eta` (an aware datetime),
        push `task_progress` frames to `notify` (a `Connection` or a connection id),
        choose the task's id (e.g. an idempotency key) or another queue."""
        return TaskCall(self, delay=delay, eta=eta, notify=notify, task_id=task_id, queue=queue)

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """Enqueue from sync code (a Django view, a command); see `aenqueue`."""
        return TaskCall(self).enqueue(*args, **kwargs)

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """Validate the arguments and hand the task to the engine; returns its handle.

        Raises:
            TypeError, pydantic.ValidationError: bad arguments (nothing is enqueued).
            taskiq.exceptions.SendTaskError: the engine refused the message (Redis down).
        """
        return await TaskCall(self).aenqueue(*args, **kwargs)

    def handle(self, task_id: str) -> TaskHandle[R]:
        """The handle of an enqueued run of this task, from its id."""
        return TaskHandle(self.tasks, task_id, self._returns)

    def result_of(self, value: Any) -> R:
        """A JSON result turned back into the return annotation's type."""
        result: R = self._returns.validate_python(value)
        return result

    async def _execute(self, arguments: dict[str, Any], context: Context) -> Any:
        message = context.message
        labels = message.labels
        info = TaskInfo(
            id=message.task_id,
            name=self.name,
            status=TaskStatus.READY,
            enqueued_at=float(labels.get(ENQUEUED) or 0) or None,
            notify=labels.get(NOTIFY) or None,
            arguments=arguments,
            workers=tuple(w for w in str(labels.get(WORKERS) or "").split(",") if w),
        )
        info = _ctx.started(info, int(labels.get(ATTEMPT) or 1))
        ctx = _ctx.TaskContext(self.tasks, info)
        self.tasks._running[message.task_id] = ctx
        try:
            await self.tasks._record(info)
        except Exception as exc:
            # the record only reports: failing the run for it (Redis restarting) would
            # spend an attempt, or end the task FAILED, on work that can still be done
            _ctx.logger.warning(
                "could not record that task %s (%s) started (%s: %s): running it anyway, "
                "its record says so when it ends",
                self.name,
                message.task_id,
                type(exc).__name__,
                exc,
            )
        await self.tasks._notify(info)
        token = _ctx.enter(ctx)
        stats, key = self.tasks.stats, self.tasks.stat_key(self.name, labels)
        began = time.monotonic()
        try:
            values = self._model.model_validate(arguments)
            kwargs = {name: getattr(values, name) for name in self._params}
            fn: Any = self.fn
            count(stats.started, key)
            stats.running += 1
            try:
                if self.is_async:
                    result = await fn(**kwargs)
                else:
                    result = await asyncio.to_thread(fn, **kwargs)
            finally:
                stats.running -= 1
                stats.observe(key, time.monotonic() - began)
        finally:
            _ctx.leave(token)
        return self._returns.dump_python(result, mode="json")


class TaskCall(Generic[P, R]):
    """One enqueue of a task with options (`Task.using(...)`)."""

    def __init__(
        self,
        task: Task[P, R],
        *,
        delay: float | None = None,
        eta: datetime | None = None,
        notify: Any = None,
        task_id: str | None = None,
        queue: str | None = None,
    ) -> None:
        if delay is not None and eta is not None:
            raise ConfigurationError("give delay or eta, not both")
        if eta is not None and eta.tzinfo is None:
            raise ConfigurationError("eta must be an aware datetime (with a time zone)")
        if notify is not None and not isinstance(notify, str):
            notify = getattr(notify, "id", None)
            if not isinstance(notify, str):
                raise ConfigurationError("notify must be a Connection or a connection id")
        self.task, self.delay, self.eta, self.notify = task, delay, eta, notify
        self.task_id, self.queue = task_id, queue

    def enqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """As `aenqueue`, from sync code (no event loop juggling: see `Tasks.run_sync`)."""
        arguments = self.task.arguments(*args, **kwargs)
        task_id = self.task_id or uuid.uuid4().hex
        self.task.tasks.run_sync(lambda broker: self._send(broker, arguments, task_id))
        return self.task.handle(task_id)

    async def aenqueue(self, *args: P.args, **kwargs: P.kwargs) -> TaskHandle[R]:
        """Validate the arguments, write the task's READY record and send it to the engine."""
        arguments = self.task.arguments(*args, **kwargs)
        task_id = self.task_id or uuid.uuid4().hex
        tasks = self.task.tasks
        await tasks._ensure_started()
        await self._send(tasks.broker, arguments, task_id)
        return self.task.handle(task_id)

    async def _send(self, broker: AsyncBroker, arguments: dict[str, Any], task_id: str) -> None:
        task, tasks = self.task, self.task.tasks
        delay = self.delay or 0.0
        if self.eta is not None:
            delay = self.eta.timestamp() - time.time()
        now = time.time()
        labels: dict[str, Any] = {
            ATTEMPT: "1",
            ENQUEUED: repr(now),
            "queue_name": tasks.queue_key(self.queue or task.queue),
        }
        if delay > 0:
            labels["delay"] = delay
        if self.notify:
            labels[NOTIFY] = self.notify
        if task.timeout is not None:
            labels["timeout"] = task.timeout
        info = TaskInfo(
            id=task_id,
            name=task.name,
            status=TaskStatus.READY,
            enqueued_at=now,
            notify=self.notify,
            arguments=arguments,
        )
        # the record first: a worker that picks the task up at once overwrites it
        await tasks._record(info, broker)
        kicker: AsyncKicker[Any, Any] = AsyncKicker(task.name, broker, labels)
        await kicker.with_task_id(task_id).kiq(arguments=arguments)


def error_fields(exc: BaseException) -> dict[str, str]:
    """The status record's description of a failure."""
    kind = type(exc)
    name = f"{kind.__module__}.{kind.__qualname__}"  # importable, as Django's TaskError wants
    if isinstance(exc, ValidationError):
        text = f"invalid arguments: {exc.error_count()} error(s)"
    else:
        text = str(exc)
    trace = "".join(traceback.format_exception(exc))
    return {"error_type": name, "error": text, "traceback": trace}


def runner(task: Task[Any, Any]) -> Callable[..., Awaitable[Any]]:
    """The function Taskiq runs for `task`: JSON arguments in, JSON result out."""

    async def run(arguments: dict[str, Any], context: Context = _CONTEXT) -> Any:
        return await task._execute(arguments, context)

    run.__qualname__ = run.__name__ = task.name.rsplit(".", 1)[-1]
    return run
