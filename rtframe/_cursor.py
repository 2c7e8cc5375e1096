"""One member's place in each history group it is in: what it got, what it is owed.

A `Cursor` sits between the registry's fan-out and a member's `deliver` for frames of
history groups. It keeps the last position the member was handed per group and:

- drops a frame at or before that position (a duplicate: the replay already held it);
- on an offset that skips ahead (a frame lost on its way to this process) asks for a
  recovery and buffers live frames meanwhile;
- on a new epoch (the history was lost) tells the client `recovered: false`;
- while a recovery's history read is in flight, buffers the group's live frames, then
  `settle` hands the member the replay and the buffered frames past it, in order, so
  the handover from replay to live neither drops nor repeats a frame;
- until the member is open (a connect handler joins before `accept()`), holds what it
  would have delivered, and hands it over on `open()`.

All of it runs on the event loop without awaiting, so no frame can slip in between a
check and its delivery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .history import HistorySlice, Position, recovery_notice, stamp

__all__ = ["Cursor"]

Deliver = Callable[[str | bytes], None]
GapHandler = Callable[[str], None]

#: `Cursor.last` has no entry for the group (a missing key, told from a None value).
_NOT_IN: Any = object()


class Cursor:
    """The positions of one member in its history groups.

    Args:
        deliver: the member's `deliver` (never blocks, never raises).
        on_gap: called with a group whose frames skipped ahead; it must start a
            recovery for this member (`begin` was called already) and `settle` it.
        opened: whether the member is open already (else frames wait for `open()`).
    """

    __slots__ = ("_deliver", "_held", "_on_gap", "buffers", "last", "since")

    def __init__(
        self,
        deliver: Deliver,
        on_gap: GapHandler,
        *,
        opened: bool = True,
        since: dict[str, Position] | None = None,
    ) -> None:
        self._deliver = deliver
        self._on_gap = on_gap
        #: frames waiting for the member to open; None once it is
        self._held: list[str | bytes] | None = None if opened else []
        #: the last position handed over per group; None: not known (a failed read)
        self.last: dict[str, tuple[str, int] | None] = {}
        #: live frames that came while a recovery of their group was reading history
        self.buffers: dict[str, list[tuple[tuple[str, int], str | bytes]]] = {}
        #: the positions the client asked to recover from (`$since`), used once each
        self.since: dict[str, Position] = since if since is not None else {}

    def __repr__(self) -> str:
        return f"<Cursor {dict(self.last)!r} recovering={list(self.buffers)!r}>"

    # -- live frames ----------------------------------------------------------------------

    def offer(self, group: str, position: tuple[str, int], data: str | bytes) -> None:
        """A live frame of a history group, stamped with its (epoch, offset) position.

        Runs for every member of every history broadcast, so the usual case (the next
        offset of the same epoch, no recovery running) is decided first, with plain
        tuple indexing and no allocation.
        """
        last = self.last.get(group)
        if (
            last is not None
            and last[1] + 1 == position[1]
            and last[0] == position[0]
            and not self.buffers
        ):
            self.last[group] = position
            held = self._held
            if held is None:
                self._deliver(data)
            else:
                held.append(data)
            return
        self._offer(group, position, data)

    def _offer(self, group: str, position: tuple[str, int], data: str | bytes) -> None:
        buffer = self.buffers.get(group)
        if buffer is not None:
            buffer.append((position, data))
            return
        last = self.last.get(group, _NOT_IN)
        if last is _NOT_IN:
            return  # left the group, or never joined it: not ours
        if last is not None and last[0] == position[0]:
            if position[1] > last[1] + 1:
                self._recover(group, position, data)
            # else: handed over already (a replay held it)
            return
        if last is not None and position[1] == 1:
            # a new epoch whose first frame this is: only frames of the old epoch can
            # have been missed, and the client must be told
            self._emit(recovery_notice(group, False, 0, position))
            self.last[group] = position
            self._emit(data)
            return
        self._recover(group, position, data)

    def _recover(self, group: str, position: tuple[str, int], data: str | bytes) -> None:
        self.buffers[group] = [(position, data)]
        self._on_gap(group)

    # -- recovery -------------------------------------------------------------------------

    def begin(self, group: str) -> None:
        """A history read for `group` starts: buffer its live frames until `settle`."""
        self.buffers.setdefault(group, [])

    def settle(
        self,
        group: str,
        read: HistorySlice | None,
        since: tuple[str, int] | None,
        *,
        announce: bool,
    ) -> None:
        """Finish a recovery with what the history read returned.

        `since` is where the member was (None: nowhere, a fresh join or an unknown
        position); `read` None means the read failed: the member's position becomes
        unknown, and the next frame or the layer's recovery tries again. `announce`
        sends the `$recovery` frame (always when a position was asked for).
        """
        buffer = self.buffers.pop(group, None)
        if buffer is None:
            return  # the member left the group meanwhile
        if read is None:
            self.last[group] = since
            if since is None:
                return  # told once the layer is back (the hub recovers unknown positions)
        else:
            position = read.position
            if since is not None and read.covers(since):
                frames = read.frames
                if announce:
                    self._emit(recovery_notice(group, True, len(frames), position))
            else:
                frames = read.frames if since is None and not announce else []
                if announce:
                    self._emit(recovery_notice(group, False, 0, position))
            epoch = read.epoch
            for offset, frame in frames:
                self._emit(stamp(frame, group, Position(epoch, offset)))
            self.last[group] = position
        for pos, data in buffer:
            self.offer(group, pos, data)

    def forget(self, group: str) -> None:
        """The member left `group`."""
        self.last.pop(group, None)
        self.buffers.pop(group, None)

    # -- delivery -------------------------------------------------------------------------

    def open(self) -> None:
        """The member is open: hand over what was held, in order."""
        held, self._held = self._held, None
        if held:
            for data in held:
                self._deliver(data)

    def _emit(self, data: str | bytes) -> None:
        held = self._held
        if held is None:
            self._deliver(data)
        else:
            held.append(data)
