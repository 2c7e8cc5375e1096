"""`"rtframe.django"` in `INSTALLED_APPS`: every process of the project closes the sockets
of the sessions it ends (logout, password change), not only those that import
`rtframe.django` (asgi.py does): management commands, WSGI servers, Celery workers.

It has no models, migrations or templates.
"""

from __future__ import annotations

from django.apps import AppConfig

from .logout import connect_signals


class RtframeConfig(AppConfig):
    """Connects the signal receivers of `rtframe.django.logout` when Django starts."""

    name = "rtframe.django"
    label = "rtframe"
    verbose_name = "rtframe"

    def ready(self) -> None:
        connect_signals()


__all__ = ["RtframeConfig"]
