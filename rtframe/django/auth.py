"""Django sessions and users as rtframe dependencies, and the guards built on them.

When things happen:
- The session is loaded once per connection, from the handshake's session cookie
  (`settings.SESSION_COOKIE_NAME`), through the project's own `SESSION_ENGINE`; so every
  engine works (db, cache, cached_db, file, signed_cookies).
- The user is read once per connection, from that session, with Django's own
  `django.contrib.auth.get_user` (the session's backend, the session-hash check that
  makes a password change log other sessions out). An authenticated socket is closed
  with 4001 when its user logs out or changes password, or its session ends, in every
  process (`rtframe.django.logout`); `VerifiedUser` also re-reads the user every
  `RTFRAME["USER_RECHECK_SECONDS"]` (deactivation, a session deleted some other way).
- Session writes are saved after each handler that declared a `Session` parameter and
  changed it, and once more when the connection ends if something else changed it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from importlib import import_module
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from django.conf import settings
from django.contrib import auth
from django.contrib.sessions.backends.base import SessionBase, UpdateError
from django.contrib.sessions.backends.signed_cookies import SessionStore as CookieSessionStore

from ..connection import Connection
from ..di import Depends
from ..exceptions import ConfigurationError, Reject
from .conf import rtframe_settings
from .db import database_sync_to_async
from .logout import unwatch, watch
from .origin import ensure_origin_checked
from .userkey import USER_KEY, user_key

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser
else:
    # Importing the user classes needs a ready app registry, and this module must be
    # importable before django.setup() (asgi.py imports it early). rtframe reads these
    # names when it analyses signatures, where only the Depends marker matters.
    AbstractBaseUser = AnonymousUser = Any

logger = logging.getLogger("rtframe.django")

#: Close code for an anonymous user on a login-required route (HTTP 403 before accept).
CLOSE_LOGIN_REQUIRED = 4401
#: Close code for a user who lacks a required permission (HTTP 403 before accept).
CLOSE_PERMISSION_DENIED = 4403


class _HandshakeRequest:
    """What `django.contrib.auth.get_user` reads from a request: only its session."""

    __slots__ = ("session",)

    def __init__(self, session: SessionBase) -> None:
        self.session = session


def _load_session(session_key: str | None) -> SessionBase:
    engine = import_module(settings.SESSION_ENGINE)
    session: SessionBase = engine.SessionStore(session_key)
    # Load now, in the database thread: afterwards reads and writes in async handlers are
    # plain dict operations that never touch the database from the event loop.
    session.keys()
    return session


def _save_session(session: SessionBase) -> bool:
    if not session.modified:
        return False
    if isinstance(session, CookieSessionStore):
        session.modified = False
        if session.is_empty():
            return False  # a bad or missing cookie made a fresh, empty session: nothing lost
        logger.warning(
            "session changes on a WebSocket were dropped: SESSION_ENGINE stores the session "
            "in the browser's cookie, which a WebSocket cannot update after the handshake"
        )
        return False
    if session.session_key is None:
        session.modified = False
        if not session.is_empty():
            logger.warning(
                "session changes on a WebSocket were dropped: the client sent no valid "
                "session cookie, so a new session could never reach it"
            )
        return False  # an empty, keyless session was flushed (logged out): nothing to save
    try:
        session.save()
    except UpdateError:
        session.modified = False
        logger.warning(
            "session changes on a WebSocket were dropped: the session was deleted "
            "meanwhile (logged out elsewhere?)"
        )
        return False
    session.modified = False  # only now: a failed save is retried by the next one
    return True


_save_session_async = database_sync_to_async(_save_session)


async def save_session(session: SessionBase) -> bool:
    """Save a session's changes now, if it has any.

    Handlers rarely need this: a `Session` parameter is saved after its handler. Changes
    cannot be saved (a warning is logged and they are dropped) when `SESSION_ENGINE`
    keeps sessions in the cookie (signed_cookies), when the client had no session cookie,
    or when the session was deleted meanwhile.

    Returns:
        True when the changes were written to the session store.
    """
    if not session.modified:
        return False
    return await _save_session_async(session)


async def connection_session(conn: Connection) -> AsyncIterator[SessionBase]:
    """The handshake's Django session, loaded once per connection.

    The Origin is checked first (unless a handshake check did), so a cookie sent by a
    page of another site is never used. Changes still unsaved when the connection ends
    are saved then.
    """
    await ensure_origin_checked(conn)
    key = conn.cookies.get(settings.SESSION_COOKIE_NAME) or None
    session = await database_sync_to_async(_load_session)(key)
    try:
        yield session
    finally:
        await unwatch(conn)  # `get_user` watched it for the end of its session
    await save_session(session)


async def message_session(
    session: Annotated[SessionBase, Depends(connection_session)],
) -> AsyncIterator[SessionBase]:
    """The connection's session for one handler call; saved after it if it changed."""
    yield session
    await save_session(session)


def _get_user(session: SessionBase) -> AbstractBaseUser | AnonymousUser:
    user: AbstractBaseUser | AnonymousUser = auth.get_user(_HandshakeRequest(session))  # type: ignore[arg-type]
    # get_user may rotate or flush the session (SECRET_KEY_FALLBACKS, a changed
    # password); save that as Django's session middleware would.
    _save_session(session)
    return user


