"""One version, wherever it is read: pyproject, `rtframe.__version__`, `rtframe --version`."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import rtframe

ROOT = Path(__file__).resolve().parent.parent


def test_the_package_pyproject_and_command_agree_on_the_version() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    printed = subprocess.run(
        [sys.executable, "-m", "rtframe", "--version"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    assert printed == f"rtframe {declared}\n"
    assert rtframe.__version__ == declared


def test_the_changelog_has_an_entry_for_the_current_version() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## {rtframe.__version__}" in changelog
