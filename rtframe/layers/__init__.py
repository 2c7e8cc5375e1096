"""Channel layers: how group and direct frames travel between the processes of an app.

`InMemoryLayer` (the default, one process) and `Layer` (the contract, in `base`) are
imported with rtframe. `RedisLayer` is imported on first use (`from rtframe.layers import
RedisLayer`), so the `redis` package is needed only by apps that use it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .base import Layer, Position, Receiver
from .memory import InMemoryLayer

if TYPE_CHECKING:
    from .redis import RedisLayer

__all__ = ["InMemoryLayer", "Layer", "Position", "Receiver", "RedisLayer"]


def __getattr__(name: str) -> Any:
    if name == "RedisLayer":
        from .redis import RedisLayer

        return RedisLayer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
