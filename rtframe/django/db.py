"""Run Django ORM code from async handlers the way Django runs it for a request."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

from asgiref.sync import sync_to_async
from django.db import close_old_connections

P = ParamSpec("P")
R = TypeVar("R")


def database_sync_to_async(fn: Callable[P, R]) -> Callable[P, Awaitable[R]]:
    """Wrap a sync function that touches the database so async code can await it.

    The function runs in asgiref's thread-sensitive worker thread (where Django keeps its
    connections), with `close_old_connections()` before and after. Django does the same
    around every HTTP request; without it a long-lived WebSocket process would keep
    using connections past `CONN_MAX_AGE` or after the database dropped them.

    Args:
        fn: a sync function (ORM queries, session loads, permission checks).

    Returns:
        An async function with the same parameters and result.
    """

    @functools.wraps(fn)
    def with_fresh_connections(*args: P.args, **kwargs: P.kwargs) -> R:
        close_old_connections()
        try:
            return fn(*args, **kwargs)
        finally:
            close_old_connections()

    return sync_to_async(with_fresh_connections, thread_sensitive=True)


__all__ = ["database_sync_to_async"]
