"""The app of the HTTP end-to-end tests (test_http_e2e.py), served by a real uvicorn.

Routes with every method, converters and a validated body; an endless stream whose
generator counts how often it started and finished; a plain ASGI app (no framework)
mounted under /plain, whose lifespan events are appended to the file named by
`RTFRAME_TEST_LIFESPAN_LOG`.
"""

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from rtframe import RealtimeApp
from rtframe.http import JSONResponse, StreamingResponse
from rtframe.http_routing import HTTPRouter
from rtframe.types import Receive, Scope, Send

http = HTTPRouter()
streams = {"started": 0, "finished": 0}
items: dict[int, str] = {}


class Item(BaseModel):
    name: str = Field(min_length=1)


@http.get("/ticks", media_type="text/plain")
async def ticks(interval: float = 0.05) -> StreamingResponse:
    async def endless() -> AsyncIterator[str]:
        streams["started"] += 1
        try:
            n = 0
            while True:
                yield f"tick {n}\n"
                n += 1
                await asyncio.sleep(interval)
        finally:
            streams["finished"] += 1

    return StreamingResponse(endless(), media_type="text/plain; charset=utf-8")


@http.get("/streams")
async def stream_counts() -> dict[str, int]:
    return streams


@http.post("/items", status=201, max_body_size=1024)
async def create(item: Item) -> dict[str, Any]:
    item_id = len(items) + 1
    items[item_id] = item.name
    return {"id": item_id, "name": item.name}


@http.get("/items/{item_id:int}")
async def read(item_id: int) -> dict[str, Any]:
    return {"id": item_id, "name": items.get(item_id)}


@http.route("/items/{item_id:int}", methods=["PUT", "PATCH"])
async def change(item_id: int, item: Item) -> dict[str, Any]:
    items[item_id] = item.name
    return {"id": item_id, "name": item.name}


@http.delete("/items/{item_id:int}")
async def delete(item_id: int) -> None:
    items.pop(item_id, None)


def _log(line: str) -> None:
    path = os.environ.get("RTFRAME_TEST_LIFESPAN_LOG")
    if path:
        with Path(path).open("a") as out:
            out.write(line + "\n")


async def plain(scope: Scope, receive: Receive, send: Send) -> None:
    """A mounted ASGI app written against the spec alone."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            step = message["type"].rpartition(".")[2]
            _log(step)
            if step == "startup":
                scope["state"]["plain_started"] = True
            await send({"type": f"{message['type']}.complete"})
            if step == "shutdown":
                return
    seen = {
        "root_path": scope["root_path"],
        "path": scope["path"],
        "own": scope["path"][len(scope["root_path"]) :],
        "started": scope.get("state", {}).get("plain_started", False),
    }
    await JSONResponse(seen)(scope, receive, send)


app = RealtimeApp([http])
app.mount("/plain", plain)
