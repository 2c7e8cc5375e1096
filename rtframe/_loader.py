"""Find the RealtimeApp a `module:attr` target names: shared by `rtframe.cli` and `rtframe.run`.

`module:attr` names a RealtimeApp, or an ASGI application wrapping one through `.app`
(what `mount_beside` returns, uvicorn's middlewares, most ASGI middlewares). The current
directory is importable, as with uvicorn.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from .app import RealtimeApp

__all__ = ["CommandError", "find_app", "import_target", "load_app"]

_MAX_DEPTH = 16


class CommandError(Exception):
    """A problem with the command line or the app it names; printed without a traceback."""


def find_app(obj: Any) -> RealtimeApp | None:
    """`obj` if it is a RealtimeApp, else the first one along its `.app` chain, if any."""
    for _ in range(_MAX_DEPTH):
        if isinstance(obj, RealtimeApp):
            return obj
        obj = getattr(obj, "app", None)
        if obj is None:
            return None
    return None


def import_target(target: str, example: str = "myproject.asgi:application") -> Any:
    """Import `module:attr` (attr may be dotted) and return the object it names.

    Raises:
        CommandError: the target is malformed or cannot be imported.
    """
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise CommandError(f"expected module:attribute (e.g. {example}), got {target!r}")
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
    return obj


def load_app(target: str) -> RealtimeApp:
    """Import `module:attr` and find the RealtimeApp it names.

    Raises:
        CommandError: the target is malformed, cannot be imported, or holds no RealtimeApp.
    """
    obj = import_target(target)
    found = find_app(obj)
    if found is None:
        raise CommandError(
            f"{target} is a {type(obj).__name__}, not a RealtimeApp (or an ASGI app "
            "wrapping one through `.app`)"
        )
    return found
