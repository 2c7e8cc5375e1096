"""The `rtframe` command: print an app's AsyncAPI document, or serve its docs page.

    rtframe asyncapi module:attr [-o FILE] [--yaml] [--server-host HOST] [--server-protocol wss]
    rtframe docs serve module:attr [--host 127.0.0.1] [--port 8000]

`module:attr` names a RealtimeApp, or the ASGI application returned by `mount_beside`
(or any object whose `.app` chain leads to one). The current directory is importable, as
with uvicorn. Both commands read only the app's public description (`app.describe()`),
taken once the app is imported.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .app import RealtimeApp
from .asyncapi import generate, render_page, server, with_servers
from .asyncapi.schema import Server
from .exceptions import ConfigurationError

__all__ = ["YAML_HINT", "CommandError", "build_parser", "docs_server", "load_app", "main"]

YAML_HINT = "YAML output needs PyYAML: pip install 'rtframe[yaml]'"


class CommandError(Exception):
    """A problem with the command line or the app it names; printed without a traceback."""


def load_app(target: str) -> RealtimeApp:
    """Import `module:attr` (attr may be dotted) and find the RealtimeApp it names.

    Raises:
        CommandError: the target is malformed, cannot be imported, or holds no RealtimeApp.
    """
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise CommandError(
            f"expected module:attribute (e.g. myproject.asgi:application), got {target!r}"
        )
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise CommandError(f"cannot import module {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise CommandError(f"module {module_name!r} has no attribute {attr!r}") from None
    found, depth = obj, 0
    while not isinstance(found, RealtimeApp):
        found, depth = getattr(found, "app", None), depth + 1
        if found is None or depth > 16:
            raise CommandError(
                f"{target} is a {type(obj).__name__}, not a RealtimeApp (or an ASGI app "
                "wrapping one through `.app`)"
            )
    return found


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rtframe", description="rtframe: AsyncAPI documents and docs for realtime apps."
    )
    commands = parser.add_subparsers(dest="command", required=True)

    doc = commands.add_parser("asyncapi", help="print the AsyncAPI 3.0 document of an app")
    doc.add_argument("app", help="module:attr of a RealtimeApp (or of mount_beside's result)")
    doc.add_argument("-o", "--output", help="write to this file instead of standard output")
    doc.add_argument("--yaml", action="store_true", help="YAML instead of JSON (needs PyYAML)")
    doc.add_argument("--server-host", default="localhost:8000", help="host[:port] of the server")
    doc.add_argument("--server-protocol", choices=("ws", "wss"), default="ws")
    doc.add_argument("--server-pathname", default=None, help="path prefix the app is served under")
    doc.set_defaults(run=_asyncapi)

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
