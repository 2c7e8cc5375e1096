"""rtframe as a user's project gets it: built, installed into a clean virtualenv, served.

Once per session `python -m build` makes the sdist and, from it, the wheel; the wheel is
installed with the `server` extra into a virtualenv made by `python -m venv` (no system
site-packages, no source tree on the path), at the versions uv.lock pins. That install
then runs the README's chat with `rtframe run`, and this process talks to it over a real
WebSocket. The set-up the README describes is checked here too: its two commands, the
relation of `.ci/run` to them, and the lock's exports the pip path installs from.
"""

from __future__ import annotations

import asyncio
import email.parser
import json
import os
import re
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from uv import find_uv_bin
from websockets.asyncio.client import connect

from .servers import free_port, wait_for_port

pytestmark = pytest.mark.packaging

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
VERSION: str = PYPROJECT["project"]["version"]
README = (ROOT / "README.md").read_text()
UV = find_uv_bin()
#: the package data the code reads at run time, by its path in the wheel
PACKAGE_DATA = [
    "rtframe/py.typed",
    "rtframe/static/rtframe.js",
    "rtframe/static/rtframe.d.ts",
    "rtframe/static/vendor/partysocket/ws.js",
    "rtframe/static/vendor/partysocket/LICENSE.txt",
    "rtframe/asyncapi/modelina.js",
]


@dataclass(frozen=True)
class Dists:
    wheel: Path
    sdist: Path


@dataclass(frozen=True)
class Installed:
    venv: Path
    workdir: Path  # the user's project: an empty directory but for the app's module

    def bin(self, name: str) -> Path:
        return self.venv / "bin" / name

    def run(self, *command: str | Path) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=self.workdir, env=_clean_env(), capture_output=True, text=True,
            timeout=120,
        )  # fmt: skip


def _clean_env() -> dict[str, str]:
    # nothing of the test's own environment that would put the source tree on the path
    # nor what earlier tests left in it (importing the Django example sets its settings)
    unwanted = ("PYTHONPATH", "VIRTUAL_ENV", "DJANGO_SETTINGS_MODULE")
    env = {k: v for k, v in os.environ.items() if k not in unwanted}
    env["PYTHONNOUSERSITE"] = "1"
    return env


def _run(*command: str | Path, timeout: float = 300) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Dists:
    out = tmp_path_factory.mktemp("dist")
    # the sdist, then the wheel built from the unpacked sdist: a wheel that builds only
    # from a checkout would fail here
    _run(sys.executable, "-m", "build", "--installer", "uv", "--outdir", out, ROOT)
    (wheel,) = out.glob(f"rtframe-{VERSION}-py3-none-any.whl")
    (sdist,) = out.glob(f"rtframe-{VERSION}.tar.gz")
    return Dists(wheel, sdist)


def _install(wheel: Path, extras: str, constraints: str, base: Path, project: str) -> Installed:
    """A clean virtualenv in `base` with `rtframe[extras]` from `wheel`, at the versions
    `requirements/<constraints>.txt` (uv.lock exported) pins; an empty project folder."""
    venv, workdir = base / "venv", base / project
    workdir.mkdir()
    _run(sys.executable, "-m", "venv", venv)
    assert "include-system-site-packages = false" in (venv / "pyvenv.cfg").read_text()
    install: list[str | Path] = [UV, "pip", "install", "--python", venv / "bin" / "python",
               "-c", ROOT / "requirements" / f"{constraints}.txt", f"rtframe[{extras}] @ {wheel.as_uri()}"]  # fmt: skip
    # the packages scripts/test installed are in uv's cache: no download unless it is cold
    offline = subprocess.run([*install, "--offline"], capture_output=True, text=True, timeout=300)
    if offline.returncode != 0:
        print(f"uv pip install --offline failed, installing from the index:\n{offline.stderr}")
        _run(*install)
    return Installed(venv, workdir)


