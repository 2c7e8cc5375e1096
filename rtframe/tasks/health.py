"""The HTTP side of `rtframe worker --http-port`: liveness, readiness and metrics.

- `GET /healthz`: 200 whenever the worker's event loop answers (a frozen loop answers
  nothing, which is what a liveness probe should see);
- `GET /readyz`: 200 while the worker takes tasks; 503, with the reason in the body,
  while it starts, while its broker is disconnected (Redis down) and while it drains
  after SIGTERM;
- `GET /metrics`: the Prometheus text of the worker's counters, made by an exposition
  function handed in from above (`rtframe.metrics`, the only module that imports
  `prometheus_client`); without one (the `metrics` extra is missing) 501 with a sentence
  saying what to install.

A few lines of asyncio streams rather than a web framework: one request per connection,
`Connection: close`, GET and HEAD only. It runs on the worker's own loop, so it costs
nothing while nobody asks and answers only while the loop is alive.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Callable

from .._loader import CommandError
from .stats import WorkerState

__all__ = ["METRICS_MISSING", "Exposition", "HealthServer", "answer"]

logger = logging.getLogger("rtframe.tasks")

#: Makes the /metrics answer: (content type, body). Called on every scrape.
Exposition = Callable[[], tuple[str, bytes]]

METRICS_MISSING = (
    "/metrics needs the prometheus_client package, which is not installed: "
    "pip install 'rtframe[metrics]'"
)

_TEXT = "text/plain; charset=utf-8"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    500: "Internal Server Error",
    501: "Not Implemented",
    503: "Service Unavailable",
}
#: How long a client may take to send its request head.
_READ_TIMEOUT = 5.0


def answer(
    method: str, path: str, state: WorkerState, exposition: Exposition | None
) -> tuple[int, str, bytes]:
    """The (status, content type, body) of one request to a worker's health server."""
    if method not in ("GET", "HEAD"):
        return 405, _TEXT, b"only GET and HEAD are served here\n"
    path = path.split("?", 1)[0]
    if path == "/healthz":
        return 200, _TEXT, b"alive\n"
    if path == "/readyz":
        reason = state.unready()
        if reason is not None:
            return 503, _TEXT, f"not ready: {reason}\n".encode()
        return 200, _TEXT, b"ready\n"
    if path == "/metrics":
        if exposition is None:
            return 501, _TEXT, f"{METRICS_MISSING}\n".encode()
        try:
            content_type, body = exposition()
        except Exception as exc:
            logger.warning("the worker's /metrics failed", exc_info=True)
            return 500, _TEXT, f"metrics failed: {type(exc).__name__}: {exc}\n".encode()
        return 200, content_type, body
    return 404, _TEXT, b"not found: this worker serves /healthz, /readyz and /metrics\n"


class HealthServer:
    """Serves `answer` on one host and port, on the running loop."""

    def __init__(self, state: WorkerState, exposition: Exposition | None) -> None:
        self.state = state
        self.exposition = exposition
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> str:
        """Listen on `host:port`; returns the address served, as `http://host:port`.

        Raises:
            CommandError: the address cannot be listened on (port in use, no such host).
        """
        try:
            self._server = await asyncio.start_server(self._serve, host, port)
        except OSError as exc:
            why = "the port is in use" if exc.errno == errno.EADDRINUSE else str(exc)
            raise CommandError(
                f"cannot serve the worker's health and metrics on {host}:{port}: {why}; "
                "choose another --http-port (or --http-host)"
            ) from None
        bound = self._server.sockets[0].getsockname()
        return f"http://{host}:{bound[1]}"

    async def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
            await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        method = ""
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), _READ_TIMEOUT)
                method, path, _ = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ", 2)
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                return  # the client went away or sent no request in time: nothing to answer
            except ValueError:
                status, content_type, body = 400, _TEXT, b"malformed request line\n"
            else:
                status, content_type, body = answer(method, path, self.state, self.exposition)
            lines = [
                f"HTTP/1.1 {status} {_REASONS[status]}",
                f"Content-Type: {content_type}",
                f"Content-Length: {len(body)}",
                "Cache-Control: no-store",
                "Connection: close",
            ]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            if method != "HEAD":
                writer.write(body)
            await writer.drain()
        except (ConnectionError, OSError):
            pass  # the prober hung up first: nothing to tell it
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
