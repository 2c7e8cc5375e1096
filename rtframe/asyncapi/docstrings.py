"""Read summaries, descriptions and `Args:` entries out of Google-style docstrings."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Docstring", "own_doc", "parse"]

_SECTION = re.compile(r"^(Args|Arguments|Parameters|Returns|Yields|Raises|Examples?|Notes?):\s*$")
_ARG = re.compile(r"^(\*{0,2}[A-Za-z_][A-Za-z0-9_]*)\s*(?:\([^)]*\))?\s*:\s*(.*)$")


@dataclass(frozen=True)
class Docstring:
    """The parts of a docstring the document uses."""

    summary: str | None = None
    description: str | None = None
    args: dict[str, str] = field(default_factory=dict)


def own_doc(obj: Any) -> str | None:
    """The docstring written on `obj` itself, never one inherited from a base class."""
    doc = obj.__dict__.get("__doc__") if isinstance(obj, type) else getattr(obj, "__doc__", None)
    return inspect.cleandoc(doc) if isinstance(doc, str) and doc.strip() else None


def parse(obj: Any) -> Docstring:
    """Split `obj`'s docstring into a one-line summary, the prose, and the `Args:` entries.

    The description is the prose before the first section heading (`Args:`,
    `Returns:`...); the summary is its first paragraph joined onto one line.
    """
    text = own_doc(obj)
    if text is None:
        return Docstring()
    prose: list[str] = []
    args: dict[str, str] = {}
    section: str | None = None
    current: str | None = None
    entry_indent = 0
    for line in text.splitlines():
        heading = _SECTION.match(line.strip()) if not line.startswith(" ") else None
        if heading:
            section, current, entry_indent = heading.group(1), None, -1
            continue
        if section is None:
            prose.append(line)
        elif section in ("Args", "Arguments", "Parameters") and line.strip():
            indent = len(line) - len(line.lstrip())
            if entry_indent < 0:
                entry_indent = indent
            entry = _ARG.match(line.strip()) if indent <= entry_indent else None
            if entry:
                current = entry.group(1).lstrip("*")
                args[current] = entry.group(2).strip()
            elif current is not None:  # a continuation line, indented under its entry
                args[current] = f"{args[current]} {line.strip()}".strip()
    description = "\n".join(prose).strip() or None
    summary = None
    if description:
        summary = " ".join(description.split("\n\n", 1)[0].split())
    return Docstring(summary, description, args)
