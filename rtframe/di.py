"""Dependency markers.

`Depends(fn)` as a parameter default, or inside `Annotated[T, Depends(fn)]`, asks rtframe
to call `fn` and pass its result. `fn` may be an async function, a sync function (run in
a worker thread through asgiref, so blocking ORM calls are safe) or an async generator
(the code after `yield` runs when the scope ends). Its own parameters are injected the
same way a handler's are.

Scopes:
- "connection" (default): resolved once per connection and reused for every message;
  generator teardown runs when the connection ends.
- "message": resolved again for each incoming message; teardown after the handler.
  Only message-scoped dependencies may ask for the message itself.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

DependencyScope = Literal["connection", "message"]


class Dependency:
    """The marker `Depends(...)` builds; rtframe reads it when it analyses a signature."""

    __slots__ = ("dependency", "scope", "use_cache")

    def __init__(
        self,
        dependency: Callable[..., Any],
        *,
        scope: DependencyScope = "connection",
        use_cache: bool = True,
    ) -> None:
        if not callable(dependency):
            raise TypeError(f"Depends() needs a callable, got {dependency!r}")
        if scope not in ("connection", "message"):
            raise ValueError(f"Depends(scope=...) must be 'connection' or 'message', not {scope!r}")
        self.dependency = dependency
        self.scope: DependencyScope = scope
        self.use_cache = use_cache

    def __repr__(self) -> str:
        name = getattr(self.dependency, "__qualname__", repr(self.dependency))
        return f"Depends({name}, scope={self.scope!r})"


def Depends(
    dependency: Callable[..., Any],
    *,
    scope: DependencyScope = "connection",
    use_cache: bool = True,
) -> Any:
    """Declare that a parameter's value comes from calling `dependency`.

    Typed as returning `Any` so `user: User = Depends(get_user)` type-checks; inside
    `Annotated[User, Depends(get_user)]` the return type does not matter.

    Args:
        dependency: an async function, sync function (run in a thread) or async generator.
        scope: "connection" (resolved once per connection) or "message" (once per message).
        use_cache: reuse the value within its scope when several parameters ask for it.
    """
    return Dependency(dependency, scope=scope, use_cache=use_cache)


__all__ = ["Dependency", "DependencyScope", "Depends"]
