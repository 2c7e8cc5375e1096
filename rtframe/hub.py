"""One app's messaging in this process (its member registry and its layer), and how code
outside a connection finds the app it means.

`Hub` keeps the registry and the layer in step: a group's first local member subscribes
the process to the group's channel, its last one unsubscribes it; a broadcast is
published once through the layer and fanned out to the local members by the registry.

Targets are explicit. Inside a connection (its handlers, dependencies and the tasks they
start) the connection's app is used. Elsewhere (a Django view, a task, a command) the
only app running on this event loop is used (from a thread without a loop: running on a
loop that is still open), or, when none runs, the only app created and never started;
with more than one candidate the call raises `RtframeError` naming them rather than
guess: name the app with `app.broadcast(...)` / `app.send_to(...)`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
import weakref
from collections.abc import Coroutine
from contextvars import ContextVar
from typing import Any, Protocol, runtime_checkable

from ._cursor import Cursor
from .exceptions import LayerError, LimitExceededError, RtframeError
from .history import HistoryPolicy, HistorySlice, gap_notice
from .layers.base import Layer, Position
from .limits import LimitStats
from .members import Member, Registry
from .messages import stamp
from .presence import (
    PresenceEntry,
    PresenceInfo,
    PresencePolicy,
    PresenceStats,
    PresenceTracker,
)
from .stats import AppStats

__all__ = ["Hub", "Tracked", "current_hub", "target_hub"]

logger = logging.getLogger("rtframe")

_current: ContextVar[Hub | None] = ContextVar("rtframe_current_hub", default=None)
_alive: weakref.WeakSet[Hub] = weakref.WeakSet()
_clock = time.perf_counter


@runtime_checkable
class Tracked(Member, Protocol):
    """A member that can be in history groups: it keeps a `Cursor` of its positions."""

    @property
    def cursor(self) -> Cursor:
        """The member's cursor, made on first use."""
        ...


