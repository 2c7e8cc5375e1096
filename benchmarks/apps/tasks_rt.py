"""The rtframe side of `benchmarks/tasks.py`: two trivial tasks and a socket that starts one.

Configured from the environment, so the uvicorn process and every `rtframe worker` serve
the same app on the benchmark's private Redis:
    BENCH_REDIS_URL  the Redis every process shares
    BENCH_PREFIX     the prefix of every key (task streams, records, layer channels)

The tasks do no work of their own: what is measured is the framework's (enqueue, records,
result, acknowledgement, progress frames through the layer).
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel

from rtframe import Connection, RealtimeApp, RedisLayer, WebSocketRouter
from rtframe.limits import NO_LIMITS
from rtframe.tasks import Tasks, current_task

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
PREFIX = os.environ.get("BENCH_PREFIX", "bench-tasks")

ws = WebSocketRouter()
# no limits: the benchmark measures the framework, not its limits (one address floods)
app = RealtimeApp(
    layer=RedisLayer(URL, prefix=f"{PREFIX}-layer"), rate_limit=None, limits=NO_LIMITS
)
tasks = Tasks.redis(URL, app=app, prefix=PREFIX)


@tasks.task(name="bench.noop")
async def noop(n: int) -> int:
    return n


@tasks.task(name="bench.ping")
async def ping(seq: int) -> int:
    await current_task().progress(0.5)
    return seq


class Start(BaseModel):
    type: Literal["start"] = "start"
    seq: int


@ws.on_receive("/tasks")
async def start(msg: Start, conn: Connection) -> None:
    await ping.using(notify=conn).aenqueue(msg.seq)


app.include_router(ws)


def client(url: str, prefix: str) -> Tasks:
    """Tasks that enqueue this module's tasks on `url` under `prefix` (the benchmark's side,
    in its own process: this module's `tasks` were made from the environment at import)."""
    made = Tasks.redis(url, prefix=prefix)
    for task in tasks.tasks.values():
        made.task(name=task.name, queue=task.queue)(task.fn)
    return made
