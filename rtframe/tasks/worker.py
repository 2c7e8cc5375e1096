"""`rtframe worker module:attr`: run an app's tasks in this process, Taskiq's receiver
inside, with the app and its layer started so tasks can broadcast and notify.

`module:attr` names a `Tasks`, or a RealtimeApp (or an ASGI app wrapping one) that
exactly one `Tasks` was made for (`Tasks(..., app=app)`).

Life of a worker:
1. import the target; start the app (its layer, its startup hooks, which start the
   broker as a worker: consumer groups declared, chores started);
2. run Taskiq's `Receiver` with `concurrency` tasks at once; if the broker connection
   fails (Redis restarting), log it and listen again after a pause. A message is
   acknowledged only once its outcome was saved; otherwise it is released (not renewed)
   and runs again after `idle_timeout` (see `Delivery`);
3. on SIGTERM or SIGINT: take no new message, let running tasks finish for up to
   `grace` seconds, hand back the messages taken but not started (Redis Streams), stop
   the app. A task still running after `grace` is cancelled and, never acknowledged, is
   taken over by another worker. A second signal stops at once.

With `--http-port`, the worker also serves `/healthz`, `/readyz` and `/metrics` from
this process (`rtframe.tasks.health`): bound before anything starts, so a port in use
fails the command at once; ready once started and while its broker answers; unready
from the first signal on.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from taskiq import AckableMessage
from taskiq.acks import AcknowledgeType
from taskiq.receiver import Receiver
from taskiq.utils import maybe_awaitable

from .._loader import CommandError, find_app, import_target
from .context import Delivery, delivery
from .core import Tasks, all_tasks
from .health import METRICS_MISSING, Exposition, HealthServer
from .local import LocalBroker
from .redis import StreamBroker
from .stats import WorkerState

__all__ = ["MetricsFactory", "load_tasks", "run_worker"]

#: Makes the /metrics exposition of a worker from its state (`rtframe.metrics`).
MetricsFactory = Callable[[WorkerState], Exposition]

logger = logging.getLogger("rtframe.tasks")


def load_tasks(target: str) -> Tasks:
    """Import `module:attr` and find the `Tasks` it names (directly or through its app).

    Raises:
        CommandError: malformed target, import failure, or no single `Tasks` found.
    """
    obj = import_target(target, example="myproject.tasks:tasks")
    if isinstance(obj, Tasks):
        return obj
    app = find_app(obj)
    if app is None:
        raise CommandError(f"{target} is a {type(obj).__name__}, neither a Tasks nor an app")
    found = [t for t in all_tasks() if t.app is app]
    if len(found) != 1:
        raise CommandError(
            f"{len(found)} Tasks were made for the app {target} (expected one): name the "
            "Tasks itself, module:tasks"
        )
    return found[0]


async def run_worker(
    tasks: Tasks,
    *,
    concurrency: int = 10,
    queues: list[str] | None = None,
    grace: float = 30.0,
    stop: asyncio.Event | None = None,
    http_port: int | None = None,
    http_host: str = "127.0.0.1",
    metrics: MetricsFactory | None = None,
) -> None:
    """Run `tasks` until `stop` is set (or SIGTERM/SIGINT arrives when `stop` is None).

    With `http_port` (0: any free port), serve `/healthz`, `/readyz` and `/metrics` on
    `http_host`; `metrics` makes the exposition (None: `/metrics` answers 501, and a
    WARNING says so now).

    Raises:
        CommandError: the tasks run in-process (`LocalBroker`): there is nothing to
            listen to; a bad setting; the health address cannot be listened on.
    """
    broker = tasks.broker
    if isinstance(broker, LocalBroker):
        raise CommandError(
            "these tasks use the in-process engine (they run in the serving process): a "
            "worker needs a shared one, e.g. Tasks.redis(url)"
        )
    if concurrency < 1 or grace < 0:
        raise CommandError("concurrency must be >= 1 and grace >= 0")
    if isinstance(broker, StreamBroker):
        names = queues or tasks.queues()
        broker.queue_name = tasks.queue_key(names[0])
        broker.additional_streams = {tasks.queue_key(q): ">" for q in names[1:]}
        broker.count = broker.unacknowledged_batch_size = concurrency
    broker.is_worker_process = True
    state = WorkerState(tasks.stats, concurrency)
    if isinstance(broker, StreamBroker):
        broker.worker_state = state
    health: HealthServer | None = None
    served = ""
    if http_port is not None:
        if metrics is None:
            logger.warning("%s: GET /metrics answers 501 until it is", METRICS_MISSING)
        health = HealthServer(state, metrics(state) if metrics is not None else None)
        served = f", health and metrics on {await health.start(http_host, http_port)}"
    try:
        await _work(tasks, state, concurrency, grace, stop, served)
    finally:
        if health is not None:
            await health.close()


async def _work(
    tasks: Tasks,
    state: WorkerState,
    concurrency: int,
    grace: float,
    stop: asyncio.Event | None,
    served: str,
) -> None:
    broker = tasks.broker
    finish = asyncio.Event()
    _install_signals(finish, stop, state)
    app = tasks.app
    if app is not None:
        await app.startup()  # its startup hooks start the tasks' broker
    await tasks.startup()
    state.started = True
    print(
        f"rtframe worker: ready, pid {os.getpid()}, {len(tasks.tasks)} task(s), "
        f"concurrency {concurrency}{served}",
        flush=True,
    )
    try:
        with ThreadPoolExecutor(max_workers=concurrency) as executor:
            await _listen(tasks, state, executor, concurrency, grace, finish)
    finally:
        state.draining = True  # also when the listening ended on its own
        if isinstance(broker, StreamBroker):
            try:
                moved = await broker.hand_back()
            except Exception as exc:
                logger.warning("could not hand back unstarted task messages: %s", exc)
            else:
                if moved:
                    logger.warning("handed %d task message(s) back to their queues", moved)
        if app is not None:
            await app.shutdown()
        await tasks.shutdown()
        print("rtframe worker: stopped", flush=True)


async def _listen(
    tasks: Tasks,
    state: WorkerState,
    executor: ThreadPoolExecutor,
    concurrency: int,
    grace: float,
    finish: asyncio.Event,
) -> None:
    pause = 0.1
    while not finish.is_set():
        receiver = _Receiver(
            broker=tasks.broker,
            executor=executor,
            max_async_tasks=concurrency,
            max_prefetch=0,
            run_startup=False,
            ack_type=AcknowledgeType.WHEN_SAVED,
            wait_tasks_timeout=grace,
        )
        if not isinstance(tasks.broker, StreamBroker):
            state.broker_up()  # only the Redis Streams engine says when it answers again
        try:
            await receiver.listen(finish)
            return
        except Exception as exc:  # the broker's connection failed: Redis down, restarting
            state.broker_down(_reason(exc))
            logger.warning(
                "task worker lost its broker (%s); listening again in %.1fs", _reason(exc), pause
            )
            try:
                await asyncio.wait_for(finish.wait(), pause)
            except TimeoutError:
                pass
            pause = min(pause * 2, 5.0)


def _reason(exc: BaseException) -> str:
    """What failed, under the exception groups of Taskiq's task group."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_reason(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


