"""Every code block of README.md and docs/**/*.md runs or is checked (see snippets.py).

One case per page, its id the page's path: `pytest tests/docs -k django` checks
docs/django.md.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.docs.snippets import ROOT, check_page, nav_pages, page_id, pages, parse, verdict


@pytest.mark.parametrize("path", pages(), ids=page_id)
def test_page(path: Path) -> None:
    outcome = check_page(path.read_text(), page_id(path))
    print(*outcome.log, sep="\n")
    kind, why = verdict(outcome, os.environ)
    if kind == "fail":
        pytest.fail(why, pytrace=False)
    if kind == "skip":
        pytest.skip(why)


def test_every_fence_has_a_language_and_every_skip_a_reason() -> None:
    problems = [
        error for path in pages() for error in parse(path.read_text(), page_id(path)).errors
    ]
    assert not problems, "\n".join(problems)


def test_every_page_is_in_the_nav_and_every_nav_entry_is_a_page() -> None:
    docs = ROOT / "docs"
    on_disk = {p.relative_to(docs).as_posix() for p in docs.rglob("*.md")}
    in_nav = nav_pages()
    duplicates = sorted({p for p in in_nav if in_nav.count(p) > 1})
    assert not sorted(on_disk - set(in_nav)), (
        f"pages missing from mkdocs.yml nav: {sorted(on_disk - set(in_nav))}"
    )
    assert not sorted(set(in_nav) - on_disk), (
        f"nav entries without a page: {sorted(set(in_nav) - on_disk)}"
    )
    assert not duplicates, f"pages listed twice in the nav: {duplicates}"
