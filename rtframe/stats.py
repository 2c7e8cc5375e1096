"""Counters of one app, for logs, metrics (`rtframe.metrics`) and tests.

Plain integers increased where the work already happens (a handshake, a close, an error
frame), never per message: the per-route message counts live on the compiled routes
and the dropped-frame counts on the connections, and `rtframe.metrics` reads them all
when it is scraped.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["AppStats"]


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
    """

    __slots__ = ("accepted", "closes", "dropped", "errors", "refused", "timeouts")

    def __init__(self) -> None:
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
