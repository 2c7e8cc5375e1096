"""The in-process layer: the default, and the right one for a single server process."""

from __future__ import annotations

import logging
import secrets
import time
from collections import deque

from .base import HistoryPolicy, HistorySlice, Layer, Position, PresenceEntry

logger = logging.getLogger("rtframe.layers")

__all__ = ["InMemoryLayer"]

_clock = time.monotonic


class _History:
    """One channel's kept frames, with the same expiry rules as the Redis layer's keys."""

    __slots__ = ("epoch", "frames", "last", "offset")

    def __init__(self) -> None:
        # each channel starts its own epoch, as a Redis key created afresh does
        self.epoch = secrets.token_hex(4)
        self.offset = 0
        self.frames: deque[tuple[int, str]] = deque()
        self.last = _clock()  # the last write: both expiries count from it


class InMemoryLayer(Layer):
    """Nothing crosses processes: the registry's local fan-out is the whole delivery.

    History lives in this process: a restart loses it, and the next broadcast to a
    history group starts a new epoch, so clients are told they cannot be recovered.
    """

    def __init__(self) -> None:
        super().__init__()
        self._channels: set[str] = set()
        self._histories: dict[str, _History] = {}

    @property
    def channels(self) -> frozenset[str]:
        """The channels this process is subscribed to."""
        return frozenset(self._channels)

    async def publish(
        self, channel: str, data: str | bytes, history: HistoryPolicy | None = None
    ) -> Position | None:
        if history is None:
            return None
        if not isinstance(data, str):
            raise TypeError(f"history group {channel!r} carries text frames only")
        kept = self._kept(channel, history)
        kept.offset += 1
        kept.frames.append((kept.offset, data))
        while len(kept.frames) > history.size:
            kept.frames.popleft()
        kept.last = _clock()
        return Position(kept.epoch, kept.offset)

    async def history(
        self, channel: str, policy: HistoryPolicy, since: int | None, limit: int
    ) -> HistorySlice:
        kept = self._kept(channel, policy)
        if since is not None:
            frames = [f for f in kept.frames if f[0] > since]
        else:
            frames = list(kept.frames)[-limit:] if limit > 0 else []
        return HistorySlice(kept.epoch, kept.offset, frames)

    def _kept(self, channel: str, policy: HistoryPolicy) -> _History:
        kept = self._histories.get(channel)
        idle = _clock() - kept.last if kept is not None else 0.0
        if kept is None or idle > policy.meta_ttl:
            kept = self._histories[channel] = _History()
        elif idle > policy.ttl:
            kept.frames.clear()
        return kept

    async def subscribe(self, channel: str) -> None:
        self._channels.add(channel)

    async def unsubscribe(self, channel: str) -> None:
        self._channels.discard(channel)

    async def send_direct(self, member_id: str, data: str | bytes) -> None:
        # every member of an in-memory app is local, and the registry did not find it:
        # the member is gone (or never was); at most once, but never without a word
        logger.warning("direct message to %r dropped: no such member in this process", member_id)

    # -- presence: this process is the only one, so it is its own refresher and an entry
    #    lives until it is removed (or the process ends, taking the table with it);
    #    nothing ever expires here and a sweep finds nothing

    def _present(self) -> dict[str, dict[str, PresenceEntry]]:
        # made on first use: an app without presence carries no table
        table: dict[str, dict[str, PresenceEntry]] = self.__dict__.setdefault("_presence", {})
        return table

    async def presence_add(self, channel: str, entry: PresenceEntry, ttl: float) -> None:
        self._present().setdefault(channel, {})[entry.id] = entry

    async def presence_remove(self, channel: str, member_id: str) -> None:
        table = self._present()
        entries = table.get(channel)
        if entries is not None and entries.pop(member_id, None) is not None and not entries:
            del table[channel]

    async def presence(self, channel: str) -> list[PresenceEntry]:
        return list(self._present().get(channel, {}).values())

    async def presence_sweep(self, channel: str) -> list[str]:
        return []
