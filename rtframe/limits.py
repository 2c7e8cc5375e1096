"""Per-connection limits on incoming traffic."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

from .exceptions import ConfigurationError


@dataclass(frozen=True, slots=True)
class RateLimit:
    """Allow `messages` incoming frames per `per` seconds on each connection, with bursts.

    A token bucket: a connection may send `burst` frames at once (default: `messages`),
    refilled at `messages / per` frames a second. A frame over the limit is not handled;
    with `action="reject"` (default) the client gets an error frame `rate_limited` and
    the connection stays open, with `action="close"` the connection closes with 1008.
    """

    messages: int
    per: float = 1.0
    burst: int | None = None
    action: Literal["reject", "close"] = "reject"

    def __post_init__(self) -> None:
        if self.messages < 1 or self.per <= 0 or (self.burst is not None and self.burst < 1):
            raise ConfigurationError("RateLimit needs messages >= 1, per > 0 and burst >= 1")
        if self.action not in ("reject", "close"):
            raise ConfigurationError(
                f"RateLimit action must be 'reject' or 'close', not {self.action!r}"
            )


class TokenBucket:
    """The running state of one connection's RateLimit."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, limit: RateLimit) -> None:
        self.capacity = float(limit.burst or limit.messages)
        self.rate = limit.messages / limit.per
        self.tokens = self.capacity
        self.stamp = time.monotonic()

    def take(self) -> bool:
        """Spend one token; False when the connection is over its limit."""
        now = time.monotonic()
        tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if tokens < 1.0:
            self.tokens = tokens
            return False
        self.tokens = tokens - 1.0
        return True


__all__ = ["RateLimit", "TokenBucket"]
