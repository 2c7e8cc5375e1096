"""Fixtures for the layer tests: every contract test runs on each layer, Redis included.

Layers come from `make_layer(kind)`-style factories that bind each layer to a
`Recorder` (a fake member registry: the layer's Receiver) and stop every layer they made
at the end of the test. Kinds: "memory", "redis" (the real Redis at REDIS_URL) and
"cluster" (a 3-primary Redis Cluster started once per session on free ports).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator

import pytest

from rtframe.layers.base import Layer, Position
from rtframe.layers.memory import InMemoryLayer
from rtframe.layers.redis import RedisLayer

from .redis_servers import REDIS_URL, redis_cluster, require_redis

LayerFactory = Callable[[], Layer]

#: Every kind of layer the contract suite runs on.
KINDS = ["memory", "redis", "cluster"]
#: The kinds whose layers carry frames between processes.
CROSS_PROCESS = ["redis", "cluster"]


class Recorder:
    """A Receiver that records what its layer hands over (stands in for the registry)."""

    def __init__(self) -> None:
        self.groups: list[tuple[str, str | bytes]] = []
        #: the position each group frame came with (None: not a history frame)
        self.positions: list[Position | None] = []
        self.direct: list[tuple[str, str | bytes]] = []
        self.members: set[str] = set()  #: ids deliver_direct accepts

    def deliver_group(
        self, channel: str, data: str | bytes, position: Position | None = None
    ) -> None:
        self.groups.append((channel, data))
        self.positions.append(position)

    def deliver_direct(self, member_id: str, data: str | bytes) -> bool:
        if member_id not in self.members:
            return False
        self.direct.append((member_id, data))
        return True

    async def wait_groups(self, count: int, timeout: float = 5.0) -> list[tuple[str, str | bytes]]:
        """The group frames once `count` arrived; fails after `timeout`."""
        return await _until(lambda: len(self.groups) >= count, timeout, lambda: self.groups)

    async def wait_direct(self, count: int, timeout: float = 5.0) -> list[tuple[str, str | bytes]]:
        return await _until(lambda: len(self.direct) >= count, timeout, lambda: self.direct)


async def _until(
    done: Callable[[], bool], timeout: float, result: Callable[[], list[tuple[str, str | bytes]]]
) -> list[tuple[str, str | bytes]]:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s; got {result()!r}")
        await asyncio.sleep(0.002)
    return result()


def recorder_of(layer: Layer) -> Recorder:
    receiver = layer.receiver
    assert isinstance(receiver, Recorder)
    return receiver


@pytest.fixture
def prefix() -> str:
    """A prefix of its own for each test, so tests never hear each other on a shared Redis."""
    return f"rtt{uuid.uuid4().hex[:10]}"


@pytest.fixture
def redis_url() -> str:
    require_redis()
    return REDIS_URL


@pytest.fixture(scope="session")
def cluster_ports() -> Iterator[list[int]]:
    """One 3-primary Redis Cluster for the whole session (tests use their own prefixes)."""
    with redis_cluster(3) as ports:
        yield ports


class Layers:
    """Builds layers of one kind, each bound to its own Recorder; stops them all after."""

    def __init__(self, kind: str, prefix: str, cluster_ports: list[int] | None) -> None:
        self.kind = kind
        self.prefix = prefix
        self.cluster_ports = cluster_ports
        self.made: list[Layer] = []

    def __call__(self, **options: object) -> Layer:
        layer: Layer
        if self.kind == "memory":
            layer = InMemoryLayer()
        elif self.kind == "redis":
            layer = RedisLayer(REDIS_URL, prefix=self.prefix, **options)  # type: ignore[arg-type]
        else:
            assert self.cluster_ports is not None
            # each "process" enters the cluster through a different node
            port = self.cluster_ports[len(self.made) % len(self.cluster_ports)]
            layer = RedisLayer(
                f"redis://127.0.0.1:{port}",
                cluster=True,
                prefix=self.prefix,
                **options,  # type: ignore[arg-type]
            )
        layer.bind(Recorder())
        self.made.append(layer)
        return layer

    async def started(self, **options: object) -> Layer:
        layer = self(**options)
        await layer.start()
        return layer

    async def stop(self) -> None:
        for layer in self.made:
            await layer.stop()


async def _layers(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[Layers]:
    kind: str = request.param
    ports: list[int] | None = None
    if kind == "redis":
        require_redis()
    elif kind == "cluster":
        ports = request.getfixturevalue("cluster_ports")
    layers = Layers(kind, prefix, ports)
    try:
        yield layers
    finally:
        await layers.stop()


@pytest.fixture(params=KINDS)
async def layers(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[Layers]:
    """Layers of every kind: memory, redis and cluster."""
    async for made in _layers(request, prefix):
        yield made


@pytest.fixture(params=CROSS_PROCESS)
async def processes(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[Layers]:
    """Layers of the kinds that cross processes: each layer stands for one process."""
    async for made in _layers(request, prefix):
        yield made


@pytest.fixture(params=KINDS)
async def make_layer(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[LayerFactory]:
    """Builds unbound layers of one kind, for apps; each is stopped after the test."""
    kind: str = request.param
    made: list[Layer] = []
    ports: list[int] | None = None
    if kind == "redis":
        require_redis()
    elif kind == "cluster":
        ports = request.getfixturevalue("cluster_ports")

    def factory() -> Layer:
        layer: Layer
        if kind == "memory":
            layer = InMemoryLayer()
        elif ports is None:
            layer = RedisLayer(REDIS_URL, prefix=prefix)
        else:
            layer = RedisLayer(f"redis://127.0.0.1:{ports[0]}", cluster=True, prefix=prefix)
        made.append(layer)
        return layer

    yield factory
    for layer in made:
        await layer.stop()
