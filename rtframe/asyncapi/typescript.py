"""TypeScript declarations of an app's messages, generated from its AsyncAPI document.

`typescript(document)` hands the document to Modelina (npm `@asyncapi/modelina`), run by
Node.js through `modelina.js` beside this module, and returns the declarations: one
exported interface per message model, and per channel the unions of what the server
sends and accepts (`WsLobbyServerFrame`, `WsLobbyClientFrame`). `rtframe client-types`
writes them to a file.

Nothing is downloaded when it runs: Node.js must be on the PATH and the npm package
installed in a directory whose `node_modules` Node is pointed at, found in this order:

1. the `modelina_dir` argument (`rtframe client-types --modelina DIR`);
2. the `RTFRAME_MODELINA` environment variable;
3. `tools/modelina` of the current directory, then of the rtframe source checkout.

`npm ci --prefix tools/modelina` installs the pinned version there; anywhere else,
`npm install @asyncapi/modelina` in a directory and name it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from ..exceptions import ConfigurationError

__all__ = ["MODELINA_ENV", "ToolMissingError", "find_modelina", "typescript"]

#: The environment variable naming a directory where `@asyncapi/modelina` is installed.
MODELINA_ENV = "RTFRAME_MODELINA"
_SCRIPT = Path(__file__).with_name("modelina.js")
_PACKAGE = Path("node_modules", "@asyncapi", "modelina", "package.json")


class ToolMissingError(ConfigurationError):
    """Node.js or the Modelina package is not installed; the message says how to get it."""


def find_modelina(modelina_dir: str | Path | None = None) -> Path:
    """The directory whose `node_modules` holds `@asyncapi/modelina`.

    Raises:
        ToolMissingError: none of the places looked in has it (they are named).
    """
    if modelina_dir is not None:
        candidates = [Path(modelina_dir)]
    elif os.environ.get(MODELINA_ENV):
        candidates = [Path(os.environ[MODELINA_ENV])]
    else:
        here = Path.cwd() / "tools" / "modelina"
        checkout = Path(__file__).resolve().parents[2] / "tools" / "modelina"
        candidates = list(dict.fromkeys([here, checkout]))
    for candidate in candidates:
        if (candidate / _PACKAGE).is_file():
            return candidate
    looked = ", ".join(str(c) for c in candidates)
    raise ToolMissingError(
        f"the npm package @asyncapi/modelina is not installed (looked in {looked}); "
        "install it with `npm ci --prefix tools/modelina` in the rtframe repository, or "
        f"`npm install @asyncapi/modelina` in a directory named by --modelina or "
        f"${MODELINA_ENV}"
    )


def typescript(
    document: Any, *, modelina_dir: str | Path | None = None, timeout: float = 120.0
) -> str:
    """The TypeScript declarations of `document`'s messages (see the module docstring).

    Raises:
        ToolMissingError: Node.js or `@asyncapi/modelina` cannot be found.
        ConfigurationError: Modelina failed on the document (its message included).
    """
    node = shutil.which("node")
    if node is None:
        raise ToolMissingError(
            "Node.js (`node`) is not on the PATH; rtframe client-types runs Modelina with "
            "it: install Node.js 18 or later"
        )
    where = find_modelina(modelina_dir)
    env = {**os.environ, "NODE_PATH": str((where / "node_modules").resolve())}
    try:
        done = subprocess.run(
            [node, str(_SCRIPT)],
            input=json.dumps(document),
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise ConfigurationError(f"Modelina did not finish within {timeout:g} s") from None
    if done.returncode != 0:
        detail = done.stderr.strip().splitlines()
        raise ConfigurationError(
            "Modelina could not generate TypeScript from the document: "
            + (detail[0] if detail else f"exit status {done.returncode}")
        )
    return done.stdout
