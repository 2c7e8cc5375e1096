"""Django settings of the Channels side of `benchmarks/tasks.py` (a module, because
`python -m django runworker` reads DJANGO_SETTINGS_MODULE).

BENCH_REDIS_URL is the benchmark's private Redis, shared by uvicorn and every runworker.
"""

from __future__ import annotations

import os

DEBUG = False
SECRET_KEY = "benchmark-only"
ALLOWED_HOSTS = ["*"]
INSTALLED_APPS = ["channels"]
USE_TZ = True
ASGI_APPLICATION = "benchmarks.apps.tasks_chan.application"
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_redis.core.RedisChannelLayer",
        "CONFIG": {
            # no socket timeout: the 5 s default kills an idle BZPOPMIN (as in fanout_redis)
            "hosts": [
                {
                    "address": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0"),
                    "socket_timeout": None,
                }
            ],
            # the default (100 messages per channel) refuses a burst of enqueues with
            # ChannelFull: the throughput case enqueues thousands ahead of the workers
            "capacity": 1_000_000,
        },
    }
}
# runworker says it started at INFO ("Running worker for channels ..."): the benchmark
# waits for that line
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django.channels.worker": {"handlers": ["console"], "level": "INFO"}},
}
