"""Closing the sockets of a Django session that ended, in every process, at once.

When a user logs out (`user_logged_out`), logs in over another session (the old session
is flushed or rotated), or changes password (their session hash changes, so Django ends
every other session), their open sockets are closed with 4001 within moments, in every
server process: a logged-out socket stops receiving and can no longer post.

How it reaches the sockets. Each app keeps, per process, an index of its open sockets
whose Django user is authenticated, by user and by session (filled when `get_user`
first reads the user, emptied when the connection ends). The index is a member of one
control group, `rtframe.django.session-end`, so the process subscribes to that one
channel while it has such sockets: no subscription per user, no extra round trip per
handshake after the first. Ending a session publishes one small frame to that group;
every process's index closes its matching sockets, and nothing is forwarded to a client.

Publishing runs in sync code (a view, a signal handler, a command): through the app's
Redis layer with a sync client (`RedisLayer.sync_publisher`, no event loop needed), else
on the app's event loop in this process (the in-memory layer: every socket is here). A
process that runs no app (a management command, a WSGI server) publishes through the
Redis layer `settings.RTFRAME["LAYER"]` names; with no Redis there is nobody to reach.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import uuid
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.contrib.sessions.backends.signed_cookies import SessionStore as CookieSessionStore
from django.db.models.signals import post_save

from ..connection import Connection
from ..exceptions import ConfigurationError
from ..hub import Hub
from ..layers.base import Layer, Position
from .conf import layer_from_settings, rtframe_settings

if TYPE_CHECKING:
    from ..app import RealtimeApp

__all__ = [
    "CLOSE_SESSION_ENDED",
    "CONTROL_GROUP",
    "SessionEndMiddleware",
    "connect_signals",
    "end_sessions",
    "track",
    "unwatch",
    "watch",
]

logger = logging.getLogger("rtframe.django")

#: Close code of a socket whose Django session ended: a logout, a login over its session,
#: a password change. The page may reconnect: the handshake says whether it is still
#: logged in (HTTP 403 when not).
CLOSE_SESSION_ENDED = 4001

#: The group every process with authenticated sockets is in; its frames close sockets.
CONTROL_GROUP = "rtframe.django.session-end"

_FRAME_TYPE = "$session_end"


def _session_id(session_key: str) -> str:
    # Session keys are credentials: only a digest of one travels through the layer.
    return hashlib.sha256(session_key.encode()).hexdigest()[:32]


class _Sockets:
    """One app's authenticated sockets in this process, by user and session: a member."""

    __slots__ = ("_by_session", "_by_user", "_keys", "_tasks", "id")

    def __init__(self) -> None:
        self.id = f"rtframe.django.sockets.{uuid.uuid4().hex}"
        self._by_user: dict[str, set[Connection]] = {}
        self._by_session: dict[str, set[Connection]] = {}
        self._keys: dict[Connection, tuple[str, str | None]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"<authenticated sockets: {len(self._keys)}>"

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, conn: Connection, user: str, session: str | None) -> None:
        self.remove(conn)
        self._keys[conn] = (user, session)
        self._by_user.setdefault(user, set()).add(conn)
        if session is not None:
            self._by_session.setdefault(session, set()).add(conn)

    def remove(self, conn: Connection) -> bool:
        """Forget `conn`; True when it was known."""
        keys = self._keys.pop(conn, None)
        if keys is None:
            return False
        for index, key in zip((self._by_user, self._by_session), keys, strict=True):
            if key is not None and key in index:
                index[key].discard(conn)
                if not index[key]:
                    del index[key]
        return True

    def deliver_at(self, group: str, position: tuple[str, int], data: str | bytes) -> None:
        """The control group keeps no history; a positioned frame is read like any."""
        self.deliver(data)

    def deliver(self, data: str | bytes) -> None:
        """A control frame from any process: close the sockets it names; never raises."""
        try:
            frame = json.loads(data)
            if frame.get("type") != _FRAME_TYPE:
                return
            user, session = frame.get("user"), frame.get("session")
            # a close reason holds at most 123 bytes of UTF-8
            reason = (
                str(frame.get("reason") or "session ended").encode()[:120].decode(errors="ignore")
            )
        except (ValueError, AttributeError):
            logger.warning("ignored a malformed frame on %r: %.100r", CONTROL_GROUP, data)
            return
        doomed = set(self._by_user.get(user, ())) if isinstance(user, str) else set()
        if isinstance(session, str):
            doomed.update(self._by_session.get(session, ()))
        if not doomed:
            return
        loop = asyncio.get_running_loop()
        for conn in doomed:  # forgotten by `unwatch` when the connection ends
            logger.info("closing %r: %s (close code %d)", conn, reason, CLOSE_SESSION_ENDED)
            task = loop.create_task(conn.close(CLOSE_SESSION_ENDED, reason))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)


