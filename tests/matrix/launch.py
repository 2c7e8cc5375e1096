"""Serve a RealtimeApp with hypercorn, daphne or granian, and drain it before the server stops.

    python -m tests.matrix.launch {hypercorn,daphne,granian} module:attr --port 8000
        [--host 127.0.0.1] [--tls CERT KEY] [--drain-window 10] [--drain-max-share 0.2]

None of these servers lets the app act before it closes the WebSockets on SIGTERM (see
docs/servers.md): hypercorn waits for them (3 s) and then cancels them, granian and daphne
cut them at once, and the lifespan shutdown, where a `RealtimeApp` would drain, comes
after that (daphne sends none). Each server can be run from Python, though, and each
lets the caller decide when it stops; these are the recipes of docs/servers.md, which the
matrix suite runs (`tests/matrix/test_drain.py`): on SIGTERM or SIGINT, `app.drain()`
first (each client gets `$reconnect`, then a close at its time), the server's own
shutdown after. A second signal stops the server without waiting for the drain.

uvicorn needs no recipe: `rtframe run` is uvicorn with this drain.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import logging
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rtframe import RealtimeApp
from rtframe._loader import find_app

logger = logging.getLogger("rtframe")

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopper:
    """On the first signal, drain and then stop the server; on a second, stop it at once."""

    def __init__(self, app: RealtimeApp, stop: Callable[[], object], **drain: float) -> None:
        self.app, self.stop, self.drain_options = app, stop, drain
        self.draining: asyncio.Task[None] | None = None

    def install(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in SIGNALS:
            loop.add_signal_handler(sig, self.signalled)

    def signalled(self) -> None:
        if self.draining is None:
            self.draining = asyncio.ensure_future(self._drain_then_stop())
        else:
            logger.warning("second signal: stopping the server without waiting for the drain")
            self.stop()

    async def _drain_then_stop(self) -> None:
        try:
            await self.app.drain(**self.drain_options)
        finally:
            self.stop()


def serve_hypercorn(asgi: Any, app: RealtimeApp, args: argparse.Namespace) -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"{args.host}:{args.port}"]
    if args.tls:
        config.certfile, config.keyfile = args.tls
    stopped = asyncio.Event()

    async def main() -> None:
        # a shutdown_trigger replaces hypercorn's own signal handling: it shuts down
        # when the trigger returns, which is after the drain
        Stopper(app, stopped.set, **drain_options(args)).install(asyncio.get_running_loop())
        await serve(asgi, config, shutdown_trigger=stopped.wait)

    asyncio.run(main())


def serve_daphne(asgi: Any, app: RealtimeApp, args: argparse.Namespace) -> None:
    # importing daphne.server installs Twisted's asyncio reactor: the app runs on asyncio
    from daphne.endpoints import build_endpoint_description_strings  # type: ignore[import-untyped]
    from daphne.server import Server  # type: ignore[import-untyped]
    from twisted.internet import reactor

    server = Server(
        application=asgi,
        endpoints=build_endpoint_description_strings(host=args.host, port=args.port),
        signal_handlers=False,  # ours drain first, then stop the reactor
    )

    async def stop_app_then_server() -> None:
        # daphne sends no lifespan events: the app started on its first connection and
        # is stopped here (its shutdown hooks, its layer)
        try:
            await app.shutdown()
        finally:
            server.stop()

    stopper = Stopper(
        app, lambda: asyncio.ensure_future(stop_app_then_server()), **drain_options(args)
    )
    reactor.callWhenRunning(lambda: stopper.install(asyncio.get_event_loop()))
    server.run()


def serve_granian(asgi: Any, app: RealtimeApp, args: argparse.Namespace) -> None:
    # granian's embedded server runs the app on this process's event loop (granian calls
    # it experimental); `stop()` makes it shut its worker down, lifespan included
    from granian.constants import Interfaces
    from granian.server.embed import Server

    options: dict[str, Any] = {}
    if args.tls:
        options["ssl_cert"], options["ssl_key"] = (Path(p) for p in args.tls)
    server = Server(asgi, address=args.host, port=args.port, interface=Interfaces.ASGI, **options)

    async def main() -> None:
        Stopper(app, server.stop, **drain_options(args)).install(asyncio.get_running_loop())
        await server.serve()

    asyncio.run(main())


SERVERS = {"hypercorn": serve_hypercorn, "daphne": serve_daphne, "granian": serve_granian}


def drain_options(args: argparse.Namespace) -> dict[str, float]:
    return {"window": args.drain_window, "max_share_per_second": args.drain_max_share}


def load(target: str) -> tuple[Any, RealtimeApp]:
    """The ASGI app `module:attr` names, and the RealtimeApp it is or wraps."""
    module, _, attr = target.partition(":")
    asgi: Any = importlib.import_module(module)
    for part in attr.split("."):
        asgi = getattr(asgi, part)
    app = find_app(asgi)
    if app is None:
        raise SystemExit(f"{target} is not a RealtimeApp and wraps none")
    return asgi, app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("server", choices=sorted(SERVERS))
    parser.add_argument("app", help="module:attr")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    parser.add_argument("--drain-window", type=float, default=10.0)
    parser.add_argument("--drain-max-share", type=float, default=0.2)
    args = parser.parse_args(argv)
    # the drain's progress (INFO) on stderr, as `rtframe run` prints it
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asgi, app = load(args.app)
    SERVERS[args.server](asgi, app, args)


if __name__ == "__main__":
    main()
