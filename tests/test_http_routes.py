"""HTTP routes: registration, methods, path/query/body parameters, dependencies, answers."""

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Annotated, Any

import pytest
from pydantic import BaseModel, Field

from rtframe import ConfigurationError, Connection, Depends, MessageError, Reject
from rtframe._http_routes import HTTPRoutes, reject_status
from rtframe.exceptions import LayerUnavailableError
from rtframe.http import HTTPError, JSONResponse, Request, Response, StreamingResponse
from rtframe.http_routing import HTTPRouter
from rtframe.testing import TestClient
from rtframe.types import Message


class Item(BaseModel):
    name: str = Field(min_length=1)
    price: float


class Stored(BaseModel):
    id: int
    name: str


def serve(router: HTTPRouter, **options: Any) -> TestClient:
    routes = HTTPRoutes(**options)
    routes.include(router)
    return TestClient(routes)


async def test_path_converters_and_query_parameters() -> None:
    http = HTTPRouter(prefix="/api")

    @http.get("/items/{item_id:int}")
    async def by_int(item_id: int, verbose: bool = False) -> dict[str, Any]:
        return {"id": item_id, "verbose": verbose}

    @http.get("/ratio/{value:float}")
    async def by_float(value: float) -> float:
        return value * 2

    @http.get("/things/{key:uuid}")
    async def by_uuid(key: uuid.UUID, request: Request) -> dict[str, Any]:
        return {"key": str(key), "params": {k: str(v) for k, v in request.path_params.items()}}

    @http.get("/files/{rest:path}")
    async def by_path(rest: str, limit: int) -> dict[str, Any]:
        return {"rest": rest, "limit": limit}

    client = serve(http)
    answer = await client.get("/api/items/42?verbose=true")
    assert (answer.status, answer.json()) == (200, {"id": 42, "verbose": True})
    assert answer.headers["content-type"] == "application/json"
    assert (await client.get("/api/ratio/1.5")).json() == 3.0
    key = uuid.uuid4()
    assert (await client.get(f"/api/things/{key}")).json() == {
        "key": str(key),
        "params": {"key": str(key)},
    }
    assert (await client.get("/api/files/a/b/c.txt?limit=3")).json() == {
        "rest": "a/b/c.txt",
        "limit": 3,
    }
    # a value the converter refuses is another path: none matches here
    assert (await client.get("/api/items/forty-two")).status == 404


async def test_bad_query_parameters_are_one_422_listing_every_problem() -> None:
    http = HTTPRouter()

    async def page_size(size: int = 10) -> int:  # a dependency's query parameter counts too
        return size

    @http.get("/search")
    async def search(q: str, page: int, size: Annotated[int, Depends(page_size)]) -> list[Any]:
        return [q, page, size]

    client = serve(http)
    assert (await client.get("/search?q=x&page=2&size=5")).json() == ["x", 2, 5]
    answer = await client.get("/search?page=two&size=big")
    assert answer.status == 422
    body = answer.json()
    assert body["code"] == "validation_error"
    assert {tuple(e["loc"]) for e in body["errors"]} == {
        ("query", "q"),
        ("query", "page"),
        ("query", "size"),
    }
    assert {e["type"] for e in body["errors"]} == {"missing", "int_parsing"}


async def test_json_body_validated_into_the_model() -> None:
    http = HTTPRouter()

    @http.post("/items", status=201)
    async def create(item: Item) -> Stored:
        return Stored(id=1, name=item.name)

    @http.put("/raw")
    async def raw(data: bytes) -> dict[str, int]:
        return {"length": len(data)}

    client = serve(http)
    created = await client.request("POST", "/items", json={"name": "pen", "price": 2})
    assert (created.status, created.json()) == (201, {"id": 1, "name": "pen"})

    invalid = await client.request("POST", "/items", json={"name": "", "price": "free"})
    assert invalid.status == 422
    assert invalid.json()["code"] == "validation_error"
    assert [e["loc"] for e in invalid.json()["errors"]] == [["body", "name"], ["body", "price"]]

    broken = await client.request(
        "POST", "/items", content=b'{"name": ', headers={"content-type": "application/json"}
    )
    assert (broken.status, broken.json()["code"]) == (422, "invalid_json")

    form = await client.request(
        "POST", "/items", content=b"name=pen", headers={"content-type": "text/plain"}
    )
    assert (form.status, form.json()["code"]) == (415, "unsupported_media_type")

    # a raw `bytes` body takes any content type
    assert (await client.request("PUT", "/raw", content=b"\x00\x01")).json() == {"length": 2}


