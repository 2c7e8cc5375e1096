"""Other ASGI applications inside an rtframe app: under a path prefix, or by scope type.

    app.mount("/legacy", legacy_asgi_app)          # every request under /legacy
    app.mount_protocol("webtransport", wt_app)     # every scope of that type

This is what Channels' `URLRouter` and `ProtocolTypeRouter` do, as one object the app
asks first (`Mounts.dispatch`). A mount owns every path under its prefix, for HTTP and
WebSocket scopes alike: `/legacy` and `/legacy/...`, never `/legacy-old`.

The mounted app sees the scope as the ASGI spec (and Django, Starlette, hypercorn's
dispatcher) read it: `root_path` extended by the prefix, `path` the full path, so the app
routes on `path` minus `root_path` and builds its URLs with `root_path`.

Lifespan: each mounted app gets its own lifespan scope, started after the rtframe app in
mount order and shut down before it in reverse order. An app that raises on the lifespan
scope (or returns without answering) does not support lifespan, as the ASGI spec says:
that is logged at INFO and startup goes on; one that answers `lifespan.startup.failed`
fails the startup.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator, MutableMapping
from typing import Any

from .exceptions import ConfigurationError
from .types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Mount", "MountError", "Mounts", "route_path"]

logger = logging.getLogger("rtframe.mounting")

_OWN_TYPES = {
    "http": "mount(prefix, app) for part of the paths, or mount_beside(app) for every HTTP "
    "request the app's own routes do not serve",
    "websocket": "mount(prefix, app) for part of the paths",
    "lifespan": "lifespan is forwarded to every mounted app that supports it",
}


def route_path(scope: Scope) -> str:
    """The path an app routes on: `path` without the `root_path` it was mounted at.

    Servers told a root path (`uvicorn --root-path /api`) and mounts put it in front of
    `path`; one that does not (an older server behind a prefix-stripping proxy) leaves
    `path` as the app's own, which is then used as it is.
    """
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    if root and path.startswith(root) and (len(path) == len(root) or path[len(root)] == "/"):
        return path[len(root) :] or "/"
    return path


class MountError(Exception):
    """A mounted app failed its lifespan startup or shutdown (it said so, or it raised)."""


class Mount:
    """One mounted app: under `prefix` (a path mount) or for `scope_type` scopes."""

    __slots__ = ("_from_app", "_task", "_to_app", "app", "lifespan", "prefix", "scope_type")

    def __init__(
        self,
        app: ASGIApp,
        *,
        prefix: str | None = None,
        scope_type: str | None = None,
        lifespan: bool = True,
    ) -> None:
        self.app = app
        self.prefix = prefix
        self.scope_type = scope_type
        #: Whether lifespan events are forwarded to it.
        self.lifespan = lifespan
        self._task: asyncio.Task[None] | None = None
        self._to_app: asyncio.Queue[Message] | None = None
        self._from_app: asyncio.Queue[Message] | None = None

    def __repr__(self) -> str:
        return f"<Mount {self.name}>"

    @property
    def name(self) -> str:
        if self.prefix is not None:
            where = f"at {self.prefix}"
        elif self.scope_type is not None:
            where = f"for {self.scope_type!r} scopes"
        else:
            where = "(the default app)"
        return f"{getattr(self.app, '__qualname__', type(self.app).__name__)} {where}"

    def scope_for(self, scope: Scope, path: str) -> Scope:
        """The scope the mounted app sees: `root_path` extended, `path` the full path."""
        assert self.prefix is not None
        root = scope.get("root_path", "") + self.prefix
        return {**scope, "root_path": root, "path": root + path[len(self.prefix) :]}

    # -- lifespan ---------------------------------------------------------------------

    async def start(self, state: MutableMapping[str, Any]) -> bool:
        """Run the app's lifespan startup; False when it does not support lifespan."""
        to_app: asyncio.Queue[Message] = asyncio.Queue()
        from_app: asyncio.Queue[Message] = asyncio.Queue()
        scope = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}
        scope["state"] = state
        task = asyncio.ensure_future(self.app(scope, to_app.get, from_app.put))
        to_app.put_nowait({"type": "lifespan.startup"})
        answer = await _answer(task, from_app)
        if answer is None:
            return self._unsupported(task)
        if answer["type"] == "lifespan.startup.failed":
            await _finish(task)
            raise MountError(f"{self.name} failed to start: {answer.get('message', '')}")
        if answer["type"] != "lifespan.startup.complete":
            task.cancel()
            raise MountError(f"{self.name} answered lifespan.startup with {answer['type']!r}")
        self._task, self._to_app, self._from_app = task, to_app, from_app
        return True

    def _unsupported(self, task: asyncio.Task[None]) -> bool:
        failure = None if task.cancelled() else task.exception()
        logger.info(
            "%s does not support lifespan (%s); it gets no startup or shutdown events",
            self.name,
            f"it raised {failure!r}" if failure is not None else "it returned without answering",
        )
        return False

    async def stop(self) -> None:
        """Run the app's lifespan shutdown, if it started."""
        task, to_app, from_app = self._task, self._to_app, self._from_app
        self._task = self._to_app = self._from_app = None
        if task is None or to_app is None or from_app is None:
            return
        to_app.put_nowait({"type": "lifespan.shutdown"})
        answer = await _answer(task, from_app)
        if answer is None:
            failure = None if task.cancelled() else task.exception()
            raise MountError(f"{self.name} ended without finishing its shutdown: {failure!r}")
        await _finish(task)
        if answer["type"] != "lifespan.shutdown.complete":
            raise MountError(f"{self.name} failed to shut down: {answer.get('message', '')}")


