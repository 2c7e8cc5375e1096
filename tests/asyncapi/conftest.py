from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from .checks import ROOT, parser_diagnostics

# calls that return the app to serve: a RealtimeApp, or one mounted beside Django
_APP_CALLS = {"RealtimeApp", "mount_beside", "mount"}


def import_root(path: Path) -> Path:
    """The directory a module is imported from: the first parent that is not a package."""
    root = path.parent
    while (root / "__init__.py").exists():
        root = root.parent
    return root


def example_targets() -> list[str]:
    """`[dir::]module:attr` of every app the examples serve, found by reading (not
    importing) them; `dir` is the import root when it is not the repository's.

    An app is a module-level assignment of `RealtimeApp(...)`, `<x>.mount_beside(...)` or
    `rtframe.django.mount(...)`; so a new example is validated without anyone adding it
    here (test_every_example_directory_is_discovered checks that).
    """
    targets = []
    for path in sorted((ROOT / "examples").rglob("*.py")):
        if "test" in path.name:
            continue
        tree = ast.parse(path.read_text(), str(path))
        for node in tree.body:
            if not isinstance(node, ast.Assign | ast.AnnAssign) or not isinstance(
                node.value, ast.Call
            ):
                continue
            func = node.value.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name not in _APP_CALLS:
                continue
            root = import_root(path)
            module = ".".join(path.relative_to(root).with_suffix("").parts)
            prefix = "" if root == ROOT else f"{root.relative_to(ROOT)}::"
            names = node.targets if isinstance(node, ast.Assign) else [node.target]
            targets += [f"{prefix}{module}:{t.id}" for t in names if isinstance(t, ast.Name)]
    return targets


def cli_document(target: str, *args: str) -> dict[str, Any]:
    """The document `python -m rtframe asyncapi TARGET` prints, in a fresh process run
    from the target's import root."""
    where, _, target = target.rpartition("::")
    proc = subprocess.run(
        [sys.executable, "-m", "rtframe", "asyncapi", target, *args],
        cwd=ROOT / where,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"rtframe asyncapi {target} failed:\n{proc.stderr}"
    document: dict[str, Any] = json.loads(proc.stdout)
    return document


FEATURE_APP = "tests.asyncapi.feature_app:app"
#: SSE endpoints beside WebSocket routes (tests/asyncapi/sse_feature_app.py)
SSE_FEATURE_APP = "tests.asyncapi.sse_feature_app:app"


@pytest.fixture(scope="session")
def judged() -> dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]:
    """Every example app's document and the feature apps', with the parser's diagnostics.

    One parser run for all of them: starting Node and loading the parser is the slow part.
    """
    targets = [FEATURE_APP, SSE_FEATURE_APP, *example_targets()]
    documents = [cli_document(t) for t in targets]
    diagnostics = parser_diagnostics(*documents)
    return {t: (d, diag) for t, d, diag in zip(targets, documents, diagnostics, strict=True)}


@pytest.fixture
def examples_root() -> Path:
    return ROOT / "examples"
