"""Every code block of the documentation, checked: the docs snippet harness.

The convention every page follows (README.md and docs/**/*.md):

- ```python blocks of a page run in order in ONE namespace, in a subprocess per page whose
  cwd is a fresh temporary directory on ``sys.path`` (the repository root importable,
  ``REDIS_URL`` passed through). Top-level ``await`` is allowed; one event loop serves
  the whole page.
- A block whose first line is ``# file: some/path`` (a comment may follow the path) is not
  run: it is written to that path in the temporary directory when the page reaches it
  (python, toml, yaml, ini and shell blocks; a python file is also compiled so a syntax
  error shows even if nothing imports it; toml/yaml/ini/shell are also parsed).
- Functions named ``test_*`` that the page's blocks define run after the page, in
  definition order; async ones are awaited. They take no arguments.
- ``<!-- docs: typecheck -->`` on the line before a fence: the block is not run. Each such
  block is a program of its own (a module with the code at its own line numbers, so
  mypy's line numbers are the page's; top-level ``await`` allowed), checked by one mypy run
  per page together with the page's ``# file:`` python blocks, which it may import.
- bash/sh/shell/console blocks: ``bash -n`` (a console block with ``$ `` prompts checks
  only the prompted lines); json (a document or one per line), yaml, toml and ini are
  parsed; js (and an html block's inline scripts) is checked with ``node --check`` when
  node is installed; nginx with
  ``nginx -t`` and caddy with ``caddy validate``, or the page is skipped with the reason
  when the tool is missing (and fails when ``CI`` is true: CI must install them).
- text/txt/ts/css... are left as they are. A fence without a language fails.
- ``<!-- docs: skip — reason -->`` exempts a block; a skip without a reason fails.
"""

from __future__ import annotations

import ast
import configparser
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import textwrap
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().parent / "_driver.py"

PYTHON = {"python", "py", "python3"}
SHELL = {"bash", "sh", "shell", "console"}
DATA = {"json", "yaml", "yml", "toml", "ini"}
NGINX = {"nginx"}
CADDY = {"caddy", "caddyfile"}
JS = {"js", "javascript", "mjs"}
LEFT_AS_IS = {
    "text",
    "txt",
    "plain",
    "html",
    "ts",
    "typescript",
    "css",
    "dockerfile",
    "http",
    "diff",
}
KNOWN = PYTHON | SHELL | DATA | NGINX | CADDY | JS | LEFT_AS_IS
# languages whose `#` comment can carry `# file: path`
FILE_CAPABLE = PYTHON | SHELL | {"toml", "yaml", "yml", "ini"}

PAGE_TIMEOUT = 300
FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")
DIRECTIVE = re.compile(r"^<!--\s*docs:\s*(?P<kind>[a-z-]+)(?P<rest>.*?)-->$")
FILE_LINE = re.compile(r"^#\s*file:\s*(?P<path>[^\s(]+)(\s.*)?$")


@dataclass
class Block:
    page: str
    line: int  # 1-based line of the opening fence
    lang: str
    code: str  # dedented; its first line is page line `line + 1`
    mode: str = "run"  # run | typecheck | skip
    skip_reason: str = ""
    file: str | None = None

    @property
    def where(self) -> str:
        return f"{self.page}:{self.line}"


@dataclass
class Page:
    name: str
    text: str
    blocks: list[Block] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # structural: missing language, bare skip...


