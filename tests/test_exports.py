from __future__ import annotations

import types

import rtframe


def test_all_is_sorted_and_complete() -> None:
    assert rtframe.__all__ == sorted(rtframe.__all__)
    public = {
        name
        for name, value in vars(rtframe).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType) and name != "annotations"
    }
    assert public - set(rtframe.__all__) == set()
    for name in rtframe.__all__:
        assert hasattr(rtframe, name), name
