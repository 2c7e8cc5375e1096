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

import logging
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from pydantic import ValidationError

from ._compile import CallPlan, ConnectionScope, MessageScope, query_value
from ._routes import CompiledRoute, Handler
from .connection import (
    _OPEN,
    CLOSE_INTERNAL_ERROR,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_POLICY_VIOLATION,
    Connection,
    ConnectionState,
)
from .exceptions import (
    LayerBusyError,
    LayerError,
    LayerUnavailableError,
    MessageError,
    Reject,
)
from .hub import Hub
from .limits import TokenBucket
from .messages import describe_validation_error, error_frame

__all__ = ["HandshakeCheck", "Session", "Sessions"]

logger = logging.getLogger("rtframe")

HandshakeCheck = Callable[[Connection], Awaitable[None]]

_INTERNAL_ERROR = error_frame("internal_error", "The server failed to handle the message")
_RATE_LIMITED = error_frame("rate_limited", "Too many messages; this one was not handled")
_LAYER_UNAVAILABLE = error_frame(
    "layer_unavailable",
    "The messaging backend is unreachable: only members on this server received the message",
)
_LAYER_BUSY = error_frame(
    "layer_busy",
    "The messaging backend is overloaded: only members on this server received the message",
)
_LAYER_ERROR = error_frame(
    "layer_error",
    "The messaging backend refused the message: only members on this server received it",
)
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


class Session:
    """One connection: its route, its `Connection`, its DI state, its flow."""

    __slots__ = ("accepted", "checks", "conn", "di", "hub", "route", "sessions")

    def __init__(
        self,
        route: CompiledRoute,
        conn: Connection,
        hub: Hub,
        *,
        checks: Sequence[HandshakeCheck] = (),
        sessions: Sessions | None = None,
    ) -> None:
        self.route = route
        self.conn = conn
        self.hub = hub
        self.checks = checks
        self.sessions = sessions
        self.di = ConnectionScope(conn)
        self.accepted = False

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
        self.hub.enter()  # code of this connection (and its tasks) targets this app
        if self.sessions is not None:
            self.sessions.add(self)
        try:
            if not await self._connect():
                return
            self.accepted = True
            self.hub.registry.attach(self.conn)
            await self._serve()
        finally:
            if self.sessions is not None:
                self.sessions.discard(self)
            await self._teardown()

    # -- handshake ---------------------------------------------------------------------

    async def _connect(self) -> bool:
        conn, route = self.conn, self.route
        try:
            for check in self.checks:
                await check(conn)
            for p in route.query_params:
                query_value(p, self.di)
            plan = route.connect
            if plan is not None:
                await self._call(plan, None)
            if conn.state_ is ConnectionState.CONNECTING:
                await conn.accept()
        except Reject as exc:
            logger.warning(
                "refused the WebSocket handshake for %s: %s (close code %d)",
                conn.path,
                exc.reason or "rejected",
                exc.code,
            )
            await conn.close(exc.code, exc.reason)
            return False
        except Exception:
            logger.exception(
                "refused the WebSocket handshake for %s: the connect handler or a dependency "
                "of %r failed",
                conn.path,
                route.path.template,
            )
            await conn.close(CLOSE_INTERNAL_ERROR, "internal error")
            return False
        if conn.state_ is not ConnectionState.OPEN:
            logger.warning(
                "refused the WebSocket handshake for %s: the connect handler closed it "
                "(close code %s)",
                conn.path,
                conn.close_code,
            )
            return False
        return True

    async def _call(self, plan: CallPlan, message: Any) -> Any:
        scope = MessageScope() if plan.has_message_deps else None
        try:
            if plan.params:
                return await plan.fn(
                    **await self.route.resolver.arguments(plan, self.di, message, scope)
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
                if bucket is not None and not bucket.take():
                    if await self._over_rate():
                        return
                    continue
                text = message.get("text")
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

    async def _over_rate(self) -> bool:
        """Refuse one frame over the rate limit; True when the connection was closed."""
        limit = self.route.rate_limit
        assert limit is not None
        if limit.action == "close":
            logger.warning("closing %r: over its rate limit", self.conn)
            await self.conn.close(CLOSE_POLICY_VIOLATION, "rate limit exceeded")
            return True
        self.conn.deliver(_RATE_LIMITED)
        return False

    async def _too_big(self, limit: int) -> None:
        logger.warning("closing %r: frame larger than %d bytes", self.conn, limit)
        await self.conn.close(CLOSE_MESSAGE_TOO_BIG, f"message larger than {limit} bytes")

    async def _on_text(self, text: str) -> None:
        route = self.route
        adapter = route.adapter
        if adapter is None:
            self.conn.deliver(_NO_TEXT)
            return
        try:
            message = adapter.validate_json(text)
        except ValidationError as exc:
            self.conn.deliver(describe_validation_error(exc))
            return
        handler = route.single or route.handlers[type(message)]
        await self._run(handler, message)

    async def _on_bytes(self, data: bytes) -> None:
        if self.route.binary is None:
            self.conn.deliver(_NO_BINARY)
            return
        await self._run(self.route.binary, data)

    async def _run(self, handler: Handler, message: Any) -> None:
        plan, conn = handler.plan, self.conn
        try:
            if handler.message_only is not None:
                result = await plan.fn(**{handler.message_only: message})
            elif plan.direct:  # no dependencies: skip the resolver's coroutines
                result = await plan.fn(
                    **self.route.resolver.direct_arguments(plan, self.di, message)
                )
            else:
                result = await self._call(plan, message)
            if result is None or handler.encode is None:
                return
            data = handler.encode(result)
            if handler.group is not None:
                await self.hub.publish(handler.group.name_for(conn), data)
            elif conn.state_ is _OPEN:
                conn.deliver(data)
        except MessageError as exc:
            conn.deliver(error_frame(exc.code, exc.detail, exc.errors))
        except Reject as exc:
            await conn.close(exc.code, exc.reason)
        except LayerUnavailableError as exc:
            # not a bug in the handler: the backend (Redis) is down, local members got it
            logger.warning("handler %s on %r: %s", plan.name, conn, exc)
            conn.deliver(_LAYER_UNAVAILABLE)
        except LayerBusyError as exc:  # reachable but saturated: not an outage
            logger.warning("handler %s on %r: %s", plan.name, conn, exc)
            conn.deliver(_LAYER_BUSY)
        except LayerError as exc:
            logger.warning("handler %s on %r: %s", plan.name, conn, exc)
            conn.deliver(_LAYER_ERROR)
        except Exception:
            logger.exception("handler %s failed on %r", plan.name, conn)
            conn.deliver(_INTERNAL_ERROR)

    # -- teardown ----------------------------------------------------------------------

    async def _teardown(self) -> None:
        conn = self.conn
        await conn.wait_flushed()
        conn.mark_disconnected(conn.close_code)
        if self.accepted:
            for plan in self.route.disconnect:
                try:
                    await self._call(plan, None)
                except Exception:
                    logger.exception("disconnect handler %s failed", plan.name)
        try:
            await self.hub.leave_all(conn)
        except Exception:
            logger.exception("could not remove %r from its groups", conn)
        self.hub.registry.detach(conn)
        try:
            await self.di.aclose()
        except Exception:
            logger.exception("teardown of a dependency of %r failed", conn)
