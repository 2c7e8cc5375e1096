"""The in-process layer: the default, and the right one for a single server process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .base import Layer

if TYPE_CHECKING:
    from ..connection import Connection


class InMemoryLayer(Layer):
    """Groups and direct messages within one process; nothing crosses processes."""

    async def group_add(self, group: str, conn: Connection) -> None:
        self._add_local(group, conn)

    async def group_discard(self, group: str, conn: Connection) -> None:
        self._discard_local(group, conn)

    async def publish(self, group: str, data: str | bytes) -> None:
        self.fan_out(group, data)

    async def send_to(self, connection_id: str, data: str | bytes) -> None:
        self.deliver_local(connection_id, data)