def parse(text: str, name: str) -> Page:
    """Split a markdown page into its fenced blocks, with their directives."""
    page = Page(name, text)
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        start, indent, fence = i, m["indent"], m["fence"]
        info = m["info"].strip()
        lang = re.split(r"[\s{]", info, maxsplit=1)[0].lower() if info else ""
        body: list[str] = []
        i += 1
        closed = False
        while i < len(lines):
            stripped = lines[i].strip()
            if stripped.startswith(fence[0] * len(fence)) and stripped.strip(fence[0]) == "":
                closed = True
                break
            body.append(lines[i])
            i += 1
        i += 1
        where = f"{name}:{start + 1}"
        if not closed:
            page.errors.append(f"{where}: the fence is never closed")
            break
        block = Block(name, start + 1, lang, textwrap.dedent(_strip_indent(body, indent)))
        # the directive is the nearest non-blank line before the fence
        j = start - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        directive = DIRECTIVE.match(lines[j].strip()) if j >= 0 else None
        if directive:
            kind, rest = directive["kind"], directive["rest"].strip()
            if kind == "skip":
                reason = rest.lstrip("\u2014\u2013-: ").strip()
                if not reason:
                    page.errors.append(
                        f"{where}: `<!-- docs: skip -->` needs a reason (`<!-- docs: skip — why -->`)"
                    )
                block.mode, block.skip_reason = "skip", reason
            elif kind == "typecheck":
                if lang not in PYTHON:
                    page.errors.append(
                        f"{where}: `<!-- docs: typecheck -->` is for python blocks, not {lang!r}"
                    )
                block.mode = "typecheck"
            else:
                page.errors.append(
                    f"{where}: unknown directive <!-- docs: {kind} --> (typecheck or skip)"
                )
        if not lang:
            page.errors.append(
                f"{where}: the fence has no language (```python, ```bash, ```text...)"
            )
        elif lang not in KNOWN:
            page.errors.append(
                f"{where}: unknown fence language {lang!r}; known: {', '.join(sorted(KNOWN))}"
            )
        first = block.code.split("\n", 1)[0]
        fm = FILE_LINE.match(first.strip())
        if fm and lang in FILE_CAPABLE and block.mode == "run":
            block.file = fm["path"]
            if Path(block.file).is_absolute() or ".." in Path(block.file).parts:
                page.errors.append(
                    f"{where}: `# file:` needs a relative path inside the page's directory"
                )
        page.blocks.append(block)
    return page


def _strip_indent(body: list[str], indent: str) -> str:
    out = []
    for line in body:
        out.append(line[len(indent) :] if line.startswith(indent) else line.lstrip(" \t"))
    return "\n".join(out) + ("\n" if out else "")


@dataclass
class Outcome:
    failures: list[str] = field(default_factory=list)
    missing_tools: list[str] = field(default_factory=list)  # "nginx: docs/deploy.md:40"
    log: list[str] = field(default_factory=list)  # what ran, for `pytest -s`


def check_page(text: str, name: str, *, mypy_cache: Path | None = None) -> Outcome:
    """Run or check every block of one page; collect the failures with page:line."""
    page = parse(text, name)
    outcome = Outcome(failures=list(page.errors))
    with tempfile.TemporaryDirectory(prefix="docs-") as tmp:
        workdir = Path(tmp)
        _run_python(page, workdir / "run", outcome)
        _typecheck(page, workdir / "typecheck", outcome, mypy_cache)
        for block in page.blocks:
            if block.mode == "run" and block.lang not in PYTHON:
                _check_other(block, workdir / "other", outcome)
    return outcome


def _run_python(page: Page, workdir: Path, outcome: Outcome) -> None:
    steps = []
    for block in page.blocks:
        if block.mode != "run":
            continue
        if block.file is not None:
            steps.append(
                {
                    "kind": "file",
                    "path": block.file,
                    "code": block.code,
                    "line": block.line,
                    "python": block.lang in PYTHON,
                }
            )
        elif block.lang in PYTHON:
            steps.append({"kind": "run", "code": block.code, "line": block.line})
    if not any(s["kind"] == "run" for s in steps):
        return
    workdir.mkdir(parents=True)
    spec = workdir.parent / "spec.json"
    spec.write_text(json.dumps({"page": page.name, "text": page.text, "steps": steps}))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(workdir), str(ROOT), env.get("PYTHONPATH", "")]
    ).rstrip(os.pathsep)
    env.pop("PYTEST_CURRENT_TEST", None)
    # a page starts from a reader's shell, not from what earlier tests left in this one
    # (importing the Django example sets DJANGO_SETTINGS_MODULE in this process)
    env.pop("DJANGO_SETTINGS_MODULE", None)
    try:
        proc = subprocess.run(
            [sys.executable, str(DRIVER), str(spec)],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=PAGE_TIMEOUT,
        )
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode() if isinstance(exc.stdout, bytes) else (exc.stdout or "")
        outcome.failures.append(
            f"{page.name}: the page's python blocks did not finish in {PAGE_TIMEOUT}s\n{out[-3000:]}"
        )
        return
    outcome.log.append(proc.stdout.strip())
    if proc.returncode != 0:
        tail = (proc.stdout[-2000:] + "\n" + proc.stderr[-6000:]).strip()
        outcome.failures.append(
            tail or f"{page.name}: the page's python run exited {proc.returncode}"
        )


