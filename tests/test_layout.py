"""The package's layout rules, checked on the source tree.

- Every public module (no part of its name starts with `_`) defines `__all__`; every name
  in it exists and the list is sorted the way ruff's RUF022 sorts it (constants, then
  classes, then the rest). The package root is checked by `test_exports.py`, which also
  checks that its `__all__` is complete.
- No module under `rtframe/` is over 500 lines.
- `import rtframe` imports neither redis nor django: both are optional extras.
- No import cycle between rtframe modules, counting imports inside functions and under
  `if TYPE_CHECKING:`. import-linter (`lint-imports`, pyproject.toml) checks cycles between
  siblings at every depth and the layering; this test also catches a package and one of
  its own submodules importing each other, which a siblings check cannot see.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

import rtframe

MAX_LINES = 500
PACKAGE_DIR = Path(rtframe.__file__).parent


def _raise(name: str) -> None:
    raise ImportError(f"cannot import {name} while walking rtframe")


def _public_modules() -> list[str]:
    names = [info.name for info in pkgutil.walk_packages(rtframe.__path__, "rtframe.", _raise)]
    return sorted(n for n in names if not any(p.startswith("_") for p in n.split(".")))


def _ruff_sort_key(name: str) -> tuple[int, list[tuple[int, int | str]]]:
    """RUF022's "isort-style" order: SCREAMING_CASE, then CamelCase, then the rest, each
    in natural order (digit runs compared as numbers)."""
    if len(name) > 1 and name.upper() == name and name.lower() != name:
        kind = 0
    elif name[:1].isupper():
        kind = 1
    else:
        kind = 2
    natural = [
        (0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part
    ]
    return kind, natural


@pytest.mark.parametrize("name", _public_modules())
def test_public_module_has_a_sorted_all_of_existing_names(name: str) -> None:
    module = importlib.import_module(name)
    exported = getattr(module, "__all__", None)
    assert exported is not None, f"{name} is public but defines no __all__"
    assert all(isinstance(item, str) for item in exported), f"{name}.__all__ holds a non-string"
    missing = [item for item in exported if not hasattr(module, item)]
    assert not missing, f"{name}.__all__ names what the module does not define: {missing}"
    assert len(set(exported)) == len(exported), f"{name}.__all__ repeats a name"
    assert list(exported) == sorted(exported, key=_ruff_sort_key), (
        f"{name}.__all__ is not sorted; expected {sorted(exported, key=_ruff_sort_key)}"
    )


def test_every_package_is_walked() -> None:
    # a sanity check of the walk above: it sees subpackages, not only top-level modules
    public = _public_modules()
    assert "rtframe.app" in public
    assert any(name.startswith("rtframe.layers.") for name in public)
    assert any(name.startswith("rtframe.asyncapi.") for name in public)


def test_no_module_is_over_500_lines() -> None:
    too_long = {}
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        lines = len(path.read_text(encoding="utf-8").splitlines())
        if lines > MAX_LINES:
            too_long[str(path.relative_to(PACKAGE_DIR.parent))] = lines
    assert not too_long, f"modules over {MAX_LINES} lines (split them): {too_long}"


def test_import_rtframe_imports_neither_redis_nor_django() -> None:
    code = (
        "import sys, rtframe\n"
        "print(' '.join(sorted({m.split('.')[0] for m in sys.modules} & {'redis', 'django'})))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == [], f"`import rtframe` imported: {done.stdout.strip()}"


def _strongly_connected(graph: grimp.ImportGraph) -> list[list[str]]:
    """Tarjan's algorithm, iterative; the components of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append(
                        (child, iter(sorted(graph.find_modules_directly_imported_by(child))))
                    )
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_import_cycle_between_rtframe_modules() -> None:
    graph = grimp.build_graph("rtframe", exclude_type_checking_imports=False, cache_dir=None)
    cycles = _strongly_connected(graph)
    report = []
    for component in cycles:
        members = set(component)
        for importer in component:
            for imported in sorted(graph.find_modules_directly_imported_by(importer) & members):
                lines = sorted(
                    d["line_number"]
                    for d in graph.get_import_details(importer=importer, imported=imported)
                )
                report.append(f"{importer} -> {imported} (line {', '.join(map(str, lines))})")
    assert not cycles, "import cycles between rtframe modules:\n" + "\n".join(report)
