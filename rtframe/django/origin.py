"""The Origin check that stops cross-site WebSocket hijacking.

Browsers send cookies with a WebSocket handshake whatever page opened it, and the
same-origin policy does not apply to WebSockets. Without this check, a page on another
site could open a socket to this one and act as the visitor's logged-in user. Browsers
always send `Origin` on a WebSocket handshake and pages cannot forge it, so comparing
it with this site's origins closes that hole.

The comparison is the one Django's CSRF middleware makes for a POST with an `Origin`
header (`CsrfViewMiddleware._origin_verified`): scheme, host and port, never the host
alone. Allowed are the handshake's own origin (`https://` for a secure handshake, as
`request.is_secure()` decides with `SECURE_PROXY_SSL_HEADER`, then the `Host` validated
against `ALLOWED_HOSTS` as `request.get_host()` does), the exact origins of
`CSRF_TRUSTED_ORIGINS`, and its subdomain patterns (`https://*.example.com`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.utils.http import is_same_domain

from ..connection import Connection
from ..exceptions import Reject
from ..origins import CLOSE_FORBIDDEN_ORIGIN, AllowedOrigins, normalise_origin
from .conf import rtframe_settings

logger = logging.getLogger("rtframe.django")

#: Set in the connection scope once a handshake's Origin passed the check.
ORIGIN_CHECKED = "rtframe.origin_checked"


class _HandshakeRequest(HttpRequest):
    """The handshake as Django sees an HTTP request: enough for `get_host` and `scheme`."""

    def __init__(self, scope: Mapping[str, Any]) -> None:
        super().__init__()
        self._secure = scope.get("scheme") in ("wss", "https")
        meta: dict[str, Any] = {}
        server = scope.get("server")
        if server:
            meta["SERVER_NAME"], meta["SERVER_PORT"] = server[0], str(server[1])
        for raw_name, raw_value in scope.get("headers") or ():
            name = "HTTP_" + raw_name.decode("latin-1").upper().replace("-", "_")
            value = raw_value.decode("latin-1")
            meta[name] = f"{meta[name]},{value}" if name in meta else value
        self.META = meta

    def _get_scheme(self) -> str:
        return "https" if self._secure else "http"


class OriginCheck:
    """Refuse handshakes whose `Origin` header is missing or names another site.

    Args:
        allowed_origins: the origins allowed instead of Django's rules: exact ones such
            as `"https://example.com:8443"`, subdomain patterns (`"https://*.example.com"`)
            or `"*"` for any origin (the header must still be present). When None,
            `settings.RTFRAME["ALLOWED_ORIGINS"]` if set, else Django's CSRF rules: the
            handshake's own origin (its `Host` valid for `ALLOWED_HOSTS`) and
            `CSRF_TRUSTED_ORIGINS`, each compared by scheme, host and port.
    """

    __slots__ = ("_origins",)

    def __init__(self, allowed_origins: Sequence[str] | None = None) -> None:
        self._origins = (
            None if allowed_origins is None else _explicit(allowed_origins, "allowed_origins")
        )

    def __repr__(self) -> str:
        shown = "CSRF rules" if self._origins is None else repr(self._origins)
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
        refusal = self.refusal(origin, conn.scope)
        if refusal is not None:
            logger.warning(
                "refused WebSocket %s from %s: Origin %r is not allowed: %s",
                conn.path,
                _peer(conn),
                origin,
                refusal,
            )
            raise Reject(CLOSE_FORBIDDEN_ORIGIN, "Origin not allowed")
        conn.scope[ORIGIN_CHECKED] = True

    def allows(self, origin: str, scope: Mapping[str, Any] | None = None) -> bool:
        """Whether a handshake with this `Origin` may proceed; `scope` gives its own origin."""
        return self.refusal(origin, scope) is None

    def refusal(self, origin: str, scope: Mapping[str, Any] | None = None) -> str | None:
        """Why a handshake with this `Origin` is refused, or None when it may proceed."""
        explicit = self._origins
        where = "allowed_origins"
        if explicit is None:
            configured = rtframe_settings().get("ALLOWED_ORIGINS")
            if configured is not None:
                explicit = _explicit(configured, 'settings.RTFRAME["ALLOWED_ORIGINS"]')
                where = 'settings.RTFRAME["ALLOWED_ORIGINS"]'
        if explicit is not None:
            return None if explicit.allows(origin) else f"it is not in {where}"
        origin = normalise_origin(origin)
        own, host_problem = None, ""
        if scope is not None:
            request = _HandshakeRequest(scope)
            try:
                own = normalise_origin(f"{request.scheme}://{request.get_host()}")
            except DisallowedHost as exc:
                host_problem = f" ({exc})"
            if origin == own:
                return None
        trusted = settings.CSRF_TRUSTED_ORIGINS
        if origin in {normalise_origin(o) for o in trusted if "*" not in o}:
            return None
        try:
            parts = urlsplit(origin)
        except ValueError:
            return "it is not a URL"
        for pattern in (urlsplit(o) for o in trusted if "*" in o):
            if parts.scheme == pattern.scheme.lower() and is_same_domain(
                parts.netloc, pattern.netloc.lstrip("*")
            ):
                return None
        mine = f"this site's origin is {own!r}" if own else f"the Host is not allowed{host_problem}"
        return f"{mine} (scheme, host and port must match) and it is not in CSRF_TRUSTED_ORIGINS"


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


def _explicit(origins: Sequence[str], where: str) -> AllowedOrigins:
    if isinstance(origins, str):
        raise TypeError(f"{where} must be a list of origins, not the string {origins!r}")
    return AllowedOrigins(origins, same_origin=False, allow_missing=False)


def _peer(conn: Connection) -> str:
    client = conn.client
    return f"{client[0]}:{client[1]}" if client else "an unknown client"


__all__ = ["CLOSE_FORBIDDEN_ORIGIN", "OriginCheck", "ensure_origin_checked", "origin_check_enabled"]
