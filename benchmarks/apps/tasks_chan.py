"""The Channels side of `benchmarks/tasks.py`: `channel_layer.send` to a worker channel,
`python -m django runworker bench-tasks`, channels_redis `RedisChannelLayer`.

DJANGO_SETTINGS_MODULE=benchmarks.apps.tasks_chan_settings, BENCH_REDIS_URL as there.

- `task.noop` (throughput): no work; the consumer INCRs `bench:done` so the benchmark can
  tell when every message was handled. Channels keeps no result nor status of its own, so
  this one command stands in for what rtframe's result record and acknowledgement are.
- `task.ping` (latency): the worker sends a progress message back to the channel name of
  the WebSocket consumer that asked, which sends it to its socket as a frame.
"""

from __future__ import annotations

import json
import os
from typing import Any, Literal

import django
from pydantic import BaseModel

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "benchmarks.apps.tasks_chan_settings")
django.setup()

import redis.asyncio as aioredis  # noqa: E402
from channels.consumer import AsyncConsumer  # noqa: E402
from channels.generic.websocket import AsyncWebsocketConsumer  # noqa: E402
from channels.routing import ChannelNameRouter, ProtocolTypeRouter, URLRouter  # noqa: E402
from django.urls import path  # noqa: E402

URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")
#: the channel the runworker processes listen on
WORKER_CHANNEL = "bench-tasks"
DONE_KEY = "bench:done"

_counter: aioredis.Redis | None = None


class Start(BaseModel):
    type: Literal["start"] = "start"
    seq: int


class TaskWorker(AsyncConsumer):  # type: ignore[misc]
    """What `runworker bench-tasks` runs for every message (one at a time per process)."""

    async def task_noop(self, message: dict[str, Any]) -> None:
        global _counter
        if _counter is None:  # made on the worker's own loop
            _counter = aioredis.Redis.from_url(URL)
        await _counter.incr(DONE_KEY)

    async def task_ping(self, message: dict[str, Any]) -> None:
        await self.channel_layer.send(
            message["reply"], {"type": "task.progress", "seq": message["seq"], "progress": 0.5}
        )


class StartConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
    """Validates a start frame (as rtframe's handler does) and sends the task message."""

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        start = Start.model_validate_json(text_data or "")
        await self.channel_layer.send(
            WORKER_CHANNEL, {"type": "task.ping", "seq": start.seq, "reply": self.channel_name}
        )

    async def task_progress(self, event: dict[str, Any]) -> None:
        frame = {"type": "task_progress", "seq": event["seq"], "progress": event["progress"]}
        await self.send(text_data=json.dumps(frame))


application = ProtocolTypeRouter(
    {
        "websocket": URLRouter([path("tasks", StartConsumer.as_asgi())]),
        "channel": ChannelNameRouter({WORKER_CHANNEL: TaskWorker.as_asgi()}),
    }
)
