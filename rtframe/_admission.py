"""Which handshakes a process takes: the connection, address, user and handshake limits.

    app receives websocket.connect
    -> Admission.admit(scope): connections in this process, handshakes per second (one
       token bucket per process), connections from the client's address; counted here,
       O(1), before any connect handler runs
    -> refused: `refuse_later` (HTTP 503 + Retry-After, or accept then close 1013) or
       close 1008 before accept (HTTP 403), logged at WARNING, counted in `LimitStats`
    -> the session runs: after its connect handler, `admit_user(conn)` counts the
       connection under `Limits.user_key(conn)` (a refusal is a `Reject` with 1008)
    -> the session ends (however it ends): `release_user`, then `release(scope)`

`refuse_later` is also how a draining server refuses handshakes (`rtframe._drain`).
"""

from __future__ import annotations

import logging
import math
import random
import time
from typing import Any

from ._sending import send_close
from .connection import CLOSE_POLICY_VIOLATION, Connection, ConnectionState
from .exceptions import Reject
from .limits import Limits, LimitStats, TokenBucket
from .types import Scope, Send

__all__ = ["CLOSE_TRY_AGAIN_LATER", "Admission", "Refusal", "refuse_later"]

logger = logging.getLogger("rtframe")

#: Close code of a handshake refused "try again later" when HTTP 503 is not possible.
CLOSE_TRY_AGAIN_LATER = 1013


