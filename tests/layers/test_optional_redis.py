"""redis is an optional extra: imported only when the Redis layer is used."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_importing_rtframe_does_not_import_redis() -> None:
    result = run(
        """
        import sys
        import rtframe, rtframe.layers, rtframe.sync
        from rtframe import InMemoryLayer, RealtimeApp
        RealtimeApp(routers=[], layer=InMemoryLayer())
        assert "redis" not in sys.modules, sorted(m for m in sys.modules if "redis" in m)
        from rtframe.layers import RedisLayer  # now it is
        assert "redis" in sys.modules and RedisLayer is rtframe.RedisLayer
        """
    )
    assert result.returncode == 0, result.stderr


def test_without_redis_the_error_names_the_extra() -> None:
    result = run(
        """
        import sys
        sys.modules["redis"] = None  # what Python does for a package that is not installed

        import rtframe, rtframe.sync
        from rtframe import InMemoryLayer, LayerError

        def names_the_extra(use):
            try:
                use()
            except ImportError as exc:
                assert "pip install 'rtframe[redis]'" in str(exc), exc
            else:
                raise AssertionError(f"{use} did not raise")

        def from_layers():
            from rtframe.layers import RedisLayer

        def from_sync():
            from rtframe.sync import SyncPublisher

        names_the_extra(lambda: rtframe.RedisLayer)
        names_the_extra(from_layers)
        names_the_extra(from_sync)
        try:  # sync code aimed at an in-memory app: the layer is the problem, not redis
            rtframe.sync.broadcast_sync("g", "x", layer=InMemoryLayer())
        except LayerError as exc:
            assert "needs a RedisLayer" in str(exc)
        print("checked")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "checked"
