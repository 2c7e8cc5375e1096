"""The channel-layer contract (written out in `docs/layers.md`).

A layer carries encoded frames between the processes that serve one application. It
knows nothing of connections: which local member is in which group is kept by the app's
member registry (`rtframe.members`), which also does the local fan-out. A layer:

- `publish(channel, data)` sends one encoded frame to every *other* process subscribed
  to `channel` and returns its `Position` when the channel keeps history, else None;
- `subscribe(channel)` / `unsubscribe(channel)` say whether this process wants a
  channel's frames (the registry calls them when a group gets its first local member and
  loses its last), and the layer hands each frame that arrives to its `Receiver`;
- `send_direct(member_id, data)` sends one frame to a member of another process (ids
  come from `new_member_id`, so a cross-process layer can tell where a member lives);
- `start()` / `stop()` open and release its resources, `available` says whether frames
  can leave this process right now.

Guarantees every layer keeps: delivery is at most once; frames one publisher sends to one
channel arrive in order; while the backend is unreachable `publish` and `send_direct`
raise `LayerUnavailableError` (local members still receive, through the registry), and
`available` is False until every subscription is back.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from typing import NamedTuple, Protocol

from ..exceptions import ConfigurationError

__all__ = ["Layer", "Position", "Receiver"]


class Position(NamedTuple):
    """Where a frame sits in a channel's history: offsets grow within an epoch."""

    epoch: str
    offset: int


class Receiver(Protocol):
    """What a layer hands incoming frames to: the app's member registry."""

    def deliver_group(self, channel: str, data: str | bytes) -> None:
        """A frame published to `channel` by another process; never awaited."""

    def deliver_direct(self, member_id: str, data: str | bytes) -> bool:
        """A frame for one member of this process; False when it is not here (any more)."""


class Layer(ABC):
    """Carries group and direct frames between the processes of one application."""

    def __init__(self) -> None:
        self._receiver: Receiver | None = None

    def bind(self, receiver: Receiver) -> None:
        """Attach the registry that receives this layer's frames; done by the app.

        Raises:
            ConfigurationError: the layer already serves another app (two apps sharing a
                layer would each receive the other's frames).
        """
        if self._receiver is not None and self._receiver is not receiver:
            raise ConfigurationError(
                f"{self!r} already serves another RealtimeApp; give each app its own layer"
            )
        self._receiver = receiver

    @property
    def receiver(self) -> Receiver:
        if self._receiver is None:
            raise ConfigurationError(f"{self!r} is not bound to an app yet")
        return self._receiver

    @property
    def available(self) -> bool:
        """Whether frames can leave this process now; a local-only layer always can."""
        return True

    async def start(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Open backend resources; called at application startup (or first connection)."""

    async def stop(self) -> None:  # noqa: B027 - optional hook, empty by default
        """Release backend resources; called at application shutdown."""

    def new_member_id(self) -> str:
        """A fresh member id; a cross-process layer makes it name the process."""
        return uuid.uuid4().hex

    @abstractmethod
    async def publish(self, channel: str, data: str | bytes) -> Position | None:
        """Send an encoded frame to the other processes subscribed to `channel`."""

    @abstractmethod
    async def subscribe(self, channel: str) -> None:
        """Receive `channel`'s frames in this process from now on; idempotent."""

    @abstractmethod
    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving `channel`'s frames; no error if not subscribed."""

    @abstractmethod
    async def send_direct(self, member_id: str, data: str | bytes) -> None:
        """Send an encoded frame to a member of another process."""
