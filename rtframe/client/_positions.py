"""The client's positions in history groups: what it has, what it is missing.

For each group the client keeps the last position up to which it got every message (the
one it sends back in `$since`), so that recovering after a reconnect asks for exactly
what is missing. A frame that skips ahead (its offset is past the next one) is handed
to the application at once, and its offset remembered: the frames in between come
later, through a recovery, and the remembered ones are then dropped as duplicates. A
frame at or before the position is a duplicate too. A `$recovery` with
`recovered: false` moves the position to where the group is now: what was missing is
lost, and the application was told so by that notice.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..history import Position

__all__ = ["Positions"]

logger = logging.getLogger("rtframe.client")

#: Offsets remembered past a gap per group; beyond it the gap is given up as lost.
MAX_AHEAD = 10_000


class Positions:
    """Positions by group name; `take` decides whether a frame is new."""

    __slots__ = ("_ahead", "last")

    def __init__(self, start: Mapping[str, Position] | None = None) -> None:
        #: the position up to which every message of the group arrived
        self.last: dict[str, Position] = dict(start or {})
        #: offsets that arrived past a gap, by group
        self._ahead: dict[str, set[int]] = {}

    @property
    def gaps(self) -> bool:
        """Whether some group has frames missing before ones that arrived."""
        return bool(self._ahead)

    def take(self, pos: Any) -> bool:
        """Record a frame's `$pos`; False when the frame is a duplicate (drop it).

        A `$pos` that is not `{"group": str, "epoch": str, "offset": int}` is ignored
        (the frame is new, and nothing is recorded).
        """
        group, epoch, offset = pos.get("group"), pos.get("epoch"), pos.get("offset")
        if not isinstance(group, str) or not isinstance(epoch, str) or type(offset) is not int:
            logger.warning("a frame has a malformed $pos %r; its position is not tracked", pos)
            return True
        last = self.last.get(group)
        if last is None or last.epoch != epoch:
            self.last[group] = Position(epoch, offset)
            self._ahead.pop(group, None)
            return True
        ahead = self._ahead.get(group)
        if offset <= last.offset or (ahead is not None and offset in ahead):
            return False
        if offset != last.offset + 1:
            self._skip(group, last, offset)
            return True
        if ahead:
            while offset + 1 in ahead:
                offset += 1
                ahead.discard(offset)
            if not ahead:
                del self._ahead[group]
        self.last[group] = Position(epoch, offset)
        return True

    def _skip(self, group: str, last: Position, offset: int) -> None:
        ahead = self._ahead.setdefault(group, set())
        ahead.add(offset)
        if len(ahead) > MAX_AHEAD:
            logger.warning(
                "group %r: offsets %d to %d never arrived; giving them up as lost",
                group,
                last.offset + 1,
                min(ahead) - 1,
            )
            self.last[group] = Position(last.epoch, max(ahead))
            del self._ahead[group]

    def lost(self, group: str, now: Position) -> None:
        """A `$recovery` said `recovered: false`: continue from where the group is now."""
        self.last[group] = now
        self._ahead.pop(group, None)