async def get_user(
    conn: Connection,
    session: Annotated[SessionBase, Depends(connection_session)],
) -> AbstractBaseUser | AnonymousUser:
    """The Django user of the handshake's session, or `AnonymousUser`; once per connection."""
    user = await database_sync_to_async(_get_user)(session)
    if user.is_authenticated:
        conn.scope[USER_KEY] = str(user.pk)  # read by `user_key` (the per-user limit)
        # closed with 4001 when the user logs out or the session ends, in any process
        await watch(conn, user.pk, session.session_key)
    return user


#: The logged-in user, or `AnonymousUser`: `async def join(conn, user: CurrentUser)`.
CurrentUser = Annotated[AbstractBaseUser | AnonymousUser, Depends(get_user)]

_CHECKED_AT = "rtframe.django.user_checked_at"


def _reload_user(session_key: str | None) -> Any:
    if session_key is None:
        return None
    return auth.get_user(_HandshakeRequest(_load_session(session_key))).pk  # type: ignore[arg-type]


_reload_user_async = database_sync_to_async(_reload_user)


async def verified_user(
    conn: Connection,
    user: CurrentUser,
    session: Annotated[SessionBase, Depends(connection_session)],
) -> AbstractBaseUser:
    """The logged-in user, re-checked against the session store now and then.

    An anonymous user is refused with 4401, like `LoginRequired`. Then, at most every
    `settings.RTFRAME["USER_RECHECK_SECONDS"]` seconds (default 60; 0 checks every
    message), the session is loaded again and Django's `get_user` run on it: if the user
    logged out, was deactivated or changed password meanwhile, the connection is closed
    with 4401.
    """
    if not user.is_authenticated:
        raise Reject(CLOSE_LOGIN_REQUIRED, "login required")
    interval = float(rtframe_settings().get("USER_RECHECK_SECONDS", 60))
    now = time.monotonic()
    checked_at = conn.scope.setdefault(_CHECKED_AT, now)
    if now - checked_at < interval:
        return user
    conn.scope[_CHECKED_AT] = now
    if await _reload_user_async(session.session_key) != user.pk:
        logger.info("closing %r: the session of user %s ended", conn, user.pk)
        raise Reject(CLOSE_LOGIN_REQUIRED, "session ended")
    return user


#: Like `LoginRequired`, but a connection whose session ended elsewhere (logout, password
#: change, deactivation) is closed with 4401 within `RTFRAME["USER_RECHECK_SECONDS"]`.
VerifiedUser = Annotated[AbstractBaseUser, Depends(verified_user, scope="message")]

#: The connection's Django session (a `SessionBase`); changes are saved after the handler.
Session = Annotated[SessionBase, Depends(message_session, scope="message")]


def _security_scheme() -> dict[str, str]:
    name = settings.SESSION_COOKIE_NAME if settings.configured else "sessionid"
    return {"type": "httpApiKey", "in": "cookie", "name": name}


def _mark_secured(fn: Any) -> None:
    # Read by the AsyncAPI generator to declare the session cookie as a security scheme.
    # A callable, so the cookie name is read from settings when the document is made.
    fn.__rtframe_security__ = _security_scheme


async def require_login(user: CurrentUser) -> AbstractBaseUser:
    """The logged-in user; refuses an anonymous one with close code 4401 (HTTP 403)."""
    if not user.is_authenticated:
        raise Reject(CLOSE_LOGIN_REQUIRED, "login required")
    return user


_mark_secured(require_login)
_mark_secured(verified_user)

#: A logged-in user, or the handshake is refused: `async def join(conn, user: LoginRequired)`.
LoginRequired = Annotated[AbstractBaseUser, Depends(require_login)]


class _PermissionHolder(Protocol):
    def has_perms(self, perm_list: Any, obj: Any = None) -> bool: ...


def permission_required(*perms: str) -> Any:
    """A dependency giving the user, or refusing the connection if a permission is missing.

    Use it inside `Annotated` (`user: Annotated[User, permission_required("chat.add_message")]`)
    or as a default (`user: User = permission_required("chat.add_message")`). An anonymous user is
    refused with 4401, a user without every permission with 4403 (HTTP 403 on the
    handshake). Permissions are checked once per connection, with `user.has_perms`.

    Args:
        *perms: permission names as `"app_label.codename"`.

    Raises:
        ConfigurationError: no permission, or one not written as `app_label.codename`.
    """
    if not perms:
        raise ConfigurationError("permission_required() needs at least one permission")
    for perm in perms:
        if not isinstance(perm, str) or perm.count(".") != 1:
            raise ConfigurationError(
                f"permission_required({perm!r}): write permissions as 'app_label.codename'"
            )
    shown = ", ".join(perms)

    async def require_permissions(user: LoginRequired) -> AbstractBaseUser:
        holder: _PermissionHolder = user  # type: ignore[assignment]
        if not await database_sync_to_async(holder.has_perms)(perms):
            raise Reject(CLOSE_PERMISSION_DENIED, f"permission denied: needs {shown}")
        return user

    require_permissions.__qualname__ = f"permission_required({shown})"
    _mark_secured(require_permissions)
    return Depends(require_permissions)


__all__ = [
    "CLOSE_LOGIN_REQUIRED",
    "CLOSE_PERMISSION_DENIED",
    "CurrentUser",
    "LoginRequired",
    "Session",
    "VerifiedUser",
    "connection_session",
    "get_user",
    "message_session",
    "permission_required",
    "require_login",
    "save_session",
    "user_key",
    "verified_user",
]