async def test_a_body_over_the_limit_is_413_whether_declared_or_streamed() -> None:
    http = HTTPRouter()

    @http.post("/small", max_body_size=8)
    async def small(data: bytes) -> int:
        return len(data)

    @http.post("/default")
    async def default(data: bytes) -> int:
        return len(data)

    client = serve(http, max_body_size=16)
    assert (await client.request("POST", "/small", content=b"12345678")).json() == 8
    too_big = await client.request("POST", "/small", content=b"123456789")
    assert (too_big.status, too_big.json()["code"]) == (413, "content_too_large")
    assert (await client.request("POST", "/default", content=b"x" * 17)).status == 413

    # no Content-Length (a chunked upload): counted as the chunks arrive
    sent: list[Message] = []
    chunks: list[Message] = [
        {"type": "http.request", "body": b"1234", "more_body": True},
        {"type": "http.request", "body": b"56789", "more_body": False},
    ]

    async def receive() -> Message:
        return chunks.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    routes = HTTPRoutes()
    routes.include(http)
    scope = {"type": "http", "method": "POST", "path": "/small", "headers": [], "query_string": b""}
    await routes(scope, receive, send)
    assert sent[0]["status"] == 413


async def test_methods_405_with_allow_and_head_for_get() -> None:
    http = HTTPRouter()
    calls: list[str] = []

    @http.get("/thing")
    async def read() -> dict[str, str]:
        calls.append("read")
        return {"method": "GET"}

    @http.route("/thing", methods=["put", "PATCH"])
    async def write(request: Request) -> dict[str, str]:
        return {"method": request.method}

    @http.delete("/thing")
    async def remove() -> None:
        calls.append("delete")

    @http.post("/thing", status=202)
    async def later() -> None:
        calls.append("later")

    client = serve(http)
    assert (await client.request("PATCH", "/thing")).json() == {"method": "PATCH"}
    assert (await client.request("PUT", "/thing")).json() == {"method": "PUT"}
    head = await client.request("HEAD", "/thing")
    assert (head.status, head.body) == (200, b"")
    assert head.headers["content-length"] == str(len(b'{"method":"GET"}'))
    deleted = await client.request("DELETE", "/thing")
    assert (deleted.status, deleted.body) == (204, b"")
    assert "content-length" not in deleted.headers and "content-type" not in deleted.headers
    accepted = await client.request("POST", "/thing")
    assert (accepted.status, accepted.body) == (202, b"")
    refused = await client.request("OPTIONS", "/thing")
    assert refused.status == 405
    assert refused.headers["allow"] == "DELETE, GET, HEAD, PATCH, POST, PUT"
    assert refused.json()["code"] == "method_not_allowed"
    assert calls == ["read", "delete", "later"]


async def test_dependencies_get_the_request_as_their_connection() -> None:
    http = HTTPRouter()
    events: list[str] = []

    async def token(conn: Connection) -> str:  # written for WebSockets: works unchanged
        return conn.headers.get("x-token", "") + "/" + conn.cookies.get("sid", "")

    async def resource() -> AsyncIterator[str]:
        events.append("open")
        yield "db"
        events.append("close")

    async def per_call(item: Item) -> str:  # the body reaches message-scoped dependencies
        return item.name.upper()

    @http.post("/orders/{order_id:int}")
    async def order(
        order_id: int,
        item: Item,
        tok: Annotated[str, Depends(token)],
        db: Annotated[str, Depends(resource)],
        loud: Annotated[str, Depends(per_call, scope="message")],
    ) -> dict[str, Any]:
        events.append("handler")
        return {"id": order_id, "tok": tok, "db": db, "loud": loud}

    client = serve(http)
    answer = await client.request(
        "POST",
        "/orders/7",
        json={"name": "pen", "price": 1},
        headers={"x-token": "t"},
        cookies={"sid": "s1"},
    )
    assert answer.json() == {"id": 7, "tok": "t/s1", "db": "db", "loud": "PEN"}
    # teardowns run before a buffered response is sent
    assert events == ["open", "handler", "close"]


