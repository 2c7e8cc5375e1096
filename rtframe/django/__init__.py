"""Django integration: users and sessions as dependencies, guards, Origin checks, mounting.

    # myproject/asgi.py
    import rtframe.django                       # at any time: needs no configured Django
    django_app = get_asgi_application()
    from chat.realtime import app as realtime   # after: create_app reads the settings
    application = rtframe.django.mount(realtime, django_app)

    # chat/realtime.py
    app = rtframe.django.create_app([ws])       # configured from settings.RTFRAME

    @ws.route("/ws/chat/{room}")
    async def join(conn: Connection, room: str, user: LoginRequired) -> None: ...

Requires Django (`pip install 'rtframe[django]'`).
"""

from __future__ import annotations

try:
    import django  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "rtframe.django needs Django: pip install 'rtframe[django]'", name=exc.name
    ) from exc

from .auth import (
    CLOSE_LOGIN_REQUIRED,
    CLOSE_PERMISSION_DENIED,
    CurrentUser,
    LoginRequired,
    Session,
    VerifiedUser,
    connection_session,
    get_user,
    permission_required,
    require_login,
    save_session,
    user_key,
    verified_user,
)
from .conf import create_app, layer_from_settings, rtframe_settings
from .db import database_sync_to_async
from .logout import CLOSE_SESSION_ENDED, SessionEndMiddleware, connect_signals, end_sessions
from .mount import mount
from .origin import CLOSE_FORBIDDEN_ORIGIN, OriginCheck

__all__ = [
    "CLOSE_FORBIDDEN_ORIGIN",
    "CLOSE_LOGIN_REQUIRED",
    "CLOSE_PERMISSION_DENIED",
    "CLOSE_SESSION_ENDED",
    "CurrentUser",
    "LoginRequired",
    "OriginCheck",
    "Session",
    "SessionEndMiddleware",
    "VerifiedUser",
    "connection_session",
    "create_app",
    "database_sync_to_async",
    "end_sessions",
    "get_user",
    "layer_from_settings",
    "mount",
    "permission_required",
    "require_login",
    "rtframe_settings",
    "save_session",
    "user_key",
    "verified_user",
]

# A logout, a login over another session, a password change: close the user's sockets.
connect_signals()
