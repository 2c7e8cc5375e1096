"""Presence policy, wire models and the tracker's semantics, on the in-memory layer.

Cross-process presence (two RedisLayers, a Redis Cluster, a process killed with SIGKILL,
Redis going away) is in tests/layers/test_redis_presence.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
from typing import Any

import pytest

from rtframe.exceptions import ConfigurationError, LayerUnavailableError, RtframeError
from rtframe.layers.base import Layer, Position
from rtframe.layers.memory import InMemoryLayer
from rtframe.presence import (
    PresenceEntry,
    PresenceInfo,
    PresenceNotice,
    PresencePolicy,
    PresenceStats,
    PresenceTracker,
    presence_frame,
)

EVENTS = PresencePolicy(events=True, coalesce=0.05)


class Frames:
    """The `publish` callable a hub gives the tracker: records what it was asked to send."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []
        self.fail: BaseException | None = None

    async def __call__(self, group: str, frame: str) -> None:
        self.sent.append((group, frame))
        if self.fail is not None:
            raise self.fail

    def notices(self, group: str | None = None) -> list[PresenceNotice]:
        return [
            PresenceNotice.model_validate_json(frame)
            for g, frame in self.sent
            if group is None or g == group
        ]

    async def settle(self, seconds: float = 0.15) -> list[PresenceNotice]:
        """The notices once every open window (coalesce 0.05 s) has closed."""
        await asyncio.sleep(seconds)
        return self.notices()


def entry(member_id: str, user: str | None = "ann", **meta: Any) -> PresenceEntry:
    return PresenceEntry(member_id, user, time.time(), meta)


@pytest.fixture
async def tracked() -> Any:
    layer = InMemoryLayer()
    frames = Frames()
    tracker = PresenceTracker(layer, frames)
    yield tracker, layer, frames
    await tracker.stop()


# -- policy and wire models ----------------------------------------------------------


