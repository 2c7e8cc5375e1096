"""Graceful drain: refuse new handshakes, tell every client to reconnect, close them spread out.

    app.drain(window=10.0)
    -> new handshakes refused: HTTP 503 + Retry-After (server offers the ASGI
       `websocket.http.response` extension), else accept then close 1013 (try again later)
    -> every live client gets {"type":"$reconnect","after_ms":N}: N is its own slot in
       the window, drawn at random (one slot per client, so the slots are evenly spread);
       a handshake under way when the drain began is told once it opens
    -> each client is closed with 1012 (service restart) at about its N, a batch every
       50 ms, at most `max_share_per_second` of the clients in any second unless the
       window is too short for that; a client whose handler is running is closed when
       the handler returns (its reply goes first), at the latest `handler_grace` after
       the window
    -> wait (at most `close_timeout`) until every session has finished its teardown

Everything runs in one task per drain: no timer or task per connection, one loop turn
per 512 notices so a big drain does not stall the process. A second `drain()` while one
runs waits for it and gets the same summary.
"""

from __future__ import annotations

import asyncio
import bisect
import logging
import math
import random
import time
from collections import deque
from dataclasses import dataclass

from ._admission import CLOSE_TRY_AGAIN_LATER, refuse_later
from ._session import Session, Sessions
from .connection import ConnectionState
from .exceptions import ConfigurationError
from .types import Scope, Send

__all__ = [
    "CLOSE_SERVICE_RESTART",
    "CLOSE_TRY_AGAIN_LATER",
    "RECONNECT_TYPE",
    "DrainSummary",
    "Drainer",
    "reconnect_frame",
]

logger = logging.getLogger("rtframe")

#: Close code of a connection the drain ends (RFC 6455: "Service Restart").
CLOSE_SERVICE_RESTART = 1012
#: The `type` of the notice every client gets when the drain starts.
RECONNECT_TYPE = "$reconnect"

_OPEN = ConnectionState.OPEN
_TICK = 0.05  # seconds between two batches of closes
_NOTICE_CHUNK = 512  # notices sent between two turns of the event loop
_REFUSAL_BODY = b"The server is restarting: reconnect to another server, or retry later.\n"


def reconnect_frame(after_ms: int) -> str:
    """The notice text: reconnect in `after_ms` milliseconds (when this server closes)."""
    return f'{{"type":"{RECONNECT_TYPE}","after_ms":{after_ms}}}'


@dataclass(frozen=True, slots=True)
class DrainSummary:
    """What a drain did.

    Attributes:
        notified: clients sent the reconnect notice.
        closed: connections the drain closed with 1012.
        waited_for_handler: closes postponed until a running handler returned.
        cut_off: connections closed while their handler still ran (past `handler_grace`).
        remaining: sessions still open or tearing down when the drain returned.
        refused: handshakes refused since the drain began, until it returned.
        duration: seconds from the start of the drain to its return.
    """

    notified: int
    closed: int
    waited_for_handler: int
    cut_off: int
    remaining: int
    refused: int
    duration: float


class Drainer:
    """The drain state of one app: whether it drains, and the one drain task."""

    __slots__ = ("_task", "_window", "refused", "sessions")

    def __init__(self, sessions: Sessions) -> None:
        self.sessions = sessions
        self.refused = 0
        self._window = 0.0
        self._task: asyncio.Future[DrainSummary] | None = None

    @property
    def active(self) -> bool:
        """True from the first `drain()` on: new handshakes are refused."""
        return self._task is not None

    def reset(self) -> None:
        """Accept connections again (a new serving period: lifespan startup)."""
        self._task = None
        self.refused = 0

    async def drain(
        self,
        window: float,
        *,
        max_share_per_second: float,
        handler_grace: float,
        close_timeout: float,
    ) -> DrainSummary:
        if self._task is None:
            if not all(math.isfinite(x) and x >= 0 for x in (window, handler_grace, close_timeout)):
                raise ConfigurationError(
                    "window, handler_grace and close_timeout must be finite and not negative"
                )
            if not (math.isfinite(max_share_per_second) and max_share_per_second > 0):
                raise ConfigurationError("max_share_per_second must be a positive number")
            self._window = window
            self._task = asyncio.ensure_future(
                self._run(window, max_share_per_second, handler_grace, close_timeout)
            )
        return await asyncio.shield(self._task)

    async def refuse(self, scope: Scope, send: Send) -> None:
        """Answer a handshake that arrived during the drain: 503 + Retry-After, or 1013."""
        self.refused += 1
        # a random retry delay within the window spreads the retries, like the notices
        retry_after = random.randint(1, max(1, math.ceil(self._window)))
        await refuse_later(
            scope,
            send,
            retry_after=retry_after,
            why="the server is draining",
            body=_REFUSAL_BODY,
            reason="server draining",
            level=logging.INFO,
        )

    async def _run(
        self, window: float, share: float, grace: float, close_timeout: float
    ) -> DrainSummary:
        started = time.monotonic()
        # quiet when there is nothing to drain (plain uvicorn's lifespan shutdown, tests)
        busy = bool(self.sessions)
        logger.log(
            logging.INFO if busy else logging.DEBUG,
            "draining: new WebSocket handshakes are refused; %d connection(s) are told to "
            "reconnect and closed over %.1f s",
            len(self.sessions),
            window,
        )
        run = _Run(self.sessions, window, share, grace)
        await run.notify()
        await run.close_all(started)
        remaining = await _wait_gone(self.sessions, close_timeout, run.closing)
        summary = DrainSummary(
            notified=run.notified,
            closed=run.closed,
            waited_for_handler=run.waited,
            cut_off=run.cut_off,
            remaining=remaining,
            refused=self.refused,
            duration=time.monotonic() - started,
        )
        level = logging.INFO if busy or summary.refused else logging.DEBUG
        if summary.cut_off or summary.remaining:
            level = logging.WARNING
        logger.log(
            level,
            "drained in %.2f s: %d notified, %d closed with %d (%d after their handler "
            "returned, %d cut off mid-handler), %d still open, %d handshakes refused",
            summary.duration,
            summary.notified,
            summary.closed,
            CLOSE_SERVICE_RESTART,
            summary.waited_for_handler,
            summary.cut_off,
            summary.remaining,
            summary.refused,
        )
        return summary


