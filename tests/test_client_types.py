"""`rtframe client-types`: TypeScript declarations from the AsyncAPI document, by Modelina.

The declarations of the feature app (every feature of the document, a history group
included) and of the example chat are generated with the Modelina that scripts/test
installs in tools/modelina (`npm ci`), then type-checked by the TypeScript compiler of
the same directory, together with code that uses them the way a client would.
"""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from rtframe.asyncapi import generate
from rtframe.asyncapi.typescript import MODELINA_ENV, ToolMissingError, find_modelina, typescript
from rtframe.cli import main

from .asyncapi.feature_app import app as feature
from .servers import ROOT

TOOLS = ROOT / "tools" / "modelina"
TSC = TOOLS / "node_modules" / ".bin" / "tsc"

# A client of the feature app's lobby, written against the generated declarations:
# it compiles only if the unions tell messages apart by `type` and `$pos` is typed.
USAGE = """\
import type { Chat, WsLobbyClientFrame, WsLobbyServerFrame } from "./feature";
import type { WsChatRoomServerFrame } from "./chat";

export function describe(frame: WsLobbyServerFrame): string {
  if (Array.isArray(frame)) return `${frame.length} earlier messages`;
  switch (frame.type) {
    case "chatted":
      return frame.$pos ? `${frame.text} at ${frame.$pos.epoch}:${frame.$pos.offset}` : frame.text;
    case "$recovery":
      return frame.recovered ? `${frame.replayed} replayed` : "reload";
    case "$dropped":
      return `${frame.count} dropped`;
    default:
      return frame.type;
  }
}

export const say: WsLobbyClientFrame = { type: "chat", text: "hi" } satisfies Chat;
// @ts-expect-error: a chat message needs its text
export const missing: Chat = { type: "chat" };
// @ts-expect-error: the lobby accepts no such message
export const foreign: WsLobbyClientFrame = { type: "draw", points: [] };
export const chat = (frame: WsChatRoomServerFrame): string => frame.type;
"""


@pytest.fixture(scope="module")
def declarations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The TypeScript of the feature app (written by the command) and of the example chat
    (by the function), made at once: each Modelina run takes seconds."""
    assert (TOOLS / "node_modules" / "@asyncapi" / "modelina").is_dir(), (
        "Modelina is not installed: npm ci --prefix tools/modelina (scripts/test does it)"
    )
    from examples.chat.app import app as chat

    out = tmp_path_factory.mktemp("types") / "feature.ts"
    command = ["client-types", "tests.asyncapi.feature_app:app", "-o", str(out)]
    with ThreadPoolExecutor(2) as pool:
        written = pool.submit(main, command)
        chat_ts = pool.submit(typescript, generate(chat))
        assert written.result() == 0
        return {"feature": out.read_text(), "chat": chat_ts.result()}


def test_every_message_is_an_exported_interface(declarations: dict[str, str]) -> None:
    ts = declarations["feature"]
    assert ts.startswith('// TypeScript declarations of the messages of "Feature board" 2.1.0,')
    for name in ("Chat", "Chatted", "Draw", "ErrorFrame", "RecoveryNotice", "GapNotice"):
        assert f"export interface {name} {{" in ts
    assert "export type HistoryReply = Chatted[];" in ts
    # wire names as they are, `type` required, the position of a history group typed
    assert "export interface Chatted {\n  'type': 'chatted';\n  'text': string;\n" in ts
    assert "  '$pos'?: HistoryPosition;\n" in ts
    assert "  'after_ms': number;\n" in ts
    assert "export type Color = " in ts  # an enum keeps its own name
    assert "additionalProperties" not in ts
    # per route, what the server sends and what it accepts
    assert (
        "export type WsLobbyServerFrame = Chatted | DroppedNotice | ErrorFrame | "
        "HistoryReply | ReconnectNotice | RecoveryNotice;"
    ) in ts
    assert "export type WsLobbyClientFrame = Chat | ReservedHistory;" in ts


def test_the_declarations_type_check_with_code_that_uses_them(
    declarations: dict[str, str], tmp_path: Path
) -> None:
    for name, ts in declarations.items():
        (tmp_path / f"{name}.ts").write_text(ts)
    (tmp_path / "usage.ts").write_text(USAGE)
    files = [str(tmp_path / f"{n}.ts") for n in ("feature", "chat", "usage")]
    flags = ["--noEmit", "--strict", "--skipLibCheck", "--lib", "es2020", "--target", "es2020"]
    done = subprocess.run(
        [str(TSC), *flags, *files], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_missing_modelina_is_named_with_how_to_install_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["client-types", "tests.asyncapi.feature_app:app", "--modelina", str(tmp_path)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "@asyncapi/modelina is not installed" in err
    assert str(tmp_path) in err and "npm ci --prefix tools/modelina" in err
    monkeypatch.setenv(MODELINA_ENV, str(tmp_path))
    with pytest.raises(ToolMissingError, match="@asyncapi/modelina"):
        find_modelina()
    monkeypatch.setenv(MODELINA_ENV, str(TOOLS))
    assert find_modelina() == TOOLS


def test_a_missing_node_is_named(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no node here
    assert main(["client-types", "tests.asyncapi.feature_app:app"]) == 2
    assert "Node.js (`node`) is not on the PATH" in capsys.readouterr().err


def test_a_modelina_failure_is_reported(tmp_path: Path) -> None:
    # a package directory whose "modelina" throws when loaded
    fake = tmp_path / "node_modules" / "@asyncapi" / "modelina"
    fake.mkdir(parents=True)
    (fake / "package.json").write_text('{"name": "@asyncapi/modelina", "version": "0.0.0"}')
    (fake / "index.js").write_text("throw new Error('broken modelina');\n")
    with pytest.raises(Exception, match="Modelina could not generate TypeScript"):
        typescript(generate(feature), modelina_dir=tmp_path)
