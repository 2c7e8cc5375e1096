"""Limits on what clients may take: connections, handshakes, groups, incoming frames.

`Limits` bounds connections (per process, per client address, per user), handshakes per
second and groups per connection; `RateLimit` bounds the frames one connection sends
(`RealtimeApp(rate_limit=...)`, on by default with `DEFAULT_RATE_LIMIT`). Every refusal
is logged at WARNING with its reason and counted in the app's `LimitStats`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

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

    __slots__ = ("capacity", "rate", "refused", "stamp", "tokens")

    def __init__(self, limit: RateLimit) -> None:
        self.capacity = float(limit.burst or limit.messages)
        self.rate = limit.messages / limit.per
        self.tokens = self.capacity
        self.stamp = time.monotonic()
        self.refused = 0  # frames refused so far (kept by the caller)

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


#: The rate limit of every route unless the app or the route sets another; 50 frames a
#: second with bursts of 100: far above a person typing or a 30 Hz cursor, far below a
#: script's flood. `RealtimeApp(rate_limit=None)` switches it off.
DEFAULT_RATE_LIMIT = RateLimit(messages=50, per=1.0, burst=100)


@dataclass(frozen=True, slots=True)
class Limits:
    """How many connections, handshakes and groups clients may take; None switches one off.

    Attributes:
        connections: connections open in this process (handshakes under way count); the
            next handshake is refused "try again later": HTTP 503 with Retry-After, or
            close 1013 after accept where the server cannot answer HTTP.
        per_address: connections from one client address (`scope["client"]`; behind a
            proxy let the server read the forwarded address, e.g. uvicorn's
            `--forwarded-allow-ips`); the excess is refused with 1008 (HTTP 403).
        per_user: connections of one user, as `user_key` names them; refused with 1008
            (HTTP 403). Not counted without a `user_key`.
        user_key: `user_key(conn) -> str | None`, called once the connect handler (and
            its dependencies) ran, just before the handshake is accepted; None leaves the
            connection uncounted. `rtframe.django.user_key` names the Django user.
        handshakes_per_second: handshakes this process starts per second (a token
            bucket of `handshake_burst`); the excess is refused "try again later".
        handshake_burst: handshakes allowed at once; default twice the rate.
        groups_per_connection: groups one connection may be in; `Group.add` beyond it
            raises `LimitExceededError` (in a handler: error frame `limit_exceeded`, the
            connection stays open).
        retry_after: a client refused "try again later" is told to retry after a random
            1 to `retry_after` seconds, so refused clients do not come back together.
    """

    connections: int | None = 10_000
    per_address: int | None = 1_000
    per_user: int | None = 50
    user_key: Callable[[Any], str | None] | None = None
    handshakes_per_second: int | None = 500
    handshake_burst: int | None = None
    groups_per_connection: int | None = 128
    retry_after: int = 5

    def __post_init__(self) -> None:
        for name in (
            "connections",
            "per_address",
            "per_user",
            "handshakes_per_second",
            "handshake_burst",
            "groups_per_connection",
        ):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigurationError(f"Limits({name}={value!r}): a positive int, or None")
        if not isinstance(self.retry_after, int) or self.retry_after < 1:
            raise ConfigurationError(f"Limits(retry_after={self.retry_after!r}): at least 1")
        if self.user_key is not None and not callable(self.user_key):
            raise ConfigurationError("Limits(user_key=...) must be a callable(conn) -> str | None")

    def handshake_limit(self) -> RateLimit | None:
        """The handshake token bucket's settings, if handshakes are limited."""
        rate = self.handshakes_per_second
        if rate is None:
            return None
        return RateLimit(messages=rate, burst=self.handshake_burst or 2 * rate)


#: No limit at all: `RealtimeApp(limits=NO_LIMITS)` (benchmarks, load tests).
NO_LIMITS = Limits(
    connections=None,
    per_address=None,
    per_user=None,
    handshakes_per_second=None,
    groups_per_connection=None,
)


class LimitStats:
    """How many times each limit refused something, since the app was created.

    Attributes:
        connections: handshakes refused: the process had `Limits.connections` open.
        per_address: handshakes refused: their address had `Limits.per_address` open.
        per_user: handshakes refused: their user had `Limits.per_user` open.
        handshakes: handshakes refused: over `Limits.handshakes_per_second`.
        groups: `Group.add` calls refused: over `Limits.groups_per_connection`.
        messages: incoming frames refused by a `RateLimit` (error frame or close 1008).
    """

    __slots__ = ("connections", "groups", "handshakes", "messages", "per_address", "per_user")

    def __init__(self) -> None:
        self.connections = self.per_address = self.per_user = 0
        self.handshakes = self.groups = self.messages = 0

    def __repr__(self) -> str:
        counts = ", ".join(f"{k}={v}" for k, v in self.as_dict().items())
        return f"LimitStats({counts})"

    def as_dict(self) -> dict[str, int]:
        """The counters by name (for metrics)."""
        return {name: getattr(self, name) for name in self.__slots__}


__all__ = [
    "DEFAULT_RATE_LIMIT",
    "NO_LIMITS",
    "LimitStats",
    "Limits",
    "RateLimit",
    "TokenBucket",
]
