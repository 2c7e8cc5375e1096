"""Members and the one registry of which member is in which group.

A member is anything that can take an encoded frame: a WebSocket connection today, an
SSE stream tomorrow. It has an `id` (reachable from any process through the layer) and
a `deliver(data)` that never blocks and never raises: a member queues what it cannot
write at once, and drops frames for a peer that is gone.

`Registry` is the only place membership is kept, for one app in one process. It is also
the layer's `Receiver`: frames from other processes are fanned out here, like the app's
own broadcasts.

Fan-out keeps the loop responsive. A group of up to `FANOUT_INLINE` members is served
inline (the common case, and the fastest: no task, no copy). A bigger group, or one that
already has frames waiting, is served by one task per group that delivers
`FANOUT_CHUNK` members at a time and yields to the loop between chunks; its frames wait
in order in the group's backlog, so frames to a group reach every member in the order
they were published, whichever path they took.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterator
from itertools import islice
from typing import Protocol, runtime_checkable

from .messages import stamp

#: A frame's place in a history group: (epoch, offset), `rtframe.layers.base.Position`.
Position = tuple[str, int]

__all__ = ["FANOUT_CHUNK", "FANOUT_INLINE", "Member", "Registry"]

logger = logging.getLogger("rtframe.members")

#: Members served between two yields to the event loop during one fan-out. A delivery
#: through uvicorn costs 10-20 us, so a chunk holds the loop for 3-5 ms; an echo on
#: another connection waits two or three chunks at worst (measured in tests/test_scale.py:
#: p99 16-26 ms with 5,000 members at 256, 50-64 ms at 1,000).
FANOUT_CHUNK = 256
#: The largest group served inline, in one go: a task and a snapshot of the members
#: cost more than they save below this size (callgrind: +5 % per delivery at 1,000
#: members chunked), and 1,000 deliveries hold the loop for 10-20 ms at most.
FANOUT_INLINE = 1000


@runtime_checkable
class Member(Protocol):
    """Something that receives encoded frames: a connection, a stream."""

    @property
    def id(self) -> str:
        """Unique among the members of the app, in every process."""
        ...

    def deliver(self, data: str | bytes) -> None:
        """Take an encoded frame without waiting; never raises."""
        ...

    def deliver_at(self, group: str, position: tuple[str, int], data: str | bytes) -> None:
        """Take a frame of a history group, stamped with its (epoch, offset) position.

        Like `deliver`, but the member keeps track of positions: it drops what it was
        handed already and recovers what it missed (`rtframe._cursor`).
        """
        ...


class Registry:
    """Which local member is in which group, and fan-out to them."""

    __slots__ = ("_backlogs", "_by_id", "_groups", "_member_groups", "_tasks")

    def __init__(self) -> None:
        self._groups: dict[str, dict[Member, None]] = {}
        self._member_groups: dict[Member, set[str]] = {}
        self._by_id: dict[str, Member] = {}
        self._backlogs: dict[str, deque[tuple[str | bytes, Position | None]]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # -- reachability by id -----------------------------------------------------------

    def attach(self, member: Member) -> None:
        """Make a member reachable by its id (direct messages)."""
        self._by_id[member.id] = member

    def detach(self, member: Member) -> None:
        """Forget a member's id; its groups are left with `discard_all`."""
        if self._by_id.get(member.id) is member:
            del self._by_id[member.id]

    def get(self, member_id: str) -> Member | None:
        return self._by_id.get(member_id)

    def __len__(self) -> int:
        return len(self._by_id)

    # -- membership -------------------------------------------------------------------

    def add(self, group: str, member: Member) -> bool:
        """Make `member` a member of `group`; True when the group just got its first."""
        members = self._groups.get(group)
        first = members is None
        if members is None:
            members = self._groups[group] = {}
        members[member] = None
        self._member_groups.setdefault(member, set()).add(group)
        return first

    def discard(self, group: str, member: Member) -> bool:
        """Remove `member` from `group`; True when the group just lost its last member."""
        groups = self._member_groups.get(member)
        if groups is not None:
            groups.discard(group)
            if not groups:
                del self._member_groups[member]
        members = self._groups.get(group)
        if members is None or member not in members:
            return False
        del members[member]
        if not members:
            del self._groups[group]
            return True
        return False

    def discard_all(self, member: Member) -> list[str]:
        """Remove `member` from every group; returns the groups left with no member."""
        emptied = []
        for group in tuple(self._member_groups.get(member, ())):
            if self.discard(group, member):
                emptied.append(group)
        return emptied

    def groups_of(self, member: Member) -> frozenset[str]:
        return frozenset(self._member_groups.get(member, ()))

    def group_count(self, member: Member) -> int:
        """How many groups `member` is in (no copy)."""
        return len(self._member_groups.get(member, ()))

    def is_member(self, group: str, member: Member) -> bool:
        return member in self._groups.get(group, ())

    def members(self, group: str) -> list[Member]:
        """The local members of `group` (a copy)."""
        return list(self._groups.get(group, ()))

    def groups(self) -> list[str]:
        """The groups with at least one local member."""
        return list(self._groups)

    def has_group(self, group: str) -> bool:
        return group in self._groups

    def __iter__(self) -> Iterator[Member]:
        return iter(tuple(self._by_id.values()))

    # -- delivery (also the layer's Receiver) -------------------------------------------

    def fan_out(self, group: str, data: str | bytes, position: Position | None = None) -> int:
        """Hand an encoded frame to every local member of `group`; returns how many.

        With `position` (a history group), `data` is already stamped with it and each
        member takes it through `deliver_at`. Never awaits: a large group is served by
        a background task, in order.
        """
        members = self._groups.get(group)
        if not members:
            return 0
        backlog = self._backlogs.get(group)
        if backlog is None and len(members) <= FANOUT_INLINE:
            # deliver() writes in place or queues, never awaits and never changes
            # membership (a failed send marks its member closed; it leaves in teardown)
            if position is None:
                for member in members:
                    member.deliver(data)
            else:
                for member in members:
                    member.deliver_at(group, position, data)
            return len(members)
        if backlog is None:
            backlog = self._backlogs[group] = deque()
            task = asyncio.get_running_loop().create_task(self._drain(group, backlog))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        backlog.append((data, position))
        return len(members)

    async def _drain(self, group: str, backlog: deque[tuple[str | bytes, Position | None]]) -> None:
        try:
            while backlog:
                data, position = backlog[0]
                members = list(self._groups.get(group, ()))
                for start in range(0, len(members), FANOUT_CHUNK):
                    if start:
                        await asyncio.sleep(0)
                    chunk = islice(members, start, start + FANOUT_CHUNK)
                    if position is None:
                        for member in chunk:
                            member.deliver(data)
                    else:
                        for member in chunk:
                            member.deliver_at(group, position, data)
                backlog.popleft()
                await asyncio.sleep(0)
        except asyncio.CancelledError:
            raise
        except Exception:  # pragma: no cover - deliver() never raises; this is a bug guard
            logger.exception("fan-out to %r failed; %d frame(s) not delivered", group, len(backlog))
        finally:
            if self._backlogs.get(group) is backlog:
                del self._backlogs[group]

    def deliver_group(
        self, channel: str, data: str | bytes, position: Position | None = None
    ) -> None:
        if position is None:
            self.fan_out(channel, data)
        else:  # a history frame from another process: stamped once, here, for all
            self.fan_out(channel, stamp(data, channel, position), position)

    def deliver_direct(self, member_id: str, data: str | bytes) -> bool:
        member = self._by_id.get(member_id)
        if member is None:
            return False
        member.deliver(data)
        return True

    async def flush(self) -> None:
        """Wait until every queued large fan-out has been handed to its members."""
        while self._tasks:
            await asyncio.gather(*tuple(self._tasks), return_exceptions=True)

    async def close(self) -> None:
        """Cancel pending fan-outs (application shutdown)."""
        tasks = tuple(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