async def test_a_failing_teardown_is_a_500_or_logged_after_a_stream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    http = HTTPRouter()

    async def flaky() -> AsyncIterator[str]:
        yield "value"
        raise RuntimeError("could not commit")

    @http.get("/buffered")
    async def buffered(value: Annotated[str, Depends(flaky)]) -> str:
        return value

    @http.get("/streamed")
    async def streamed(value: Annotated[str, Depends(flaky)]) -> StreamingResponse:
        async def one() -> AsyncIterator[str]:
            yield value

        return StreamingResponse(one())

    client = serve(http)
    with caplog.at_level(logging.ERROR, "rtframe.http"):
        failed = await client.get("/buffered")
        assert (failed.status, failed.json()["code"]) == (500, "internal_error")
        assert (await client.get("/streamed")).body == b"value"  # sent before the teardown
    assert "a dependency teardown of" in caplog.text and "could not commit" in caplog.text


async def test_dependency_overrides_are_read_per_request() -> None:
    http = HTTPRouter()

    async def user() -> str:
        return "real"

    @http.get("/me")
    async def me(name: Annotated[str, Depends(user)]) -> str:
        return name

    overrides: dict[Any, Any] = {}
    client = serve(http, overrides=overrides)
    assert (await client.get("/me")).json() == "real"

    async def fake() -> str:
        return "fake"

    overrides[user] = fake
    assert (await client.get("/me")).json() == "fake"


async def test_answers_by_return_value() -> None:
    http = HTTPRouter()

    @http.get("/model")
    async def model() -> Stored:
        return {"id": "3", "name": "x"}  # type: ignore[return-value]  # validated into Stored

    @http.get("/list")
    async def listing() -> list[Stored]:
        return [Stored(id=1, name="a")]

    @http.get("/untyped")
    async def untyped():  # type: ignore[no-untyped-def]
        return {"a": [1, 2]}

    @http.get("/text")
    async def text() -> str:
        return "plain"

    @http.get("/response")
    async def response() -> Response | Stored:
        return Response("teapot", status=418, headers={"x-kind": "tea"})

    @http.get("/wrong")
    async def wrong() -> Stored:
        return {"id": "not a number"}  # type: ignore[return-value]

    client = serve(http)
    assert (await client.get("/model")).json() == {"id": 3, "name": "x"}
    assert (await client.get("/list")).json() == [{"id": 1, "name": "a"}]
    assert (await client.get("/untyped")).json() == {"a": [1, 2]}
    assert (await client.get("/text")).json() == "plain"
    teapot = await client.get("/response")
    assert (teapot.status, teapot.text, teapot.headers["x-kind"]) == (418, "teapot", "tea")
    # a value that does not match the annotation is the server's bug: 500, logged
    assert (await client.get("/wrong")).status == 500


async def test_errors_become_json_answers_never_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    http = HTTPRouter()

    @http.get("/http-error")
    async def http_error() -> None:
        raise HTTPError(404, "no such item", headers={"x-why": "gone"})

    @http.get("/reject/{code:int}")
    async def reject(code: int) -> None:
        raise Reject(code, "refused here")

    @http.get("/message-error")
    async def message_error() -> None:
        raise MessageError("out_of_stock", "No pens left")

    @http.get("/layer")
    async def layer() -> None:
        raise LayerUnavailableError("redis is down")

    @http.get("/crash")
    async def crash() -> None:
        raise RuntimeError("secret internals")

    client = serve(http)
    missing = await client.get("/http-error")
    assert (missing.status, missing.headers["x-why"]) == (404, "gone")
    assert missing.json() == {
        "type": "error",
        "code": "not_found",
        "detail": "no such item",
        "errors": [],
    }
    assert (await client.get("/reject/4401")).status == 401
    assert (await client.get("/reject/4403")).json()["detail"] == "refused here"
    assert (await client.get("/reject/1008")).status == 403
    assert (await client.get("/reject/1013")).status == 503
    assert (await client.get("/message-error")).json()["code"] == "out_of_stock"
    layer_answer = await client.get("/layer")
    assert (layer_answer.status, layer_answer.json()["code"]) == (503, "layer_unavailable")
    with caplog.at_level(logging.ERROR, "rtframe.http"):
        crashed = await client.get("/crash")
    assert crashed.status == 500
    assert "secret" not in crashed.text and crashed.json()["code"] == "internal_error"
    assert "test_http_routes" in caplog.text and "secret internals" in caplog.text


def test_reject_status_table() -> None:
    assert [reject_status(c) for c in (4401, 4403, 4429, 4500, 4001, 1008, 1011, 1013)] == [
        401,
        403,
        429,
        500,
        403,
        403,
        403,
        503,
    ]


