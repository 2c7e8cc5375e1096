"""The tasks of an application and the engine that carries them.

tasks = Tasks(app=app)                           # runs tasks in the serving process
tasks = Tasks.redis(url, app=app)                # Redis Streams: `rtframe worker` runs them

@tasks.task(retries=3, backoff=Backoff(base=2))
async def summarise(room: str, limit: int = 50) -> Summary: ...

handle = await summarise.aenqueue("lobby")       # async code: handlers, other tasks
handle = summarise.using(delay=30).enqueue("lobby")  # sync code: views, commands
summary = await handle.result(timeout=10)
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, ParamSpec, Protocol, TypeVar, overload

from taskiq import AsyncBroker
from taskiq.depends.progress_tracker import TaskProgress

from ..exceptions import ConfigurationError, RtframeError
from . import context as _ctx
from ._sync import Portal
from .handle import TaskHandle
from .lifecycle import Lifecycle
from .local import LocalBroker
from .records import TaskInfo, TaskNotFoundError, TaskProgressFrame
from .stats import Key, WorkerStats
from .task import Backoff, Task, runner

if TYPE_CHECKING:
    from ..app import RealtimeApp

__all__ = ["Tasks", "all_tasks"]

P = ParamSpec("P")
R = TypeVar("R")

_alive: weakref.WeakSet[Tasks] = weakref.WeakSet()


class _Decorator(Protocol):
    """What `tasks.task(...)` with options returns: async and sync functions alike."""

    @overload
    def __call__(self, fn: Callable[P, Awaitable[R]], /) -> Task[P, R]: ...

    @overload
    def __call__(self, fn: Callable[P, R], /) -> Task[P, R]: ...


def all_tasks() -> list[Tasks]:
    """Every `Tasks` of this process (the worker finds an app's tasks through it)."""
    return list(_alive)


class Tasks:
    """The tasks of an application and the Taskiq broker that carries them.

    Args:
        broker: any Taskiq broker with a result backend; by default the in-process one
            (`LocalBroker`): tasks run in the serving process, nothing survives a
            restart. `Tasks.redis(url)` gives Redis Streams (at least once, workers).
        app: the RealtimeApp whose layer tasks broadcast through and progress frames
            travel through; its startup and shutdown start and stop the broker.
        broker_factory: makes another broker like `broker`, for sync enqueues from
            threads with no event loop of ours (each such broker lives on a private
            loop in a thread). `Tasks.redis` sets it.
        prefix: the start of queue names (Redis keys on Redis).
    """

    def __init__(
        self,
        broker: AsyncBroker | None = None,
        *,
        app: RealtimeApp | None = None,
        broker_factory: Callable[[], AsyncBroker] | None = None,
        prefix: str = "rtframe:tasks",
    ) -> None:
        self.broker = broker if broker is not None else LocalBroker()
        if self.broker.result_backend is None:
            raise ConfigurationError("the broker needs a result backend (task status records)")
        self.broker.add_middlewares(Lifecycle(self))
        self._factory = broker_factory
        self.app = app
        self.prefix = prefix
        self.tasks: dict[str, Task[Any, Any]] = {}
        self._running: dict[str, _ctx.TaskContext] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._starting: asyncio.Lock | None = None
        self._started = False
        self._portal: Portal | None = None
        self._warned_no_app = False
        #: counters of the tasks run in this process (`rtframe worker --http-port`
        #: serves them at /metrics)
        self.stats = WorkerStats()
        if app is not None:
            app.on_startup(self.startup)
            app.on_shutdown(self.shutdown)
            # its connections may get task_progress frames: the AsyncAPI document says so
            app.server_messages.add(
                TaskProgressFrame,
                name="task_progress",
                summary="Tell the connection that enqueued a task how it is going.",
                description=_PROGRESS_DOC,
            )
        _alive.add(self)

    def __repr__(self) -> str:
        return f"<Tasks on {type(self.broker).__name__}: {sorted(self.tasks)}>"

    @classmethod
    def redis(
        cls,
        url: str,
        *,
        app: RealtimeApp | None = None,
        prefix: str = "rtframe:tasks",
        idle_timeout: float = 60.0,
        result_ttl: float = 86_400.0,
        poll_interval: float = 0.25,
        dead_letter_size: int = 10_000,
    ) -> Tasks:
        """Tasks on Redis Streams (taskiq-redis `RedisStreamBroker`), at least once.

        Args:
            url: the Redis server.
            idle_timeout: seconds after which a task a worker took and neither finished
                nor renewed (the worker died) is taken over by another worker. Live
                workers renew their tasks every quarter of it, so a long task is
                never taken from a live worker.
            result_ttl: seconds status records and results are kept.
            poll_interval: how often a worker moves delayed tasks that are due into
                their queue (the precision of `delay=`, `eta=` and retry backoff).
            dead_letter_size: the newest dead letters kept per queue.
        """
        from .redis import stream_broker

        def make() -> AsyncBroker:
            return stream_broker(
                url,
                prefix=prefix,
                idle_timeout=idle_timeout,
                result_ttl=result_ttl,
                poll_interval=poll_interval,
                dead_letter_size=dead_letter_size,
            )

        return cls(make(), app=app, broker_factory=make, prefix=prefix)

    # -- declaring --------------------------------------------------------------------

    @overload
    def task(self, fn: Callable[P, Awaitable[R]], /) -> Task[P, R]: ...

    @overload
    def task(self, fn: Callable[P, R], /) -> Task[P, R]: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        retries: int = 0,
        backoff: Backoff | None = None,
        timeout: float | None = None,
    ) -> _Decorator: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        name: str | None = None,
        queue: str = "default",
        retries: int = 0,
        backoff: Backoff | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Register a function (async, or sync: run in a thread) as a task.

        `retries` more attempts follow a failed one, `backoff` apart; after the last
        the task is FAILED and its message goes to the queue's dead-letter place.
        `timeout` cancels a run after that many seconds (a failure like any other).
        The name defaults to `module.qualname`; workers find the function by it.

        Raises:
            ConfigurationError: a name registered twice, or a signature that cannot be
                validated.
        """

        def register(fn: Callable[..., Any]) -> Task[Any, Any]:
            task_name = name or f"{fn.__module__}.{fn.__qualname__}"
            if task_name in self.tasks:
                raise ConfigurationError(f"a task named {task_name!r} is registered already")
            task: Task[Any, Any] = Task(
                self,
                fn,
                name=task_name,
                queue=queue,
                retries=retries,
                backoff=backoff or Backoff(),
                timeout=timeout,
            )
            self.tasks[task_name] = task
            self.broker.register_task(runner(task), task_name=task_name)
            return task

        return register if fn is None else register(fn)

    def find(self, name: str) -> Task[Any, Any] | None:
        return self.tasks.get(name)

    def queue_key(self, queue: str) -> str:
        """The engine's name of `queue` (a stream key on Redis)."""
        return f"{self.prefix}:{queue}"

    def stat_key(self, name: str, labels: dict[str, Any]) -> Key:
        """The (task, queue) labels of a message's counters; the queue without the prefix."""
        queue = str(labels.get("queue_name") or "")
        start = f"{self.prefix}:"
        return name, queue[len(start) :] if queue.startswith(start) else queue or "default"

    def queues(self) -> list[str]:
        """The queues of the registered tasks, default first."""
        names = {t.queue for t in self.tasks.values()} | {"default"}
        return sorted(names, key=lambda q: (q != "default", q))

    def handle(self, task_id: str) -> TaskHandle[Any]:
        """The handle of any task by id (its result is not converted back)."""
        return TaskHandle(self, task_id, None)

    # -- lifecycle --------------------------------------------------------------------

    async def startup(self) -> None:
        """Start the broker (the app's startup does it when `app=` was given)."""
        if self._started:
            return
        await self.broker.startup()
        self._loop = asyncio.get_running_loop()
        self._started = True

    async def _ensure_started(self) -> None:
        if self._started:
            return
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            await self.startup()

    async def shutdown(self) -> None:
        if self._started:
            self._started = False
            self._loop = None
            await self.broker.shutdown()
        if self._portal is not None:
            self._portal.close()
            self._portal = None

    def run_sync(self, fn: Callable[[AsyncBroker], Awaitable[R]], timeout: float = 30.0) -> R:
        """Run `fn(broker)` for sync code and return its result.

        From a thread of the process whose loop runs these tasks (a sync Django view
        under ASGI), on that loop; from a thread with no loop at all (WSGI, a
        management command), on a private loop in a thread with its own broker (made
        by `broker_factory`), so no connection is ever shared between loops.

        Raises:
            RtframeError: called on a running event loop (use the async API there), or
                no loop to use and no `broker_factory`.
        """
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            pass
        else:
            raise RtframeError(
                "a sync task call (enqueue, result_sync...) ran on an event loop, which it "
                "would block: use `await task.aenqueue(...)` / `await handle.result()`"
            )
        loop = self._loop
        if loop is not None and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(_call(fn, self.broker), loop)
            return future.result(timeout)
        if self._factory is None:
            raise RtframeError(
                "sync enqueue needs the Tasks started on a running loop (its app serving), "
                "or a broker_factory (Tasks.redis has one): the in-process engine runs "
                "tasks in the serving process only"
            )
        if self._portal is None:
            self._portal = Portal(self._factory)
        return self._portal.call(fn, timeout)

    # -- records and frames (used by tasks, handles and the lifecycle middleware) --------

    async def _record(self, info: TaskInfo, broker: AsyncBroker | None = None) -> None:
        backend = (broker or self.broker).result_backend
        progress: TaskProgress[Any] = TaskProgress(state=info.status.value, meta=info.to_json())
        await backend.set_progress(info.id, progress)

    async def _info(self, task_id: str, broker: AsyncBroker | None = None) -> TaskInfo:
        progress = await (broker or self.broker).result_backend.get_progress(task_id)
        if progress is None or not isinstance(progress.meta, dict):
            raise TaskNotFoundError(f"no task with id {task_id!r} (never enqueued, or expired)")
        return TaskInfo.from_json(progress.meta)

    async def _result(self, task_id: str, broker: AsyncBroker | None = None) -> Any:
        result = await (broker or self.broker).result_backend.get_result(task_id)
        return result.return_value

    async def _notify(self, info: TaskInfo, result: Any = None) -> None:
        """Send `info` as a `task_progress` frame to the connection that asked, if any."""
        if not info.notify:
            return
        if self.app is None:
            if not self._warned_no_app:
                self._warned_no_app = True
                _ctx.logger.warning(
                    "task %s (%s) was enqueued with notify=, but its Tasks has no app= to "
                    "send task_progress frames through: none are sent",
                    info.name,
                    info.id,
                )
            return
        try:
            await self.app.send_to(info.notify, _ctx.frame_of(info, result))
        except Exception as exc:  # the task goes on; the record still says where it is
            _ctx.logger.warning(
                "could not send task_progress (%s) of task %s (%s) to connection %s: %s",
                info.status.value,
                info.name,
                info.id,
                info.notify,
                exc,
            )

    def _take(self, task_id: str) -> _ctx.TaskContext | None:
        return self._running.pop(task_id, None)


_PROGRESS_DOC = (
    "Sent to a connection whose handler enqueued a task with `.using(notify=conn)`, at "
    "each step of the task's life: `ready` once enqueued again for a retry (after a "
    "failed attempt), `running` when an attempt starts and at each "
    "`current_task().progress(value)`, then `successful` with `result` (the task's JSON "
    "return value) or `failed` with `error` (the exception's class name only; the "
    "message and traceback stay in the task's status record). `task_id` names the task "
    "(the same for every attempt), `attempt` the run the frame is about. Frames are at "
    "most once (a connection that closed, or a server that cannot reach the messaging "
    "layer, misses them): read the task's status by id when it matters."
)


async def _call(fn: Callable[[AsyncBroker], Awaitable[R]], broker: AsyncBroker) -> R:
    return await fn(broker)
