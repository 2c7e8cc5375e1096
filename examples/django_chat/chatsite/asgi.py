"""The ASGI entry point: `uvicorn chatsite.asgi:application`.

WebSockets go to rtframe, HTTP to rtframe's own routes and then to Django.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

import rtframe.django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
# Set Django up first: the realtime module imports models.
django_app = get_asgi_application()

from .chat.realtime import app as realtime  # noqa: E402

application = rtframe.django.mount(realtime, django_app)
