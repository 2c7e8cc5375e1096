"""Readable, stable names for channels, operations and messages.

Every name is a pure function of the code (a type's or function's name, a template), never
of an id or a hash, so the same app always gets the same names.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel

__all__ = ["camel", "fn_name", "message_hint", "slug", "type_name", "unique"]

# a `{name}` or `{name:converter}` placeholder of a route or group template
_PLACEHOLDER = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::[A-Za-z_]+)?}")


def type_name(annotation: Any) -> str:
    if isinstance(annotation, type):
        return annotation.__name__
    return re.sub(r"[^A-Za-z0-9]+", "_", repr(annotation)).strip("_") or "Any"


def message_hint(annotation: Any, fallback: str) -> str:
    is_model = isinstance(annotation, type) and issubclass(annotation, BaseModel)
    return annotation.__name__ if is_model else fallback


def fn_name(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__qualname__", getattr(fn, "__name__", repr(fn))))


def camel(name: str) -> str:
    words = re.split(r"[^A-Za-z0-9]+", name.rsplit(".", 1)[-1])
    return "".join(w[:1].upper() + w[1:] for w in words if w) or "Handler"


def slug(template: str, keep: str = "") -> str:
    """A readable id from a template: `/ws/chat/{room}` -> `ws_chat_room`."""
    text = _PLACEHOLDER.sub(lambda m: m.group(1), template).strip("/")
    return re.sub(rf"[^A-Za-z0-9{re.escape(keep)}]+", "_", text).strip("_") or "root"


def unique(names: list[str], taken: set[str] | None = None) -> list[str]:
    """Each name, suffixed `_2`, `_3`... where it repeats an earlier one (or a taken one)."""
    seen = set(taken or ())
    out = []
    for name in names:
        candidate, n = name, 1
        while candidate in seen:
            n += 1
            candidate = f"{name}_{n}"
        seen.add(candidate)
        out.append(candidate)
    return out
