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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from ..exceptions import ConfigurationError

__all__ = [
    "HistoryPolicy",
    "HistorySlice",
    "Hook",
    "Layer",
    "Position",
    "PresenceEntry",
    "Receiver",
]

#: An outage or recovery hook: `async def hook() -> None`.
Hook = Callable[[], Awaitable[None]]


class Position(NamedTuple):
    """Where a frame sits in a channel's history: offsets grow within an epoch."""

    epoch: str
    offset: int


@dataclass(frozen=True, slots=True)
class HistoryPolicy:
    """How much of a group's traffic is kept for members that reconnect.

    Args:
        size: the most recent broadcasts kept (older ones are trimmed).
        ttl: seconds a broadcast is kept after the group's last broadcast.
        meta_ttl: seconds the group's epoch and offset are kept after its last
            broadcast. Longer than `ttl`, so a client that missed nothing can still be
            told so after its messages expired; when this expires too, a new epoch
            starts and old positions can no longer be recovered.
        on_join: the newest broadcasts a connection gets when it joins without a
            position to recover from (e.g. the last 50 messages of a chat room).
    """

    size: int = 300
    ttl: float = 120.0
    meta_ttl: float = 86_400.0
    on_join: int = 0

    def __post_init__(self) -> None:
        if self.size < 1 or self.ttl <= 0 or self.meta_ttl < self.ttl:
            raise ConfigurationError(
                "HistoryPolicy needs size >= 1, ttl > 0 and meta_ttl >= ttl, not "
                f"size={self.size}, ttl={self.ttl}, meta_ttl={self.meta_ttl}"
            )
        if not 0 <= self.on_join <= self.size:
            raise ConfigurationError(
                f"HistoryPolicy(on_join={self.on_join}) must be between 0 and size={self.size}"
            )


class HistorySlice(NamedTuple):
    """What a layer read from a channel's history.

    `epoch` and `offset` are the channel's current epoch and newest offset (0: nothing
    published in this epoch yet); `frames` are (offset, frame) pairs, oldest first.
    """

    epoch: str
    offset: int
    frames: list[tuple[int, str]]

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.offset)

    def after(self, offset: int) -> HistorySlice:
        """The same read with only the frames after `offset`."""
        frames = self.frames
        if not frames or frames[0][0] > offset:
            return self
        return HistorySlice(self.epoch, self.offset, [f for f in frames if f[0] > offset])

    def covers(self, since: tuple[str, int]) -> bool:
        """Whether `frames` hold every broadcast after `since` (an epoch and offset)."""
        epoch, offset = since
        if epoch != self.epoch or offset > self.offset:
            return False
        frames = self.frames
        return len(frames) == self.offset - offset and (not frames or frames[0][0] == offset + 1)


class PresenceEntry(NamedTuple):
    """One member present in a group: who, since when, and what the app said about it."""

    id: str
    user: str | None
    connected_at: float
    meta: dict[str, Any]


class Receiver(Protocol):
    """What a layer hands incoming frames to: the app's member registry."""

    def deliver_group(
        self, channel: str, data: str | bytes, position: Position | None = None
    ) -> None:
        """A frame published to `channel` by another process; never awaited.

        `position` is the frame's place in the channel's history (a history channel),
        and `data` is then the frame as published, without its position stamped in.
        """

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

    def on_outage(self, hook: Hook) -> Hook:
        """Register `async def hook()`, run when the backend becomes unreachable.

        A layer that cannot lose its backend (the in-memory one) never runs it.
        """
        return hook

    def on_recovery(self, hook: Hook) -> Hook:
        """Register `async def hook()`, run once frames flow again after an outage.

        The hub uses it to recover history members and tell the others of the gap.
        """
        return hook

    def new_member_id(self) -> str:
        """A fresh member id; a cross-process layer makes it name the process."""
        return uuid.uuid4().hex

    @abstractmethod
    async def publish(
        self, channel: str, data: str | bytes, history: HistoryPolicy | None = None
    ) -> Position | None:
        """Send an encoded frame to the other processes subscribed to `channel`.

        With `history`, first append it to the channel's history (trimmed to
        `history.size`, kept `history.ttl` seconds) in the same atomic step, and return
        its `Position`; the other processes receive it with that position. Without,
        return None. A history frame is always text (a JSON object).
        """

    async def history(
        self, channel: str, policy: HistoryPolicy, since: int | None, limit: int
    ) -> HistorySlice:
        """Read a history channel: its epoch, newest offset and kept frames.

        With `since`, the kept frames with a greater offset (all of them, oldest
        first); without, the newest `limit` (0: just the position). A channel never
        published to gets an epoch here, so later publishes continue that epoch.

        Raises:
            LayerUnavailableError: the backend is unreachable.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no history")

    @abstractmethod
    async def subscribe(self, channel: str) -> None:
        """Receive `channel`'s frames in this process from now on; idempotent."""

    @abstractmethod
    async def unsubscribe(self, channel: str) -> None:
        """Stop receiving `channel`'s frames; no error if not subscribed."""

    @abstractmethod
    async def send_direct(self, member_id: str, data: str | bytes) -> None:
        """Send an encoded frame to a member of another process."""

    async def presence_add(self, channel: str, entry: PresenceEntry, ttl: float) -> None:
        """Record `entry` as present in `channel`, for every process to see.

        The entry stays while this process lives (the layer refreshes it); if the
        process dies, it vanishes within `ttl` seconds.

        Raises:
            LayerUnavailableError: the backend is unreachable.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no presence")

    async def presence_remove(self, channel: str, member_id: str) -> None:
        """Forget a member's presence in `channel`; no error if it was not there."""
        raise NotImplementedError(f"{type(self).__name__} keeps no presence")

    async def presence(self, channel: str) -> list[PresenceEntry]:
        """Every member present in `channel`, in every process (expired ones left out).

        Raises:
            LayerUnavailableError: the backend is unreachable.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no presence")