class _Receiver(Receiver):
    """Taskiq's receiver, with a `Delivery` per message: a message whose outcome was not
    saved, or whose handling ended before its acknowledgement (a retry that could not be
    enqueued), is released to be taken over, never acknowledged nor held for good."""

    async def callback(self, message: bytes | AckableMessage, raise_err: bool = False) -> None:
        current = Delivery()
        delivery.set(current)  # this message's own task: seen by the lifecycle and the ack
        try:
            await super().callback(message, raise_err=raise_err)
        except Exception:
            # Taskiq's runner never looks at this task's outcome: say it here
            logger.warning("handling a task message failed", exc_info=True)
            if raise_err:
                raise
        finally:
            if isinstance(message, AckableMessage) and not current.acked:
                current.saved = False
                await maybe_awaitable(message.ack())


def _install_signals(finish: asyncio.Event, stop: asyncio.Event | None, state: WorkerState) -> None:
    loop = asyncio.get_running_loop()
    if stop is not None:
        _relays.add(loop.create_task(_relay(stop, finish, state)))
        return
    main = asyncio.current_task()

    def on_signal(signum: int) -> None:
        if finish.is_set():  # a second signal: stop now
            logger.warning("second %s: stopping at once", signal.Signals(signum).name)
            if main is not None:
                main.cancel()
            return
        logger.warning(
            "%s: finishing running tasks (up to the grace period), taking no new ones",
            signal.Signals(signum).name,
        )
        state.draining = True  # /readyz says so from now on
        finish.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)


_relays: set[asyncio.Task[None]] = set()


async def _relay(stop: asyncio.Event, finish: asyncio.Event, state: WorkerState) -> None:
    try:
        await stop.wait()
        state.draining = True
        finish.set()
    finally:
        _relays.discard(asyncio.current_task())


def main(
    target: str,
    *,
    concurrency: int,
    queues: list[str],
    grace: float,
    log_level: str,
    http_port: int | None = None,
    http_host: str = "127.0.0.1",
    metrics: MetricsFactory | None = None,
) -> int:
    """The `rtframe worker` command (see `rtframe.cli`)."""
    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    tasks = load_tasks(target)
    try:
        asyncio.run(
            run_worker(
                tasks,
                concurrency=concurrency,
                queues=queues or None,
                grace=grace,
                http_port=http_port,
                http_host=http_host,
                metrics=metrics,
            )
        )
    except asyncio.CancelledError:
        return 1
    return 0
