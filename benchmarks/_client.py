"""A lean WebSocket client (asyncio Protocol, no per-frame coroutine) for load generation.

The load generator must cost the machine much less than the server it measures, and the
`websockets` client's per-message coroutines cost about as much CPU as the server does.
This client does the RFC 6455 handshake by hand, masks with an all-zero key (legal, and
it makes masking a no-op) and parses frames straight from `data_received`. It offers no
extensions, so no server compresses. It is only ever pointed at 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import os
import struct
import time
from collections.abc import Callable

_ZERO_MASK = b"\x00\x00\x00\x00"


def text_frame(payload: bytes) -> bytes:
    """A masked (with a zero key) FIN text frame."""
    n = len(payload)
    if n < 126:
        header = struct.pack("!BB", 0x81, 0x80 | n)
    elif n < 65536:
        header = struct.pack("!BBH", 0x81, 0x80 | 126, n)
    else:
        header = struct.pack("!BBQ", 0x81, 0x80 | 127, n)
    return header + _ZERO_MASK + payload


class WSClient(asyncio.Protocol):
    """One client connection; `on_frame(payload)` is called for each data frame."""

    def __init__(self, host: str, port: int, path: str) -> None:
        self.request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.buffer = b""
        self.handshaken = False
        self.on_frame: Callable[[bytes], None] = lambda payload: None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        transport.write(self.request)  # type: ignore[attr-defined]  # a stream transport

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"connection lost in handshake: {exc}"))
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        buf = self.buffer + data if self.buffer else data
        if not self.handshaken:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buffer = buf
                return
            status = buf[: buf.find(b"\r\n")]
            if b" 101 " not in status:
                self.opened.set_exception(ConnectionError(f"handshake refused: {status!r}"))
                assert self.transport is not None
                self.transport.close()
                return
            self.handshaken = True
            self.opened.set_result(None)
            buf = buf[end + 4 :]
        pos, size = 0, len(buf)
        while size - pos >= 2:
            b0, b1 = buf[pos], buf[pos + 1]
            n = b1 & 0x7F
            start = pos + 2
            if n == 126:
                if size - pos < 4:
                    break
                n = (buf[pos + 2] << 8) | buf[pos + 3]
                start = pos + 4
            elif n == 127:
                if size - pos < 10:
                    break
                (n,) = struct.unpack_from("!Q", buf, pos + 2)
                start = pos + 10
            if size - start < n:
                break
            payload = buf[start : start + n]
            pos = start + n
            opcode = b0 & 0x0F
            if opcode in (1, 2):
                self.on_frame(payload)
            elif opcode == 9:  # ping: answer with a pong carrying the same payload
                self.write_frame(payload, 0x8A)
            elif opcode == 8:
                assert self.transport is not None
                self.transport.close()
                return
        self.buffer = buf[pos:] if pos < size else b""

    def send_text(self, payload: bytes) -> None:
        assert self.transport is not None
        self.transport.write(text_frame(payload))

    def write_frame(self, payload: bytes, first_byte: int) -> None:
        assert self.transport is not None
        self.transport.write(
            struct.pack("!BB", first_byte, 0x80 | len(payload)) + _ZERO_MASK + payload
        )

    def close(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            try:
                self.write_frame(struct.pack("!H", 1000), 0x88)
            except Exception:
                pass
            self.transport.close()


async def connect(host: str, port: int, path: str, timeout: float = 20.0) -> WSClient:
    loop = asyncio.get_running_loop()
    _, proto = await asyncio.wait_for(
        loop.create_connection(lambda: WSClient(host, port, path), host, port), timeout
    )
    await asyncio.wait_for(proto.opened, timeout)
    return proto


async def connect_many(
    host: str, port: int, path: str, count: int, batch: int = 100
) -> list[WSClient]:
    """Open `count` connections, `batch` handshakes at a time (the listen backlog is finite)."""
    clients: list[WSClient] = []
    while len(clients) < count:
        n = min(batch, count - len(clients))
        clients.extend(await asyncio.gather(*(connect(host, port, path) for _ in range(n))))
    return clients


def now() -> float:
    return time.perf_counter()
