"""Presence: who is in a group, across every server process, and `$presence` events.

A group made with `Group("chat.{room}", presence=PresencePolicy(events=True))` records
each member that joins it in the layer (`Layer.presence_add`), where every process can
list it, and removes it when it leaves. A process that dies cannot remove its members:
the layer lets their entries expire `ttl` seconds after the process last refreshed them
(it refreshes every `ttl / 3` while it lives).

With `events=True` the group's members are told of changes in `$presence` frames:

    {"type": "$presence", "group": "chat.lobby",
     "joined": [{"id": "...", "user": "ann", "connected_at": 1718000000.5, "meta": {}}],
     "left": ["..."]}

Changes are **coalesced**: one process's joins and leaves in a group within `coalesce`
seconds go out as one frame, so a reconnect storm of N members costs N entries in a few
frames, never a frame per member to every member (N²); a member that joins and leaves
within one window is never mentioned. Each process announces its own members; those of
a dead process are announced by the live process whose sweep removes their expired
entries (`presence_sweep` hands each id to one caller only), within
`ttl + ttl / 3 + coalesce` seconds of the death.

Events are at most once, like every broadcast: after a `$gap` or a reconnect, clients
read the list again rather than trust events they may have missed.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, Protocol, runtime_checkable

from pydantic import BaseModel, Field, TypeAdapter
from pydantic_core import to_json

from ._bounded import Job, run_bounded
from .exceptions import ConfigurationError, LayerError, RtframeError
from .layers.base import Layer, PresenceEntry

__all__ = [
    "PresenceEntry",
    "PresenceInfo",
    "PresenceNotice",
    "PresencePolicy",
    "PresenceStats",
    "PresenceTracker",
    "Publish",
    "presence_frame",
]

logger = logging.getLogger("rtframe.presence")

#: How the tracker sends a frame to every member of a group, in every process (the hub's
#: broadcast, without history): `await publish(group, frame)`.
Publish = Callable[[str, str], Awaitable[object]]

#: Layer calls one tracker runs at once when it re-adds, removes or sweeps in bulk.
_CONCURRENCY = 32


@dataclass(frozen=True, slots=True)
class PresencePolicy:
    """Whether and how a group keeps track of who is in it.

    Args:
        events: send the group's members `$presence` frames when members join or leave.
            Off by default: the list is always there to read, events cost a frame per
            window to every member.
        ttl: seconds after which the members of a process that died vanish. Each
            process refreshes its own members every `ttl / 3`; smaller is quicker to
            notice a death and costs more refreshes.
        coalesce: seconds during which one process gathers a group's joins and leaves
            into one `$presence` frame. 0 still gathers the changes of one event-loop
            turn.

    Raises:
        ConfigurationError: `ttl` not positive, `coalesce` negative, either not finite.
    """

    events: bool = False
    ttl: float = 60.0
    coalesce: float = 0.5

    def __post_init__(self) -> None:
        if (
            not isinstance(self.events, bool)
            or not (math.isfinite(self.ttl) and self.ttl > 0)
            or not (math.isfinite(self.coalesce) and self.coalesce >= 0)
        ):
            raise ConfigurationError(
                "PresencePolicy needs a bool `events`, ttl > 0 and coalesce >= 0 seconds, not "
                f"events={self.events!r}, ttl={self.ttl!r}, coalesce={self.coalesce!r}"
            )


class PresenceInfo(BaseModel):
    """One member present in a group, as clients see it.

    `id` is the member's (connection's) id, `user` the user it belongs to (None: an
    anonymous connection), `connected_at` when it joined (Unix time, seconds) and `meta`
    what the app attached to it.
    """

    id: str
    user: str | None = None
    connected_at: float
    meta: dict[str, Any] = Field(default_factory=dict)

    @classmethod
    def from_entry(cls, entry: PresenceEntry) -> PresenceInfo:
        return cls(id=entry.id, user=entry.user, connected_at=entry.connected_at, meta=entry.meta)


class PresenceNotice(BaseModel):
    """Sent to the members of a group with presence events when members joined or left.

    `joined` are members new to the group (or whose entry changed), `left` the ids of
    members that are gone. A client keeps its list as a set by id: add or replace the
    `joined`, remove the `left`. One frame carries a process's changes of up to
    `coalesce` seconds.
    """

    type: Literal["$presence"] = "$presence"
    group: str
    joined: list[PresenceInfo]
    left: list[str]


_INFOS = TypeAdapter(list[PresenceInfo])


class PresenceStats(BaseModel):
    """How many are in a group: `connections`, and `users` counted once however many
    connections (tabs, devices) each has; anonymous connections count one user each."""

    connections: int
    users: int


def _encode_info(entry: PresenceEntry) -> str:
    try:
        return to_json(entry._asdict()).decode()  # the fields of PresenceInfo, in order
    except ValueError as exc:  # PydanticSerializationError: meta holds what JSON cannot
        raise RtframeError(f"presence meta of member {entry.id!r} is not JSON: {exc}") from None


def presence_frame(group: str, joined: list[str], left: list[str]) -> str:
    """A `$presence` frame; `joined` are `PresenceInfo` JSON texts (encoded once, at join)."""
    return (
        f'{{"type":"$presence","group":{to_json(group).decode()},'
        f'"joined":[{",".join(joined)}],"left":{to_json(left).decode()}}}'
    )


@runtime_checkable
class _Sweeps(Protocol):
    async def presence_sweep(self, channel: str) -> list[str]: ...


class _Group:
    """One group this process has members in: its policy, members and pending changes."""

    __slots__ = ("fresh", "joined", "left", "local", "policy", "sending", "timer")

    def __init__(self, policy: PresencePolicy) -> None:
        self.policy = policy
        #: this process's members in the group: id -> (entry, its PresenceInfo JSON)
        self.local: dict[str, tuple[PresenceEntry, str]] = {}
        #: changes not sent yet: joined (id -> JSON) and left ids (a dict as an ordered set)
        self.joined: dict[str, str] = {}
        self.left: dict[str, None] = {}
        #: ids in `joined` never announced before: a leave cancels them outright
        self.fresh: set[str] = set()
        self.timer: asyncio.TimerHandle | None = None  # the end of the current window
        self.sending: asyncio.Task[None] | None = None

    @property
    def pending(self) -> bool:
        return bool(self.joined or self.left)


class PresenceTracker:
    """Presence of one app's groups in this process, over its layer; hub-independent.

    The hub calls `join` when a member joins a group with a `PresencePolicy` and `leave`
    when it leaves it (or disconnects), `stop` at shutdown before the layer stops.
    `list` and `stats` read every process's members from the layer.

    In the background: every `ttl / 3` (jittered) a sweep of the groups this process has
    members in removes dead processes' entries and announces them (`left`, with events);
    after a layer outage (`on_recovery`) this process's members are added and announced
    (`joined`) again, as other processes may have swept them meanwhile.

    Args:
        layer: the app's layer; it must keep presence (both rtframe layers do).
        publish: `await publish(group, frame)` sends a frame to every member of `group`
            in every process (the hub's broadcast, without history).

    Raises:
        ConfigurationError: the layer does not implement presence.
    """

    def __init__(self, layer: Layer, publish: Publish) -> None:
        if type(layer).presence_add is Layer.presence_add:
            raise ConfigurationError(f"{layer!r} keeps no presence (see docs/layers.md)")
        self._layer = layer
        self._publish = publish
        self._groups: dict[str, _Group] = {}
        self._sweeps: _Sweeps | None = layer if isinstance(layer, _Sweeps) else None
        if self._sweeps is None:
            msg = "%r has no presence_sweep: no `left` is announced for dead processes' members"
            logger.warning(msg, layer)
        self._sweeper: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._every: float | None = None  # the sweep period the sweeper sleeps on
        self._failing = False
        layer.on_recovery(self._recovered)

    def __repr__(self) -> str:
        return f"<PresenceTracker of {len(self._groups)} groups on {self._layer!r}>"

    # -- membership --------------------------------------------------------------------

    async def join(self, group: str, policy: PresencePolicy, entry: PresenceEntry) -> None:
        """Record `entry` as present in `group` (and announce it, with events).

        A layer outage does not fail the join: it is logged, and the layer adds the
        entry once the backend answers again.

        Raises:
            ConfigurationError: `group` is already tracked here with another policy.
            RtframeError: `entry.meta` cannot be encoded as JSON.
        """
        encoded = _encode_info(entry)
        state = self._groups.get(group)
        if state is None:
            state = self._groups[group] = _Group(policy)
            self._watch(policy)
        elif state.policy != policy:
            raise ConfigurationError(
                f"group {group!r} has members with {state.policy!r} already, not {policy!r}: "
                "give one group name one presence policy"
            )
        known = entry.id in state.local
        state.local[entry.id] = (entry, encoded)
        if policy.events:
            self._joined(group, state, entry.id, encoded, announced=known)
        try:
            await self._layer.presence_add(group, entry, policy.ttl)
        except LayerError as exc:
            msg = "presence of %r in %r not in the layer yet (%s); the layer adds it when it can"
            logger.warning(msg, entry.id, group, exc)

    async def leave(self, group: str, member_id: str) -> None:
        """Forget a member of this process (and announce it, with events); no error
        if it was not present.

        A layer outage does not fail it: it is logged, the entry expires within `ttl`
        and a sweep removes it (announcing it once more).
        """
        state = self._groups.get(group)
        if state is None or state.local.pop(member_id, None) is None:
            return
        if state.policy.events:
            self._left(group, state, member_id)
        try:
            await self._layer.presence_remove(group, member_id)
        except LayerError as exc:
            msg = "presence of %r in %r stays in the layer until it expires (%s)"
            logger.warning(msg, member_id, group, exc)
        finally:
            self._drop_if_idle(group, state)

    # -- reading -----------------------------------------------------------------------

    async def list(self, group: str) -> _Infos:
        """Every member present in `group`, in every process, oldest first.

        Raises:
            LayerUnavailableError: the layer's backend is unreachable.
        """
        entries = await self._layer.presence(group)
        entries.sort(key=lambda e: (e.connected_at, e.id))
        return _INFOS.validate_python([e._asdict() for e in entries])  # faster than a loop

    async def stats(self, group: str) -> PresenceStats:
        """How many connections and distinct users are present in `group`.

        Raises:
            LayerUnavailableError: the layer's backend is unreachable.
        """
        entries = await self._layer.presence(group)
        users = {e.user for e in entries if e.user is not None}
        anonymous = sum(1 for e in entries if e.user is None)
        return PresenceStats(connections=len(entries), users=len(users) + anonymous)

    # -- lifecycle ---------------------------------------------------------------------

    async def stop(self) -> None:
        """Remove this process's members from every group and send pending events now.

        Other processes hear of the departure at once instead of after `ttl`. Call it
        before the layer stops. The tracker can be used again afterwards.
        """
        sweeper, self._sweeper = self._sweeper, None
        if sweeper is not None:
            sweeper.cancel()
            await asyncio.gather(sweeper, return_exceptions=True)
        groups = [*self._groups.items()]
        self._groups.clear()
        jobs: list[_Job] = []
        for group, state in groups:
            for member_id in [*state.local]:
                if state.policy.events:
                    self._left(group, state, member_id, schedule=False)
                jobs.append(partial(self._layer.presence_remove, group, member_id))
            state.local.clear()
        _warn(
            await run_bounded(jobs, _CONCURRENCY),
            jobs,
            "entries stay in the layer until they expire",
        )
        for group, state in groups:
            if state.sending is not None:
                await asyncio.gather(state.sending, return_exceptions=True)
            if state.timer is not None:
                state.timer.cancel()
                state.timer = None
            frame = self._take(group, state)
            if frame is not None:
                await self._send(group, frame)

    # -- events ------------------------------------------------------------------------

    def _joined(
        self, group: str, state: _Group, member_id: str, encoded: str, announced: bool
    ) -> None:
        # fresh: never announced, so a leave within the window cancels it outright; not
        # fresh if it left and came back within the window (`left` holds None values)
        fresh = state.left.pop(member_id, 0) is not None and (
            member_id in state.fresh if member_id in state.joined else not announced
        )
        state.joined[member_id] = encoded
        (state.fresh.add if fresh else state.fresh.discard)(member_id)
        self._changed(group, state)

    def _left(self, group: str, state: _Group, member_id: str, schedule: bool = True) -> None:
        if state.joined.pop(member_id, None) is not None and member_id in state.fresh:
            state.fresh.discard(member_id)  # nobody heard of it: nothing to say
            return
        state.left[member_id] = None
        if schedule:
            self._changed(group, state)

    def _changed(self, group: str, state: _Group) -> None:
        """Open a window for `group` unless one is open or its frame is on its way."""
        if state.timer is None and state.sending is None:
            loop = asyncio.get_running_loop()
            state.timer = loop.call_later(state.policy.coalesce, self._window_closed, group, state)

    def _window_closed(self, group: str, state: _Group) -> None:
        state.timer = None
        frame = self._take(group, state)
        if frame is None:  # every change cancelled out
            self._drop_if_idle(group, state)
            return
        state.sending = asyncio.get_running_loop().create_task(
            self._send_window(group, state, frame), name=f"rtframe $presence {group}"
        )

    async def _send_window(self, group: str, state: _Group, frame: str) -> None:
        try:
            await self._send(group, frame)
        finally:
            state.sending = None
            if state.pending:  # changes that came while it was sent: the next window
                self._changed(group, state)
            else:
                self._drop_if_idle(group, state)

    async def _send(self, group: str, frame: str) -> None:
        try:
            await self._publish(group, frame)
        except LayerError as exc:
            msg = "a $presence frame of %r reached this process's members only (%s)"
            logger.warning(msg, group, exc)
        except Exception:  # a bug in the publisher must not stop later windows
            logger.exception("sending a $presence frame of %r failed", group)

    @staticmethod
    def _take(group: str, state: _Group) -> str | None:
        if not state.pending:
            return None
        frame = presence_frame(group, [*state.joined.values()], [*state.left])
        state.joined, state.left, state.fresh = {}, {}, set()
        return frame

    def _drop_if_idle(self, group: str, state: _Group) -> None:
        busy = state.local or state.pending or state.timer or state.sending
        if not busy and self._groups.get(group) is state:
            del self._groups[group]

    # -- sweeps and recovery -----------------------------------------------------------

    def _watch(self, policy: PresencePolicy) -> None:
        """Make sure the sweeper runs, often enough for `policy`."""
        if self._sweeps is None:
            return
        if self._sweeper is None or self._sweeper.done():
            self._wake = asyncio.Event()  # made here: an Event belongs to one event loop
            self._sweeper = asyncio.get_running_loop().create_task(
                self._sweep_forever(), name="rtframe presence sweep"
            )
        elif self._every is not None and policy.ttl / 3 < self._every:
            self._wake.set()  # the sweeper sleeps longer than this ttl allows

    async def _sweep_forever(self) -> None:
        while self._groups:
            shortest = min(state.policy.ttl for state in self._groups.values())
            # jittered so that processes started together do not sweep together
            self._every = shortest / 3 * random.uniform(0.5, 1.0)
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self._every)
                continue  # a group with a shorter ttl arrived: sleep on its period
            except TimeoutError:
                pass
            # groups without events too: their dead entries are garbage to collect
            jobs = [self._sweeper_of(group, state) for group, state in self._groups.items()]
            errors = await run_bounded(jobs, _CONCURRENCY)
            if not self._failing:  # once per streak of failed rounds
                _warn(errors, jobs, "groups were not swept: dead processes announced late")
            self._failing = bool(errors)
        self._every = None

    def _sweeper_of(self, group: str, state: _Group) -> _Job:
        async def sweep() -> None:
            assert self._sweeps is not None
            gone = await self._sweeps.presence_sweep(group)
            ours = [m for m in gone if m in state.local]
            if ours:
                # entries of live members of ours expired: this process stalled past
                # their ttl; they are still here, so add them back and announce nothing
                msg = "%d presence entries of this process in %r had expired; adding them again"
                logger.warning(msg, len(ours), group)
                await run_bounded([self._adder(group, state, m) for m in ours], _CONCURRENCY)
            if state.policy.events:
                for member_id in gone:
                    if member_id not in state.local:
                        self._left(group, state, member_id)

        return sweep

    async def _recovered(self) -> None:
        """The layer is back after an outage: add this process's members again, and
        announce them again (other processes may have swept them meanwhile)."""
        jobs: list[_Job] = []
        for group, state in [*self._groups.items()]:
            for member_id, (_, encoded) in [*state.local.items()]:
                jobs.append(self._adder(group, state, member_id))
                if state.policy.events:
                    self._joined(group, state, member_id, encoded, announced=True)
        _warn(
            await run_bounded(jobs, _CONCURRENCY),
            jobs,
            "entries not added again yet (the layer retries)",
        )

    def _adder(self, group: str, state: _Group, member_id: str) -> _Job:
        async def add() -> None:
            # checked when it runs, not when queued: a member that left must stay gone
            held = state.local.get(member_id)
            if held is not None:
                await self._layer.presence_add(group, held[0], state.policy.ttl)

        return add


_Infos = list[PresenceInfo]
_Job = Job


def _warn(errors: list[BaseException], jobs: list[_Job], outcome: str) -> None:
    if errors:
        logger.warning("presence: %d of %d %s (%r)", len(errors), len(jobs), outcome, errors[0])
