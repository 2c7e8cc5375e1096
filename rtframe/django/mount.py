"""Serve rtframe beside a Django project from one ASGI application."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import cast

from ..app import RealtimeApp
from ..types import ASGIApp
from .logout import track
from .origin import OriginCheck, origin_check_enabled


def mount(
    app: RealtimeApp, django_app: Callable[..., Awaitable[None]] | None = None
) -> RealtimeApp:
    """Put a realtime app in front of Django: the one call `asgi.py` needs.

    WebSocket handshakes go to `app`; HTTP requests go to `app`'s own routes (such as
    its AsyncAPI page) and then to Django; lifespan events are answered by `app`
    (starting its layer), since Django's ASGI handler does not speak lifespan. Unless
    `settings.RTFRAME["CHECK_ORIGIN"]` is False, every handshake's Origin is checked as
    Django's CSRF check does (or against `RTFRAME["ALLOWED_ORIGINS"]`) before any connect handler
    runs. A logout (or a password change) handled by this process closes the user's
    sockets in every process (`rtframe.django.end_sessions`). Calling it twice adds the
    check once.

    Args:
        app: the realtime app, usually made with `rtframe.django.create_app`.
        django_app: Django's ASGI application; `get_asgi_application()` when omitted.
            Call `get_asgi_application()` before importing modules that import models.

    Returns:
        `app`, now serving everything: `application = mount(realtime_app)`.
    """
    if django_app is None:
        from django.core.asgi import get_asgi_application

        django_app = cast(ASGIApp, get_asgi_application())
    if origin_check_enabled() and not any(
        isinstance(check, OriginCheck) for check in app.handshake_checks
    ):
        check = OriginCheck()
        check.allows("http://settings.check")  # read ALLOWED_ORIGINS now: bad values fail here
        app.add_handshake_check(check)
    track(app)  # a logout in this process reaches the app's sockets, in every process
    return app.mount_beside(cast(ASGIApp, django_app))


__all__ = ["mount"]
