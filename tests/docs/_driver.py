"""Runs one page's python blocks (see snippets.py): `python _driver.py spec.json`.

Each block is compiled with the page as its file name and padded so its line numbers are
the page's: a traceback points at the markdown line. A failure prints
`FAILED page:line ...` and the traceback, and exits 1.
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import json
import linecache
import sys
import traceback
import types
from pathlib import Path
from typing import Any


def main() -> int:
    spec = json.loads(Path(sys.argv[1]).read_text())
    page: str = spec["page"]
    workdir = Path.cwd()
    sys.path.insert(0, str(workdir))
    # tracebacks show the page's own lines
    lines = [line + "\n" for line in spec["text"].splitlines()]
    linecache.cache[page] = (len(spec["text"]), None, lines, page)

    # a real module, so pydantic and typing resolve the page's annotations through it
    module = types.ModuleType("docs_page")
    module.__file__ = str(workdir / "docs_page.py")
    sys.modules["docs_page"] = module
    namespace = module.__dict__
    runner = asyncio.Runner()
    ran = 0
    seen: dict[str, int] = {}  # test name -> the line that defined it
    try:
        for step in spec["steps"]:
            where = f"{page}:{step['line']}"
            source = "\n" * step["line"] + step["code"]
            if step["kind"] == "file":
                path = workdir / step["path"]
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(step["code"])
                if step["python"]:
                    try:
                        compile(source, page, "exec", dont_inherit=True)
                    except SyntaxError:
                        return _fail(f"{where} (# file: {step['path']}) does not compile")
                continue
            try:
                code = compile(
                    source, page, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True
                )
                if code.co_flags & inspect.CO_COROUTINE:
                    runner.run(types.FunctionType(code, namespace)())
                else:
                    exec(code, namespace)
            except BaseException:
                return _fail(f"{where} (python block)")
            ran += 1
            for name, fn in _page_tests(namespace, page):
                line = fn.__code__.co_firstlineno
                if seen.setdefault(name, line) != line:
                    print(
                        f"FAILED {page}:{line} defines {name} again (first at line "
                        f"{seen[name]}): the first one would never run",
                        file=sys.stderr,
                    )
                    return 1

        tests = _page_tests(namespace, page)
        for name, fn in tests:
            where = f"{page}:{fn.__code__.co_firstlineno}"
            if inspect.signature(fn).parameters:
                print(f"FAILED {where} {name}(): a docs test takes no arguments", file=sys.stderr)
                return 1
            try:
                result = fn()
                if inspect.isawaitable(result):
                    runner.run(_awaited(result))
            except BaseException:
                return _fail(f"{where} {name}()")
        print(
            f"{page}: ran {ran} python blocks and {len(tests)} tests: {', '.join(n for n, _ in tests)}"
        )
        return 0
    finally:
        runner.close()


def _page_tests(namespace: dict[str, Any], page: str) -> list[tuple[str, Any]]:
    return [
        (name, fn)
        for name, fn in list(namespace.items())
        if name.startswith("test_") and inspect.isfunction(fn) and fn.__code__.co_filename == page
    ]


async def _awaited(awaitable: object) -> None:
    await awaitable  # type: ignore[misc]


def _fail(headline: str) -> int:
    print(f"FAILED {headline}", file=sys.stderr)
    traceback.print_exc()
    return 1


if __name__ == "__main__":
    sys.exit(main())