async def refuse_later(
    scope: Scope,
    send: Send,
    *,
    retry_after: int,
    why: str,
    body: bytes,
    reason: str = "try again later",
    level: int | None = logging.WARNING,
) -> None:
    """Refuse a handshake "try again later": HTTP 503 + Retry-After, or accept then 1013.

    HTTP 503 needs the ASGI `websocket.http.response` extension (uvicorn has it); without
    it the handshake is accepted and closed at once with 1013, since a close before
    accept reaches the client as HTTP 403 without its code (`reason` goes with 1013).
    Logged at `level` with `why` (not at all with None).
    """
    path = scope.get("path", "")
    if "websocket.http.response" in (scope.get("extensions") or {}):
        if level is not None:
            logger.log(
                level,
                "refused the WebSocket handshake for %s: %s (HTTP 503, Retry-After %d s)",
                path,
                why,
                retry_after,
            )
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(retry_after).encode()),
        ]
        await send({"type": "websocket.http.response.start", "status": 503, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    if level is not None:
        logger.log(
            level,
            "refused the WebSocket handshake for %s: %s (close code %d)",
            path,
            why,
            CLOSE_TRY_AGAIN_LATER,
        )
    await send({"type": "websocket.accept"})
    await send_close(
        send, {"type": "websocket.close", "code": CLOSE_TRY_AGAIN_LATER, "reason": reason}
    )


_BUSY_BODY = b"The server is busy: retry later.\n"
_LOG_EVERY = 1.0  # seconds: at most one log line per limit, so a storm does not flood the log


class Refusal:
    """Why `Admission.admit` refused a handshake, and how to answer it."""

    __slots__ = ("kind", "later", "reason", "why")

    def __init__(self, kind: str, why: str, *, later: bool, reason: str = "") -> None:
        self.kind = kind  # the limit: a `LimitStats` counter's name
        self.why = why  # for the log
        self.later = later  # "try again later" (503 / 1013) rather than 1008 (403)
        self.reason = reason  # the close reason the client gets with 1008


def _address(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


class Admission:
    """The counts one app keeps to apply its `Limits` to handshakes."""

    __slots__ = ("_addresses", "_bucket", "_logged", "_quiet", "_users", "limits", "open", "stats")

    def __init__(self, limits: Limits, stats: LimitStats) -> None:
        self.limits = limits
        self.stats = stats
        #: Handshakes admitted and not yet released: connections open or opening.
        self.open = 0
        self._addresses: dict[str, int] = {}
        self._users: dict[str, int] = {}
        self._logged: dict[str, float] = {}  # limit -> when its last refusal was logged
        self._quiet: dict[str, int] = {}  # limit -> refusals not logged since
        rate = limits.handshake_limit()
        self._bucket = TokenBucket(rate) if rate is not None else None

    def counts(self) -> dict[str, Any]:
        """Connections counted now: open, by address and by user (copies; for tests)."""
        return {"open": self.open, "addresses": dict(self._addresses), "users": dict(self._users)}

    def admit(self, scope: Scope) -> Refusal | None:
        """Count a new handshake in, or say why it is refused (counted in `stats`).

        Admitted, it must be released with `release(scope)` however the connection ends.
        """
        limits, stats = self.limits, self.stats
        cap = limits.connections
        if cap is not None and self.open >= cap:
            stats.connections += 1
            return Refusal(
                "connections",
                f"{self.open} connections are open, the most this process takes "
                "(Limits.connections)",
                later=True,
            )
        bucket = self._bucket
        if bucket is not None and not bucket.take():
            stats.handshakes += 1
            return Refusal(
                "handshakes",
                f"more than {limits.handshakes_per_second} handshakes a second "
                "(Limits.handshakes_per_second)",
                later=True,
            )
        cap = limits.per_address
        if cap is not None:
            address = _address(scope)
            if address is not None:
                n = self._addresses.get(address, 0)
                if n >= cap:
                    stats.per_address += 1
                    return Refusal(
                        "per_address",
                        f"{address} has {n} connections open, the most one client address "
                        "may have (Limits.per_address)",
                        later=False,
                        reason="too many connections from this address",
                    )
                self._addresses[address] = n + 1
        self.open += 1
        return None

    async def refuse(self, refusal: Refusal, scope: Scope, send: Send) -> None:
        """Answer a refused handshake: "try again later", or 1008 (HTTP 403)."""
        why = self._report(refusal)
        if refusal.later:
            retry_after = random.randint(1, self.limits.retry_after)
            level = logging.WARNING if why is not None else None
            await refuse_later(
                scope, send, retry_after=retry_after, why=why or "", body=_BUSY_BODY, level=level
            )
            return
        if why is not None:
            logger.warning(
                "refused the WebSocket handshake for %s: %s (close code %d)",
                scope.get("path", ""),
                why,
                CLOSE_POLICY_VIOLATION,
            )
        await send(
            {"type": "websocket.close", "code": CLOSE_POLICY_VIOLATION, "reason": refusal.reason}
        )

    def _report(self, refusal: Refusal) -> str | None:
        """What to log for a refusal; None when its limit was logged within `_LOG_EVERY`."""
        now, kind = time.monotonic(), refusal.kind
        if now - self._logged.get(kind, -math.inf) < _LOG_EVERY:
            self._quiet[kind] = self._quiet.get(kind, 0) + 1
            return None
        self._logged[kind] = now
        quiet = self._quiet.pop(kind, 0)
        if quiet:
            return f"{refusal.why}; {quiet} more refused since the last report"
        return refusal.why

    def release(self, scope: Scope) -> None:
        """Count out a connection `admit` counted in."""
        self.open -= 1
        if self.limits.per_address is not None:
            address = _address(scope)
            if address is not None:
                n = self._addresses.get(address, 0) - 1
                if n > 0:
                    self._addresses[address] = n
                else:
                    self._addresses.pop(address, None)

    def admit_user(self, conn: Connection) -> str | None:
        """Count `conn` under its user (the key it was counted under, or None).

        Raises:
            Reject: the user has `Limits.per_user` connections open (close 1008).
        """
        limits = self.limits
        cap, user_key = limits.per_user, limits.user_key
        if cap is None or user_key is None or conn.state_ is ConnectionState.CLOSED:
            return None
        key = user_key(conn)
        if key is None:
            return None
        n = self._users.get(key, 0)
        if n >= cap:
            self.stats.per_user += 1
            raise Reject(
                CLOSE_POLICY_VIOLATION,
                f"too many connections for this user: {n} open, at most {cap} (Limits.per_user)",
            )
        self._users[key] = n + 1
        return key

    def release_user(self, key: str | None) -> None:
        """Count out a connection `admit_user` counted under `key`."""
        if key is None:
            return
        n = self._users.get(key, 0) - 1
        if n > 0:
            self._users[key] = n
        else:
            self._users.pop(key, None)
