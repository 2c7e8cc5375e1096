"""The `rtframe` command: serve an app, print its AsyncAPI document, or serve its docs page.

    rtframe run module:attr [--host 127.0.0.1] [--port 8000] [--workers N] [--reload]
                            [--drain-window 10] [uvicorn's usual flags]
    rtframe asyncapi module:attr [-o FILE] [--yaml] [--server-host HOST] [--server-protocol wss]
    rtframe docs serve module:attr [--host 127.0.0.1] [--port 8000]
    rtframe client-types module:attr [-o FILE.ts] [--modelina DIR]
    rtframe worker module:attr [--concurrency 10] [--queue NAME]... [--grace 30]

`module:attr` names a RealtimeApp, or the ASGI application returned by `mount_beside`
(or any object whose `.app` chain leads to one). The current directory is importable, as
with uvicorn. `run` is uvicorn with a graceful drain on SIGTERM (`rtframe.run`; needs the
`server` extra); the other commands read only the app's public description
(`app.describe()`), taken once the app is imported. `client-types` writes TypeScript
declarations of the messages, made from the AsyncAPI document by Modelina through Node.js
(`rtframe.asyncapi.typescript`). `worker` runs the app's background tasks
(`rtframe.tasks.worker`; needs the `tasks` extra).
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ._loader import CommandError, load_app
from .app import RealtimeApp
from .asyncapi import generate, render_page, server, with_servers
from .asyncapi.schema import Server
from .exceptions import ConfigurationError

__all__ = [
    "SERVER_HINT",
    "TASKS_HINT",
    "YAML_HINT",
    "CommandError",
    "build_parser",
    "docs_server",
    "drain_window",
    "load_app",
    "main",
    "uvicorn_options",
]

YAML_HINT = "YAML output needs PyYAML: pip install 'rtframe[yaml]'"
SERVER_HINT = "rtframe run needs uvicorn: pip install 'rtframe[server]'"
TASKS_HINT = "rtframe worker needs taskiq: pip install 'rtframe[tasks]'"


def _dump(document: Any, as_yaml: bool) -> str:
    if not as_yaml:
        return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    try:
        import yaml
    except ImportError:
        raise CommandError(YAML_HINT) from None
    # sort_keys=False: the document's own order is already canonical (see generate)
    text: str = yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=100)
    return text


def _asyncapi(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    document = generate(
        app.describe(),
        host=args.server_host,
        protocol=args.server_protocol,
        pathname=args.server_pathname,
    )
    text = _dump(document, args.yaml)
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


def _client_types(args: argparse.Namespace) -> int:
    from .asyncapi.typescript import typescript

    app = load_app(args.app)
    text = typescript(generate(app.describe()), modelina_dir=args.modelina)
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


def docs_server(app: RealtimeApp, host: str, port: int) -> ThreadingHTTPServer:
    """An HTTP server for `/asyncapi` and `/asyncapi.json` (`/` redirects to the page)."""
    base = generate(app.describe())

    class DocsHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            here = with_servers(base, {"default": _server_for(self.headers.get("Host"))})
            path = self.path.split("?", 1)[0]
            if path == "/asyncapi.json":
                self._send(200, "application/json", json.dumps(here, indent=2))
            elif path == "/asyncapi":
                page = render_page(here, json_url="/asyncapi.json")
                self._send(200, "text/html; charset=utf-8", page)
            elif path == "/":
                self.send_response(307)
                self.send_header("Location", "/asyncapi")
                self.send_header("Content-Length", "0")
                self.end_headers()
            else:
                self._send(404, "text/plain; charset=utf-8", "Not Found")

        def _send(self, status: int, content_type: str, text: str) -> None:
            body = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            sys.stderr.write(f"{self.address_string()} - {format % args}\n")

    return ThreadingHTTPServer((host, port), DocsHandler)


def _server_for(host_header: str | None) -> Server:
    try:
        return server(host_header or "localhost")
    except ConfigurationError:
        return server("localhost")


def _docs_serve(args: argparse.Namespace) -> int:
    app = load_app(args.app)
    httpd = docs_server(app, args.host, args.port)
    host, port = httpd.server_address[:2]
    print(f"AsyncAPI docs of {args.app} at http://{host!s}:{port}/asyncapi", flush=True)
    try:
        httpd.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        httpd.server_close()
    return 0


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def _share(text: str) -> float:
    value = float(text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a share between 0 and 1, got {text!r}")
    return value


# `rtframe run` flags passed to uvicorn under the same name, when given
_UVICORN_FLAGS = (
    "host", "port", "uds", "workers", "reload", "reload_dirs", "ws", "http", "loop",
    "lifespan", "log_level", "access_log", "proxy_headers", "forwarded_allow_ips",
    "root_path", "ws_max_size", "ws_ping_interval", "ws_ping_timeout", "ws_per_message_deflate",
    "timeout_keep_alive",
    "timeout_graceful_shutdown", "ssl_keyfile", "ssl_certfile",
)  # fmt: skip


def uvicorn_options(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword arguments of `uvicorn.Config` that `rtframe run`'s flags give."""
    options = {name: getattr(args, name) for name in _UVICORN_FLAGS}
    return {name: value for name, value in options.items() if value is not None}


