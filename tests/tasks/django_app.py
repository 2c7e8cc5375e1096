"""The rtframe side of the Django Tasks test: the `Tasks` Django's backend sends through,
and the target of `rtframe worker tests.tasks.django_app:tasks`.

Configured from the environment: REDIS_URL, TASKS_PREFIX, DJANGO_SETTINGS_MODULE (the
worker sets up Django here; the test process has done it already).
"""

from __future__ import annotations

import os

import django
from django.conf import settings

from rtframe.django.tasks import register
from rtframe.tasks import Tasks

if not settings.configured:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.tasks.django_settings")
    django.setup()

tasks = Tasks.redis(
    os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
    prefix=os.environ.get("TASKS_PREFIX", "rtframe-django-tasks-test"),
    poll_interval=0.05,
)
register(tasks)
