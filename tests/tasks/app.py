"""The app and tasks that `rtframe worker` and uvicorn processes run in the task tests.

Configured from the environment: REDIS_URL, TASKS_PREFIX (keys of one test), TASKS_IDLE
(the takeover bound, seconds). Tasks note what happened in Redis lists under the prefix,
so a test can see which process ran what, and when.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Literal

import redis
from pydantic import BaseModel, Field

from rtframe import Connection, Group, RealtimeApp, RedisLayer, WebSocketRouter
from rtframe.tasks import Backoff, Tasks, current_task

URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
PREFIX = os.environ.get("TASKS_PREFIX", "rtframe-tasks-test")

ws = WebSocketRouter()
watchers = Group("watch.{room}")
app = RealtimeApp(layer=RedisLayer(URL, prefix=f"{PREFIX}-layer"))  # routes: at the end
tasks = Tasks.redis(
    URL,
    app=app,
    prefix=PREFIX,
    idle_timeout=float(os.environ.get("TASKS_IDLE", "60")),
    poll_interval=0.05,
)
marks = redis.Redis.from_url(URL)


def client(url: str, prefix: str) -> Tasks:
    """Tasks that enqueue this module's tasks on `url` under `prefix` (a test's side)."""
    made = Tasks.redis(url, prefix=prefix, poll_interval=0.05)
    for task in tasks.tasks.values():
        made.task(name=task.name, queue=task.queue, retries=task.retries)(task.fn)
    return made


def note(kind: str, key: str, value: str | None = None) -> None:
    marks.rpush(f"{PREFIX}:{kind}:{key}", value or f"{os.getpid()} {time.time()!r}")


@tasks.task(name="slow")
async def slow(key: str, seconds: float = Field(ge=0)) -> str:
    note("started", key)
    await asyncio.sleep(seconds)
    note("done", key)
    return key


@tasks.task(name="pause")
async def pause(key: str, seconds: float = Field(ge=0)) -> str:
    """Uses no Redis of its own (no notes): during a Redis outage only rtframe's own
    writes (records, results, acknowledgements) can fail."""
    await asyncio.sleep(seconds)
    return key


@tasks.task(name="held")
async def held(key: str, limit: float = Field(default=30.0, gt=0)) -> str:
    """Runs while the test keeps `<prefix>:hold:<key>` (at most `limit` seconds), so a test
    decides when it ends rather than racing a sleep against slow process starts."""
    note("started", key)
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if not marks.exists(f"{PREFIX}:hold:{key}"):
            break
        await asyncio.sleep(0.02)
    note("done", key)
    return key


@tasks.task(name="fails", retries=2, backoff=Backoff(base=0.3, factor=2, jitter=0))
async def fails(key: str) -> None:
    note("tries", key, repr(time.time()))
    raise RuntimeError(f"{key} always fails")


@tasks.task(name="steps")
async def steps(n: int, room: str = "") -> int:
    for i in range(n):
        await current_task().progress((i + 1) / n)
    if room:
        await current_task().broadcast(watchers, {"type": "done", "n": n}, room=room)
    return n


class Start(BaseModel):
    type: Literal["start"] = "start"
    n: int = Field(ge=1, le=1000)
    room: str = ""


class Started(BaseModel):
    type: Literal["started"] = "started"
    task_id: str


@ws.route("/ws/tasks/{room}")
async def join(conn: Connection) -> None:
    await watchers.add(conn)
    await conn.accept()
    await conn.send({"type": "hello", "id": conn.id, "pid": os.getpid()})


@ws.on_receive("/ws/tasks/{room}")
async def start(msg: Start, conn: Connection) -> Started:
    handle = await steps.using(notify=conn).aenqueue(msg.n, room=msg.room)
    return Started(task_id=handle.id)


app.include_router(ws)
