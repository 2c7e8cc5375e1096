"""`rtframe run`: uvicorn, with a graceful drain of WebSockets on SIGTERM or Ctrl+C.

On SIGTERM plain uvicorn closes every WebSocket with 1012 at once and only then runs the
app's lifespan shutdown: every client reconnects in the same instant (a thundering herd
on the other processes) and handlers still running lose their replies. `DrainingServer`
is uvicorn's `Server` with one change: when it is told to stop, it first runs
`app.drain()` (see `RealtimeApp.drain`) while every connection is still open, then lets
uvicorn's shutdown proceed as usual (close the listeners and what is left, lifespan
shutdown). During the drain it keeps listening, so a new handshake gets an explicit
answer (HTTP 503 with Retry-After) rather than a connection that hangs in the backlog of
a socket the other workers still share.

    serve("myproject.asgi:application", drain=DrainOptions(window=10), port=8000)

`serve` takes `uvicorn.run`'s keyword arguments and runs one process, several workers
(uvicorn's `Multiprocess` supervisor) or a reloader (`ChangeReload`), each worker with a
`DrainingServer`. A second Ctrl+C cuts the drain short, as it cuts uvicorn's own wait.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import inspect
import logging
import os
import socket
from dataclasses import dataclass
from typing import Any

from ._drain import DrainSummary
from ._loader import find_app
from .app import RealtimeApp
from .exceptions import ConfigurationError

try:
    import uvicorn
    from uvicorn.config import HTTP_PROTOCOLS, LIFESPAN, LOGGING_CONFIG, WS_PROTOCOLS
    from uvicorn.supervisors import ChangeReload, Multiprocess
    from uvicorn.supervisors import multiprocess as _multiprocess
except ModuleNotFoundError as exc:  # pragma: no cover - exercised in a subprocess
    if exc.name is None or exc.name.split(".")[0] != "uvicorn":
        raise
    raise ModuleNotFoundError(
        "rtframe run needs uvicorn: pip install 'rtframe[server]'", name="uvicorn"
    ) from exc

__all__ = ["STARTUP_FAILURE", "DrainOptions", "DrainingServer", "serve"]

logger = logging.getLogger("rtframe")

#: Exit status of a server that did not start (uvicorn's).
STARTUP_FAILURE = 3


@dataclass(frozen=True)
class DrainOptions:
    """How `DrainingServer` drains: the arguments of `RealtimeApp.drain`."""

    window: float = 10.0
    max_share_per_second: float = 0.2
    handler_grace: float = 5.0
    close_timeout: float = 2.0


class DrainingServer(uvicorn.Server):
    """uvicorn's `Server`; on SIGTERM/SIGINT it drains the RealtimeApp before closing.

    The app is found after uvicorn loads it: the loaded application, or the first
    RealtimeApp along its `.app` chain (uvicorn's middlewares, `mount_beside`). Without
    one, the server warns at startup and shuts down as plain uvicorn does.
    """

    def __init__(self, config: uvicorn.Config, drain: DrainOptions | None = None) -> None:
        super().__init__(config)
        self.drain_options = drain if drain is not None else DrainOptions()
        #: What the drain did, once it ran.
        self.drain_summary: DrainSummary | None = None

    @property
    def realtime_app(self) -> RealtimeApp | None:
        if not self.config.loaded:
            return None
        return find_app(self.config.loaded_app)

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.realtime_app is None:
            logger.warning(
                "%r is not a RealtimeApp and wraps none through `.app`: on SIGTERM its "
                "WebSocket connections are closed without a drain",
                self.config.app,
            )

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        app = self.realtime_app
        if app is not None and not self.force_exit:
            self.drain_summary = await self._drain(app)
        await super().shutdown(sockets=sockets)

    async def _drain(self, app: RealtimeApp) -> DrainSummary | None:
        options = self.drain_options
        task = asyncio.ensure_future(
            app.drain(
                options.window,
                max_share_per_second=options.max_share_per_second,
                handler_grace=options.handler_grace,
                close_timeout=options.close_timeout,
            )
        )
        while not task.done():
            if self.force_exit:  # a second Ctrl+C
                logger.warning("drain cut short: closing the remaining connections now")
                task.cancel()
                return None
            await asyncio.wait({task}, timeout=0.1)
        try:
            return task.result()
        except Exception:  # never let a failed drain keep the server from shutting down
            logger.exception("the drain failed; shutting down without it")
            return None


def _log_config(level: str | None) -> dict[str, Any]:
    """uvicorn's logging configuration, plus rtframe's logger on the same handler."""
    config = copy.deepcopy(LOGGING_CONFIG)
    name = (level or "info").lower()
    config["loggers"]["rtframe"] = {
        "handlers": ["default"],
        "level": "DEBUG" if name == "trace" else name.upper(),
        "propagate": False,
    }
    return config


def _check(option: str, value: Any, known: Any) -> None:
    # uvicorn also takes "module:Class" for its protocol classes
    if isinstance(value, str) and value not in known and ":" not in value:
        raise ConfigurationError(
            f"unknown {option} {value!r}: expected one of {', '.join(sorted(known))}"
        )


class _DrainingProcess(_multiprocess.Process):
    """A worker of uvicorn's `Multiprocess` supervisor that serves with a DrainingServer."""

    def __init__(
        self, config: uvicorn.Config, sockets: list[socket.socket], drain: DrainOptions
    ) -> None:
        self.drain_options = drain  # set first: the process pickles this object on start
        super().__init__(config, sockets)

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = DrainingServer(self.config, self.drain_options)
        return self._server


def _run_workers(config: uvicorn.Config, sock: socket.socket, drain: DrainOptions) -> None:
    if "target" in inspect.signature(Multiprocess.__init__).parameters:
        # uvicorn before workers built their own Server: the supervisor runs a target
        Multiprocess(config, target=DrainingServer(config, drain).run, sockets=[sock]).run()  # type: ignore[call-arg]
        return
    # Each worker builds its server as `multiprocess.Process(config, sockets).server`,
    # a name the supervisor looks up in its module. This process only supervises, so it
    # points that name at a Process whose server drains while the supervisor runs.
    original = _multiprocess.Process
    _multiprocess.Process = functools.partial(_DrainingProcess, drain=drain)  # type: ignore[misc,assignment]
    try:
        Multiprocess(config, sockets=[sock]).run()
    finally:
        _multiprocess.Process = original  # type: ignore[misc]


def serve(app: str, *, drain: DrainOptions | None = None, **options: Any) -> int:
    """Serve `app` (an import string) like `uvicorn.run(app, **options)`, with the drain.

    Returns the exit status: 0, or `STARTUP_FAILURE` if the server did not start. On
    SIGTERM uvicorn re-raises the signal once it has shut down, so the process then ends
    by that signal, as under plain uvicorn.

    Raises:
        ConfigurationError: an unknown `ws`, `http` or `lifespan` value.
    """
    drain = drain if drain is not None else DrainOptions()
    _check("ws", options.get("ws", "auto"), WS_PROTOCOLS)
    _check("http", options.get("http", "auto"), HTTP_PROTOCOLS)
    _check("lifespan", options.get("lifespan", "auto"), LIFESPAN)
    options.setdefault("log_config", _log_config(options.get("log_level")))
    config = uvicorn.Config(app, **options)
    server = DrainingServer(config, drain)
    try:
        if config.should_reload:
            sock = config.bind_socket()
            ChangeReload(config, target=server.run, sockets=[sock]).run()
        elif config.workers > 1:
            sock = config.bind_socket()
            _run_workers(config, sock, drain)
        else:
            server.run()
    except KeyboardInterrupt:
        pass
    finally:
        if config.uds and os.path.exists(config.uds):
            os.remove(config.uds)
    if not server.started and not config.should_reload and config.workers == 1:
        return STARTUP_FAILURE
    return 0
