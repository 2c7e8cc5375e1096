"""The reconnecting client: one task reads the socket, reconnects, and feeds an inbox."""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Generator, Mapping
from types import MappingProxyType
from typing import Any, TypeVar, overload

from pydantic import BaseModel, TypeAdapter
from pydantic_core import to_json
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from ..history import Position, RecoveryNotice
from ..messages import DroppedNotice, ReconnectNotice
from ..timing import PONG
from ._policy import (
    RETRY_STATUS,
    Backoff,
    ClientClosed,
    Connected,
    Disconnected,
    Event,
    HandshakeRefused,
    SendBufferFull,
    parse_notice,
    reconnects_after,
    refused,
    since_url,
)
from ._positions import Positions

__all__ = ["Client", "EventHandler"]

logger = logging.getLogger("rtframe.client")

T = TypeVar("T")
#: `on_event`: a plain or async function of one `Event`.
EventHandler = Callable[[Event], Awaitable[None] | None]

#: A connection that lived less than this (s) before closing counts as a failed attempt.
STABLE_AFTER = 5.0
#: how long past a `$reconnect` notice's `after_ms` the client waits for the server's
#: 1012 before it closes and reconnects by itself (a server that announced a restart and
#: then hung, or a proxy that swallowed the close)
RESTART_GRACE = 2.0
_CLOSED = object()  # the inbox's end marker