def drain_window(args: argparse.Namespace) -> float:
    """`--drain-window`, or its default: 10 s, 0 under `--reload` (a reload drains at once)."""
    if args.drain_window is not None:
        return float(args.drain_window)
    return 0.0 if args.reload else 10.0


def _run(args: argparse.Namespace) -> int:
    try:
        from . import run
    except ModuleNotFoundError as exc:
        if exc.name != "uvicorn":
            raise
        raise CommandError(SERVER_HINT) from None
    if not args.reload:
        # fail here, with a clear message, on a target that is not (or wraps no) RealtimeApp;
        # under --reload the reloaded worker imports it (and an error there is fixable live)
        load_app(args.app)
    drain = run.DrainOptions(
        window=drain_window(args),
        max_share_per_second=args.drain_max_share,
        handler_grace=args.drain_grace,
        close_timeout=args.drain_close_timeout,
    )
    return run.serve(args.app, drain=drain, **uvicorn_options(args))


def _add_run(commands: Any) -> None:
    run = commands.add_parser(
        "run",
        help="serve an app with uvicorn, draining WebSockets gracefully on SIGTERM",
        description="Serve module:attr with uvicorn. On SIGTERM or Ctrl+C, before uvicorn "
        "closes connections: refuse new handshakes (HTTP 503), tell every client to "
        "reconnect after a random delay, close the clients with 1012 spread over the drain "
        "window, let running handlers finish; then shut down as uvicorn does.",
    )
    run.add_argument("app", help="module:attr of a RealtimeApp (or of mount_beside's result)")
    server = run.add_argument_group("server (as uvicorn's flags; uvicorn's defaults)")
    server.add_argument("--host", help="bind to this address (default 127.0.0.1)")
    server.add_argument("--port", type=int, help="bind to this port (default 8000)")
    server.add_argument("--uds", help="bind to this Unix domain socket")
    server.add_argument(
        "--workers", type=int, help="worker processes (default $WEB_CONCURRENCY or 1)"
    )
    server.add_argument("--reload", action="store_true", help="restart when the code changes")
    server.add_argument("--reload-dir", dest="reload_dirs", action="append", metavar="DIR")
    server.add_argument(
        "--ws", help="WebSocket implementation: auto, websockets-sansio, wsproto..."
    )
    server.add_argument("--http", help="HTTP implementation: auto, h11, httptools...")
    server.add_argument("--loop", help="event loop: auto, asyncio, uvloop...")
    server.add_argument("--lifespan", help="auto, on or off")
    server.add_argument(
        "--log-level", choices=("critical", "error", "warning", "info", "debug", "trace")
    )
    server.add_argument("--access-log", action=argparse.BooleanOptionalAction, default=None)
    server.add_argument("--proxy-headers", action=argparse.BooleanOptionalAction, default=None)
    server.add_argument("--forwarded-allow-ips")
    server.add_argument("--root-path")
    server.add_argument("--ws-max-size", type=int, metavar="BYTES")
    server.add_argument("--ws-ping-interval", type=float, metavar="SECONDS")
    server.add_argument("--ws-ping-timeout", type=float, metavar="SECONDS")
    server.add_argument(
        "--ws-per-message-deflate",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="compress WebSocket frames (default off here, on in plain uvicorn: the server "
        "compresses every frame once per member, which cost three quarters of its CPU in "
        "our fan-out benchmarks)",
    )
    server.add_argument("--timeout-keep-alive", type=int, metavar="SECONDS")
    server.add_argument(
        "--timeout-graceful-shutdown",
        type=int,
        metavar="SECONDS",
        help="after the drain, how long uvicorn waits for what is left",
    )
    server.add_argument("--ssl-keyfile")
    server.add_argument("--ssl-certfile")
    drain = run.add_argument_group("drain (on SIGTERM or Ctrl+C; a second Ctrl+C cuts it short)")
    drain.add_argument(
        "--drain-window",
        type=_seconds,
        metavar="SECONDS",
        help="spread the reconnect notices and 1012 closes over this long (default 10; 0 "
        "with --reload)",
    )
    drain.add_argument(
        "--drain-max-share",
        type=_share,
        default=0.2,
        metavar="SHARE",
        help="close at most this share of the clients in any second, unless the window is "
        "too short for it (default 0.2)",
    )
    drain.add_argument(
        "--drain-grace",
        type=_seconds,
        default=5.0,
        metavar="SECONDS",
        help="how long past the window a running handler may finish before its client is "
        "closed anyway (default 5)",
    )
    drain.add_argument(
        "--drain-close-timeout",
        type=_seconds,
        default=2.0,
        metavar="SECONDS",
        help="how long to wait for closed sessions to finish their teardown (default 2)",
    )
    run.set_defaults(run=_run)


