"""An app with small connection limits, served by uvicorn in tests/test_conn_limits.py.

`LIMIT_CONNECTIONS` and `LIMIT_PER_ADDRESS` (environment) set `Limits.connections` and
`Limits.per_address`; unset, that limit is off.
"""

from __future__ import annotations

import os

from rtframe import Connection, Limits, RealtimeApp, WebSocketRouter

ws = WebSocketRouter()


@ws.route("/ws")
async def join(conn: Connection) -> None: ...


def _limit(name: str) -> int | None:
    value = os.environ.get(name)
    return int(value) if value else None


app = RealtimeApp(
    [ws],
    limits=Limits(
        connections=_limit("LIMIT_CONNECTIONS"),
        per_address=_limit("LIMIT_PER_ADDRESS"),
        retry_after=3,
    ),
)
