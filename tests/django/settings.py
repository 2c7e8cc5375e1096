"""Django settings for rtframe's Django tests: the chat example's, made fast."""

from __future__ import annotations

from importlib import import_module

# The example project is the test project (conftest puts it on sys.path).
globals().update({k: v for k, v in vars(import_module("chatsite.settings")).items() if k.isupper()})

# Hashing with PBKDF2's full iteration count would dominate the run.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
LOGGING: dict[str, object] = {"version": 1, "disable_existing_loggers": False}

# In-process tests run the example on the in-memory layer and the in-process task engine,
# whatever REDIS_URL says (scripts/test exports it): the same run here and in CI. Tests
# that want Redis serve the example from a subprocess given REDIS_URL (conftest.py).
RTFRAME = {**globals()["RTFRAME"], "LAYER": {}}
