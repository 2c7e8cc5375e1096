"""Counters of one `Tasks`, and the state a worker's health answers read.

Plain integers and dicts increased where the work already happens (a message handed to a
task, a run ending, a retry sent); nothing is formatted here. `rtframe.metrics` turns
them into Prometheus text when it is scraped, and `rtframe.tasks.health` answers
`/readyz` from `WorkerState`. This module imports nothing of Taskiq, so the exposition
can read it without the `tasks` extra's modules being loaded first.
"""

from __future__ import annotations

from bisect import bisect_left

__all__ = ["TASK_BUCKETS", "TaskTimings", "WorkerState", "WorkerStats"]

#: Upper bounds, in seconds, of the task duration buckets (the last one is +Inf): tasks
#: run from milliseconds (a notification) to minutes (a report).
TASK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

#: (task name, queue name): the labels of every per-task counter.
Key = tuple[str, str]


class TaskTimings:
    """A histogram with fixed buckets: one bisect and two additions per observation."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(TASK_BUCKETS) + 1)  # not cumulative; the last is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(TASK_BUCKETS, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, observations at or under it) per bucket, +Inf last."""
        out, running = [], 0
        for bound, n in zip((*map(str, TASK_BUCKETS), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


class WorkerStats:
    """What happened to the tasks of one `Tasks` in this process since it was made.

    Per (task name, queue name):

    Attributes:
        received: messages handed to this process to run (parsed, the task known).
        started: runs whose task code began (after the arguments were validated).
        succeeded: runs that returned (the task is SUCCESSFUL).
        failed: tasks that failed for good (no attempt left, or an error not retried).
        retried: failed attempts sent again to run later.
        dead_lettered: failed tasks added to their queue's dead-letter place.
        durations: how long each run took, whatever its outcome.
        running: runs in progress now, in this process.
        taken_over: messages this worker took over from a dead (or frozen) one.
        broker_losses: times the worker's listener lost its broker (Redis down).
        reconnects: times it read from the broker again after such a loss.
    """

    __slots__ = (
        "broker_losses",
        "dead_lettered",
        "durations",
        "failed",
        "received",
        "reconnects",
        "retried",
        "running",
        "started",
        "succeeded",
        "taken_over",
    )

    def __init__(self) -> None:
        self.received: dict[Key, int] = {}
        self.started: dict[Key, int] = {}
        self.succeeded: dict[Key, int] = {}
        self.failed: dict[Key, int] = {}
        self.retried: dict[Key, int] = {}
        self.dead_lettered: dict[Key, int] = {}
        self.durations: dict[Key, TaskTimings] = {}
        self.running = 0
        self.taken_over = 0
        self.broker_losses = 0
        self.reconnects = 0

    def __repr__(self) -> str:
        return (
            f"WorkerStats(received={sum(self.received.values())}, "
            f"succeeded={sum(self.succeeded.values())}, failed={sum(self.failed.values())}, "
            f"retried={sum(self.retried.values())}, running={self.running})"
        )

    def observe(self, key: Key, seconds: float) -> None:
        timings = self.durations.get(key)
        if timings is None:
            timings = self.durations[key] = TaskTimings()
        timings.observe(seconds)


def count(counter: dict[Key, int], key: Key) -> None:
    """Add one to `counter[key]`."""
    counter[key] = counter.get(key, 0) + 1


class WorkerState:
    """Where a `rtframe worker` process is, as `/readyz` tells it.

    Ready means: started, its broker answering, taking tasks. `broker_error` holds why
    the broker is not answering (None: it is); `draining` is set by SIGTERM.
    """

    __slots__ = ("broker_error", "concurrency", "draining", "started", "stats")

    def __init__(self, stats: WorkerStats, concurrency: int) -> None:
        self.stats = stats
        self.concurrency = concurrency
        self.started = False
        self.draining = False
        self.broker_error: str | None = None

    def broker_up(self) -> None:
        """The broker answered (a read, a chore): count a reconnect after a loss."""
        if self.broker_error is not None:
            self.broker_error = None
            self.stats.reconnects += 1

    def broker_down(self, reason: str) -> None:
        if self.broker_error is None:
            self.stats.broker_losses += 1
        self.broker_error = reason

    def unready(self) -> str | None:
        """Why the worker takes no task now, or None when it is ready."""
        if self.draining:
            return "draining: finishing running tasks after SIGTERM, taking no new ones"
        if not self.started:
            return "starting: the app and the broker are not started yet"
        if self.broker_error is not None:
            return f"broker disconnected: {self.broker_error}"
        return None