MYPY_CONFIG = """\
[mypy]
python_version = 3.11
plugins = pydantic.mypy
check_untyped_defs = True
# untyped libraries a page may show (a server's embedding API)
[mypy-daphne.*]
ignore_missing_imports = True
"""


def _typecheck(page: Page, workdir: Path, outcome: Outcome, cache: Path | None) -> None:
    checked = [b for b in page.blocks if b.mode == "typecheck"]
    if not checked:
        return
    workdir.mkdir(parents=True)
    # one module per typecheck block (each is a program of its own), its code at its own
    # lines: mypy's line numbers are the page's
    targets = []
    for block in checked:
        lines = [""] * len(page.text.splitlines())
        indent = ""
        if _awaits(block.code):
            # mypy refuses top-level await: such a block is checked as the body of a
            # coroutine function, on its fence's line
            lines[block.line - 1] = "async def _docs_block() -> None:"
            indent = "    "
        for k, code_line in enumerate(block.code.splitlines()):
            lines[block.line + k] = indent + code_line if code_line.strip() else ""
        module = workdir / f"_docs_typecheck_{block.line}.py"
        module.write_text("\n".join(lines) + "\n")
        targets.append(str(module))
    for block in page.blocks:
        if block.file is not None and block.mode == "run":
            path = workdir / block.file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.code)
            if block.lang in PYTHON:
                targets.append(str(path))
    config = workdir.parent / "mypy.ini"
    config.write_text(MYPY_CONFIG)
    cache = cache or Path(tempfile.gettempdir()) / "rtframe-docs-mypy-cache"
    env = dict(os.environ)
    env["MYPYPATH"] = str(workdir)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--cache-dir",
            str(cache),
            "--no-error-summary",
            "--show-error-codes",
            "--explicit-package-bases",
            *targets,
        ],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=PAGE_TIMEOUT,
    )
    if proc.returncode != 0:
        shown = []
        for line in (proc.stdout + proc.stderr).splitlines():
            line = re.sub(r"_docs_typecheck_\d+\.py", page.name, line)
            shown.append(line.replace(str(workdir) + os.sep, f"{page.name} (# file:) "))
        outcome.failures.append(f"{page.name}: mypy on the typecheck blocks:\n" + "\n".join(shown))


