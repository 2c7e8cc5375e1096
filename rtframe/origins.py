"""An Origin allow-list for WebSocket handshakes: `RealtimeApp(allowed_origins=[...])`.

Browsers send cookies (and HTTP auth, and client certificates) with a WebSocket handshake
whatever page opens it, and the same-origin policy does not cover WebSockets: without a
check, a page of another site can open a socket as its visitor. A browser always sends
`Origin` on a WebSocket handshake and a page cannot forge it, so comparing it with the
sites you trust closes that hole.

An origin is compared as a whole: scheme, host and port. Allowed are

- the handshake's own origin (`same_origin=True`, the default): `http://` (`https://`
  for a `wss` handshake) followed by the `Host` header, so a page served by the app
  itself always connects;
- the listed origins: exact (`"https://app.example.com"`, `"http://127.0.0.1:8000"`), a
  subdomain pattern (`"https://*.example.com"`: the domain and any subdomain, same scheme
  and port, as in Django's `CSRF_TRUSTED_ORIGINS`), or `"*"` for any origin;
- a handshake without `Origin` (`allow_missing=True`, the default): it comes from a
  program, not a browser page, so no visitor's cookie can be abused by another site.

A refused handshake gets HTTP 403 (close 1008 before accept) and one WARNING line.
Behind a proxy that terminates TLS, run uvicorn with `--proxy-headers` (the handshake
is then `wss`) or list the public origin.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .exceptions import ConfigurationError, Reject

if TYPE_CHECKING:
    from .connection import Connection

__all__ = ["CLOSE_FORBIDDEN_ORIGIN", "AllowedOrigins", "normalise_origin", "own_origin"]

logger = logging.getLogger("rtframe")

#: Close code of a refused Origin (policy violation); sent as HTTP 403 before accept.
CLOSE_FORBIDDEN_ORIGIN = 1008


def normalise_origin(origin: str) -> str:
    """An origin as compared: trimmed, lower case, no trailing slash."""
    return origin.strip().lower().rstrip("/")


def own_origin(scope: Mapping[str, Any]) -> str | None:
    """The handshake's own origin, `http(s)://<Host header>`, or None without a Host."""
    host = None
    for name, value in scope.get("headers") or ():
        if name == b"host":
            host = value.decode("latin-1")
            break
    if not host:
        return None
    secure = scope.get("scheme") in ("wss", "https")
    return normalise_origin(f"{'https' if secure else 'http'}://{host}")


def _pattern(origin: str) -> tuple[str, str] | None:
    """(scheme, ".domain[:port]") for a subdomain pattern such as `https://*.example.com`."""
    parts = urlsplit(origin)
    if not parts.netloc.startswith("*."):
        return None
    return parts.scheme, parts.netloc[1:]


class AllowedOrigins:
    """A handshake check that refuses browsers' handshakes from sites not listed.

    Args:
        origins: exact origins, subdomain patterns (`"https://*.example.com"`) or `"*"`.
        same_origin: also allow the handshake's own origin (a page served by this host).
        allow_missing: allow a handshake without `Origin` (not sent by a browser).

    Raises:
        ConfigurationError: `origins` is a string, or an entry is not `scheme://host[:port]`.
    """

    __slots__ = ("allow_missing", "any", "exact", "patterns", "same_origin")

    def __init__(
        self,
        origins: Iterable[str] = (),
        *,
        same_origin: bool = True,
        allow_missing: bool = True,
    ) -> None:
        if isinstance(origins, str):
            raise ConfigurationError(
                f"allowed_origins must be a list of origins, not the string {origins!r}"
            )
        self.same_origin = same_origin
        self.allow_missing = allow_missing
        self.any = False
        self.exact: set[str] = set()
        self.patterns: list[tuple[str, str]] = []
        for raw in origins:
            origin = normalise_origin(raw)
            if origin == "*":
                self.any = True
                continue
            parts = urlsplit(origin)
            if not parts.scheme or not parts.netloc or parts.path or parts.query:
                raise ConfigurationError(
                    f"allowed origin {raw!r}: write it as scheme://host[:port], "
                    "such as 'https://example.com' or 'https://*.example.com'"
                )
            pattern = _pattern(origin)
            if pattern is None:
                self.exact.add(origin)
            else:
                self.patterns.append(pattern)

    def __repr__(self) -> str:
        shown = sorted(self.exact) + [f"{s}://*{d}" for s, d in self.patterns]
        return f"AllowedOrigins({['*'] if self.any else shown}, same_origin={self.same_origin})"

    def allows(self, origin: str, own: str | None = None) -> bool:
        """Whether a handshake with this `Origin` may proceed; `own` is its own origin."""
        origin = normalise_origin(origin)
        if self.any or origin in self.exact:
            return True
        if self.same_origin and own is not None and origin == own:
            return True
        if self.patterns:
            parts = urlsplit(origin)
            for scheme, domain in self.patterns:
                # as Django's is_same_domain: any subdomain, or the domain itself
                if parts.scheme == scheme and (
                    parts.netloc.endswith(domain) or parts.netloc == domain[1:]
                ):
                    return True
        return False

    async def __call__(self, conn: Connection) -> None:
        """Raise `Reject` (1008, HTTP 403) unless the handshake's Origin is allowed."""
        origin = conn.headers.get("origin")
        if origin is None:
            if self.allow_missing:
                return
            reason = "no Origin header"
        elif self.allows(origin, own_origin(conn.scope)):
            return
        else:
            reason = f"Origin {origin!r} is not allowed ({self!r})"
        client = conn.client
        logger.warning(
            "refused WebSocket %s from %s: %s",
            conn.path,
            f"{client[0]}:{client[1]}" if client else "an unknown client",
            reason,
        )
        raise Reject(CLOSE_FORBIDDEN_ORIGIN, "Origin not allowed")
