"""The messaging-layer contract.

A layer knows which local connections belong to which group, and carries group and
direct messages to them: within the process (in-memory) or across processes (Redis).
Messages arrive already encoded as frame text, so a broadcast is serialized once by its
sender and never again.

Semantics every layer keeps:
- delivery is at most once; frames from one publisher to one group arrive in order;
- a member's frames go through its bounded outbox, so a slow member never stalls others;
- `group_add` / `group_discard` are idempotent; disconnecting discards a connection from
  all its groups.
"""

from __future__ import annotations

import logging
import uuid
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..connection import Connection

logger = logging.getLogger("rtframe.layers")


class Layer(ABC):
    """Groups and direct messages for the connections of one application."""

    def __init__(self) -> None:
        self._groups: dict[str, dict[Connection, None]] = {}
        self._connections: dict[str, Connection] = {}

    async def start(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Open backend resources; called at application startup (or first connection)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release backend resources; called at application shutdown."""

    def new_connection_id(self) -> str:
        """A fresh connection id; a cross-process layer makes it name the process."""
        return uuid.uuid4().hex

    # -- local bookkeeping shared by every layer ---------------------------------------

    def attach(self, conn: Connection) -> None:
        """Make a connection reachable by its id; called when it is accepted."""
        self._connections[conn.id] = conn

    def detach(self, conn: Connection) -> None:
        """Forget a connection; called after its groups were left."""
        self._connections.pop(conn.id, None)

    def local_members(self, group: str) -> list[Connection]:
        """The connections of this process in `group`."""
        return list(self._groups.get(group, ()))

    def fan_out(self, group: str, data: str | bytes) -> int:
        """Hand one encoded frame to every local member; returns how many there were."""
        members = self._groups.get(group)
        if not members:
            return 0
        # Plain loop on purpose: each deliver() writes in place or queues, never awaits,
        # and never changes membership (a failed send only marks its connection closed;
        # leaving the group happens in its teardown), so no copy of the members is needed.
        for conn in members:
            conn.deliver(data)
        return len(members)

    def deliver_local(self, connection_id: str, data: str | bytes) -> bool:
        conn = self._connections.get(connection_id)
        if conn is None:
            return False
        conn.deliver(data)
        return True

    def _add_local(self, group: str, conn: Connection) -> bool:
        """Record membership; True when the group just got its first local member."""
        members = self._groups.get(group)
        first = members is None
        if members is None:
            members = self._groups[group] = {}
        members[conn] = None
        conn.groups.add(group)
        return first

    def _discard_local(self, group: str, conn: Connection) -> bool:
        """Drop membership; True when the group just lost its last local member."""
        conn.groups.discard(group)
        members = self._groups.get(group)
        if members is None or conn not in members:
            return False
        del members[conn]
        if not members:
            del self._groups[group]
            return True
        return False

    # -- the contract ------------------------------------------------------------------

    @abstractmethod
    async def group_add(self, group: str, conn: Connection) -> None:
        """Make `conn` a member of `group`."""

    @abstractmethod
    async def group_discard(self, group: str, conn: Connection) -> None:
        """Remove `conn` from `group`; no error if it was not a member."""

    @abstractmethod
    async def publish(self, group: str, data: str | bytes) -> None:
        """Send an encoded frame to every member of `group`, wherever it is connected."""

    @abstractmethod
    async def send_to(self, connection_id: str, data: str | bytes) -> None:
        """Send an encoded frame to one connection, wherever it is connected."""
