"""HTTP routes and mounts on a real uvicorn, with httpx: streams, methods, validation."""

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import uvicorn_process

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def lifespan_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("http-e2e") / "lifespan.log"


@pytest.fixture(scope="module")
def base_url(lifespan_log: Path) -> Iterator[str]:
    env = {"RTFRAME_TEST_LIFESPAN_LOG": str(lifespan_log)}
    with uvicorn_process("tests.http_app:app", env=env) as (port, _):
        yield f"http://127.0.0.1:{port}"
    # uvicorn stopped (SIGTERM): the mounted app's lifespan got its shutdown, in order
    assert lifespan_log.read_text().split() == ["startup", "shutdown"]


async def test_a_stream_arrives_chunk_by_chunk_and_stops_when_the_client_leaves(
    base_url: str,
) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        before = (await client.get("/streams")).json()
        started = time.monotonic()
        async with client.stream("GET", "/ticks?interval=0.2") as response:
            assert response.status_code == 200
            assert response.headers["content-type"] == "text/plain; charset=utf-8"
            assert response.headers["transfer-encoding"] == "chunked"
            lines = response.aiter_lines()
            assert await anext(lines) == "tick 0"
            first_at = time.monotonic() - started
            assert await anext(lines) == "tick 1"
            second_at = time.monotonic() - started
        # each chunk came when it was produced, not buffered until the end
        assert first_at < 0.5 and second_at - first_at > 0.1
        # leaving the block closed the connection: the generator's finally ran
        for _ in range(100):
            counts = (await client.get("/streams")).json()
            if counts["finished"] > before["finished"]:
                break
            await asyncio.sleep(0.02)
        assert counts == {"started": before["started"] + 1, "finished": before["finished"] + 1}


async def test_methods_405_head_and_converters(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        created = await client.post("/items", json={"name": "pen"})
        assert created.status_code == 201
        item_id = created.json()["id"]
        assert (await client.get(f"/items/{item_id}")).json() == {"id": item_id, "name": "pen"}
        put = await client.put(f"/items/{item_id}", json={"name": "ink"})
        assert put.json() == {"id": item_id, "name": "ink"}
        assert (await client.patch(f"/items/{item_id}", json={"name": "nib"})).status_code == 200
        head = await client.head(f"/items/{item_id}")
        assert (head.status_code, head.content) == (200, b"")
        assert int(head.headers["content-length"]) == len(b'{"id":1,"name":"nib"}')
        deleted = await client.delete(f"/items/{item_id}")
        assert (deleted.status_code, deleted.content) == (204, b"")
        refused = await client.post(f"/items/{item_id}", json={"name": "x"})
        assert refused.status_code == 405
        assert refused.headers["allow"] == "DELETE, GET, HEAD, PATCH, PUT"
        # {item_id:int} does not match letters: no route, and nothing beside it
        assert (await client.get("/items/pen")).status_code == 404


async def test_body_validation_errors(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        invalid = await client.post("/items", json={"name": ""})
        assert invalid.status_code == 422
        assert invalid.json()["errors"][0]["loc"] == ["body", "name"]
        broken = await client.post(
            "/items", content=b"{", headers={"content-type": "application/json"}
        )
        assert (broken.status_code, broken.json()["code"]) == (422, "invalid_json")
        form = await client.post("/items", data={"name": "pen"})  # a form, not JSON
        assert form.status_code == 415
        huge = await client.post("/items", json={"name": "x" * 2000})
        assert (huge.status_code, huge.json()["code"]) == (413, "content_too_large")
        bad_query = await client.get("/ticks?interval=soon")
        assert bad_query.status_code == 422


async def test_a_plain_asgi_app_mounted_under_a_prefix(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url, timeout=5) as client:
        seen = (await client.get("/plain/deep/path?q=1")).json()
        assert seen == {
            "root_path": "/plain",
            "path": "/plain/deep/path",
            "own": "/deep/path",
            "started": True,  # its lifespan ran, and its state reaches its requests
        }
        assert (await client.get("/plainly")).status_code == 404  # not under /plain
