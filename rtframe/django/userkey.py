"""The per-user connection limit's key for Django users (`Limits.user_key`)."""

from __future__ import annotations

from .._scope import USER_SCOPE_KEY
from ..connection import Connection

#: Where `get_user` leaves the logged-in user's primary key, in the connection's scope.
USER_KEY = USER_SCOPE_KEY


def user_key(conn: Connection) -> str | None:
    """The per-user limit's key: the logged-in user's primary key, as a string.

    `Limits(user_key=rtframe.django.user_key)`, the default of `create_app`. The key is
    known once the connect handler asked for the user (`CurrentUser`, `LoginRequired`,
    `VerifiedUser`, `permission_required`); a connection whose handshake never did, or
    an anonymous one, is not counted.
    """
    key = conn.scope.get(USER_KEY)
    return key if isinstance(key, str) else None


__all__ = ["USER_KEY", "user_key"]
