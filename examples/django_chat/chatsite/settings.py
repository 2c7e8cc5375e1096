"""Settings of the chat example: a plain Django project plus the `RTFRAME` dict.

Environment variables: `DJANGO_CHAT_DB` (sqlite file, default db.sqlite3 here),
`REDIS_URL` (use the Redis layer, for several server processes, and run the tasks in
`rtframe worker` processes), `RTFRAME_PREFIX` (the prefix of its channels and keys, the
tasks' too), `DJANGO_DEBUG=0`.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent

# A development key: a real deployment reads its own from the environment.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "django-insecure-rtframe-chat-example")
DEBUG = os.environ.get("DJANGO_DEBUG", "1") == "1"
# The WebSocket Origin check accepts pages served from these hosts (see docs/django.md).
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # every process (commands too) closes the sockets of the sessions it ends
    "rtframe.django",
    "chatsite.chat",
]
if importlib.util.find_spec("django.tasks") is None:
    # Django 4.2-5.x: Django's Tasks API comes from the django-tasks backport
    INSTALLED_APPS.append("django_tasks")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    # a view that flushes a session closes its sockets (logout and login need no middleware)
    "rtframe.django.SessionEndMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "chatsite.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

ASGI_APPLICATION = "chatsite.asgi.application"

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": os.environ.get("DJANGO_CHAT_DB", str(BASE_DIR / "db.sqlite3")),
    }
}

AUTH_PASSWORD_VALIDATORS: list[dict[str, str]] = []  # an example: any password will do

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "rooms"
LOGOUT_REDIRECT_URL = "login"

# rtframe reads its settings here. Without REDIS_URL the in-memory layer serves one
# process; with it, any number of uvicorn workers share groups through Redis.
RTFRAME = {
    # the prefix keeps two projects on one Redis apart (their groups, their logouts)
    "LAYER": {
        "URL": os.environ.get("REDIS_URL"),
        "OPTIONS": {"prefix": os.environ.get("RTFRAME_PREFIX", "rtframe")},
    },
    "MAX_MESSAGE_SIZE": 16 * 1024,
    "TITLE": "Django chat",
}

# Django's standard `@task` functions (chat/tasks.py) run on rtframe's task engine: in
# the server process without REDIS_URL, in `rtframe worker` processes with it.
TASKS = {
    "default": {
        "BACKEND": "rtframe.django.tasks.RtframeTaskBackend",
        "OPTIONS": {"TASKS": "chatsite.chat.realtime.tasks"},  # the rtframe Tasks
    }
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"rtframe": {"handlers": ["console"], "level": "INFO"}},
}
