"""Counters of one app, for logs, metrics (`rtframe.metrics`) and tests.

Plain integers increased where the work already happens (a handshake, a close, an error
frame), never per message: the per-route message counts live on the compiled routes
and the dropped-frame counts on the connections, and `rtframe.metrics` reads them all
when it is scraped.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import TypeVar

__all__ = ["AppStats", "Timings"]

#: Upper bounds, in seconds, of the broadcast timing buckets (the last one is +Inf).
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


class Timings:
    """A histogram with fixed buckets: one bisect and two additions per observation."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # not cumulative; the last is +Inf
        self.total = 0.0

    def observe(self, seconds: float) -> None:
        self.counts[bisect_left(BUCKETS, seconds)] += 1
        self.total += seconds

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, observations at or under it) per bucket, +Inf last."""
        out, running = [], 0
        for bound, n in zip((*map(str, BUCKETS), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


class AppStats:
    """What happened to one app's connections since it was created.

    Attributes:
        accepted: handshakes accepted.
        refused: handshakes refused by reason (`"rejected"`: a handshake check such as
            the Origin check, or the connect handler, raised `Reject`;
            `"handshake_timeout"`, `"error"`: the connect handler failed, `"closed"`:
            it closed the connection, `"no_route"`, `"draining"`, `"per_user"`); the
            other limits' refusals are counted in the app's `LimitStats` only.
        closes: accepted connections ended, by close code.
        errors: error frames sent, by code.
        timeouts: connections the sweeper closed, by reason (`"heartbeat"`, `"idle"`).
        dropped: frames dropped from the outboxes of connections that have ended.
        publish: how long each broadcast's publish through the layer took.
        fan_out: how long each broadcast's local fan-out held the loop (a group served
            by a background task, over `FANOUT_INLINE` members, only its hand-over).
    """

    __slots__ = (
        "accepted",
        "closes",
        "dropped",
        "errors",
        "fan_out",
        "publish",
        "refused",
        "timeouts",
    )

    def __init__(self) -> None:
        self.publish = Timings()
        self.fan_out = Timings()
        self.accepted = 0
        self.dropped = 0
        self.refused: dict[str, int] = {}
        self.closes: dict[int, int] = {}
        self.errors: dict[str, int] = {}
        self.timeouts: dict[str, int] = {}

    def __repr__(self) -> str:
        return (
            f"AppStats(accepted={self.accepted}, refused={self.refused}, "
            f"closes={self.closes}, errors={self.errors}, timeouts={self.timeouts}, "
            f"dropped={self.dropped})"
        )


K = TypeVar("K")


def count(counter: dict[K, int], key: K) -> None:
    """Add one to `counter[key]`."""
    counter[key] = counter.get(key, 0) + 1