async def test_a_stream_stops_when_the_client_disconnects() -> None:
    http = HTTPRouter()
    ended = asyncio.Event()
    produced: list[int] = []

    async def ticks() -> AsyncIterator[str]:
        try:
            for n in range(1000):
                produced.append(n)
                yield f"tick {n}\n"
                await asyncio.sleep(0.01)
        finally:
            ended.set()

    @http.get("/ticks", media_type="text/plain")
    async def stream() -> StreamingResponse:
        return StreamingResponse(ticks(), media_type="text/plain; charset=utf-8")

    client = serve(http)
    async with client.stream("GET", "/ticks") as response:
        assert response.status == 200
        assert response.headers["content-type"] == "text/plain; charset=utf-8"
        assert await response.receive_chunk() == b"tick 0\n"
        assert await response.receive_chunk() == b"tick 1\n"
    # leaving the block disconnected: the generator's finally ran, nothing more was made
    assert ended.is_set()
    count = len(produced)
    await asyncio.sleep(0.05)
    assert len(produced) == count < 10


async def test_a_stream_ends_normally_and_head_does_not_run_it() -> None:
    http = HTTPRouter()
    started: list[str] = []

    async def three() -> AsyncIterator[bytes]:
        started.append("body")
        for chunk in (b"a", b"b", b"c"):
            yield chunk

    @http.get("/abc")
    async def abc() -> StreamingResponse:
        return StreamingResponse(three())

    client = serve(http)
    full = await client.get("/abc")
    assert (full.body, full.headers["content-type"]) == (b"abc", "application/octet-stream")
    head = await client.request("HEAD", "/abc")
    assert (head.status, head.body) == (200, b"")
    assert started == ["body"]


async def test_a_failing_stream_reaches_the_server() -> None:
    http = HTTPRouter()

    async def broken() -> AsyncIterator[bytes]:
        yield b"partial"
        raise RuntimeError("lost the source")

    @http.get("/broken")
    async def stream() -> StreamingResponse:
        return StreamingResponse(broken())

    # the server aborts the connection: the client never sees a complete body
    with pytest.raises(RuntimeError, match="lost the source"):
        await serve(http).get("/broken")


async def test_closing_the_request_or_end_streams_ends_a_stream() -> None:
    http = HTTPRouter()
    requests: list[Request] = []
    finished: list[str] = []

    async def forever() -> AsyncIterator[bytes]:
        try:
            while True:
                yield b"."
                await asyncio.sleep(0.01)
        finally:
            finished.append("done")

    @http.get("/forever")
    async def stream(request: Request) -> StreamingResponse:
        requests.append(request)
        return StreamingResponse(forever())

    routes = HTTPRoutes()
    routes.include(http)
    client = TestClient(routes)
    async with client.stream("GET", "/forever") as response:
        await response.receive_chunk()
        await requests[0].close(4001, "logged out")  # what a Django session end does
        await response.read()
        assert response.ended and finished == ["done"]
    assert not routes.streams

    async with client.stream("GET", "/forever") as response:
        await response.receive_chunk()
        assert await routes.end_streams() == 1
        await response.read()
    assert finished == ["done", "done"]


async def test_a_request_cannot_do_what_only_a_websocket_does() -> None:
    http = HTTPRouter()

    @http.get("/misuse")
    async def misuse(request: Request) -> None:
        await request.accept()

    assert (await serve(http).get("/misuse")).status == 500


async def test_add_endpoint_keeps_the_old_contract() -> None:
    routes = HTTPRoutes()

    async def page(request: Request, extra: object = "not injected") -> JSONResponse:
        return JSONResponse({"path": request.path, "extra": extra, "q": request.query_params})

    routes.add_endpoint("/page", page)
    client = TestClient(routes)
    assert (await client.get("/page?x=1")).json() == {
        "path": "/page",
        "extra": "not injected",
        "q": {"x": "1"},
    }
    assert (await client.request("POST", "/page")).headers["allow"] == "GET, HEAD"
    assert list(routes) == ["/page"] and "/page" in routes and len(routes) == 1


async def test_routes_match_beneath_the_root_path() -> None:
    http = HTTPRouter()

    @http.get("/hello")
    async def hello(request: Request) -> dict[str, str]:
        return {"path": request.path, "root": request.scope["root_path"]}

    routes = HTTPRoutes()
    routes.include(http)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    async def send(message: Message) -> None:
        sent.append(message)

    # uvicorn --root-path /rt puts the root path in front of the path (ASGI spec)
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/rt/hello",
        "root_path": "/rt",
        "headers": [],
        "query_string": b"",
    }
    assert await routes.dispatch(scope, receive, send)
    assert sent[-1]["body"] == b'{"path":"/rt/hello","root":"/rt"}'


