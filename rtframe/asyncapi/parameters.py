"""Channel parameters and their descriptions, from a route's description and handler code.

- a channel has exactly one `parameters` entry per `{name}` of its path, in path order;
- its `x-pattern` is the router's own regular expression for the converter
  (`PathParam.pattern`), anchored, so the document cannot drift from what is matched;
- its description is the parameter's own (see `param_doc`) followed by what the
  converter accepts in words, or only those words when the code says nothing.

`param_doc` also describes query parameters: the first of the route's handlers and their
dependencies (in that order) that documents the name wins, through
`Annotated[..., Field(description=...)]` or an `Args:` entry of its docstring.
"""

from __future__ import annotations

import typing
from collections.abc import Callable, Iterable
from typing import Any, get_args, get_origin

from pydantic.fields import FieldInfo

from ..description import HandlerDescription, RouteDescription
from . import docstrings
from .schema import Parameter

__all__ = ["channel_parameters", "param_doc"]

_CONVERTER_WORDS = {
    "str": "a path segment",
    "int": "a non-negative integer",
    "float": "a non-negative decimal number",
    "uuid": "a UUID",
    "path": "the rest of the path, slashes included",
}


def channel_parameters(
    route: RouteDescription, handlers: Iterable[HandlerDescription]
) -> dict[str, Parameter]:
    """The channel's `parameters` map: one entry per path parameter of `route`."""
    handlers = tuple(handlers)
    out: dict[str, Parameter] = {}
    for param in route.path_params:
        note = param_doc(param.name, handlers)
        words = _CONVERTER_WORDS.get(param.converter, param.converter)
        described = f"{note} ({words})" if note else f"`{param.name}`: {words}."
        out[param.name] = {"description": described, "x-pattern": f"^{param.pattern}$"}
    return out


def param_doc(name: str, handlers: Iterable[HandlerDescription]) -> str | None:
    """A parameter's description: `Annotated[..., Field(description=...)]`, else `Args:`."""
    functions: list[Callable[..., Any]] = []
    for handler in handlers:
        functions.append(handler.fn)
        functions += handler.dependencies
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