_sockets: weakref.WeakKeyDictionary[Hub, _Sockets] = weakref.WeakKeyDictionary()
_loops: weakref.WeakKeyDictionary[Hub, asyncio.AbstractEventLoop] = weakref.WeakKeyDictionary()
_tracked: weakref.WeakSet[Hub] = weakref.WeakSet()
_CONN_HUB = "rtframe.django.sockets_hub"


async def watch(conn: Connection, user_pk: Any, session_key: str | None) -> None:
    """Close `conn` when this user's (or this session's) end is published; on its loop.

    Returns once this process receives the control group's frames (the first socket
    subscribes it; with Redis, once Redis confirmed).
    """
    hub = conn.hub
    _loops[hub] = asyncio.get_running_loop()
    sockets = _sockets.get(hub)
    if sockets is None:
        sockets = _sockets[hub] = _Sockets()
    sockets.add(conn, str(user_pk), None if session_key is None else _session_id(session_key))
    conn.scope[_CONN_HUB] = hub
    try:
        await hub.join(CONTROL_GROUP, sockets)
    except Exception as exc:  # an outage must not refuse the handshake; the layer retries
        logger.warning("%r may not hear of its session's end in other processes: %s", conn, exc)


async def unwatch(conn: Connection) -> None:
    """Forget `conn` (its connection ended); the last socket leaves the control group."""
    hub = conn.scope.pop(_CONN_HUB, None)
    if not isinstance(hub, Hub):
        return
    sockets = _sockets.get(hub)
    if sockets is None:
        return
    sockets.remove(conn)
    if len(sockets):
        return
    try:
        await hub.leave(CONTROL_GROUP, sockets)
    except Exception as exc:
        logger.warning("could not leave %r: %s", CONTROL_GROUP, exc)


def track(app: RealtimeApp) -> None:
    """Let logouts in this process reach `app` even before its first socket (`mount`)."""
    hub = app.hub
    if hub in _tracked:
        return
    _tracked.add(hub)

    async def remember_loop() -> None:
        _loops[hub] = asyncio.get_running_loop()

    app.on_startup(remember_loop)


# -- publishing, from sync code ---------------------------------------------------------


def end_sessions(
    *, user: Any = None, session_key: str | None = None, reason: str = "session ended"
) -> int:
    """Close the rtframe sockets of a user, or of one session, in every process.

    Called for you on logout, on a login over another session and on a password change.
    Call it yourself after `request.session.flush()` outside a logout, or to throw a
    user out (`end_sessions(user=user)`). Sync: views, commands, Celery tasks; from async
    code run it with `asyncio.to_thread`.

    Args:
        user: a user, or a user's primary key: all of their sockets.
        session_key: a session key: the sockets opened with that session.
        reason: the close reason the client sees (close code 4001).

    Returns:
        How many apps the message was published to (0: no app and no Redis layer, so no
        socket could be reached).
    """
    if user is None and session_key is None:
        return 0
    pk = getattr(user, "pk", user)
    frame = json.dumps(
        {
            "type": _FRAME_TYPE,
            "user": None if pk is None else str(pk),
            "session": None if session_key is None else _session_id(session_key),
            "reason": reason,
        }
    )
    reached = 0
    for hub, loop in list(_loops.items()):
        if not hub.running:
            continue
        try:
            if _publish_sync(hub.layer, frame) or _publish_on_loop(hub, loop, frame):
                reached += 1
        except Exception as exc:
            logger.warning("the end of a session did not reach the app %r: %s", hub.name, exc)
    if not reached:
        reached = _publish_from_settings(frame)
    return reached


def _publish_sync(layer: Layer, frame: str) -> bool:
    make: Callable[[], Any] | None = getattr(layer, "sync_publisher", None)  # a RedisLayer
    if make is None:
        return False
    try:
        publisher = make()
    except ConfigurationError:  # built from a client, not a URL: publish on the loop
        return False
    publisher.broadcast(CONTROL_GROUP, frame)
    return True