async def _answer(task: asyncio.Task[None], answers: asyncio.Queue[Message]) -> Message | None:
    """The app's next lifespan message, or None when its lifespan call ended first."""
    getting = asyncio.ensure_future(answers.get())
    try:
        await asyncio.wait((getting, task), return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not getting.done():
            getting.cancel()
    if getting.done() and not getting.cancelled():
        return getting.result()
    return None


async def _finish(task: asyncio.Task[None]) -> None:
    """Let a lifespan call that answered return; one that lingers is cancelled."""
    try:
        await asyncio.wait_for(task, 5.0)
    except TimeoutError:
        logger.warning("a mounted app's lifespan call did not return after answering")
    except Exception:  # it answered, so the outcome stands; the failure is still its bug
        logger.warning("a mounted app's lifespan call raised after answering", exc_info=True)


class Mounts:
    """The apps mounted in an rtframe app; the app calls `dispatch` first for each scope.

    Also usable alone, as an ASGI app: `Mounts(default=app)` routes mounted prefixes and
    scope types to their apps, the rest to `default`, and runs every lifespan.
    """

    def __init__(self, default: ASGIApp | None = None) -> None:
        self.default = default
        # standalone, the default app's lifespan runs first and shuts down last
        self._default = Mount(default) if default is not None else None
        self._mounts: list[Mount] = []
        self._by_type: dict[str, Mount] = {}
        self._prefixed: list[Mount] = []
        self._started: list[Mount] = []

    def __bool__(self) -> bool:
        return bool(self._mounts)

    def __iter__(self) -> Iterator[Mount]:
        return iter(tuple(self._mounts))

    def mount(self, prefix: str, app: ASGIApp, *, lifespan: bool = True) -> None:
        """Serve every HTTP and WebSocket scope under `prefix` with `app`.

        Raises:
            ConfigurationError: the prefix does not start with '/', ends with '/', or is
                mounted already.
        """
        if not prefix.startswith("/") or prefix.endswith("/") or "{" in prefix:
            raise ConfigurationError(
                f"mount prefix {prefix!r} must start with '/', not end with '/', and hold "
                "no parameters"
            )
        if any(m.prefix == prefix for m in self._prefixed):
            raise ConfigurationError(f"an app is mounted at {prefix!r} already")
        entry = Mount(app, prefix=prefix, lifespan=lifespan)
        self._mounts.append(entry)
        # the longest prefix wins: "/api/v2" before "/api"
        self._prefixed.append(entry)
        self._prefixed.sort(key=lambda m: -len(m.prefix or ""))

    def mount_protocol(self, scope_type: str, app: ASGIApp, *, lifespan: bool = True) -> None:
        """Serve every scope of `scope_type` (anything a server sends) with `app`.

        Raises:
            ConfigurationError: the type is http, websocket or lifespan (the app's own),
                or it has an app already.
        """
        if scope_type in _OWN_TYPES:
            raise ConfigurationError(
                f"{scope_type!r} scopes are rtframe's own; use {_OWN_TYPES[scope_type]}"
            )
        if scope_type in self._by_type:
            raise ConfigurationError(f"{scope_type!r} scopes have an app already")
        entry = Mount(app, scope_type=scope_type, lifespan=lifespan)
        self._mounts.append(entry)
        self._by_type[scope_type] = entry

    def match(self, scope: Scope) -> tuple[ASGIApp, Scope] | None:
        """The mounted app serving `scope`, and the scope it sees; None when none does."""
        kind = scope["type"]
        by_type = self._by_type.get(kind)
        if by_type is not None:
            return by_type.app, scope
        if kind not in ("http", "websocket") or not self._prefixed:
            return None
        path = route_path(scope)
        for entry in self._prefixed:
            prefix = entry.prefix
            assert prefix is not None
            if path.startswith(prefix) and (len(path) == len(prefix) or path[len(prefix)] == "/"):
                return entry.app, entry.scope_for(scope, path)
        return None

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> bool:
        """Serve `scope` with the mounted app it belongs to; False when it belongs to none."""
        found = self.match(scope)
        if found is None:
            return False
        app, inner = found
        await app(inner, receive, send)
        return True

    # -- lifespan ---------------------------------------------------------------------

    async def startup(self, state: MutableMapping[str, Any] | None = None) -> None:
        """Start every mounted app's lifespan, in mount order.

        `state` is the lifespan state the server gave the rtframe app (shared, so what a
        mounted app keeps there reaches its requests' scopes); a new dict when None.

        Raises:
            MountError: an app failed to start; those started before it are shut down.
        """
        shared: MutableMapping[str, Any] = state if state is not None else {}
        default = (self._default,) if self._default is not None else ()
        for entry in (*default, *self._mounts):
            if not entry.lifespan or entry in self._started:
                continue
            try:
                started = await entry.start(shared)
            except BaseException:
                with contextlib.suppress(MountError):  # each failure was logged
                    await self.shutdown()
                raise
            if started:
                self._started.append(entry)

    async def shutdown(self) -> None:
        """Shut the started apps down, in reverse order; every one, even after a failure.

        Raises:
            MountError: one or more failed (each is logged).
        """
        failures: list[str] = []
        while self._started:
            entry = self._started.pop()
            try:
                await entry.stop()
            except MountError as exc:
                logger.error("%s", exc)
                failures.append(str(exc))
        if failures:
            raise MountError("; ".join(failures))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
        elif not await self.dispatch(scope, receive, send):
            if self.default is None:
                raise RuntimeError(f"no app serves {scope['type']!r} scopes here")
            await self.default(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.get("state")
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup(state)
                except Exception as exc:
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                try:
                    await self.shutdown()
                except Exception as exc:
                    await send({"type": "lifespan.shutdown.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.shutdown.complete"})
                return
