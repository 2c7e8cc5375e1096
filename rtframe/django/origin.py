"""The Origin check that stops cross-site WebSocket hijacking.

Browsers send cookies with a WebSocket handshake whatever page opened it, and the
same-origin policy does not apply to WebSockets. Without this check, a page on another
site could open a socket to this one and act as the visitor's logged-in user. Browsers
always send `Origin` on a WebSocket handshake and pages cannot forge it, so comparing
it with this site's hosts closes that hole.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from urllib.parse import urlsplit

from django.conf import settings
from django.http.request import split_domain_port, validate_host

from ..connection import Connection
from ..exceptions import Reject
from .conf import rtframe_settings

logger = logging.getLogger("rtframe.django")

#: Close code of a refused Origin: 1008 (policy violation). Before the handshake is
#: accepted the server answers HTTP 403 instead.
CLOSE_FORBIDDEN_ORIGIN = 1008

#: Set in the connection scope once a handshake's Origin passed the check.
ORIGIN_CHECKED = "rtframe.origin_checked"

# What Django's request.get_host() accepts when DEBUG is on and ALLOWED_HOSTS is empty.
_DEBUG_HOSTS = (".localhost", "127.0.0.1", "[::1]")


class OriginCheck:
    """Refuse handshakes whose `Origin` header is missing or names another site.

    Args:
        allowed_origins: exact origins such as `"https://example.com:8443"`, or `"*"` for
            any origin (the header must still be present). When None, the origin's host
            must match `settings.ALLOWED_HOSTS`, exactly as Django validates the `Host`
            of an HTTP request; `settings.RTFRAME["ALLOWED_ORIGINS"]` is used if set.
    """

    __slots__ = ("_origins",)

    def __init__(self, allowed_origins: Sequence[str] | None = None) -> None:
        self._origins = (
            None if allowed_origins is None else _normalise(allowed_origins, "allowed_origins")
        )

    def __repr__(self) -> str:
        shown = "ALLOWED_HOSTS" if self._origins is None else sorted(self._origins)
        return f"OriginCheck({shown})"

    async def __call__(self, conn: Connection) -> None:
        """Raise `Reject` unless the handshake's Origin is allowed; a handshake check."""
        origin = conn.headers.get("origin")
        if origin is None:
            logger.warning(
                "refused WebSocket %s from %s: no Origin header (browsers always send one; "
                "other clients must send this site's origin)",
                conn.path,
                _peer(conn),
            )
            raise Reject(CLOSE_FORBIDDEN_ORIGIN, "missing Origin header")
        if not self.allows(origin):
            logger.warning(
                "refused WebSocket %s from %s: Origin %r is not allowed (%s)",
                conn.path,
                _peer(conn),
                origin,
                "settings.RTFRAME['ALLOWED_ORIGINS']"
                if self._allowed_origins() is not None
                else "host not in settings.ALLOWED_HOSTS",
            )
            raise Reject(CLOSE_FORBIDDEN_ORIGIN, "Origin not allowed")
        conn.scope[ORIGIN_CHECKED] = True

    def allows(self, origin: str) -> bool:
        """Whether a handshake with this `Origin` header may proceed."""
        origin = origin.strip().lower().rstrip("/")
        explicit = self._allowed_origins()
        if explicit is not None:
            return "*" in explicit or origin in explicit
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False  # "null" (sandboxed frames, file://) and other oddities
        domain, _port = split_domain_port(parts.netloc)
        allowed = list(settings.ALLOWED_HOSTS)
        if settings.DEBUG and not allowed:
            allowed = list(_DEBUG_HOSTS)
        return bool(domain) and validate_host(domain, allowed)

    def _allowed_origins(self) -> frozenset[str] | None:
        if self._origins is not None:
            return self._origins
        configured = rtframe_settings().get("ALLOWED_ORIGINS")
        if configured is None:
            return None
        return _normalise(configured, 'settings.RTFRAME["ALLOWED_ORIGINS"]')


def origin_check_enabled() -> bool:
    """`settings.RTFRAME["CHECK_ORIGIN"]`, True unless a project turns it off."""
    return bool(rtframe_settings().get("CHECK_ORIGIN", True))


async def ensure_origin_checked(conn: Connection) -> None:
    """Check the Origin now unless a handshake check already did (or it is turned off).

    The session dependency calls this, so a cookie is never trusted on a cross-site
    socket even when the app was mounted without `rtframe.django.mount`.
    """
    if not conn.scope.get(ORIGIN_CHECKED) and origin_check_enabled():
        await OriginCheck()(conn)


def _normalise(origins: Sequence[str], where: str) -> frozenset[str]:
    if isinstance(origins, str):
        raise TypeError(f"{where} must be a list of origins, not the string {origins!r}")
    return frozenset(o.strip().lower().rstrip("/") for o in origins)


def _peer(conn: Connection) -> str:
    client = conn.client
    return f"{client[0]}:{client[1]}" if client else "an unknown client"


__all__ = ["CLOSE_FORBIDDEN_ORIGIN", "OriginCheck", "ensure_origin_checked", "origin_check_enabled"]