@contextmanager
def _serving(command: list[str | Path], cwd: Path, env: dict[str, str]) -> Iterator[int]:
    """`command` and `--port N` running in `cwd` until the block ends; yields N."""
    port = free_port()
    proc = subprocess.Popen(
        [*command, "--port", str(port)], cwd=cwd, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        wait_for_port(port, proc)
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        if proc.stdout:
            proc.stdout.close()


@pytest.fixture(scope="session")
def installed(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    # requirements/chat.txt: the lock exported for the server and redis extras
    return _install(dists.wheel, "server", "chat", tmp_path_factory.mktemp("user"), "project")


def test_the_wheel_holds_every_file_of_the_package_and_its_metadata(dists: Dists) -> None:
    with zipfile.ZipFile(dists.wheel) as wheel:
        names = set(wheel.namelist())
        info = f"rtframe-{VERSION}.dist-info"
        metadata = email.parser.Parser().parsestr(wheel.read(f"{info}/METADATA").decode())
        entry_points = wheel.read(f"{info}/entry_points.txt").decode()
    source = {
        path.relative_to(ROOT).as_posix()
        for path in (ROOT / "rtframe").rglob("*")
        if path.is_file() and "__pycache__" not in path.parts
    }
    assert set(PACKAGE_DATA) <= source  # the list above names real files
    assert sorted(source - names) == []
    assert f"{info}/licenses/LICENSE" in names
    assert metadata["Name"] == "rtframe"
    assert metadata["Version"] == VERSION
    assert metadata["License-Expression"] == "MIT"
    assert set(metadata.get_all("Provides-Extra") or []) == set(
        PYPROJECT["project"]["optional-dependencies"]
    )
    assert re.search(r"^rtframe = rtframe\.cli:main$", entry_points, re.M)


def test_the_sdist_holds_the_package_and_no_local_state(dists: Dists) -> None:
    with tarfile.open(dists.sdist) as sdist:
        names = {n.removeprefix(f"rtframe-{VERSION}/") for n in sdist.getnames()}
    for wanted in ["pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", *PACKAGE_DATA]:
        assert wanted in names
    tops = {name.split("/")[0] for name in names}
    # hatchling adds .gitignore, which it reads to leave ignored files out of a rebuild
    expected = {"rtframe", "pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "PKG-INFO"}
    assert tops == {*expected, ".gitignore"}
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]


def test_the_installed_command_prints_the_version(installed: Installed) -> None:
    done = installed.run(installed.bin("rtframe"), "--version")
    assert (done.returncode, done.stdout) == (0, f"rtframe {VERSION}\n"), done.stderr


def test_rtframe_is_imported_from_the_virtualenv_not_the_checkout(installed: Installed) -> None:
    done = installed.run(installed.bin("python"), "-c", "import rtframe; print(rtframe.__file__)")
    assert done.returncode == 0, done.stderr
    assert Path(done.stdout.strip()).is_relative_to(installed.venv)
    # only what the extra brings: the development tools are not there
    missing = installed.run(installed.bin("python"), "-c", "import django")
    assert "ModuleNotFoundError" in missing.stderr


@pytest.fixture(scope="session")
def served_chat(installed: Installed) -> Iterator[int]:
    # the README's chat: its block begins with a comment naming chat.py
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    chat = next(b for b in blocks if "chat.py" in b.splitlines()[0])
    (installed.workdir / "chat.py").write_text(chat)
    (installed.workdir / "served.py").write_text(
        "from rtframe.client_js import serve_client\n\nfrom chat import app\n\nserve_client(app)\n"
    )
    env = {**_clean_env(), "PYTHONPATH": str(installed.workdir)}
    command: list[str | Path] = [
        installed.bin("rtframe"),
        "run",
        "served:app",
        "--log-level",
        "warning",
    ]
    with _serving(command, installed.workdir, env) as port:
        yield port


async def test_the_installed_package_serves_the_readme_chat(served_chat: int) -> None:
    base = f"ws://127.0.0.1:{served_chat}/ws/chat/lobby"
    async with connect(f"{base}?nick=ada") as ada, connect(f"{base}?nick=bob") as bob:
        await bob.send(json.dumps({"type": "say", "text": "hi"}))
        for sock in (ada, bob):
            said = json.loads(await asyncio.wait_for(sock.recv(), 10))
            assert said == {"nick": "bob", "text": "hi"}
        await ada.send(json.dumps({"type": "say", "text": 5}))
        error = json.loads(await asyncio.wait_for(ada.recv(), 10))
        assert (error["type"], error["code"]) == ("error", "validation_error")


async def test_the_installed_package_serves_its_browser_client(served_chat: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{served_chat}") as client:
        for name in ["rtframe.js", "vendor/partysocket/ws.js", "vendor/partysocket/LICENSE.txt"]:
            response = await client.get(f"/rtframe/{name}")
            assert response.status_code == 200, name
            assert response.content == (ROOT / "rtframe" / "static" / name).read_bytes()


# ---- the set-up the README describes ------------------------------------------------


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, re.S)]


def test_the_readme_sets_up_with_two_commands_and_ci_runs_the_test_one() -> None:
    try_it = README.split("## Try it", 1)[1].split("\n## ", 1)[0]
    assert _bash_blocks(try_it) == ["scripts/chat", "scripts/test"]
    ci = (ROOT / ".ci" / "run").read_text()
    commands = [
        line for line in ci.splitlines() if line.strip() and not line.lstrip().startswith("#")
    ]
    # .ci/run: cd to the root of the clone, then exactly the README's test command
    assert commands == ['cd "$(dirname "$0")/.." || exit 1', _bash_blocks(try_it)[1]]


@pytest.mark.parametrize("name", ["chat", "dev"])
def test_the_requirements_files_are_the_lock_exported(name: str) -> None:
    path = ROOT / "requirements" / f"{name}.txt"
    text = path.read_text()
    # the file's header names the command that wrote it: run it again, to standard output
    (command,) = re.findall(r"^#    (uv export .*)$", text, re.M)
    args = command.split()[1:]
    output = args.index("-o")
    assert args[output + 1] == f"requirements/{name}.txt"
    del args[output : output + 2]
    fresh = _run(UV, *args, "--quiet", "--directory", ROOT)

    def body(export: str) -> list[str]:
        return [line for line in export.splitlines() if not line.startswith("#    uv export")]

    assert body(fresh) == body(text), f"{path} is stale: scripts/lock exports it again"


def test_the_lock_matches_pyproject() -> None:
    done = subprocess.run(
        [UV, "lock", "--check", "--directory", ROOT],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, f"uv.lock is stale (scripts/lock updates it):\n{done.stderr}"


# ---- the tutorial's first step, in a new project on the installed wheel -------------


@pytest.fixture(scope="session")
def tutorial_step_1(dists: Dists, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """A new Django project: a clean virtualenv with `rtframe[django,server]` from the
    wheel, and the files step 1 of the tutorial writes (its `# file:` blocks)."""
    from .docs.snippets import parse

    # requirements/dev.txt, the whole lock exported, pins Django too
    base = tmp_path_factory.mktemp("tutorial")
    project = _install(dists.wheel, "django,server", "dev", base, "mysite")
    workdir = project.workdir
    page = parse((ROOT / "docs" / "tutorial" / "1-project.md").read_text(), "1-project.md")
    written = [b.file for b in page.blocks if b.file and b.file != "try_chat.py"]
    for block in page.blocks:
        if block.file in written:
            assert block.file is not None
            (workdir / block.file).parent.mkdir(parents=True, exist_ok=True)
            (workdir / block.file).write_text(block.code)
    assert {"manage.py", "mysite/settings.py", "mysite/asgi.py", "chat/realtime.py"} <= set(written)
    for command in (["check"], ["migrate", "-v", "0"]):
        done = project.run(project.bin("python"), "manage.py", *command)
        assert done.returncode == 0, f"manage.py {command[0]}:\n{done.stdout}\n{done.stderr}"
    return project


@pytest.fixture(scope="session")
def tutorial_server(tutorial_step_1: Installed) -> Iterator[int]:
    """Step 1's project served by the uvicorn of its virtualenv, as the tutorial says."""
    command: list[str | Path] = [tutorial_step_1.bin("uvicorn"), "mysite.asgi:application"]
    with _serving(
        [*command, "--log-level", "warning"], tutorial_step_1.workdir, _clean_env()
    ) as port:
        yield port


async def test_a_new_project_runs_the_tutorials_first_step_from_the_wheel(
    tutorial_server: int,
) -> None:
    origin = {"Origin": f"http://127.0.0.1:{tutorial_server}"}
    url = f"ws://127.0.0.1:{tutorial_server}/ws/chat/lobby"
    async with connect(url, additional_headers=origin) as ws:
        await ws.send(json.dumps({"type": "say", "text": "hello"}))
        said = json.loads(await asyncio.wait_for(ws.recv(), 10))
        assert said == {"type": "said", "text": "hello"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{tutorial_server}") as client:
        page = await client.get("/")  # Django's view, beside the realtime app
        assert page.status_code == 200