def _publish_on_loop(hub: Hub, loop: asyncio.AbstractEventLoop, frame: str) -> bool:
    if not hub.serves(loop):
        return False
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:  # sync code running on the app's own loop: do not block it
        task = loop.create_task(hub.publish(CONTROL_GROUP, frame))
        _publishing.add(task)
        task.add_done_callback(_publishing.discard)
        task.add_done_callback(_log_failure)
    else:
        future = asyncio.run_coroutine_threadsafe(hub.publish(CONTROL_GROUP, frame), loop)
        future.add_done_callback(_log_failure)
    return True


_publishing: set[asyncio.Task[Position | None]] = set()


def _log_failure(done: Any) -> None:
    if not done.cancelled() and done.exception() is not None:
        logger.warning("the end of a session reached this process only: %s", done.exception())


_settings_layer: dict[str, Layer] = {}


def _publish_from_settings(frame: str) -> int:
    conf = rtframe_settings()
    described = conf.get("LAYER") or {}
    url = described.get("URL")
    if not url or not str(url).startswith(("redis://", "rediss://", "unix://")):
        return 0  # in-memory: every socket lives in a process that runs the app
    # one layer per description: the same URL with another prefix is another namespace
    key = repr(sorted((str(k), repr(v)) for k, v in described.items()))
    layer = _settings_layer.get(key)
    if layer is None:
        layer = _settings_layer[key] = layer_from_settings(conf)
    try:
        return int(_publish_sync(layer, frame))
    except Exception as exc:
        logger.warning("the end of a session reached no socket: %s", exc)
        return 0


# -- Django's signals and a middleware -----------------------------------------------------

_ENDED = "_rtframe_session_ended"  # set on a request whose session's end was published


class SessionEndMiddleware:
    """Close the sockets of a session a view flushed or rotated, whatever the view.

    `auth.logout` and `auth.login` are covered by signals without it; add it after
    `SessionMiddleware` when your own views call `request.session.flush()` or
    `cycle_key()`. Sessions kept in the cookie (`signed_cookies`) are skipped: their key
    changes with every write.
    """

    def __init__(self, get_response: Callable[[Any], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: Any) -> Any:
        old = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
        response = self.get_response(request)
        session = getattr(request, "session", None)
        if (
            old
            and session is not None
            and not isinstance(session, CookieSessionStore)
            and session.session_key != old
            and not getattr(request, _ENDED, False)
        ):
            end_sessions(session_key=old, reason="session ended")
        return response


def _mark(request: Any) -> None:
    try:
        setattr(request, _ENDED, True)
    except AttributeError:  # pragma: no cover - a request object with __slots__
        pass


def _logged_out(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    if user is None:  # an anonymous visitor "logged out"
        return
    session = getattr(request, "session", None)
    end_sessions(user=user, session_key=getattr(session, "session_key", None), reason="logged out")
    _mark(request)


def _logged_in(sender: Any, request: Any = None, user: Any = None, **kwargs: Any) -> None:
    # login() flushed (another user's) or rotated the session the browser came with
    cookies = getattr(request, "COOKIES", None) or {}
    old = cookies.get(settings.SESSION_COOKIE_NAME)
    session = getattr(request, "session", None)
    if old and old != getattr(session, "session_key", None):
        end_sessions(session_key=old, reason="session ended")
        _mark(request)


def _user_saved(sender: Any, instance: Any, created: bool = False, **kwargs: Any) -> None:
    # set_password() leaves the raw password in `_password` until save() has run (and
    # sent this signal): the session hash changed, so Django ends every session but one
    if created or getattr(instance, "_password", None) is None:
        return
    from django.contrib.auth.base_user import AbstractBaseUser

    if isinstance(instance, AbstractBaseUser):
        end_sessions(user=instance, reason="password changed")


def connect_signals() -> None:
    """Connect the receivers (done when `rtframe.django` is imported); idempotent."""
    user_logged_out.connect(_logged_out, dispatch_uid="rtframe.django.logged_out")
    user_logged_in.connect(_logged_in, dispatch_uid="rtframe.django.logged_in")
    post_save.connect(_user_saved, dispatch_uid="rtframe.django.user_saved")
