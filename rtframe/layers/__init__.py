"""Messaging layers: where group and direct messages travel."""

from __future__ import annotations

from .base import Layer
from .memory import InMemoryLayer
from .redis import RedisLayer

__all__ = ["InMemoryLayer", "Layer", "RedisLayer"]
