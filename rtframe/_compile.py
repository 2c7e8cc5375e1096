"""Signature analysis (at registration) and dependency solving (per connection/message).

A handler's signature is read once, here, into a `CallPlan`: one `Param` per parameter,
each knowing where its value comes from. The per-message path only walks that tuple.
"""

from __future__ import annotations

import enum
import inspect
import types
import typing
import uuid
from collections.abc import AsyncGenerator, Callable, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Union, get_args, get_origin

from asgiref.sync import sync_to_async
from pydantic import BaseModel, TypeAdapter, ValidationError

from .connection import Connection
from .di import Dependency
from .exceptions import ConfigurationError, Reject

Role = Literal["connect", "receive", "disconnect", "dependency"]

_SCALARS: tuple[type, ...] = (str, int, float, bool, uuid.UUID, Decimal)
_MISSING: Any = inspect.Parameter.empty


class Kind(enum.Enum):
    CONNECTION = "connection"
    MESSAGE = "message"
    PATH = "path"
    QUERY = "query"
    DEPENDENCY = "dependency"


# Reading an Enum member off its class costs ~0.1 us on Python 3.11 (a descriptor call);
# the per-message argument builder compares against these module constants instead.
_MESSAGE, _CONNECTION, _PATH, _QUERY = Kind.MESSAGE, Kind.CONNECTION, Kind.PATH, Kind.QUERY


class CallKind(enum.Enum):
    ASYNC = "async"
    SYNC = "sync"
    ASYNC_GEN = "async_gen"


@dataclass(frozen=True, eq=False, slots=True)
class Param:
    name: str
    kind: Kind
    annotation: Any = None
    depends: Dependency | None = None
    default: Any = _MISSING
    adapter: TypeAdapter[Any] | None = None


@dataclass(eq=False, slots=True)
class CallPlan:
    """Everything the per-call path needs to know about one function."""

    fn: Callable[..., Any]
    call: Callable[..., Any]
    call_kind: CallKind
    params: tuple[Param, ...]
    message_type: Any = None  # a BaseModel subclass, or `bytes` for binary frames
    message_param: str | None = None
    returns: Any = None  # the return annotation; None when the handler answers nothing
    needs_message: bool = False  # the function or one of its dependencies takes the message
    #: No dependencies: every argument is read straight off the connection or the message,
    #: so a call needs no awaiting before the function itself (the per-message fast path).
    direct: bool = True
    has_message_deps: bool = False
    query_params: tuple[Param, ...] = ()
    dependencies: tuple[Dependency, ...] = field(default=())

    @property
    def name(self) -> str:
        return describe(self.fn)


