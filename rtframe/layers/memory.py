"""The in-process layer: the default, and the right one for a single server process."""

from __future__ import annotations

import logging

from .base import Layer, Position

logger = logging.getLogger("rtframe.layers")

__all__ = ["InMemoryLayer"]


class InMemoryLayer(Layer):
    """Nothing crosses processes: the registry's local fan-out is the whole delivery."""

    def __init__(self) -> None:
        super().__init__()
        self._channels: set[str] = set()

    @property
    def channels(self) -> frozenset[str]:
        """The channels this process is subscribed to."""
        return frozenset(self._channels)

    async def publish(self, channel: str, data: str | bytes) -> Position | None:
        return None

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    async def send_direct(self, member_id: str, data: str | bytes) -> None:
        # every member of an in-memory app is local, and the registry did not find it:
        # the member is gone (or never was); at most once, but never without a word
        logger.warning("direct message to %r dropped: no such member in this process", member_id)