class _Run:
    """One drain's schedule and counters."""

    def __init__(self, sessions: Sessions, window: float, share: float, grace: float) -> None:
        self.sessions = sessions
        self.window = window
        self.grace = grace
        self.notified = self.closed = self.waited = self.cut_off = 0
        self.closing: set[asyncio.Task[None]] = set()
        live = [s for s in sessions if s.accepted and s.conn.state_ is _OPEN]
        # handshakes under way (the check ran before the drain): drained once they open
        self.joining = [s for s in sessions if not s.accepted]
        random.shuffle(live)
        n = len(live)
        # one slot of window/n per client, a random point in it: evenly spread, random order
        self.due: deque[tuple[float, Session]] = deque(
            (window * (i + random.random()) / n, s) for i, s in enumerate(live)
        )
        # closes allowed per second: the share asked for, or more if the window needs it
        n += len(self.joining)
        self.rate = max(share * n, n / window) if window > 0 else math.inf
        if n and window > 0 and share * window < 1:
            logger.info(
                "the drain window (%.1f s) is too short to close at most %.0f%% of the "
                "connections per second: closing %.0f%% per second",
                window,
                share * 100,
                100 / window,
            )

    async def notify(self) -> None:
        for i, (due, session) in enumerate(self.due):
            session.conn.deliver(reconnect_frame(round(due * 1000)))
            self.notified += 1
            if i % _NOTICE_CHUNK == _NOTICE_CHUNK - 1:
                await asyncio.sleep(0)

    async def close_all(self, started: float) -> None:
        waiting: list[Session] = []  # due, but running a handler
        while True:
            now = time.monotonic() - started
            if self.joining:
                self._admit_joined(now)
            final = now >= self.window + self.grace
            allowed = (
                math.inf
                if now >= self.window
                else math.floor(self.rate * now + max(1.0, self.rate * _TICK)) - self.closed
            )
            still: list[Session] = []
            for session in waiting:
                if session.conn.state_ is not _OPEN:
                    continue
                if (session.busy_since and not final) or allowed <= 0:
                    still.append(session)
                    continue
                self._close(session)
                allowed -= 1
            waiting = still
            while self.due and self.due[0][0] <= now and allowed > 0:
                session = self.due.popleft()[1]
                if session.conn.state_ is not _OPEN:
                    continue
                if session.busy_since and not final:
                    self.waited += 1
                    waiting.append(session)
                    continue
                self._close(session)
                allowed -= 1
            if not self.due and not waiting and not self.joining:
                return
            await asyncio.sleep(_TICK)

    def _admit_joined(self, now: float) -> None:
        """Schedule the sessions whose handshake completed: a random time left in the window."""
        joining: list[Session] = []
        for session in self.joining:
            if not session.accepted:
                if session in self.sessions:
                    joining.append(session)  # still in its connect handler
                continue
            if session.conn.state_ is not _OPEN:
                continue
            delay = random.random() * max(0.0, self.window - now)
            bisect.insort(self.due, (now + delay, session), key=_due_time)
            session.conn.deliver(reconnect_frame(round(delay * 1000)))
            self.notified += 1
        self.joining = joining

    def _close(self, session: Session) -> None:
        if session.busy_since:
            self.cut_off += 1
            logger.warning(
                "closing %r while its handler still runs: it did not return within the "
                "drain window and %.1f s of grace",
                session.conn,
                self.grace,
            )
        self.closed += 1
        # one task per close: some servers wait for the client's answer to a close frame
        task = asyncio.ensure_future(session.close(CLOSE_SERVICE_RESTART, "server restarting"))
        self.closing.add(task)
        task.add_done_callback(self.closing.discard)


def _due_time(item: tuple[float, Session]) -> float:
    return item[0]


async def _wait_gone(sessions: Sessions, timeout: float, closing: set[asyncio.Task[None]]) -> int:
    """Wait until no session is left (each finished its teardown); how many are left."""
    # a poll: the session set has no event to wait on, and a drain polls once per tick
    deadline = time.monotonic() + timeout
    for _ in range(math.ceil(timeout / _TICK)):
        if not (sessions or closing) or time.monotonic() >= deadline:
            break
        await asyncio.sleep(_TICK)
    for task in closing:
        task.cancel()
    return len(sessions)
