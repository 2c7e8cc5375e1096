"""The snippet harness itself, on small in-memory pages: it must fail where a page is wrong."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.docs.snippets import Outcome, check_page, nav_pages, parse, verdict

F = "```"


def page(*parts: str) -> str:
    return "\n".join(parts) + "\n"


def test_a_failing_block_fails_with_the_page_and_its_line() -> None:
    text = page("# Title", "", f"{F}python", "x = 1", "assert x == 2, 'x is not 2'", F)
    outcome = check_page(text, "docs/bad.md")
    assert len(outcome.failures) == 1
    message = outcome.failures[0]
    assert "FAILED docs/bad.md:3 (python block)" in message
    # the traceback points at the markdown line of the failing statement
    assert 'File "docs/bad.md", line 5' in message
    assert "x is not 2" in message


def test_blocks_share_one_namespace_in_order_and_files_are_importable() -> None:
    text = page(
        f"{F}python", "# file: helpers/names.py", "GREETING = 'hi'", F,
        "text between", "",
        f"{F}python", "from helpers.names import GREETING", "seen = [GREETING]", F,
        f"{F}python", "seen.append('again')", "assert seen == ['hi', 'again']", F,
    )  # fmt: skip
    assert check_page(text, "ok.md").failures == []


def test_pydantic_models_with_postponed_annotations_work() -> None:
    text = page(
        f"{F}python", "from __future__ import annotations", "from pydantic import BaseModel",
        "class Say(BaseModel):", "    text: str", F,
        f"{F}python", "assert Say(text='x').text == 'x'", F,
    )  # fmt: skip
    assert check_page(text, "models.md").failures == []


def test_test_functions_run_after_the_page_and_async_ones_are_awaited() -> None:
    passing = page(
        f"{F}python", "calls = []", "async def test_async():", "    import asyncio",
        "    await asyncio.sleep(0)", "    calls.append('async')", "def test_sync():",
        "    calls.append('sync')", F,
        f"{F}python", "def test_after_both():", "    assert calls == ['async', 'sync']", F,
    )  # fmt: skip
    assert check_page(passing, "t.md").failures == []

    failing = page(
        f"{F}python", "async def test_never_awaited_would_pass():", "    assert False, 'awaited'", F
    )
    (message,) = check_page(failing, "t.md").failures
    assert "FAILED t.md:2 test_never_awaited_would_pass()" in message
    assert "awaited" in message


def test_a_test_function_with_arguments_is_refused() -> None:
    text = page(f"{F}python", "def test_fixture(client):", "    pass", F)
    (message,) = check_page(text, "t.md").failures
    assert "takes no arguments" in message


def test_top_level_await_runs() -> None:
    text = page(f"{F}python", "import asyncio", "await asyncio.sleep(0)", "done = True", F,
                f"{F}python", "assert done", F)  # fmt: skip
    assert check_page(text, "aw.md").failures == []


def test_typecheck_blocks_are_checked_not_run_with_page_line_numbers() -> None:
    good = page(
        f"{F}python", "# file: app.py", "def port() -> int:", "    return 8000", F,
        "<!-- docs: typecheck -->", f"{F}python", "from app import port", "raise SystemExit('ran')",
        "n: int = port()", F,
    )  # fmt: skip
    assert check_page(good, "tc.md").failures == []

    bad = page("intro", "<!-- docs: typecheck -->", f"{F}python", "n: int = 'not an int'", F)
    (message,) = check_page(bad, "docs/tc.md").failures
    assert "docs/tc.md:4: error: Incompatible types in assignment" in message


def test_a_skip_needs_a_reason() -> None:
    bare = page("<!-- docs: skip -->", f"{F}python", "raise SystemExit", F)
    (message,) = check_page(bare, "s.md").failures
    assert "s.md:2" in message and "needs a reason" in message

    justified = page(
        "<!-- docs: skip — shows a failure on purpose -->", f"{F}python", "raise SystemExit", F
    )
    assert check_page(justified, "s.md").failures == []
    assert parse(justified, "s.md").blocks[0].skip_reason == "shows a failure on purpose"


def test_a_fence_without_a_language_or_with_an_unknown_one_fails() -> None:
    text = page("a", F, "plain", F, f"{F}pythn", "x", F)
    failures = check_page(text, "l.md").failures
    assert any("l.md:2: the fence has no language" in f for f in failures)
    assert any("l.md:5: unknown fence language 'pythn'" in f for f in failures)


def test_indented_fences_in_lists_are_found_and_dedented() -> None:
    text = page(
        "1. step", "", f"    {F}python", "    x = 1", "    if x:", "        y = 2", f"    {F}"
    )
    (block,) = parse(text, "i.md").blocks
    assert block.code == "x = 1\nif x:\n    y = 2\n"
    assert check_page(text, "i.md").failures == []


@pytest.mark.parametrize(
    ("lang", "body", "error"),
    [
        ("bash", "if true; then echo", "bash -n"),
        ("console", "$ echo ok\n$ if then fi\noutput that is not shell (", "bash -n"),
        ("json", '{"type": "x",}', "invalid JSON"),
        ("yaml", "a: [1, 2", "invalid yaml"),
        ("toml", "a = ", "invalid toml"),
        ("ini", "no section header", "invalid ini"),
    ],
)
def test_config_and_shell_blocks_are_parsed(lang: str, body: str, error: str) -> None:
    (message,) = check_page(page("x", f"{F}{lang}", body, F), "c.md").failures
    assert message.startswith("c.md:2: ") and error in message


def test_valid_config_and_shell_blocks_pass() -> None:
    text = page(
        f"{F}bash", "pip install rtframe && echo ok", F,
        f"{F}console", "$ rtframe --version", "rtframe 1.0 (this is output, not shell", F,
        f"{F}json", '{"type": "a"}', '{"type": "b"}', F,
        f"{F}toml", "# file: pyproject.toml", "[tool.pytest.ini_options]", 'asyncio_mode = "auto"', F,
        f"{F}python", "import tomllib", "from pathlib import Path",
        "assert tomllib.loads(Path('pyproject.toml').read_text())['tool']", F,
    )  # fmt: skip
    assert check_page(text, "ok.md").failures == []


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_js_blocks_are_syntax_checked() -> None:
    (message,) = check_page(page(f"{F}js", "const x = ;", F), "j.md").failures
    assert "j.md:1: node --check" in message
    html = page(f"{F}html", '<p>hi</p>', '<script type="module">', "import { a } from './a.js';",
                "const b = ;", "</script>", F)  # fmt: skip
    (message,) = check_page(html, "h.md").failures
    assert "h.md:1: node --check" in message
    fine = page(
        f"{F}html", '<script type="module">', "import { a } from './a.js';", "a();", "</script>", F
    )
    assert check_page(fine, "h.md").failures == []


def test_nginx_and_caddy_blocks_are_validated_or_reported_missing() -> None:
    text = page(f"{F}nginx", "location / { proxy_pass http://127.0.0.1:8000 }", F,
                f"{F}caddy", "example.com {", "  reverse_proxy 127.0.0.1:8000", "}", F)  # fmt: skip
    outcome = check_page(text, "n.md")
    reported = outcome.failures + outcome.missing_tools
    # the nginx block lacks a `;`: either nginx rejects it, or its absence is reported
    if shutil.which("nginx") or Path("/usr/sbin/nginx").exists():
        assert any("n.md:1: nginx -t" in f for f in outcome.failures)
    else:
        assert any("nginx is not installed, so n.md:1" in m for m in reported)
    if shutil.which("caddy"):
        assert not any("caddy" in f for f in outcome.failures)
    else:
        assert any("caddy is not installed, so n.md:4" in m for m in reported)


def test_the_nav_reader_ignores_python_tags(tmp_path: Path) -> None:
    config = tmp_path / "mkdocs.yml"
    config.write_text(
        "markdown_extensions:\n  - pymdownx.emoji:\n      emoji_index: !!python/name:material.extensions.emoji.twemoji\n"
        "nav:\n  - Home: index.md\n  - Concepts:\n    - concepts/routing.md\n  - Site: https://example.com\n"
    )
    assert nav_pages(config) == ["index.md", "concepts/routing.md"]


def test_each_typecheck_block_is_its_own_program_and_may_await() -> None:
    text = page(
        "<!-- docs: typecheck -->", f"{F}python", "import asyncio", "def main() -> None: ...", F,
        "<!-- docs: typecheck -->", f"{F}python", "import asyncio", "def main() -> None: ...",
        "await asyncio.sleep(0)", "async with asyncio.timeout(1):", "    pass", F,
    )  # fmt: skip
    assert check_page(text, "tc.md").failures == []

    bad = page(
        "<!-- docs: typecheck -->", f"{F}python", "import asyncio", "await asyncio.sleep('x')", F
    )
    (message,) = check_page(bad, "tc.md").failures
    assert 'tc.md:4: error: No overload variant of "sleep"' in message


def test_a_file_line_may_carry_a_comment() -> None:
    text = page(
        f"{F}python", "# file: chat.py  (run it with: uvicorn chat:app)", "NAME = 'chat'", F,
        f"{F}python", "from chat import NAME", "assert NAME == 'chat'", F,
    )  # fmt: skip
    assert parse(text, "f.md").blocks[0].file == "chat.py"
    assert check_page(text, "f.md").failures == []


def test_a_missing_tool_skips_locally_and_fails_on_ci() -> None:
    missing = Outcome(missing_tools=["nginx is not installed, so d.md:3 (nginx) is unchecked"])
    assert verdict(missing, {}) == (
        "skip",
        "every other block passed, but " + missing.missing_tools[0],
    )
    kind, why = verdict(missing, {"CI": "true"})
    assert kind == "fail" and "install it in scripts/test" in why
    assert verdict(Outcome(failures=["d.md:3: bad"], missing_tools=["x"]), {}) == (
        "fail",
        "d.md:3: bad",
    )
    assert verdict(Outcome(), {"CI": "true"}) == ("pass", "")


def test_a_test_defined_twice_fails_rather_than_never_running() -> None:
    text = page(
        f"{F}python", "def test_it():", "    assert False, 'the first'", F,
        f"{F}python", "def test_it():", "    pass", F,
    )  # fmt: skip
    (message,) = check_page(text, "twice.md").failures
    assert "twice.md:6 defines test_it again (first at line 2)" in message