class Hub:
    """The registry and the layer of one app."""

    __slots__ = (
        "__weakref__",
        "_gaps",
        "_loop",
        "_recovering",
        "_subscribing",
        "_tracker",
        "histories",
        "layer",
        "limit_stats",
        "max_groups",
        "name",
        "registry",
        "running",
        "stats",
    )

    def __init__(
        self,
        layer: Layer,
        name: str,
        *,
        max_groups: int | None = None,
        limit_stats: LimitStats | None = None,
        stats: AppStats | None = None,
    ) -> None:
        self.layer = layer
        #: broadcast timings (`AppStats.publish`, `AppStats.fan_out`), read by metrics
        self.stats = stats if stats is not None else AppStats()
        self.name = name
        #: Groups one member may be in (`Limits.groups_per_connection`); None: no bound.
        self.max_groups = max_groups
        self.limit_stats = limit_stats if limit_stats is not None else LimitStats()
        self.registry = Registry()
        self.running = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribing: dict[str, asyncio.Task[None]] = {}
        #: the history policy of each history group with a local member
        self.histories: dict[str, HistoryPolicy] = {}
        self._recovering: set[asyncio.Task[None]] = set()
        self._gaps: dict[str, list[Tracked]] = {}
        self._tracker: PresenceTracker | None = None  # made for the first presence group
        layer.bind(self.registry)
        layer.on_recovery(self._layer_recovered)
        _alive.add(self)

    def __repr__(self) -> str:
        return f"<Hub of {self.name!r} on {self.layer!r}>"

    def enter(self) -> None:
        """Make this hub the target of outside-looking calls in the current context.

        Only needed when the process holds more than one app: with one, `target_hub`
        finds it anyway, and a context of its own costs each connection ~120 bytes
        (benchmarks/idle.py). Apps are created at import, before any connection.
        """
        if len(_alive) > 1:
            _current.set(self)

    async def join(
        self,
        group: str,
        member: Member,
        history: HistoryPolicy | None = None,
        presence: PresencePolicy | None = None,
        *,
        user: str | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        """Add `member` to `group`; returns once the process receives the group's frames.

        For a history group the member (a `Tracked` one) also gets, once it is open,
        what it asked to recover (`$since`) or the newest `history.on_join` frames;
        live frames published meanwhile follow the replay, none twice. For a presence
        group it is recorded as present (`user`, `meta`) in every process's view.

        Raises:
            LimitExceededError: `member` is in `max_groups` groups already (not `group`).
        """
        limit = self.max_groups
        if limit is not None and self.registry.group_count(member) >= limit:
            self._refuse_group(group, member, limit)
        cursor: Cursor | None = None
        if history is not None and not self.registry.is_member(group, member):
            if not isinstance(member, Tracked):
                raise RtframeError(f"{member!r} cannot be in history group {group!r}")
            self.histories[group] = history
            cursor = member.cursor
            cursor.begin(group)  # live frames from now on wait behind the replay
        try:
            await self._subscribe(group, member)
        except BaseException:
            if cursor is not None:
                cursor.forget(group)
            raise
        if cursor is not None and history is not None:
            since = cursor.since.pop(group, None)
            read = await self._read(group, history, since.offset if since else None)
            cursor.settle(group, read, since, announce=since is not None)
        if presence is not None:
            entry = PresenceEntry(member.id, user, time.time(), meta or {})
            await self.tracker.join(group, presence, entry)

    @property
    def tracker(self) -> PresenceTracker:
        """Who is present in this app's presence groups (made on first use).

        Raises:
            ConfigurationError: the layer keeps no presence.
        """
        if self._tracker is None:
            self._tracker = PresenceTracker(self.layer, self._publish_plain)
        return self._tracker

    async def _publish_plain(self, group: str, frame: str) -> None:
        await self.publish(group, frame)

    async def presence(self, group: str) -> list[PresenceInfo]:
        """Every member present in `group`, in every process, oldest first."""
        return await self.tracker.list(group)

    async def presence_stats(self, group: str) -> PresenceStats:
        """How many connections and distinct users are present in `group`."""
        return await self.tracker.stats(group)

    async def _read(
        self, group: str, policy: HistoryPolicy, since: int | None
    ) -> HistorySlice | None:
        try:
            return await self.layer.history(group, policy, since, policy.on_join)
        except LayerError as exc:
            logger.warning(
                "could not read the history of %r (%s): its members are recovered once "
                "the layer is back",
                group,
                exc,
            )
            return None

    async def _subscribe(self, group: str, member: Member) -> None:
        if self.registry.add(group, member):
            task = asyncio.get_running_loop().create_task(self.layer.subscribe(group))
            self._subscribing[group] = task
            try:
                await asyncio.shield(task)
            finally:
                if self._subscribing.get(group) is task:
                    del self._subscribing[group]
        else:
            pending = self._subscribing.get(group)
            if pending is not None:  # the first member's subscription is still on its way
                await asyncio.shield(pending)

    def _refuse_group(self, group: str, member: Member, limit: int) -> None:
        if self.registry.is_member(group, member):
            return  # joining again changes nothing
        self.limit_stats.groups += 1
        logger.warning(
            "%r may not join group %r: it is in %d groups, the most a connection may be in "
            "(Limits.groups_per_connection)",
            member,
            group,
            limit,
        )
        raise LimitExceededError(
            f"This connection is in {limit} groups, the most it may be in; leave one first"
        )

    async def leave(self, group: str, member: Member) -> None:
        """Remove `member` from `group`; no error if it was not a member."""
        if group in self.histories and isinstance(member, Tracked):
            member.cursor.forget(group)
        if self._tracker is not None:
            await self._tracker.leave(group, member.id)
        if self.registry.discard(group, member):
            await self._unsubscribe(group)

    async def leave_all(self, member: Member) -> None:
        """Remove `member` from every group (its teardown)."""
        if self._tracker is not None:
            for group in self.registry.groups_of(member):
                await self._tracker.leave(group, member.id)
        for group in self.registry.discard_all(member):
            await self._unsubscribe(group)

    async def _unsubscribe(self, group: str) -> None:
        pending = self._subscribing.get(group)
        if pending is not None:
            # let the subscription finish first, so the unsubscribe comes after it
            await asyncio.gather(asyncio.shield(pending), return_exceptions=True)
        if not self.registry.has_group(group):  # nobody joined again meanwhile
            self.histories.pop(group, None)
            await self.layer.unsubscribe(group)

    async def publish(
        self, group: str, data: str | bytes, history: HistoryPolicy | None = None
    ) -> Position | None:
        """Send an encoded frame to every member of `group`, in every process.

        Local members get it even when the layer raises (`LayerUnavailableError`);
        for a history group they then get it without a position (it is in no history).

        Raises:
            RtframeError: a history group's frame is not a JSON object.
        """
        if history is not None:
            stamp(data, group, ("", 0))  # refuse what cannot carry a position, up front
        start = _clock()
        position: Position | None = None
        try:
            position = await self.layer.publish(group, data, history)
            return position
        finally:
            published = _clock()
            if position is None:
                self.registry.fan_out(group, data)
            else:
                self.registry.fan_out(group, stamp(data, group, position), position)
            stats = self.stats
            stats.publish.observe(published - start)
            stats.fan_out.observe(_clock() - published)

    # -- recovery ------------------------------------------------------------------------

    def recover_gap(self, member: Tracked, group: str) -> None:
        """`member`'s cursor saw a gap in `group` (and buffers): recover it soon.

        Every member that sees the same gap sees it in the same fan-out, so they are
        gathered and recovered from one history read.
        """
        waiting = self._gaps.get(group)
        if waiting is None:
            waiting = self._gaps[group] = []
            self._spawn(self._recover_gaps(group))
        waiting.append(member)

    async def _recover_gaps(self, group: str) -> None:
        await asyncio.sleep(0)  # let the fan-out that found the gap finish first
        await self._recover(group, self._gaps.pop(group, []))

    async def _layer_recovered(self) -> None:
        """The layer is back after an outage: recover history members, tell the rest."""
        for group in self.registry.groups():
            members = self.registry.members(group)
            if group in self.histories:
                tracked = [m for m in members if isinstance(m, Tracked)]
                for one in tracked:
                    one.cursor.begin(group)
                await self._recover(group, tracked)
            else:
                notice = gap_notice(group)
                for member in members:
                    member.deliver(notice)

    async def _recover(self, group: str, members: list[Tracked]) -> None:
        """Read `group`'s history once and settle each member's recovery from it."""
        policy = self.histories.get(group)
        if policy is None:  # the group lost its last local member meanwhile
            for member in members:
                member.cursor.forget(group)
            return
        lasts = [m.cursor.last.get(group) for m in members]
        offsets = [p[1] for p in lasts if p is not None]
        read = await self._read(group, policy, min(offsets) if offsets else 0)
        for member, last in zip(members, lasts, strict=True):
            cursor = member.cursor
            if read is not None and last is not None:
                cursor.settle(group, read.after(last[1]), last, announce=True)
            else:
                cursor.settle(group, read, last, announce=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._recovering.add(task)
        task.add_done_callback(self._recovering.discard)

    async def send_to(self, member_id: str, data: str | bytes) -> None:
        """Send an encoded frame to one member, wherever it is connected."""
        if not self.registry.deliver_direct(member_id, data):
            await self.layer.send_direct(member_id, data)

    async def start(self) -> None:
        await self.layer.start()
        self._loop = asyncio.get_running_loop()
        self.running = True

    def serves(self, loop: asyncio.AbstractEventLoop | None) -> bool:
        """Running on `loop` (or, from a thread with no loop, on a loop still open)."""
        mine = self._loop
        if not self.running or mine is None or mine.is_closed():
            return False
        return loop is None or mine is loop

    async def stop(self) -> None:
        self.running = False
        tasks = tuple(self._recovering)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._tracker is not None:
            await self._tracker.stop()
        await self.registry.close()
        await self.layer.stop()


def _candidates() -> list[Hub]:
    try:
        loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:  # sync code: a Django view, a command, a task worker's thread
        loop = None
    alive = list(_alive)
    running = [h for h in alive if h.serves(loop)]
    # no app runs here: an app that was created but never started (a management
    # command that imported it) is still a fine target for a cross-process layer
    return running or [h for h in alive if not h.running]


def current_hub() -> Hub | None:
    """The hub of the connection whose code is running, if any."""
    return _current.get()


def target_hub() -> Hub:
    """The hub a broadcast made without naming an app goes to.

    Raises:
        RtframeError: no app exists, or several could be meant.
    """
    hub = _current.get()
    if hub is not None:
        return hub
    candidates = _candidates()
    if len(candidates) > 1:
        gc.collect()  # apps nothing refers to any more (a finished test's) are no candidates
        candidates = _candidates()
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        raise RtframeError(
            "no RealtimeApp exists in this process, so there is nowhere to send the message"
        )
    names = ", ".join(sorted(repr(h.name) for h in candidates))
    raise RtframeError(
        f"{len(candidates)} RealtimeApps could receive this message ({names}); name the one "
        "you mean: `await app.broadcast(group, message, ...)`, `await app.send_to(id, "
        "message)`, or `app=` in rtframe.sync"
    )
