"""Channel parameters and their descriptions, from path templates and handler code."""

from __future__ import annotations

import re
import typing
from collections.abc import Callable
from typing import Any, get_args, get_origin

from pydantic.fields import FieldInfo

from .._compile import CallPlan
from ..routing import _CONVERTERS, PathTemplate
from . import docstrings
from .schema import Parameter

CONVERTER = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::([A-Za-z_]+))?}")
_CONVERTER_WORDS = {
    "str": "a path segment",
    "int": "a non-negative integer",
    "float": "a non-negative decimal number",
    "uuid": "a UUID",
    "path": "the rest of the path, slashes included",
}


def address(path: PathTemplate) -> str:
    """The path template with converters removed: `/items/{id:int}` -> `/items/{id}`."""
    return CONVERTER.sub(lambda m: "{" + m.group(1) + "}", path.template)


def channel_parameters(path: PathTemplate, plans: tuple[CallPlan, ...]) -> dict[str, Parameter]:
    out: dict[str, Parameter] = {}
    for match in CONVERTER.finditer(path.template):
        name, converter = match.group(1), match.group(2) or "str"
        note = param_doc(name, plans)
        words = _CONVERTER_WORDS.get(converter, converter)
        described = f"{note} ({words})" if note else f"`{name}`: {words}."
        out[name] = {"description": described, "x-pattern": _pattern(converter)}
    return out


def param_doc(name: str, plans: tuple[CallPlan, ...]) -> str | None:
    """A parameter's description: `Annotated[..., Field(description=...)]`, else `Args:`."""
    functions: list[Callable[..., Any]] = []
    for plan in plans:
        functions.append(plan.fn)
        functions += [d.dependency for d in plan.dependencies]
    for fn in dict.fromkeys(functions):
        try:
            hints = typing.get_type_hints(fn, include_extras=True)
        except Exception:
            hints = {}
        hint = hints.get(name)
        if get_origin(hint) is typing.Annotated:
            for extra in get_args(hint)[1:]:
                if isinstance(extra, FieldInfo) and extra.description:
                    return extra.description
        text = docstrings.parse(fn).args.get(name)
        if text:
            return text
    return None


def _pattern(converter: str) -> str:
    # the router's own regex for the converter, anchored: the document cannot drift from it
    regex = _CONVERTERS[converter][0] if converter in _CONVERTERS else ".*"
    return f"^{regex}$"
