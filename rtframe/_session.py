"""One WebSocket connection's life, from handshake to teardown, and an app's live sessions.

    handshake checks -> query parameters -> connect handler -> accept
    -> receive loop: size and rate limits -> validate -> handler -> reply or broadcast
    -> teardown: flush the outbox, disconnect handlers, leave every group, DI teardowns

A session owns what lives as long as the connection: the `Connection` handlers see, the
connection-scoped DI state, the route it matched. Its app keeps the set of live sessions
(`Sessions`) so it can count, iterate and close them.

Nothing fails silently here: a refused handshake is logged at WARNING with its reason, a
handler error at ERROR with its traceback (the client gets an `internal_error` frame),
a broadcast the layer could not carry at WARNING (the sender gets `layer_unavailable`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from pydantic import ValidationError

from ._admission import Admission
from ._compile import CallPlan, ConnectionScope, MessageScope, query_value
from ._routes import CompiledRoute, Handler
from .connection import (
    _OPEN,
    CLOSE_HANDSHAKE_TIMEOUT,
    CLOSE_HEARTBEAT_TIMEOUT,
    CLOSE_IDLE_TIMEOUT,
    CLOSE_INTERNAL_ERROR,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_POLICY_VIOLATION,
    Connection,
    ConnectionState,
    _enter_connection,
)
from .exceptions import (
    LayerBusyError,
    LayerError,
    LayerUnavailableError,
    MessageError,
    Reject,
)
from .history import check_since
from .hub import Hub
from .limits import TokenBucket
from .messages import SERVER_ERRORS, describe_validation_error, error_frame
from .stats import AppStats, count
from .timing import CONTROL_MAX_LENGTH, PING, PING_FRAMES, PONG, PONG_FRAMES

__all__ = ["HandshakeCheck", "Session", "SessionHost", "Sessions"]

logger = logging.getLogger("rtframe")

HandshakeCheck = Callable[[Connection], Awaitable[None]]

_now = time.monotonic

_NO_TEXT = error_frame("unsupported_frame", "This endpoint accepts no text messages")
_NO_BINARY = error_frame("unsupported_frame", "This endpoint accepts JSON text frames only")


class Sessions:
    """The live sessions of one app: counted, iterated (a snapshot) and closed."""

    __slots__ = ("_live",)

    def __init__(self) -> None:
        self._live: dict[Session, None] = {}

    def add(self, session: Session) -> None:
        self._live[session] = None

    def discard(self, session: Session) -> None:
        self._live.pop(session, None)

    def __len__(self) -> int:
        return len(self._live)

    def __iter__(self) -> Iterator[Session]:
        return iter(tuple(self._live))

    def __contains__(self, session: object) -> bool:
        return session in self._live

    async def close_all(self, code: int = 1001, reason: str = "") -> int:
        """Close every live session with `code`; returns how many were asked to close."""
        sessions = tuple(self._live)
        for session in sessions:
            await session.close(code, reason)
        return len(sessions)


class SessionHost:
    """What every session of one app shares: built once per app, one slot per session."""

    __slots__ = ("admission", "checks", "hub", "sessions", "stats")

    def __init__(
        self,
        hub: Hub,
        *,
        checks: Sequence[HandshakeCheck] = (),
        sessions: Sessions | None = None,
        admission: Admission | None = None,
        stats: AppStats | None = None,
    ) -> None:
        self.hub = hub
        self.stats = stats if stats is not None else AppStats()
        self.checks = checks
        self.sessions = sessions
        self.admission = admission


class Session(ConnectionScope):
    """One connection: its route, its `Connection`, its DI state, its flow.

    It is its own connection-scoped DI state (a `ConnectionScope`), and reaches what its
    app's sessions share through one `SessionHost`: an idle connection's every byte
    counts (benchmarks/idle.py).
    """

    __slots__ = (
        "_kicked",
        "_told",
        "accepted",
        "busy_since",
        "host",
        "last_in",
        "last_pong",
        "next_ping",
        "ping_sent",
        "route",
        "serving",
        "task",
        "user_key",
    )

    def __init__(self, route: CompiledRoute, conn: Connection, host: SessionHost) -> None:
        super().__init__(conn)
        self.route = route
        self.host = host
        self.user_key: str | None = None  # what the per-user limit counted it under
        self.accepted = False
        self.serving = False  # in the receive loop: what the sweeper may act on
        self.task: asyncio.Task[Any] | None = None
        # monotonic times: last message, last heartbeat frame, ping sent (0: none out),
        # next ping due, start of the running handler (0: none runs)
        self.last_in = self.last_pong = self.ping_sent = self.next_ping = 0.0
        self.busy_since = 0.0
        self._told = False  # the client was told its message is taking long
        self._kicked = False  # the sweeper ended the connection

    @property
    def hub(self) -> Hub:
        return self.host.hub

    def __repr__(self) -> str:
        return f"<Session {self.conn.id} {self.route.path.template!r}>"

    @property
    def id(self) -> str:
        return self.conn.id

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection; its frames queued so far are sent first."""
        await self.conn.close(code, reason)

    async def run(self) -> None:
        """Serve the connection until it ends; never raises for the client's behaviour."""
        host = self.host
        host.hub.enter()  # code of this connection (and its tasks) targets this app
        self.task = asyncio.current_task()
        _enter_connection(self.conn)  # for rtframe.tracing: once, not per message
        if host.sessions is not None:
            host.sessions.add(self)
        try:
            refusal = await self._connect()
            if refusal is not None:
                count(host.stats.refused, refusal)
                return
            self.accepted = True
            host.stats.accepted += 1
            host.hub.registry.attach(self.conn)
            self.last_in = now = _now()
            heartbeat = self.route.heartbeat
            if heartbeat is not None:
                self.next_ping = now + heartbeat.interval
            self.serving = True
            try:
                await self._serve()
            except asyncio.CancelledError:
                if not self._kicked:
                    raise
                # the sweeper gave up on the peer and woke the loop; carry on to teardown
                if self.task is not None:
                    self.task.uncancel()
            finally:
                self.serving = False
        finally:
            if host.sessions is not None:
                host.sessions.discard(self)
            if host.admission is not None:
                host.admission.release_user(self.user_key)
            await self._teardown()

    # -- handshake ---------------------------------------------------------------------

    async def _connect(self) -> str | None:
        """Run the handshake; None once accepted, else why it was refused (`AppStats`)."""
        conn, route = self.conn, self.route
        limit = route.timeouts.handshake
        refusal = "rejected"  # what a Reject means
        try:
            async with asyncio.timeout(limit):
                check_since(conn.scope)  # a malformed `$since`: 1008 before any handler
                for check in self.host.checks:
                    await check(conn)
                for p in route.query_params:
                    query_value(p, self)
                plan = route.connect
                if plan is not None:
                    await self._call(plan, None)
                admission = self.host.admission
                if admission is not None:  # per-user limit: raises Reject
                    refusal = "per_user"
                    self.user_key = admission.admit_user(conn)
                if conn.state_ is ConnectionState.CONNECTING:
                    await conn.accept()
        except TimeoutError:
            logger.warning(
                "refused the WebSocket handshake for %s: the connect handler and its "
                "dependencies did not finish within %ss (close code %d)",
                conn.path,
                limit,
                CLOSE_HANDSHAKE_TIMEOUT,
            )
            await conn.close(CLOSE_HANDSHAKE_TIMEOUT, "handshake timeout")
            return "handshake_timeout"
        except Reject as exc:
            logger.warning(
                "refused the WebSocket handshake for %s: %s (close code %d)",
                conn.path,
                exc.reason or "rejected",
                exc.code,
            )
            await conn.close(exc.code, exc.reason)
            return refusal
        except Exception:
            logger.exception(
                "refused the WebSocket handshake for %s: the connect handler or a dependency "
                "of %r failed",
                conn.path,
                route.path.template,
            )
            await conn.close(CLOSE_INTERNAL_ERROR, "internal error")
            return "error"
        if conn.state_ is not ConnectionState.OPEN:
            logger.warning(
                "refused the WebSocket handshake for %s: the connect handler closed it "
                "(close code %s)",
                conn.path,
                conn.close_code,
            )
            return "closed"
        return None

    async def _call(self, plan: CallPlan, message: Any) -> Any:
        scope = MessageScope() if plan.has_message_deps else None
        try:
            if plan.params:
                return await plan.fn(
                    **await self.route.resolver.arguments(plan, self, message, scope)
                )
            return await plan.fn()
        finally:
            if scope is not None:
                await scope.aclose()

    # -- receive loop ------------------------------------------------------------------

    async def _serve(self) -> None:
        conn, route = self.conn, self.route
        receive = conn.receive
        limit = route.max_message_size
        bucket = TokenBucket(route.rate_limit) if route.rate_limit is not None else None
        while True:
            message = await receive()
            kind = message["type"]
            if kind == "websocket.receive":
                if conn.state_ is not _OPEN:  # closed meanwhile (a logout): handle no more
                    return
                if bucket is not None and not bucket.take():
                    if await self._over_rate(bucket):
                        return
                    continue
                text = message.get("text")
                if text is not None and len(text) <= CONTROL_MAX_LENGTH and self._control(text):
                    continue
                self.last_in = _now()
                route.received += 1
                if text is not None:
                    # a str has at most 4 UTF-8 bytes per character: encode only near the limit
                    if len(text) * 4 > limit and len(text.encode()) > limit:
                        await self._too_big(limit)
                        return
                    await self._on_text(text)
                else:
                    data = message.get("bytes") or b""
                    if len(data) > limit:
                        await self._too_big(limit)
                        return
                    await self._on_bytes(data)
                if conn.state_ is not _OPEN:
                    return
            elif kind == "websocket.disconnect":
                conn.mark_disconnected(message.get("code", 1005))
                return

    def _control(self, text: str) -> bool:
        """Answer a heartbeat frame; False when `text` is an ordinary message."""
        if text in PONG_FRAMES:
            self.last_pong = _now()
            return True
        if text in PING_FRAMES:
            self.last_pong = _now()
            self.conn.deliver(PONG)
            return True
        return False

    async def _over_rate(self, bucket: TokenBucket) -> bool:
        """Refuse one frame over the rate limit; True when the connection was closed."""
        limit = self.route.rate_limit
        assert limit is not None
        bucket.refused += 1
        if self.host.admission is not None:
            self.host.admission.stats.messages += 1
        if limit.action == "close":
            logger.warning("closing %r: over its rate limit", self.conn)
            await self.conn.close(CLOSE_POLICY_VIOLATION, "rate limit exceeded")
            return True
        if bucket.refused == 1:  # once per connection: a flood must not flood the log too
            logger.warning("%r is over its rate limit: refusing frames (rate_limited)", self.conn)
        self._error("rate_limited")
        return False

    async def _too_big(self, limit: int) -> None:
        logger.warning("closing %r: frame larger than %d bytes", self.conn, limit)
        await self.conn.close(CLOSE_MESSAGE_TOO_BIG, f"message larger than {limit} bytes")

    async def _on_text(self, text: str) -> None:
        route = self.route
        adapter = route.adapter
        if adapter is None:
            self._error("unsupported_frame", _NO_TEXT)
            return
        try:
            message = adapter.validate_json(text)
        except ValidationError as exc:
            frame = describe_validation_error(exc)
            self._error(json.loads(frame)["code"], frame)
            return
        handler = route.single or route.handlers[type(message)]
        await self._run(handler, message)

    async def _on_bytes(self, data: bytes) -> None:
        if self.route.binary is None:
            self._error("unsupported_frame", _NO_BINARY)
            return
        await self._run(self.route.binary, data)

    async def _run(self, handler: Handler, message: Any) -> None:
        plan, conn = handler.plan, self.conn
        self.busy_since = self.last_in
        handler.handled += 1
        try:
            if handler.message_only is not None:
                result = await plan.fn(**{handler.message_only: message})
            elif plan.direct:  # no dependencies: skip the resolver's coroutines
                result = await plan.fn(**self.route.resolver.direct_arguments(plan, self, message))
            else:
                result = await self._call(plan, message)
            if result is None or handler.encode is None:
                return
            data = handler.encode(result)
            if (group := handler.group) is not None:
                handler.broadcasts += 1
                await self.host.hub.publish(group.name_for(conn), data, group.history)
            elif conn.state_ is _OPEN:
                conn.deliver(data)
                handler.replies += 1
        except MessageError as exc:
            self._error(exc.code, error_frame(exc.code, exc.detail, exc.errors))
        except Reject as exc:
            await conn.close(exc.code, exc.reason)
        except LayerUnavailableError as exc:
            # not a bug in the handler: the backend (Redis) is down, local members got it
            logger.warning("handler %s on %r: %s", plan.name, conn, exc)
            self._error("layer_unavailable")
        except LayerBusyError as exc:  # reachable but saturated: not an outage
            logger.warning("handler %s on %r: %s", plan.name, conn, exc)
            self._error("layer_busy")
        except LayerError as exc:
            logger.warning("handler %s on %r: %s", plan.name, conn, exc)
            self._error("layer_error")
        except Exception:
            logger.exception("handler %s failed on %r", plan.name, conn)
            self._error("internal_error")
        finally:
            self.busy_since = 0.0
            self._told = False

    # -- heartbeats and timeouts (run by the app's sweeper) ----------------------------

    def check(self, now: float) -> tuple[int, str] | None:
        """Ping or warn this connection as its route's timing says.

        Returns the close code and reason when the connection must be kicked (the
        sweeper awaits that), None otherwise; never awaits, so a sweep over thousands
        of sessions is one pass.
        """
        if not self.serving or self.conn.state_ is not _OPEN:
            return None
        route = self.route
        busy = self.busy_since
        if busy:
            limit = route.timeouts.handler
            if limit is not None and not self._told and now - busy >= limit:
                self._told = True
                name = route.handler_names()
                logger.warning("%r: handler %s still running after %ss", self.conn, name, limit)
                self._error(
                    "handler_timeout",
                    error_frame(
                        "handler_timeout",
                        f"Your message has been handled for more than {limit:g} s; it is "
                        "still running, and its answer (if any) will follow",
                    ),
                )
            # while a handler runs nothing is read: the peer's silence is not its fault
            return None
        heartbeat = route.heartbeat
        if heartbeat is not None:
            if self.ping_sent:
                if max(self.last_in, self.last_pong) >= self.ping_sent:
                    self.ping_sent = 0.0  # answered
                elif now - self.ping_sent >= heartbeat.timeout:
                    return CLOSE_HEARTBEAT_TIMEOUT, "heartbeat timeout"
            if not self.ping_sent and now >= self.next_ping:
                self.ping_sent = now
                self.next_ping = now + heartbeat.interval
                self.conn.deliver(PING)
        idle = route.timeouts.idle
        if idle is not None and now - self.last_in >= idle:
            return CLOSE_IDLE_TIMEOUT, "idle timeout"
        return None

    def _error(self, code: str, frame: str | None = None) -> None:
        """Send the error frame `frame` (by default the server's own for `code`); count it."""
        count(self.host.stats.errors, code)
        self.conn.deliver(frame or SERVER_ERRORS[code])

    async def kick(self, code: int, reason: str) -> None:
        """End a connection whose peer is gone or idle, even if its socket is stalled."""
        logger.warning("closing %r: %s (close code %d)", self.conn, reason, code)
        self._kicked = True
        count(self.host.stats.timeouts, "heartbeat" if code == CLOSE_HEARTBEAT_TIMEOUT else "idle")
        await self.conn.abort(code, reason)
        if self.serving and self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()  # wake the receive loop wherever it waits; teardown follows

    # -- teardown ----------------------------------------------------------------------

    async def _teardown(self) -> None:
        conn = self.conn
        await conn.wait_flushed()
        conn.mark_disconnected(conn.close_code)
        self.host.stats.dropped += conn.dropped
        if self.accepted:
            count(self.host.stats.closes, conn.close_code or 1005)
            for plan in self.route.disconnect:
                try:
                    await self._call(plan, None)
                except Exception:
                    logger.exception("disconnect handler %s failed", plan.name)
        try:
            await self.host.hub.leave_all(conn)
        except Exception:
            logger.exception("could not remove %r from its groups", conn)
        self.host.hub.registry.detach(conn)
        try:
            await self.aclose()
        except Exception:
            logger.exception("teardown of a dependency of %r failed", conn)