def test_bad_signatures_fail_at_registration_naming_function_and_parameter() -> None:
    http = HTTPRouter()

    def sync(request: Request) -> None: ...

    with pytest.raises(ConfigurationError, match="sync must be declared with `async def`"):
        http.get("/a")(sync)

    async def untyped(thing) -> None: ...  # type: ignore[no-untyped-def]

    with pytest.raises(ConfigurationError, match=r"parameter 'thing' of .*untyped"):
        http.get("/b")(untyped)

    async def body_on_get(item: Item) -> None: ...

    with pytest.raises(ConfigurationError, match="GET requests carry none"):
        http.get("/c")(body_on_get)
    with pytest.raises(ConfigurationError, match="GET requests carry none"):
        http.route("/c", methods=["GET", "POST"])(body_on_get)

    async def wrong_type(item_id: str) -> None: ...

    with pytest.raises(ConfigurationError, match=r"declares \{item_id\} as int"):
        http.get("/d/{item_id:int}")(wrong_type)

    async def two_bodies(item: Item, stored: Stored) -> None: ...

    with pytest.raises(ConfigurationError, match="one message"):
        http.post("/e")(two_bodies)

    async def other_body(stored: Stored) -> str:
        return stored.name

    async def body_and_dep(item: Item, name: str = Depends(other_body, scope="message")) -> None:
        """The handler and a dependency ask for two different bodies."""

    with pytest.raises(ConfigurationError, match="a request has one body"):
        http.post("/f")(body_and_dep)

    async def fine() -> None: ...

    with pytest.raises(ConfigurationError, match=r"unknown method 'HEAD'.*served by every GET"):
        http.route("/g", methods=["HEAD"])(fine)
    with pytest.raises(ConfigurationError, match="name at least one method"):
        http.route("/g", methods=[])(fine)
    with pytest.raises(ConfigurationError, match="not a final HTTP status"):
        http.get("/g", status=100)(fine)

    async def some() -> int:
        return 1

    with pytest.raises(ConfigurationError, match="a 204 answer has no body"):
        http.get("/g", status=204)(some)

    class Unserializable:
        pass

    async def weird() -> Unserializable:
        return Unserializable()

    with pytest.raises(ConfigurationError, match="cannot be serialized as JSON"):
        http.get("/h")(weird)

    http.get("/i")(fine)
    with pytest.raises(ConfigurationError, match=r"GET '/i' is served twice"):
        http.get("/i")(fine)
    with pytest.raises(ConfigurationError, match="must start with '/'"):
        HTTPRouter(prefix="api")


def test_included_routers_keep_their_prefixes_and_describe_their_routes() -> None:
    inner = HTTPRouter(prefix="/items")

    @inner.get("/{item_id:int}", summary="One item")
    async def one(item_id: int, fields: str = "all") -> Stored:
        return Stored(id=item_id, name=fields)

    @inner.post("", status=201)
    async def create(item: Item) -> Stored:
        return Stored(id=1, name=item.name)

    @inner.get("/export", media_type="text/csv")
    async def export() -> StreamingResponse:
        raise NotImplementedError

    outer = HTTPRouter()
    outer.include_router(inner, prefix="/api")
    routes = HTTPRoutes()
    routes.include(outer)
    by_path = {d.path: d for d in routes.describe()}
    assert list(by_path) == ["/api/items", "/api/items/export", "/api/items/{item_id:int}"]
    one_d = by_path["/api/items/{item_id:int}"]
    assert (one_d.methods, one_d.address, one_d.returns, one_d.summary) == (
        ("GET", "HEAD"),
        "/api/items/{item_id}",
        Stored,
        "One item",
    )
    assert [(p.name, p.converter) for p in one_d.path_params] == [("item_id", "int")]
    assert [(q.name, q.required, q.default) for q in one_d.query_params] == [
        ("fields", False, "all")
    ]
    created = by_path["/api/items"]
    assert (created.methods, created.body, created.status) == (("POST",), Item, 201)
    exported = by_path["/api/items/export"]
    assert (exported.streaming, exported.media_type, exported.returns) == (True, "text/csv", None)
