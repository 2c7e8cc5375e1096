"""The per-connection object handed to handlers, and its bounded outbox.

Every frame a connection sends goes through one path, `Connection._push`, so replies
and broadcasts keep their order. While the client keeps up, a frame is written straight
through the server's `send` without a task or a queue hop: the send coroutine is stepped
once in place and almost always finishes there. Only when the server makes it wait (the
socket's write buffer is full) does the connection park the rest in a bounded deque,
drained by one task, so a slow client never stalls the broadcaster or its group.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import logging
import uuid
from collections import deque
from collections.abc import Coroutine, Mapping
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal

from ._cursor import Cursor
from ._scope import scope_headers, scope_query
from ._sending import is_client_gone, resume, send_close
from .exceptions import ConnectionStateError
from .history import since_of
from .messages import encode

if TYPE_CHECKING:
    from .hub import Hub
    from .layers.base import Layer
    from .types import Message, Receive, Scope, Send

__all__ = [
    "CLOSE_HANDSHAKE_TIMEOUT",
    "CLOSE_HEARTBEAT_TIMEOUT",
    "CLOSE_IDLE_TIMEOUT",
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_POLICY_VIOLATION",
    "CLOSE_SLOW_CONSUMER",
    "Connection",
    "ConnectionState",
    "OverflowPolicy",
    "State",
    "dropped_notice",
]

logger = logging.getLogger("rtframe.connection")

OverflowPolicy = Literal["drop_oldest", "close"]

#: Close code sent to a client that did not answer a heartbeat ping in time.
CLOSE_HEARTBEAT_TIMEOUT = 4002
#: Close code sent to a client that sent no message for the idle timeout.
CLOSE_IDLE_TIMEOUT = 4003
#: Close code of a handshake whose connect handler or dependencies took too long.
CLOSE_HANDSHAKE_TIMEOUT = 4004
#: Close code sent to a client whose outbox overflowed under the "close" policy.
CLOSE_SLOW_CONSUMER = 4008
CLOSE_MESSAGE_TOO_BIG = 1009
CLOSE_POLICY_VIOLATION = 1008
CLOSE_INTERNAL_ERROR = 1011

#: The connection whose session runs in this task, once `rtframe.tracing` instruments an
#: app (it names the connection of a handler's span): set once per connection, never per
#: message, and not at all before, as a context of its own costs a connection ~120 bytes.
_current_connection: ContextVar[Connection | None] = ContextVar(
    "rtframe_current_connection", default=None
)
_track_current = False  # set by rtframe.tracing.instrument


def _enter_connection(conn: Connection) -> None:
    """Make `conn` the current connection of this task, when tracing reads it."""
    if _track_current:
        _current_connection.set(conn)


class ConnectionState(enum.Enum):
    """Where a connection is in its life; every operation checks it."""

    CONNECTING = "connecting"
    OPEN = "open"
    CLOSING = "closing"  # close() was called while frames were still queued
    CLOSED = "closed"


# Reading an Enum member off its class costs about 0.1 us on Python 3.11 (a descriptor
# call); the per-frame path compares against this module constant instead.
_OPEN = ConnectionState.OPEN

# The last frame delivered and its ASGI message. A broadcast hands the same encoded text
# to every member, so the message dict is built once per broadcast instead of once per
# member (about a fifth of what a delivery costs rtframe). Nothing mutates a message
# after it is built, so members can share it; holding the last frame is the only cost.
_last_frame: list[Any] = [None, None]


class State:
    """Free-form per-connection storage: `conn.state.nickname = "ada"`."""

    def __repr__(self) -> str:
        return f"State({vars(self)!r})"

    if TYPE_CHECKING:  # let type checkers accept any attribute, as the runtime does

        def __getattr__(self, name: str) -> Any: ...

        def __setattr__(self, name: str, value: Any) -> None: ...


class Connection:
    """One WebSocket connection: identity, request data, state and sending.

    Handlers receive it by annotating a parameter with `Connection`. Sending is only
    allowed between `accept()` and `close()`; anything else raises
    `ConnectionStateError`.
    """

    __slots__ = (
        "_cookies",
        "_cursor",
        "_headers",
        "_hub",
        "_lost",
        "_outbox",
        "_overflowed",
        "_pending",
        "_query",
        "_send",
        "_state_ns",
        "close_code",
        "dropped",
        "id",
        "outbox_limit",
        "overflow",
        "path_params",
        "receive",
        "scope",
        "state_",
    )

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        hub: Hub | None = None,
        path_params: dict[str, Any] | None = None,
        outbox_limit: int = 256,
        overflow: OverflowPolicy = "drop_oldest",
    ) -> None:
        self.scope = scope
        self.receive = receive
        self._send = send
        self._hub = hub
        self.path_params: dict[str, Any] = path_params if path_params is not None else {}
        self.id: str = hub.layer.new_member_id() if hub is not None else uuid.uuid4().hex
        self.state_ = ConnectionState.CONNECTING
        self.outbox_limit = outbox_limit
        self.overflow: OverflowPolicy = overflow
        self.close_code: int | None = None
        self.dropped = 0
        self._outbox: deque[Message] | None = None
        self._pending: asyncio.Task[None] | None = None
        self._overflowed = False
        self._lost = 0  # frames dropped since the client was last told
        self._headers: dict[str, str] | None = None
        self._cookies: dict[str, str] | None = None
        self._query: dict[str, str] | None = None
        self._state_ns: State | None = None
        self._cursor: Cursor | None = None

    def __repr__(self) -> str:
        return f"<Connection {self.id} {self.path!r} {self.state_.value}>"

    # -- request data ------------------------------------------------------------------

    @property
    def path(self) -> str:
        return str(self.scope.get("path", ""))

    @property
    def query_params(self) -> Mapping[str, str]:
        """Query string parameters; the last value wins for repeated names."""
        if self._query is None:
            self._query = scope_query(self.scope)
        return self._query

    @property
    def headers(self) -> Mapping[str, str]:
        """Handshake headers, names lower-cased; repeated headers are joined with commas."""
        if self._headers is None:
            self._headers = scope_headers(self.scope)
        return self._headers

    @property
    def cookies(self) -> Mapping[str, str]:
        """Cookies of the handshake request."""
        if self._cookies is None:
            cookies: dict[str, str] = {}
            for chunk in self.headers.get("cookie", "").split(";"):
                name, sep, value = chunk.partition("=")
                if sep and name.strip():
                    cookies[name.strip()] = value.strip().strip('"')
            self._cookies = cookies
        return self._cookies

    @property
    def client(self) -> tuple[str, int] | None:
        client = self.scope.get("client")
        return (str(client[0]), int(client[1])) if client else None

    @property
    def state(self) -> State:
        """Per-connection storage for handlers; created on first use."""
        if self._state_ns is None:
            self._state_ns = State()
        return self._state_ns

    @property
    def hub(self) -> Hub:
        """The messaging (registry and layer) of the app this connection belongs to."""
        if self._hub is None:
            raise ConnectionStateError(f"{self!r} does not belong to an application")
        return self._hub

    @property
    def layer(self) -> Layer:
        return self.hub.layer

    @property
    def cursor(self) -> Cursor:
        """Its positions in history groups, from the client's `$since` (`rtframe._cursor`)."""
        cursor = self._cursor
        if cursor is None:
            hub = self.hub
            cursor = self._cursor = Cursor(
                self.deliver,
                functools.partial(hub.recover_gap, self),
                opened=self.state_ is not ConnectionState.CONNECTING,
                since=since_of(self.scope),
            )
        return cursor

    def deliver_at(self, group: str, position: tuple[str, int], data: str | bytes) -> None:
        """Take a history group's frame: once, in order, recovering what was missed."""
        cursor = self._cursor
        if cursor is None:  # pragma: no cover - joining a history group makes the cursor
            self.deliver(data)
        else:
            cursor.offer(group, position, data)

    @property
    def groups(self) -> frozenset[str]:
        """The groups this connection is a member of."""
        return self._hub.registry.groups_of(self) if self._hub is not None else frozenset()

    @property
    def is_open(self) -> bool:
        return self.state_ is ConnectionState.OPEN

    # -- handshake and closing ---------------------------------------------------------

    async def accept(
        self, subprotocol: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        """Complete the handshake. Only valid once, before anything is sent."""
        if self.state_ is not ConnectionState.CONNECTING:
            raise ConnectionStateError(
                f"accept() needs a connecting connection, but {self!r} is {self.state_.value}"
            )
        message: Message = {"type": "websocket.accept", "subprotocol": subprotocol}
        if headers:
            message["headers"] = [
                (k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()
            ]
        self.state_ = ConnectionState.OPEN
        await self._send(message)
        if self._cursor is not None:  # what its history groups replayed meanwhile
            self._cursor.open()

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection; frames queued before the call are still sent first.

        Before `accept()` this refuses the handshake (the server answers HTTP 403).
        Closing twice is a no-op.
        """
        if self.state_ in (ConnectionState.CLOSED, ConnectionState.CLOSING):
            return
        self.close_code = code
        message: Message = {"type": "websocket.close", "code": code, "reason": reason}
        if self.state_ is ConnectionState.CONNECTING or self._pending is None:
            self.state_ = ConnectionState.CLOSED
            try:
                await send_close(self._send, message)
            except Exception as exc:
                if not is_client_gone(exc):  # the peer being gone is what closing wanted
                    logger.warning("close of %r failed", self, exc_info=exc)
            return
        self.state_ = ConnectionState.CLOSING
        self._queue(message, force=True)

    async def abort(self, code: int, reason: str, timeout: float = 1.0) -> None:
        """Give up on the peer: drop queued frames and send a close frame, bounded.

        For a peer that stopped answering, whose socket may not drain: unlike `close`,
        nothing queued is sent first, and the close frame is abandoned after `timeout`.
        """
        if self.state_ is ConnectionState.CLOSED:
            return
        was_open = self.state_ is not ConnectionState.CONNECTING
        self.mark_disconnected(code)
        if not was_open:
            return
        message: Message = {"type": "websocket.close", "code": code, "reason": reason}
        try:
            await asyncio.wait_for(send_close(self._send, message), timeout)
        except Exception as exc:  # gone, stalled, or already closed by the server
            logger.debug("close frame to %r not sent: %r", self, exc)

    def mark_disconnected(self, code: int | None) -> None:
        """Record that the client went away; pending frames are abandoned."""
        if self.close_code is None:
            self.close_code = code
        self.state_ = ConnectionState.CLOSED
        if self._outbox:
            self._outbox.clear()
        if self._pending is not None and not self._pending.done():
            self._pending.cancel()

    async def wait_flushed(self, timeout: float = 5.0) -> None:
        """Wait (bounded) until frames queued for a still-connected client are written."""
        pending = self._pending
        if pending is None or self.state_ not in (ConnectionState.OPEN, ConnectionState.CLOSING):
            return
        try:
            await asyncio.wait_for(asyncio.shield(pending), timeout)
        except (TimeoutError, asyncio.CancelledError):
            logger.info("%r: gave up flushing its outbox after %.1fs", self, timeout)

    # -- sending -----------------------------------------------------------------------

    async def send(self, message: Any) -> None:
        """Send a model, dict, list, str (text frame) or bytes (binary frame)."""
        self._check_open()
        self.deliver(encode(message))

    async def send_text(self, text: str) -> None:
        self._check_open()
        self.deliver(text)

    async def send_bytes(self, data: bytes) -> None:
        self._check_open()
        self.deliver(data)

    def _check_open(self) -> None:
        if self.state_ is _OPEN:
            return
        if self.state_ is ConnectionState.CONNECTING:
            raise ConnectionStateError(f"cannot send on {self!r} before accept()")
        raise ConnectionStateError(f"cannot send on {self!r}: it is {self.state_.value}")

    def deliver(self, data: str | bytes) -> None:
        """Queue an already-encoded frame without waiting; used by broadcasts.

        A closed connection silently ignores it: a broadcast racing a disconnect is not
        an error.
        """
        if self.state_ is not _OPEN:
            return
        last = _last_frame
        if data is last[0]:
            message: Message = last[1]
        else:
            message = (
                {"type": "websocket.send", "text": data}
                if isinstance(data, str)
                else {"type": "websocket.send", "bytes": data}
            )
            last[0], last[1] = data, message
        if self._pending is not None:
            self._queue(message)
            return
        # Run the send coroutine in place until it either finishes (the usual case: the
        # server wrote to its transport) or has to wait; only then pay for a task.
        # This is what Python 3.12's eager tasks do, written out for 3.11, inline because
        # it runs for every frame and every member of a broadcast. The coroutine is
        # stepped by a for loop over its __await__ iterator rather than coro.send(None):
        # the loop absorbs the end of the coroutine without raising StopIteration, which
        # saves about a fifth of a delivery's cost. The body runs only if it must wait.
        coro: Coroutine[Any, Any, None] = self._send(message)  # type: ignore[assignment]
        try:
            for waiting_on in coro.__await__():
                self._pending = asyncio.get_running_loop().create_task(
                    self._finish(coro, waiting_on)
                )
                return
        except Exception as exc:
            self._send_failed(exc)

    async def _finish(self, coro: Coroutine[Any, Any, None], waiting_on: Any) -> None:
        try:
            await resume(coro, waiting_on)
            while True:
                while self._outbox:
                    message = self._outbox.popleft()
                    if message["type"] == "websocket.close":
                        await send_close(self._send, message)
                        self.state_ = ConnectionState.CLOSED
                        self._outbox.clear()
                    else:
                        await self._send(message)
                if not self._lost or self.state_ is not _OPEN:
                    break
                # the backlog is written: tell the client how many frames it did not get
                lost, self._lost = self._lost, 0
                logger.warning("%r lost %d frames while too slow; telling it", self, lost)
                await self._send({"type": "websocket.send", "text": dropped_notice(lost)})
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._send_failed(exc)
        finally:
            self._pending = None
            self._overflowed = False

    def _queue(self, message: Message, force: bool = False) -> None:
        outbox = self._outbox
        if outbox is None:
            outbox = self._outbox = deque()
        if not force and len(outbox) >= self.outbox_limit:
            self.dropped += 1
            if self.overflow == "close":
                logger.warning(
                    "closing %r: outbox full (%d frames), client too slow", self, len(outbox)
                )
                outbox.clear()
                self.close_code = CLOSE_SLOW_CONSUMER
                self.state_ = ConnectionState.CLOSING
                outbox.append(
                    {
                        "type": "websocket.close",
                        "code": CLOSE_SLOW_CONSUMER,
                        "reason": "slow consumer",
                    }
                )
                return
            outbox.popleft()
            self._lost += 1
            if not self._overflowed:
                self._overflowed = True
                logger.warning("%r is too slow: dropping its oldest frames (outbox full)", self)
        outbox.append(message)

    def _send_failed(self, exc: Exception) -> None:
        if is_client_gone(exc):
            logger.debug("send on %r failed: the client is gone (%r)", self, exc)
        else:  # not a closed socket: a server or app bug that must be seen
            logger.warning(
                "send on %r failed with an unexpected error; closing it", self, exc_info=exc
            )
        self.mark_disconnected(self.close_code)


def dropped_notice(count: int) -> str:
    """The frame telling a client that `count` frames meant for it were dropped."""
    return f'{{"type":"$dropped","count":{count}}}'
