"""The same two servers written with Django Channels (settings configured in code)."""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings

if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="benchmark-only",
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=["channels"],
        CHANNEL_LAYERS={"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}},
        USE_TZ=True,
    )
    django.setup()

from channels.generic.websocket import AsyncJsonWebsocketConsumer
from channels.routing import ProtocolTypeRouter, URLRouter
from django.urls import path
from pydantic import ValidationError

from .schema import Echo, News


class EchoConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        try:
            model = Echo.model_validate(content)
        except ValidationError:
            await self.send_json({"type": "error"})
            return
        await self.send_json(model.model_dump(mode="json"))


class SubConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    groups = ["bench"]

    async def bench_news(self, event: dict[str, Any]) -> None:
        await self.send(text_data=event["text"])


class PubConsumer(AsyncJsonWebsocketConsumer):  # type: ignore[misc]
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        news = News.model_validate_json(text_data or "")
        await self.channel_layer.group_send(
            "bench", {"type": "bench.news", "text": news.model_dump_json()}
        )


echo = ProtocolTypeRouter({"websocket": URLRouter([path("echo", EchoConsumer.as_asgi())])})
fanout = ProtocolTypeRouter(
    {
        "websocket": URLRouter(
            [path("sub", SubConsumer.as_asgi()), path("pub", PubConsumer.as_asgi())]
        )
    }
)
