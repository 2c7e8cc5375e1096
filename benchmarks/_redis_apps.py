"""The fan-out servers of `fanout_redis.py`, one module for every contender.

Chosen by environment variables, so two uvicorn processes serve the same app:
    BENCH_KIND       rtframe | channels-core | channels-pubsub
    BENCH_REDIS_URL  the Redis every process shares

Both expose /sub (join the "bench" group) and /pub (each frame is broadcast to the group).
"""

from __future__ import annotations

import os
from typing import Any

KIND = os.environ.get("BENCH_KIND", "rtframe")
URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")

app: Any

if KIND == "rtframe":
    from rtframe import Connection, Group, RealtimeApp, RedisLayer, WebSocketRouter
    from rtframe.limits import NO_LIMITS

    from .apps.schema import News

    ws = WebSocketRouter()
    members = Group("bench")

    @ws.route("/sub")
    async def subscribe(conn: Connection) -> None:
        await conn.accept()
        await members.add(conn)

    @ws.on_receive("/pub")
    @members.broadcast
    async def publish(msg: News) -> News:
        return msg

    # no limits: the benchmark measures the framework, not its limits (one address floods)
    app = RealtimeApp(
        routers=[ws],
        layer=RedisLayer(URL, prefix="bench"),
        rate_limit=None,
        limits=NO_LIMITS,
    )

else:
    import django
    from django.conf import settings

    backend = {
        "channels-core": "channels_redis.core.RedisChannelLayer",
        "channels-pubsub": "channels_redis.pubsub.RedisPubSubChannelLayer",
    }[KIND]
    # channels_redis at its best on redis-py 8: a pool big enough for one blocking
    # receive per consumer (the default of 100 refuses the 101st member with "Too many
    # connections"), and no socket timeout (the 5 s default kills idle consumers).
    HOST = {"address": URL, "max_connections": 5000, "socket_timeout": None}
    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="benchmark-only",
            ALLOWED_HOSTS=["*"],
            INSTALLED_APPS=["channels"],
            CHANNEL_LAYERS={"default": {"BACKEND": backend, "CONFIG": {"hosts": [HOST]}}},
            USE_TZ=True,
        )
        django.setup()

    from channels.generic.websocket import AsyncWebsocketConsumer
    from channels.routing import ProtocolTypeRouter, URLRouter
    from django.urls import path

    from .apps.schema import News

    class SubConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
        groups = ["bench"]

        async def bench_news(self, event: dict[str, Any]) -> None:
            await self.send(text_data=event["text"])

    class PubConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]
        async def receive(
            self, text_data: str | None = None, bytes_data: bytes | None = None
        ) -> None:
            # validate and serialize once, like the rtframe handler
            news = News.model_validate_json(text_data or "")
            await self.channel_layer.group_send(
                "bench", {"type": "bench.news", "text": news.model_dump_json()}
            )

    app = ProtocolTypeRouter(
        {
            "websocket": URLRouter(
                [path("sub", SubConsumer.as_asgi()), path("pub", PubConsumer.as_asgi())]
            )
        }
    )
