"""Fixtures for the layer tests: every contract test runs on each layer, Redis included."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable

import pytest

from rtframe import InMemoryLayer, Layer, RedisLayer

from .redis_servers import REDIS_URL, require_redis

LayerFactory = Callable[[], Layer]


@pytest.fixture
def prefix() -> str:
    """A prefix of its own for each test, so tests never hear each other on a shared Redis."""
    return f"rtt{uuid.uuid4().hex[:10]}"


@pytest.fixture
def redis_url() -> str:
    require_redis()
    return REDIS_URL


@pytest.fixture(params=["memory", "redis"])
async def make_layer(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[LayerFactory]:
    """Builds layers of one kind; layers built by the factory are stopped afterwards."""
    made: list[Layer] = []
    if request.param == "redis":
        require_redis()

    def factory() -> Layer:
        layer: Layer = (
            InMemoryLayer() if request.param == "memory" else RedisLayer(REDIS_URL, prefix=prefix)
        )
        made.append(layer)
        return layer

    yield factory
    for layer in made:
        await layer.stop()
