from __future__ import annotations

import rtframe


def test_all_is_sorted_and_complete() -> None:
    assert rtframe.__all__ == sorted(rtframe.__all__)
    public = {name for name in dir(rtframe) if not name.startswith("_")}
    modules = {"app", "connection", "di", "exceptions", "groups", "http", "layers", "messages",
               "routing", "types", "testing", "django", "asyncapi", "cli", "sync"}
    assert public - modules - {"annotations"} - set(rtframe.__all__) == set()
    for name in rtframe.__all__:
        assert hasattr(rtframe, name), name