def test_policy_defaults_and_validation() -> None:
    policy = PresencePolicy()
    assert (policy.events, policy.ttl, policy.coalesce) == (False, 60.0, 0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.ttl = 1  # type: ignore[misc]
    for bad in (
        {"ttl": 0},
        {"ttl": -1},
        {"ttl": float("inf")},
        {"ttl": float("nan")},
        {"coalesce": -0.1},
        {"coalesce": float("nan")},
        {"events": "yes"},
    ):
        with pytest.raises(ConfigurationError, match="PresencePolicy needs"):
            PresencePolicy(**bad)
    assert PresencePolicy(coalesce=0).coalesce == 0


def test_the_frame_is_a_valid_presence_notice_and_encodes_entries_verbatim() -> None:
    info = json.dumps({"id": "m1", "user": None, "connected_at": 1.5, "meta": {"tab": 2}})
    frame = presence_frame('chat."lobby"', [info], ["m0", "m\u00e9"])
    notice = PresenceNotice.model_validate_json(frame)
    assert notice.type == "$presence" and notice.group == 'chat."lobby"'
    assert notice.joined == [PresenceInfo(id="m1", connected_at=1.5, meta={"tab": 2})]
    assert notice.left == ["m0", "m\u00e9"]
    assert json.loads(presence_frame("g", [], []))["joined"] == []


def test_presence_info_from_entry() -> None:
    e = PresenceEntry("m1", "ann", 12.5, {"x": [1]})
    assert PresenceInfo.from_entry(e).model_dump() == e._asdict()


# -- listing and counting ------------------------------------------------------------


async def test_join_list_leave(tracked: Any) -> None:
    tracker, layer, frames = tracked
    await tracker.join("room", PresencePolicy(), entry("a", device="phone"))
    await tracker.join("room", PresencePolicy(), entry("b", user=None))
    await tracker.join("other", PresencePolicy(), entry("c"))
    listed = await tracker.list("room")
    assert [(i.id, i.user, i.meta) for i in listed] == [
        ("a", "ann", {"device": "phone"}),
        ("b", None, {}),
    ]
    assert listed[0].connected_at <= listed[1].connected_at  # oldest first
    await tracker.leave("room", "a")
    await tracker.leave("room", "a")  # twice: nothing happens
    await tracker.leave("room", "never-joined")
    await tracker.leave("no-such-group", "a")
    assert [i.id for i in await tracker.list("room")] == ["b"]
    assert [e.id for e in await layer.presence("other")] == ["c"]
    assert await tracker.list("empty") == []
    await asyncio.sleep(0.7)  # events are off: nothing is ever sent
    assert frames.sent == []


async def test_several_tabs_of_one_user_count_once(tracked: Any) -> None:
    tracker, _, _ = tracked
    policy = PresencePolicy()
    for i in range(3):
        await tracker.join("room", policy, entry(f"ann-{i}", user="ann"))
    await tracker.join("room", policy, entry("bob-0", user="bob"))
    await tracker.join("room", policy, entry("anon-0", user=None))
    await tracker.join("room", policy, entry("anon-1", user=None))
    assert await tracker.stats("room") == PresenceStats(connections=6, users=4)
    await tracker.leave("room", "ann-0")
    await tracker.leave("room", "ann-1")
    assert await tracker.stats("room") == PresenceStats(connections=4, users=4)
    await tracker.leave("room", "ann-2")
    assert await tracker.stats("room") == PresenceStats(connections=3, users=3)
    assert await tracker.stats("empty") == PresenceStats(connections=0, users=0)


async def test_joining_again_replaces_the_entry(tracked: Any) -> None:
    tracker, _, _ = tracked
    await tracker.join("room", PresencePolicy(), entry("a", status="away"))
    await tracker.join("room", PresencePolicy(), entry("a", status="here"))
    assert [i.meta for i in await tracker.list("room")] == [{"status": "here"}]


# -- events ----------------------------------------------------------------------------


async def test_a_storm_of_joins_goes_out_in_one_frame(tracked: Any) -> None:
    tracker, _, frames = tracked
    await asyncio.gather(*(tracker.join("room", EVENTS, entry(f"m{i}")) for i in range(500)))
    notices = await frames.settle()
    assert len(notices) == 1
    assert [i.id for i in notices[0].joined] == [f"m{i}" for i in range(500)]
    assert notices[0].left == [] and notices[0].group == "room"


async def test_a_join_then_leave_within_the_window_cancels_out(tracked: Any) -> None:
    tracker, _, frames = tracked
    await tracker.join("room", EVENTS, entry("stays"))
    assert [i.id for i in (await frames.settle())[0].joined] == ["stays"]
    await tracker.join("room", EVENTS, entry("flicker"))
    await tracker.leave("room", "flicker")
    await frames.settle()
    assert len(frames.sent) == 1  # nothing at all for "flicker"
    await tracker.join("room", EVENTS, entry("late"))
    await tracker.join("room", EVENTS, entry("flicker2"))
    await tracker.leave("room", "flicker2")
    await tracker.leave("room", "stays")
    notices = await frames.settle()
    assert len(notices) == 2
    assert [i.id for i in notices[1].joined] == ["late"] and notices[1].left == ["stays"]


async def test_a_leave_then_join_again_within_the_window_is_announced_as_joined(
    tracked: Any,
) -> None:
    tracker, _, frames = tracked
    await tracker.join("room", EVENTS, entry("a", status="1"))
    await frames.settle()
    await tracker.leave("room", "a")
    await tracker.join("room", EVENTS, entry("a", status="2"))
    await tracker.leave("room", "a")  # ...and gone again: clients knew it, so: left
    await tracker.join("room", EVENTS, entry("a", status="3"))
    notices = await frames.settle()
    assert len(notices) == 2
    assert [(i.id, i.meta) for i in notices[1].joined] == [("a", {"status": "3"})]
    assert notices[1].left == []
    await tracker.leave("room", "a")
    assert (await frames.settle())[2].left == ["a"]


async def test_windows_follow_each_other_and_each_group_has_its_own(tracked: Any) -> None:
    tracker, _, frames = tracked
    for i in range(6):  # joins spread over ~3 windows of 0.05 s
        await tracker.join("a", EVENTS, entry(f"a{i}"))
        await tracker.join("b", EVENTS, entry(f"b{i}"))
        await asyncio.sleep(0.025)
    await frames.settle()
    for group in ("a", "b"):
        notices = frames.notices(group)
        assert 2 <= len(notices) <= 4  # coalesced per window, never one per join
        assert [i.id for n in notices for i in n.joined] == [f"{group}{i}" for i in range(6)]


async def test_coalesce_zero_still_gathers_one_event_loop_turn() -> None:
    frames = Frames()
    tracker = PresenceTracker(InMemoryLayer(), frames)
    policy = PresencePolicy(events=True, coalesce=0)
    await asyncio.gather(*(tracker.join("room", policy, entry(f"m{i}")) for i in range(50)))
    notices = await frames.settle(0.05)
    assert len(notices) == 1 and len(notices[0].joined) == 50
    await tracker.stop()


async def test_a_failed_publish_is_logged_and_later_windows_still_go_out(
    tracked: Any, caplog: pytest.LogCaptureFixture
) -> None:
    tracker, _, frames = tracked
    frames.fail = LayerUnavailableError("Redis is down")
    await tracker.join("room", EVENTS, entry("a"))
    await frames.settle()
    assert "reached this process's members only" in caplog.text
    frames.fail = RuntimeError("a bug in the hub")
    await tracker.join("room", EVENTS, entry("b"))
    await frames.settle()
    assert "sending a $presence frame of 'room' failed" in caplog.text
    frames.fail = None
    await tracker.join("room", EVENTS, entry("c"))
    assert [i.id for i in (await frames.settle())[-1].joined] == ["c"]


# -- errors and lifecycle ----------------------------------------------------------------


async def test_one_group_name_has_one_policy(tracked: Any) -> None:
    tracker, layer, _ = tracked
    await tracker.join("room", EVENTS, entry("a"))
    with pytest.raises(ConfigurationError, match="one presence policy"):
        await tracker.join("room", PresencePolicy(), entry("b"))
    assert [e.id for e in await layer.presence("room")] == ["a"]
    await tracker.leave("room", "a")
    await asyncio.sleep(0.1)  # the group is forgotten once idle: a new policy is fine
    await tracker.join("room", PresencePolicy(), entry("b"))


async def test_meta_that_is_not_json_is_refused_before_anything_is_recorded(
    tracked: Any,
) -> None:
    tracker, layer, frames = tracked
    with pytest.raises(RtframeError, match="not JSON"):
        await tracker.join("room", EVENTS, entry("a", handle=object()))
    assert await layer.presence("room") == []
    assert await frames.settle() == []


async def test_a_layer_without_presence_is_refused() -> None:
    class Bare(Layer):
        async def publish(
            self, channel: str, data: str | bytes, history: Any = None
        ) -> Position | None:
            return None

        async def subscribe(self, channel: str) -> None: ...
        async def unsubscribe(self, channel: str) -> None: ...
        async def send_direct(self, member_id: str, data: str | bytes) -> None: ...

    with pytest.raises(ConfigurationError, match="keeps no presence"):
        PresenceTracker(Bare(), Frames())


async def test_stop_removes_this_process_members_and_announces_them_at_once() -> None:
    layer, frames = InMemoryLayer(), Frames()
    tracker = PresenceTracker(layer, frames)
    await tracker.join("room", EVENTS, entry("a"))
    await tracker.join("room", EVENTS, entry("b"))
    await tracker.join("quiet", PresencePolicy(), entry("c"))
    await frames.settle()
    await tracker.join("room", EVENTS, entry("fresh"))  # its window is still open
    await tracker.stop()
    assert await layer.presence("room") == [] and await layer.presence("quiet") == []
    last = frames.notices()[-1]
    assert last.joined == [] and sorted(last.left) == ["a", "b"]  # "fresh" never announced
    assert len(frames.sent) == 2
    await tracker.stop()  # twice is fine, and the tracker can be used again
    await tracker.join("room", EVENTS, entry("d"))
    assert [i.id for i in (await frames.settle())[-1].joined] == ["d"]
    await tracker.stop()


async def test_a_tracker_on_a_layer_without_sweep_warns(caplog: pytest.LogCaptureFixture) -> None:
    class NoSweep(InMemoryLayer):
        presence_sweep = None  # type: ignore[assignment]

    with caplog.at_level(logging.WARNING, logger="rtframe.presence"):
        tracker = PresenceTracker(NoSweep(), Frames())
    assert "no `left` is announced" in caplog.text
    await tracker.join("room", EVENTS, entry("a"))  # still works, without the sweeper
    assert [i.id for i in await tracker.list("room")] == ["a"]
    await tracker.stop()
