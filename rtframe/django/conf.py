"""rtframe's Django settings: the `RTFRAME` dict in the project's settings module.

    RTFRAME = {
        "LAYER": {                                      # absent or URL None: in-memory
            "URL": "redis://127.0.0.1:6379/0",
            "OPTIONS": {"prefix": "myproject"},         # RedisLayer's keyword arguments
        },
        "MAX_MESSAGE_SIZE": 64 * 1024,                  # bytes; larger frames close with 1009
        "OUTBOX_LIMIT": 256,                            # frames queued for a slow client
        "OVERFLOW": "drop_oldest",                      # or "close"
        "CHECK_ORIGIN": True,                           # refuse foreign or missing Origin
        "ALLOWED_ORIGINS": ["https://example.com"],     # default: Django's CSRF Origin rules
        "USER_RECHECK_SECONDS": 60,                     # how often VerifiedUser re-reads
    }

Settings are read when they are used (the app is created, a handshake is checked), so
`override_settings` in tests takes effect.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Mapping
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from ..app import RealtimeApp
from ..exceptions import ConfigurationError
from ..http_routing import HTTPRouter
from ..layers.base import Layer
from ..layers.memory import InMemoryLayer
from ..limits import Limits
from ..routing import WebSocketRouter
from ..sse import SSERouter
from .userkey import user_key

KNOWN_KEYS = frozenset(
    {
        "ALLOWED_ORIGINS",
        "CHECK_ORIGIN",
        "DESCRIPTION",
        "LAYER",
        "MAX_MESSAGE_SIZE",
        "OUTBOX_LIMIT",
        "OVERFLOW",
        "TITLE",
        "USER_RECHECK_SECONDS",
        "VERSION",
    }
)
_APP_OPTIONS = {
    "MAX_MESSAGE_SIZE": "max_message_size",
    "OUTBOX_LIMIT": "outbox_limit",
    "OVERFLOW": "overflow",
    "TITLE": "title",
    "VERSION": "version",
    "DESCRIPTION": "description",
}


def rtframe_settings() -> Mapping[str, Any]:
    """The project's `RTFRAME` setting, checked for unknown keys (typos fail loudly)."""
    conf = getattr(settings, "RTFRAME", None) or {}
    if not isinstance(conf, Mapping):
        raise ConfigurationError(f"settings.RTFRAME must be a dict, not {type(conf).__name__}")
    unknown = sorted(set(conf) - KNOWN_KEYS)
    if unknown:
        raise ConfigurationError(
            f"settings.RTFRAME has unknown key(s) {', '.join(unknown)}; "
            f"known keys: {', '.join(sorted(KNOWN_KEYS))}"
        )
    return conf


def layer_from_settings(conf: Mapping[str, Any] | None = None) -> Layer:
    """Build the layer `RTFRAME["LAYER"]` describes.

    `{"URL": "redis://..."}` gives a `RedisLayer` (imported only then, so the in-memory
    default needs no Redis client), with `OPTIONS` as its keyword arguments (`prefix`,
    which starts every Redis key and channel name, `ping_interval`, ...); no `LAYER`, or
    a `URL` of None or `"memory://"`, gives an `InMemoryLayer` (one process: `OPTIONS`
    are not used); `{"BACKEND": "dotted.path.Layer", "OPTIONS": {...}}` builds any other
    layer class with those keyword arguments.

    Raises:
        ConfigurationError: an unknown key, a URL scheme rtframe has no layer for, or
            `OPTIONS` the layer class does not take.
    """
    conf = rtframe_settings() if conf is None else conf
    layer = conf.get("LAYER") or {}
    if not isinstance(layer, Mapping):
        raise ConfigurationError('settings.RTFRAME["LAYER"] must be a dict such as {"URL": ...}')
    unknown = sorted(set(layer) - {"URL", "BACKEND", "OPTIONS"})
    if unknown:
        raise ConfigurationError(
            f'settings.RTFRAME["LAYER"] has unknown key(s) {", ".join(unknown)}; '
            "use URL, or BACKEND, with OPTIONS for the layer's keyword arguments "
            '(the Redis key prefix: {"URL": "redis://...", "OPTIONS": {"prefix": "myproject"}})'
        )
    options = layer.get("OPTIONS") or {}
    if not isinstance(options, Mapping):
        raise ConfigurationError(
            'settings.RTFRAME["LAYER"]["OPTIONS"] must be a dict of the layer\'s keyword '
            'arguments, such as {"prefix": "myproject"}'
        )
    options = dict(options)
    backend = layer.get("BACKEND")
    if backend:
        cls = import_string(backend)
        if layer.get("URL"):
            options["url"] = layer["URL"]
        built = _build(cls, options, backend)
        if not isinstance(built, Layer):
            raise ConfigurationError(f"{backend} is not an rtframe Layer")
        return built
    url = layer.get("URL")
    if not url or url == "memory://":
        return InMemoryLayer()  # one process, no shared namespace: OPTIONS mean nothing
    if url.startswith(("redis://", "rediss://", "unix://")):
        # Imported by name, and only here: the in-memory default needs no Redis client.
        redis_layer: type[Layer] = import_string("rtframe.layers.redis.RedisLayer")
        built_redis: Layer = _build(redis_layer, {"url": url, **options}, "RedisLayer")
        return built_redis
    raise ConfigurationError(
        f'settings.RTFRAME["LAYER"]["URL"] = {url!r}: use redis://, rediss://, unix:// or memory://'
    )


def _build(cls: Any, options: dict[str, Any], name: str) -> Any:
    """`cls(**options)`, with a misspelt option reported as the setting it came from."""
    try:
        inspect.signature(cls).bind(**options)
    except TypeError as exc:
        raise ConfigurationError(
            f'settings.RTFRAME["LAYER"]["OPTIONS"] does not fit {name}: {exc}'
        ) from None
    return cls(**options)


def create_app(
    routers: Iterable[WebSocketRouter | SSERouter | HTTPRouter] = (), **overrides: Any
) -> RealtimeApp:
    """Create a `RealtimeApp` configured from `settings.RTFRAME`.

    Unless `limits` is given, the default `Limits` apply with the per-user limit keyed by
    the Django user (`rtframe.django.user_key`).

    Args:
        routers: the WebSocket, SSE and HTTP routers to serve.
        **overrides: `RealtimeApp` keyword arguments that win over the settings.

    Returns:
        The app; mount it beside Django with `rtframe.django.mount`.
    """
    conf = rtframe_settings()
    kwargs: dict[str, Any] = {
        option: conf[key] for key, option in _APP_OPTIONS.items() if key in conf
    }
    if "layer" not in overrides:
        kwargs["layer"] = layer_from_settings(conf)
    kwargs["limits"] = Limits(user_key=user_key)
    kwargs.update(overrides)
    return RealtimeApp(routers, **kwargs)


__all__ = ["create_app", "layer_from_settings", "rtframe_settings"]