def _awaits(code: str) -> bool:
    try:
        compiled = compile(code, "<block>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except SyntaxError:
        return False  # mypy reports it
    return bool(compiled.co_flags & inspect.CO_COROUTINE)


def _check_other(block: Block, workdir: Path, outcome: Outcome) -> None:
    workdir.mkdir(parents=True, exist_ok=True)
    lang, code, where = block.lang, block.code, block.where
    try:
        if lang in SHELL:
            script = code
            if lang == "console" and any(ln.startswith("$ ") for ln in code.splitlines()):
                script = "\n".join(ln[2:] for ln in code.splitlines() if ln.startswith("$ ")) + "\n"
            proc = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
            if proc.returncode:
                outcome.failures.append(f"{where}: bash -n: {proc.stderr.strip()}")
        elif lang == "json":
            try:
                json.loads(code)
            except json.JSONDecodeError as whole:
                # a series of frames, one JSON document per line
                lines = [ln for ln in code.splitlines() if ln.strip()]
                try:
                    for ln in lines:
                        json.loads(ln)
                except json.JSONDecodeError:
                    outcome.failures.append(f"{where}: invalid JSON: {whole}")
        elif lang in {"yaml", "yml"}:
            list(yaml.safe_load_all(code))
        elif lang == "toml":
            tomllib.loads(code)
        elif lang == "ini":
            configparser.ConfigParser().read_string(code)
        elif lang in JS:
            _node_check(block, code, "mjs", workdir, outcome)
        elif lang == "html":
            # the page's inline scripts: a module, or a classic script
            for n, m in enumerate(SCRIPT.finditer(code)):
                kind = "mjs" if "module" in m["attrs"] else "cjs"
                _node_check(block, m["body"], kind, workdir, outcome, f"script{n}")
        elif lang in NGINX:
            _nginx(block, workdir, outcome)
        elif lang in CADDY:
            _caddy(block, workdir, outcome)
    except (yaml.YAMLError, tomllib.TOMLDecodeError, configparser.Error) as exc:
        outcome.failures.append(f"{where}: invalid {lang}: {exc}")


SCRIPT = re.compile(r"<script(?P<attrs>[^>]*)>(?P<body>.*?)</script>", re.S | re.I)


def _node_check(
    block: Block, code: str, ext: str, workdir: Path, outcome: Outcome, tag: str = ""
) -> None:
    node = shutil.which("node")
    if not node or not code.strip():
        return
    path = workdir / f"block{block.line}{tag}.{ext}"
    path.write_text(code)
    proc = subprocess.run([node, "--check", str(path)], capture_output=True, text=True)
    if proc.returncode:
        outcome.failures.append(f"{block.where}: node --check: {proc.stderr.strip()}")


def _missing(tool: str, block: Block, outcome: Outcome) -> None:
    outcome.missing_tools.append(
        f"{tool} is not installed, so {block.where} ({block.lang}) is unchecked"
    )


def _nginx(block: Block, workdir: Path, outcome: Outcome) -> None:
    nginx = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None
    )
    if not nginx:
        return _missing("nginx", block, outcome)
    conf = block.code
    if not re.search(r"^\s*server\s*\{", conf, re.M) and not re.search(
        r"^\s*http\s*\{", conf, re.M
    ):
        if not re.search(r"^\s*(upstream|map)\b", conf, re.M):
            conf = "server {\n listen 8080;\n" + conf + "\n}\n"
    if not re.search(r"^\s*http\s*\{", conf, re.M):
        conf = "http {\n" + conf + "\n}\n"
    if not re.search(r"^\s*events\s*\{", conf, re.M):
        conf = "events {}\n" + conf
    (workdir / "logs").mkdir(exist_ok=True)
    path = workdir / f"nginx{block.line}.conf"
    path.write_text(f"pid {workdir}/nginx.pid;\nerror_log stderr;\n{conf}")
    proc = subprocess.run(
        [nginx, "-t", "-q", "-p", str(workdir), "-c", str(path)], capture_output=True, text=True
    )
    if proc.returncode:
        outcome.failures.append(f"{block.where}: nginx -t: {proc.stderr.strip()}")
    return None


def _caddy(block: Block, workdir: Path, outcome: Outcome) -> None:
    caddy = shutil.which("caddy")
    if not caddy:
        return _missing("caddy", block, outcome)
    path = workdir / f"Caddyfile{block.line}"
    path.write_text(block.code)
    proc = subprocess.run(
        [caddy, "validate", "--adapter", "caddyfile", "--config", str(path)],
        capture_output=True,
        text=True,
    )
    if proc.returncode:
        outcome.failures.append(
            f"{block.where}: caddy validate: {(proc.stderr or proc.stdout).strip()[-2000:]}"
        )
    return None


def verdict(outcome: Outcome, environ: Mapping[str, str]) -> tuple[str, str]:
    """("fail" | "skip" | "pass", why). A block left unchecked because its tool is missing
    skips the page locally, and fails it on CI, which must install the tool."""
    if outcome.failures:
        return "fail", "\n\n".join(outcome.failures)
    if outcome.missing_tools:
        reason = "; ".join(outcome.missing_tools)
        if environ.get("CI", "").lower() in {"1", "true", "yes"}:
            return "fail", f"CI must check every block: {reason} (install it in scripts/test)"
        return "skip", f"every other block passed, but {reason}"
    return "pass", ""


def pages() -> list[Path]:
    """README.md and every page under docs/."""
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def page_id(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def nav_pages(config: Path | None = None) -> list[str]:
    """The pages mkdocs.yml's nav lists, relative to docs/."""

    class Loader(yaml.SafeLoader):
        pass

    # mkdocs.yml may hold !!python/name: and !ENV tags: only the nav is read here
    Loader.add_multi_constructor("", lambda loader, suffix, node: None)
    data = yaml.load((config or ROOT / "mkdocs.yml").read_text(), Loader=Loader)
    found: list[str] = []

    def walk(item: object) -> None:
        if isinstance(item, str):
            if not re.match(r"^[a-z]+://", item):
                found.append(item)
        elif isinstance(item, list):
            for x in item:
                walk(x)
        elif isinstance(item, dict):
            for x in item.values():
                walk(x)

    walk(data.get("nav", []))
    return found
