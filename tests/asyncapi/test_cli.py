"""`rtframe asyncapi` and `rtframe docs serve`."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
import yaml

from rtframe._loader import load_app
from rtframe.asyncapi import generate
from rtframe.cli import YAML_HINT, docs_server, main

from ..servers import free_port, wait_for_port
from .checks import ROOT
from .feature_app import app as feature

TARGET = "tests.asyncapi.feature_app:app"


def test_prints_the_json_document(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["asyncapi", TARGET]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == generate(feature)
    assert out == json.dumps(generate(feature), indent=2) + "\n"


def test_writes_yaml_to_a_file(tmp_path: Path) -> None:
    target = tmp_path / "asyncapi.yaml"
    assert main(["asyncapi", TARGET, "--yaml", "-o", str(target)]) == 0
    text = target.read_text()
    assert text.startswith("asyncapi: 3.0.0\ninfo:\n")
    assert yaml.safe_load(text) == generate(feature)


def test_server_options(capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--server-host", "rt.example.com", "--server-protocol", "wss"]
    assert main(["asyncapi", TARGET, *args, "--server-pathname", "/live"]) == 0
    servers = json.loads(capsys.readouterr().out)["servers"]
    assert servers == {
        "default": {"host": "rt.example.com", "protocol": "wss", "pathname": "/live"}
    }


def test_a_mounted_app_is_found(capsys: pytest.CaptureFixture[str]) -> None:
    # mount_beside returns the app; a wrapper with `.app` is followed too
    assert main(["asyncapi", "tests.asyncapi.test_cli:wrapped"]) == 0
    assert json.loads(capsys.readouterr().out)["info"]["title"] == "Feature board"


class Wrapper:
    def __init__(self, app: object) -> None:
        self.app = app


wrapped = Wrapper(Wrapper(feature))
not_an_app = Wrapper(object())


@pytest.mark.parametrize(
    ("target", "error"),
    [
        ("no_colon", "expected module:attribute"),
        (":app", "expected module:attribute"),
        (
            "tests.asyncapi.missing_module:app",
            "cannot import module 'tests.asyncapi.missing_module'",
        ),
        ("tests.asyncapi.feature_app:nope", "has no attribute 'nope'"),
        ("tests.asyncapi.test_cli:not_an_app", "is a Wrapper, not a RealtimeApp"),
    ],
)
def test_bad_targets_are_explained(
    target: str, error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["asyncapi", target]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("rtframe: error: ")
    assert error in captured.err


def test_a_bad_server_host_is_explained(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["asyncapi", TARGET, "--server-host", "wss://x"]) == 2
    assert "must be host[:port]" in capsys.readouterr().err


def test_yaml_without_pyyaml_prints_the_install_hint(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "yaml", None)  # makes `import yaml` fail
    target = tmp_path / "out.yaml"
    assert main(["asyncapi", TARGET, "--yaml", "-o", str(target)]) == 2
    assert YAML_HINT in capsys.readouterr().err
    assert not target.exists()


def test_python_dash_m_and_the_console_script() -> None:
    for command in (
        [sys.executable, "-m", "rtframe"],
        [str(Path(sys.executable).parent / "rtframe")],
    ):
        proc = subprocess.run(
            [*command, "asyncapi", TARGET], cwd=ROOT, capture_output=True, text=True, check=False
        )
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["info"]["title"] == "Feature board"
    usage = subprocess.run(
        [sys.executable, "-m", "rtframe"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert usage.returncode == 2 and "usage: rtframe" in usage.stderr


def test_docs_serve() -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "rtframe", "docs", "serve", TARGET, "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for_port(port, proc)
        base = f"http://127.0.0.1:{port}"
        doc = httpx.get(f"{base}/asyncapi.json").json()
        page = httpx.get(f"{base}/asyncapi")
        root = httpx.get(f"{base}/")
        missing = httpx.get(f"{base}/nope")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        if proc.stdout:
            proc.stdout.close()
    assert doc["servers"] == {"default": {"host": f"127.0.0.1:{port}", "protocol": "ws"}}
    assert doc["channels"] == generate(feature)["channels"]
    assert page.status_code == 200 and "ws_rooms_room_id_board.receive.Draw" in page.text
    assert root.status_code == 307 and root.headers["location"] == "/asyncapi"
    assert missing.status_code == 404


def test_the_docs_server_answers_each_path_in_process() -> None:
    """The handler behind `rtframe docs serve`, served from a thread (the subprocess test
    above shows the command; this one shows each answer)."""
    httpd = docs_server(load_app(TARGET), "127.0.0.1", 0)
    port = httpd.server_address[1]
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base) as http:
            doc = http.get("/asyncapi.json", headers={"Host": "docs.example:8080"}).json()
            assert doc["servers"]["default"]["host"] == "docs.example:8080"
            page = http.get("/asyncapi?x=1")
            assert page.status_code == 200 and "text/html" in page.headers["content-type"]
            home = http.get("/", follow_redirects=False)
            assert (home.status_code, home.headers["location"]) == (307, "/asyncapi")
            assert http.get("/nothing").status_code == 404
            odd = http.get("/asyncapi.json", headers={"Host": "wss://bad host"}).json()
            assert odd["servers"]["default"]["host"] == "localhost"
    finally:
        httpd.shutdown()
        httpd.server_close()
