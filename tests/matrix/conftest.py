"""The server matrix: the same end-to-end suite on every ASGI server rtframe supports.

`server` is a module-scoped fixture parametrized over `tests.servers.SERVER_KINDS`: each
test module starts each server once (`tests/matrix/app.py`), and every test in it runs on
every server. A failing test shows that server's output. Known limitations, and how the
suite skips on them: `tests/matrix/support.py`.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator

import pytest

from ..servers import SERVER_KINDS, RunningServer, asgi_server
from .support import APP


@pytest.fixture(scope="module", params=list(SERVER_KINDS))
def server(request: pytest.FixtureRequest) -> Iterator[RunningServer]:
    with asgi_server(request.param, APP) as running:
        yield running


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    running = getattr(item, "funcargs", {}).get("server")
    if report.failed and isinstance(running, RunningServer):
        report.sections.append((f"{running.name} output", running.output()[-20000:] or "(empty)"))
    return report