def _worker(args: argparse.Namespace) -> int:
    try:
        from .tasks import worker
    except ModuleNotFoundError as exc:
        if exc.name not in ("taskiq", "taskiq_redis"):
            raise
        raise CommandError(TASKS_HINT) from None
    return worker.main(
        args.app,
        concurrency=args.concurrency,
        queues=args.queue or [],
        grace=args.grace,
        log_level=args.log_level,
        http_port=args.http_port,
        http_host=args.http_host,
        metrics=_worker_metrics() if args.http_port is not None else None,
    )


def _worker_metrics() -> Any:
    """`rtframe.metrics.worker_exposition`, or None without prometheus_client (the
    worker then warns and answers /metrics with 501)."""
    try:
        from .metrics import worker_exposition
    except ModuleNotFoundError as exc:
        if exc.name != "prometheus_client":
            raise
        return None
    return worker_exposition


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"a port is 0 to 65535, got {port}")
    return port


def _add_worker(commands: Any) -> None:
    work = commands.add_parser(
        "worker",
        help="run an app's background tasks (rtframe.tasks), with its layer started",
        description="Run the tasks of module:attr (a Tasks, or an app one Tasks was made "
        "for). On SIGTERM or Ctrl+C: take no new task, let running ones finish within the "
        "grace period, hand the rest back to the queue; a second signal stops at once.",
    )
    work.add_argument("app", help="module:attr of a Tasks, or of the app it was made for")
    work.add_argument("--concurrency", type=int, default=10, help="tasks run at once (default 10)")
    work.add_argument(
        "--queue",
        action="append",
        metavar="NAME",
        help="a queue to take tasks from (repeatable; default: every queue of the tasks)",
    )
    work.add_argument(
        "--grace",
        type=_seconds,
        default=30.0,
        metavar="SECONDS",
        help="how long running tasks may finish after SIGTERM (default 30)",
    )
    work.add_argument(
        "--log-level",
        default="info",
        choices=("critical", "error", "warning", "info", "debug"),
    )
    work.add_argument(
        "--http-port",
        type=_port,
        default=None,
        metavar="PORT",
        help="serve /healthz, /readyz and /metrics (Prometheus) on this port (default: off)",
    )
    work.add_argument(
        "--http-host",
        default="127.0.0.1",
        metavar="HOST",
        help="the address --http-port listens on (default 127.0.0.1)",
    )
    work.set_defaults(run=_worker)


def _version() -> str:
    # the installed distribution's version: what `pip show rtframe` and a bug report name
    try:
        return importlib.metadata.version("rtframe")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a bare tree
        return "unknown (not installed)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtframe",
        description="rtframe: serve realtime apps, their AsyncAPI documents and docs.",
    )
    parser.add_argument("--version", action="version", version=f"rtframe {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_run(commands)
    _add_worker(commands)

    doc = commands.add_parser("asyncapi", help="print the AsyncAPI 3.0 document of an app")
    doc.add_argument("app", help="module:attr of a RealtimeApp (or of mount_beside's result)")
    doc.add_argument("-o", "--output", help="write to this file instead of standard output")
    doc.add_argument("--yaml", action="store_true", help="YAML instead of JSON (needs PyYAML)")
    doc.add_argument("--server-host", default="localhost:8000", help="host[:port] of the server")
    doc.add_argument("--server-protocol", choices=("ws", "wss"), default="ws")
    doc.add_argument("--server-pathname", default=None, help="path prefix the app is served under")
    doc.set_defaults(run=_asyncapi)

    types = commands.add_parser(
        "client-types",
        help="write TypeScript declarations of an app's messages (Modelina, needs Node.js)",
        description="Generate TypeScript interfaces of every message of module:attr, and per "
        "route the unions of the frames the server sends and accepts, from its AsyncAPI "
        "document with @asyncapi/modelina run by Node.js. Nothing is downloaded: install "
        "the package first (npm ci --prefix tools/modelina).",
    )
    types.add_argument("app", help="module:attr of a RealtimeApp (or of mount_beside's result)")
    types.add_argument("-o", "--output", help="write to this file instead of standard output")
    types.add_argument(
        "--modelina",
        metavar="DIR",
        help="a directory whose node_modules holds @asyncapi/modelina (default: "
        "$RTFRAME_MODELINA, else tools/modelina here or in the rtframe checkout)",
    )
    types.set_defaults(run=_client_types)

    docs = commands.add_parser("docs", help="documentation tools")
    docs_commands = docs.add_subparsers(dest="docs_command", required=True)
    serve = docs_commands.add_parser("serve", help="serve the AsyncAPI page locally")
    serve.add_argument("app", help="module:attr of a RealtimeApp (or of mount_beside's result)")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(run=_docs_serve)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for a usage or app problem)."""
    args = build_parser().parse_args(argv)
    try:
        status: int = args.run(args)
    except (CommandError, ConfigurationError) as exc:
        print(f"rtframe: error: {exc}", file=sys.stderr)
        return 2
    return status