def describe(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _is_connection(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, Connection)


def _is_scalar(annotation: Any) -> bool:
    origin = get_origin(annotation)
    if origin is Literal:
        return True
    if origin in (Union, types.UnionType):
        return all(arg is type(None) or _is_scalar(arg) for arg in get_args(annotation))
    if isinstance(annotation, type):
        return issubclass(annotation, _SCALARS) or issubclass(annotation, enum.Enum)
    return False


def _is_async_callable(fn: Callable[..., Any]) -> bool:
    if inspect.iscoroutinefunction(fn):
        return True
    # an instance of a class with `async def __call__` is an async dependency too
    return not inspect.isroutine(fn) and inspect.iscoroutinefunction(type(fn).__call__)


def _type_hints(fn: Callable[..., Any]) -> dict[str, Any]:
    target = fn if inspect.isroutine(fn) or isinstance(fn, type) else type(fn).__call__
    try:
        return typing.get_type_hints(target, include_extras=True)
    except Exception as exc:
        raise ConfigurationError(
            f"cannot resolve the annotations of {describe(fn)}: {exc}. Annotations must name "
            "types importable from the function's module."
        ) from exc


def _split_annotated(annotation: Any) -> tuple[Any, Dependency | None]:
    if get_origin(annotation) is typing.Annotated:
        base, *extras = get_args(annotation)
        for extra in extras:
            if isinstance(extra, Dependency):
                return base, extra
        return base, None
    return annotation, None


def analyse(
    fn: Callable[..., Any],
    *,
    role: Role,
    path_types: Mapping[str, type],
    _seen: tuple[Callable[..., Any], ...] = (),
) -> CallPlan:
    """Read `fn`'s signature into a plan, or raise ConfigurationError naming the problem."""
    name = describe(fn)
    if role != "dependency":
        if inspect.isasyncgenfunction(fn) or not inspect.iscoroutinefunction(fn):
            raise ConfigurationError(f"handler {name} must be declared with `async def`")
        call_kind = CallKind.ASYNC
    elif inspect.isasyncgenfunction(fn):
        call_kind = CallKind.ASYNC_GEN
    elif inspect.isgeneratorfunction(fn):
        raise ConfigurationError(
            f"dependency {name} is a sync generator; write it as an async generator "
            "(`async def ... yield`) so its teardown can run on the event loop"
        )
    elif _is_async_callable(fn):
        call_kind = CallKind.ASYNC
    else:
        call_kind = CallKind.SYNC

    hints = _type_hints(fn)
    params: list[Param] = []
    message_param: str | None = None
    message_type: Any = None
    for p in inspect.signature(fn).parameters.values():
        where = f"parameter {p.name!r} of {name}"
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ConfigurationError(f"{where}: *args and **kwargs cannot be injected")
        annotation, depends = _split_annotated(hints.get(p.name, _MISSING))
        if isinstance(p.default, Dependency):
            depends = p.default
        if depends is not None:
            params.append(Param(p.name, Kind.DEPENDENCY, annotation, depends))
        elif _is_connection(annotation):
            params.append(Param(p.name, Kind.CONNECTION, annotation))
        elif _is_model(annotation) or annotation is bytes:
            if role == "connect" or role == "disconnect":
                raise ConfigurationError(
                    f"{where}: a {role} handler receives no message, but the parameter is "
                    f"annotated with {getattr(annotation, '__name__', annotation)}"
                )
            if message_param is not None:
                raise ConfigurationError(
                    f"{where}: {name} already takes the message as {message_param!r}; a "
                    "handler receives exactly one message"
                )
            message_param, message_type = p.name, annotation
            params.append(Param(p.name, Kind.MESSAGE, annotation))
        elif p.name in path_types:
            declared = path_types[p.name]
            if annotation not in (_MISSING, Any, declared):
                raise ConfigurationError(
                    f"{where} is annotated {getattr(annotation, '__name__', annotation)} but "
                    f"the path declares {{{p.name}}} as {declared.__name__}; use a converter "
                    f"such as {{{p.name}:int}} or change the annotation"
                )
            params.append(Param(p.name, Kind.PATH, declared))
        elif annotation is not _MISSING and _is_scalar(annotation):
            params.append(
                Param(
                    p.name,
                    Kind.QUERY,
                    annotation,
                    default=p.default,
                    adapter=TypeAdapter(annotation),
                )
            )
        else:
            shown = "no annotation" if annotation is _MISSING else f"annotation {annotation!r}"
            raise ConfigurationError(
                f"{where} cannot be served: {shown} is not a message model, a Connection, a "
                "path or query parameter, or a Depends(...) dependency"
            )
    if role == "receive" and message_param is None:
        raise ConfigurationError(
            f"receive handler {name} needs a parameter annotated with a pydantic model (or "
            "`bytes` for binary frames) to receive the message"
        )

    plan = CallPlan(
        fn=fn,
        call=sync_to_async(fn) if call_kind is CallKind.SYNC else fn,
        call_kind=call_kind,
        params=tuple(params),
        message_type=message_type,
        message_param=message_param,
        needs_message=message_param is not None,
    )
    _link_dependencies(plan, path_types, (*_seen, fn))
    if role in ("connect", "receive", "disconnect"):
        returns = hints.get("return", Any)
        plan.returns = None if returns is type(None) else returns
    return plan


def _link_dependencies(
    plan: CallPlan, path_types: Mapping[str, type], seen: tuple[Callable[..., Any], ...]
) -> None:
    queries = [p for p in plan.params if p.kind is Kind.QUERY]
    deps: list[Dependency] = []
    for p in plan.params:
        if p.depends is None:
            continue
        dep = p.depends
        if dep.dependency in seen:
            raise ConfigurationError(f"dependency cycle through {describe(dep.dependency)}")
        sub = dependency_plan(dep.dependency, path_types, seen)
        if dep.scope == "connection" and (sub.needs_message or sub.has_message_deps):
            raise ConfigurationError(
                f"dependency {describe(dep.dependency)} used by {plan.name} takes the message "
                "(or a message-scoped dependency), so it must be Depends(..., scope='message')"
            )
        if dep.scope == "message":
            plan.has_message_deps = True
        plan.needs_message = plan.needs_message or sub.needs_message
        queries.extend(sub.query_params)
        deps.append(dep)
        deps.extend(sub.dependencies)
    plan.query_params = tuple(queries)
    plan.dependencies = tuple(deps)
    plan.direct = not deps


_dependency_plans: dict[tuple[Callable[..., Any], frozenset[tuple[str, type]]], CallPlan] = {}


def dependency_plan(
    fn: Callable[..., Any],
    path_types: Mapping[str, type],
    seen: tuple[Callable[..., Any], ...] = (),
) -> CallPlan:
    key = (fn, frozenset(path_types.items()))
    plan = _dependency_plans.get(key)
    if plan is None:
        plan = analyse(fn, role="dependency", path_types=path_types, _seen=seen)
        _dependency_plans[key] = plan
    return plan


# -- solving -----------------------------------------------------------------------------


class ConnectionScope:
    """Per-connection DI state, owned by the connection's session.

    Connection-scoped dependency values and validated query parameters are cached here,
    and generator dependencies' teardowns stacked, until the connection ends.
    """

    __slots__ = ("cache", "conn", "stack")

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        # made on first use: most connections have no dependency or query parameter, and
        # an idle connection's every byte counts (benchmarks/idle.py)
        self.cache: dict[Any, Any] | None = None
        self.stack: AsyncExitStack | None = None

    async def aclose(self) -> None:
        """Run the teardowns of the connection's generator dependencies, newest first."""
        if self.stack is not None:
            stack, self.stack = self.stack, None
            await stack.aclose()


class MessageScope:
    """Cache and teardown stack for message-scoped dependencies of one call."""

    __slots__ = ("cache", "stack")

    def __init__(self) -> None:
        self.cache: dict[Any, Any] = {}
        self.stack: AsyncExitStack | None = None

    async def aclose(self) -> None:
        if self.stack is not None:
            await self.stack.aclose()


class Resolver:
    """Builds call arguments for the plans of one route."""

    __slots__ = ("overrides", "path_types")

    def __init__(
        self,
        overrides: Mapping[Callable[..., Any], Callable[..., Any]],
        path_types: Mapping[str, type],
    ) -> None:
        self.overrides = overrides
        self.path_types = path_types

    def direct_arguments(
        self, plan: CallPlan, state: ConnectionScope, message: Any
    ) -> dict[str, Any]:
        """The arguments that need no dependency solving (all of them when `plan.direct`)."""
        conn = state.conn
        kwargs: dict[str, Any] = {}
        for p in plan.params:
            kind = p.kind
            if kind is _MESSAGE:
                kwargs[p.name] = message
            elif kind is _CONNECTION:
                kwargs[p.name] = conn
            elif kind is _PATH:
                kwargs[p.name] = conn.path_params[p.name]
            elif kind is _QUERY:
                kwargs[p.name] = query_value(p, state)
        return kwargs

    async def arguments(
        self, plan: CallPlan, state: ConnectionScope, message: Any, scope: MessageScope | None
    ) -> dict[str, Any]:
        kwargs = self.direct_arguments(plan, state, message)
        if not plan.direct:
            for p in plan.params:
                if p.depends is not None:
                    kwargs[p.name] = await self.resolve(p.depends, state, message, scope)
        return kwargs

    async def resolve(
        self, dep: Dependency, state: ConnectionScope, message: Any, scope: MessageScope | None
    ) -> Any:
        key = dep.dependency
        if dep.scope == "connection":
            cache = state.cache
            if cache is None:
                cache = state.cache = {}
        else:
            if scope is None:  # pragma: no cover - plans with message deps always get a scope
                raise RuntimeError("message-scoped dependency resolved without a message scope")
            cache = scope.cache
        if dep.use_cache and key in cache:
            return cache[key]
        target = self.overrides.get(key, key) if self.overrides else key
        plan = dependency_plan(target, self.path_types)
        if dep.scope == "connection" and plan.needs_message:
            raise ConfigurationError(
                f"override {describe(target)} takes the message but replaces a "
                "connection-scoped dependency"
            )
        kwargs = await self.arguments(plan, state, message, scope)
        if plan.call_kind is CallKind.ASYNC_GEN:
            gen: AsyncGenerator[Any, None] = plan.call(**kwargs)
            value = await gen.__anext__()
            if dep.scope == "connection":
                if state.stack is None:
                    state.stack = AsyncExitStack()
                state.stack.push_async_callback(_finish_generator, gen, plan)
            else:
                assert scope is not None
                if scope.stack is None:
                    scope.stack = AsyncExitStack()
                scope.stack.push_async_callback(_finish_generator, gen, plan)
        else:
            value = plan.call(**kwargs)
            if inspect.isawaitable(value):
                value = await value
        if dep.use_cache:
            cache[key] = value
        return value


async def _finish_generator(gen: AsyncGenerator[Any, None], plan: CallPlan) -> None:
    try:
        await gen.__anext__()
    except StopAsyncIteration:
        return
    await gen.aclose()
    raise RuntimeError(f"dependency {plan.name} yielded more than once")


def query_value(p: Param, state: ConnectionScope) -> Any:
    """Validate a query parameter once per connection, raising Reject(1008) if it is bad."""
    cache = state.cache
    if cache is None:
        cache = state.cache = {}
    elif p in cache:
        return cache[p]
    raw = state.conn.query_params.get(p.name)
    if raw is None:
        if p.default is _MISSING:
            raise Reject(1008, f"missing query parameter {p.name!r}")
        value = p.default
    else:
        assert p.adapter is not None
        try:
            value = p.adapter.validate_python(raw)
        except ValidationError as exc:
            msg = exc.errors(include_url=False)[0]["msg"]
            raise Reject(1008, f"invalid query parameter {p.name!r}: {msg}") from None
    cache[p] = value
    return value