class Client:
    """A WebSocket client of an rtframe app that reconnects and recovers by itself.

    Made by `connect(...)`; see the `rtframe.client` module docstring for the behaviour.
    """

    def __init__(
        self,
        url: str,
        *,
        positions: Mapping[str, Position] | None = None,
        reconnect: bool = True,
        backoff: Backoff | None = None,
        max_attempts: int | None = None,
        send_buffer: int = 100,
        receive_buffer: int = 1024,
        control_frames: bool = False,
        on_event: EventHandler | None = None,
        **options: Any,
    ) -> None:
        self.url = url
        self.reconnect = reconnect
        self.backoff = backoff or Backoff()
        self.max_attempts = max_attempts
        self.send_buffer = send_buffer
        self.receive_buffer = receive_buffer
        self.control_frames = control_frames
        self.on_event = on_event
        self._options = options
        self._positions = Positions(positions)
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._pending: deque[str | bytes] = deque()  # frames sent while reconnecting
        self._inbox: deque[Any] = deque()
        self._readable = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()
        self._closed: ClientClosed | None = None
        self._closing = False
        self._recover_now = False  # reconnect at once to recover what was dropped
        self._closer: asyncio.Task[None] | None = None  # that close, under way
        self._draining = False  # a `$reconnect` notice came: 1012 is expected
        self._restart_timer: asyncio.TimerHandle | None = None  # when 1012 is overdue
        self._attempt = 0
        self._adapters: dict[Any, TypeAdapter[Any]] = {}
        self._dialed = url

    def __repr__(self) -> str:
        state = "closed" if self._closed else "connected" if self.connected else "reconnecting"
        return f"<Client {self.url!r} {state}>"

    # -- state ----------------------------------------------------------------------------

    @property
    def positions(self) -> Mapping[str, Position]:
        """The last position per history group up to which every message arrived."""
        return MappingProxyType(self._positions.last)

    @property
    def connected(self) -> bool:
        """Whether a connection is open now (False while reconnecting, and once closed)."""
        return self._ws is not None and self._closed is None

    @property
    def closed(self) -> ClientClosed | None:
        """Why the client stopped for good, or None while it runs."""
        return self._closed

    # -- lifecycle ------------------------------------------------------------------------

    async def open(self) -> Client:
        """Connect for the first time (`async with` and `await connect(...)` do it).

        Raises:
            HandshakeRefused: the server answered the handshake with an HTTP status.
            OSError: the server could not be reached (nothing listens, DNS, TLS).
            TimeoutError: the handshake took longer than `open_timeout`.
        """
        if self._task is not None:
            return self
        try:
            ws = await self._dial()
        except InvalidStatus as exc:
            raise _refused(exc) from None
        await self._opened(ws, reconnected=False)
        self._task = asyncio.get_running_loop().create_task(self._run(ws))
        return self

    async def close(self, code: int = 1000, reason: str = "") -> None:
        """Close the connection and stop reconnecting; messages already received stay
        readable, then `receive()` raises `ClientClosed`."""
        self._closing = True
        self._cancel_restart_timer()
        ws, task = self._ws, self._task
        if ws is not None:
            await ws.close(code, reason)
        if task is not None and not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        self._finish(code, reason or "closed by the client")

    async def __aenter__(self) -> Client:
        return await self.open()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def __await__(self) -> Generator[Any, None, Client]:
        return self.open().__await__()

    # -- sending --------------------------------------------------------------------------

    async def send(self, message: Any) -> None:
        """Send a message: a Pydantic model, a dict or list (as JSON), a str or bytes.

        While reconnecting the frame waits in a buffer of `send_buffer` frames and goes
        out, in order, once connected again.

        Raises:
            SendBufferFull: reconnecting, and the buffer is full (the frame is not sent).
            ClientClosed: the client is closed for good.
        """
        if isinstance(message, BaseModel):
            frame: str | bytes = message.model_dump_json()
        elif isinstance(message, str | bytes):
            frame = message
        else:
            frame = to_json(message).decode()
        if self._closed is not None:
            raise self._closed
        ws = self._ws
        if ws is not None and not self._pending:
            try:
                await ws.send(frame)
                return
            except ConnectionClosed:
                pass  # the reader reconnects (or not); keep the frame for the next socket
        if len(self._pending) >= self.send_buffer:
            raise SendBufferFull(
                f"{len(self._pending)} frames wait for the connection already "
                f"(send_buffer={self.send_buffer}); this one was not sent"
            )
        self._pending.append(frame)

    # -- receiving ------------------------------------------------------------------------

    @overload
    async def receive(self, model: None = None, *, timeout: float | None = None) -> Any: ...

    @overload
    async def receive(self, model: type[T], *, timeout: float | None = None) -> T: ...

    async def receive(self, model: Any = None, *, timeout: float | None = None) -> Any:
        """The next message: a JSON frame decoded (a dict for an rtframe message, with
        its `$pos` when it has one), a binary frame as bytes.

        With `model`, the message is validated into it (`$pos` left out): `receive(Said)`
        returns a `Said`. Control frames the client handles (`$ping`, `$recovery`...) are
        not returned unless it was made with `control_frames=True`.

        Raises:
            ValidationError: the message is not a `model` (it is consumed all the same).
            TimeoutError: nothing arrived within `timeout` seconds.
            ClientClosed: the client is closed and every message was read.
        """
        async with asyncio.timeout(timeout):
            while not self._inbox:
                self._readable.clear()
                await self._readable.wait()
        item = self._inbox.popleft()
        if len(self._inbox) < self.receive_buffer:
            self._room.set()
        if item is _CLOSED:
            self._inbox.appendleft(item)  # every later call raises too
            assert self._closed is not None
            raise self._closed
        if model is None:
            return item
        adapter = self._adapters.get(model)
        if adapter is None:
            adapter = self._adapters[model] = TypeAdapter(model)
        if isinstance(item, dict) and "$pos" in item:
            item = {k: v for k, v in item.items() if k != "$pos"}
        return adapter.validate_python(item)

    def __aiter__(self) -> Client:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self.receive()
        except ClientClosed:
            raise StopAsyncIteration from None

    # -- the connection task --------------------------------------------------------------

    async def _dial(self) -> ClientConnection:
        self._dialed = url = since_url(self.url, self._positions.last)
        return await ws_connect(url, **self._options)

    async def _opened(self, ws: ClientConnection, *, reconnected: bool) -> None:
        # frames sent while reconnecting go first, in order; send() queues behind them
        # until the buffer is empty, so nothing overtakes
        while self._pending:
            frame = self._pending[0]
            try:
                await ws.send(frame)
            except ConnectionClosed:
                break  # the read loop sees the close and reconnects; the frame stays
            self._pending.popleft()
        self._ws = ws
        self._draining = False
        self._cancel_restart_timer()
        await self._emit(Connected(self._dialed, reconnected))

    async def _run(self, ws: ClientConnection) -> None:
        while True:
            opened_at = time.monotonic()
            try:
                await self._read(ws)
            except ConnectionClosed:
                # caught here rather than in _read: Python 3.11's tracer loses the lines
                # after an await whose coroutine returned from an except block, so
                # coverage would miss this whole loop
                pass
            self._ws = None
            code = ws.close_code if ws.close_code is not None else 1006
            reason = ws.close_reason or ""
            if self._closing:
                return
            if time.monotonic() - opened_at >= STABLE_AFTER:
                self._attempt = 0
            delay = self._delay_after_close(code)
            await self._emit(Disconnected(code, reason, delay))
            if delay is None:
                self._finish(code, reason)
                return
            logger.info(
                "connection to %s closed (%d %s); reconnecting in %.2f s",
                self.url,
                code,
                reason,
                delay,
            )
            next_ws = await self._redial(delay, code, reason)
            if next_ws is None:
                return
            ws = next_ws
            await self._opened(ws, reconnected=True)

    def _delay_after_close(self, code: int) -> float | None:
        if self._recover_now:
            self._recover_now = False
            return 0.0
        if not self.reconnect or not reconnects_after(code):
            return None
        if code == 1012 and self._draining:
            # the server said when it would close: that time has come, so come back now
            # (within the first delay: every client of the server got its own moment)
            return self.backoff.delay(0)
        delay = self.backoff.delay(self._attempt)
        self._attempt += 1
        return delay

    async def _redial(self, delay: float, code: int, reason: str) -> ClientConnection | None:
        failures = 0
        while True:
            await asyncio.sleep(delay)
            try:
                return await self._dial()
            except InvalidStatus as exc:
                refused = _refused(exc)
                if refused.status != RETRY_STATUS:
                    logger.warning("reconnecting to %s: %s; giving up", self.url, refused)
                    await self._emit(Disconnected(code, reason, None, refused.status))
                    self._finish(refused.code, refused.reason)
                    return None
                delay = refused.retry_after or self.backoff.delay(self._attempt)
                logger.info("reconnecting to %s: %s; again in %.2f s", self.url, refused, delay)
            except (OSError, TimeoutError, WebSocketException) as exc:
                delay = self.backoff.delay(self._attempt)
                logger.info("reconnecting to %s failed (%s); again in %.2f s", self.url, exc, delay)
            self._attempt += 1
            failures += 1
            if self.max_attempts is not None and failures >= self.max_attempts:
                logger.warning(
                    "could not reconnect to %s in %d attempts; giving up", self.url, failures
                )
                await self._emit(Disconnected(code, reason, None))
                self._finish(code, f"{reason} (gave up reconnecting)".strip())
                return None

    async def _read(self, ws: ClientConnection) -> None:
        """Take frames until the connection closes (`ConnectionClosed`)."""
        while True:
            raw = await ws.recv()
            await self._take(ws, raw)

    async def _take(self, ws: ClientConnection, raw: str | bytes) -> None:
        if isinstance(raw, bytes):
            await self._put(raw)
            return
        try:
            data = json.loads(raw)
        except ValueError:
            await self._put(raw)  # not JSON: handed over as the text it is
            return
        if isinstance(data, dict):
            kind = data.get("type")
            if isinstance(kind, str) and kind.startswith("$"):
                await self._control(ws, kind, data)
                if self.control_frames:
                    await self._put(data)
                return
            pos = data.get("$pos")
            if isinstance(pos, dict):
                if not self._positions.take(pos):
                    return  # already delivered: a recovery replayed it
                if self._positions.gaps:
                    await self._put(data)
                    self._recover(ws, "a gap in a history group's offsets")
                    return
        await self._put(data)

    async def _control(self, ws: ClientConnection, kind: str, data: dict[str, Any]) -> None:
        if kind == "$ping":
            try:
                await ws.send(PONG)
            except ConnectionClosed:
                pass  # the read loop sees the close
            return
        if kind == "$pong":
            return
        event = parse_notice(kind, data)
        if isinstance(event, RecoveryNotice) and not event.recovered:
            self._positions.lost(event.group, Position(event.epoch, event.offset))
        elif isinstance(event, ReconnectNotice):
            self._draining = True
            self._cancel_restart_timer()
            self._restart_timer = asyncio.get_running_loop().call_later(
                max(0, event.after_ms) / 1000 + RESTART_GRACE, self._restart_overdue, ws
            )
        await self._emit(event)
        if isinstance(event, DroppedNotice) and self._positions.last:
            self._recover(ws, f"{event.count} frames were dropped")

    def _cancel_restart_timer(self) -> None:
        if self._restart_timer is not None:
            self._restart_timer.cancel()
            self._restart_timer = None

    def _restart_overdue(self, ws: ClientConnection) -> None:
        self._restart_timer = None
        if self._ws is not ws or self._closing:
            return  # that socket is gone already
        logger.warning(
            "%s announced a restart but did not close the connection within %.1f s of the "
            "time it gave; reconnecting",
            self.url,
            RESTART_GRACE,
        )
        self._reconnect_now(ws)

    def _recover(self, ws: ClientConnection, why: str) -> None:
        """Reconnect at once with `$since`, to get what history groups lost."""
        if self._recover_now or not self.reconnect:
            return
        logger.info("reconnecting to %s to recover history: %s", self.url, why)
        self._reconnect_now(ws)

    def _reconnect_now(self, ws: ClientConnection) -> None:
        if self._recover_now or not self.reconnect:
            return
        self._recover_now = True
        # closed from another task: the read loop must go on reading meanwhile, or the
        # server's close frame would wait behind the frames nobody reads (until
        # close_timeout); frames read until the close are kept as usual
        self._closer = asyncio.get_running_loop().create_task(
            ws.close(1000, "recovering missed messages")
        )

    async def _put(self, item: Any) -> None:
        self._inbox.append(item)
        self._readable.set()
        if len(self._inbox) >= self.receive_buffer:
            # the application reads slower than frames arrive: stop reading the socket
            # until it catches up (the server's outbox applies its policy meanwhile)
            self._room.clear()
            await self._room.wait()

    async def _emit(self, event: Event) -> None:
        handler = self.on_event
        if handler is None:
            return
        try:
            result = handler(event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("on_event raised on %r; the client goes on", event)

    def _finish(self, code: int, reason: str) -> None:
        if self._closed is not None:
            return
        self._closed = ClientClosed(code, reason)
        self._ws = None
        if self._pending:
            logger.warning(
                "client of %s closed (%d) with %d frames never sent",
                self.url,
                code,
                len(self._pending),
            )
            self._pending.clear()
        self._inbox.append(_CLOSED)
        self._readable.set()
        self._room.set()


def _refused(exc: InvalidStatus) -> HandshakeRefused:
    return refused(exc.response.status_code, exc.response.headers.get("Retry-After"))
