"""Generator edge cases and its clear errors; the draft-07 rewriting; docstring parsing."""

from __future__ import annotations

from typing import Annotated, Any, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, computed_field

from rtframe import ConfigurationError, Connection, Depends, Group, RealtimeApp, WebSocketRouter
from rtframe.asyncapi import generate, sends, server
from rtframe.asyncapi.docstrings import parse
from rtframe.asyncapi.draft07 import to_draft07
from rtframe.asyncapi.page import render_page

from .checks import problems


class Msg(BaseModel):
    text: str


class Bad(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"n": 1}, {"n": "x"}]})
    n: int


class Odd(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": {"a": {"n": 1}}})
    n: int


class Opaque:
    pass


class Holder(BaseModel):
    model_config = ConfigDict(arbitrary_types_allowed=True)
    thing: Opaque


class Total(BaseModel):
    type: Literal["total"] = "total"
    values: list[int]

    @computed_field  # type: ignore[prop-decorator]
    @property
    def sum(self) -> int:
        return sum(self.values)


class One(BaseModel):
    type: Literal["one"] = "one"


class Two(BaseModel):
    type: Literal["two"] = "two"


class Evil(BaseModel):
    """<script>alert(1)</script>"""

    text: str = Field(description="<img src=x onerror=alert(1)>")


def app_with(handler: Any, path: str = "/ws", connect: Any = None, **options: Any) -> RealtimeApp:
    ws = WebSocketRouter()
    if connect is not None:
        ws.add_connect_handler(path, connect)
    if handler is not None:
        ws.add_receive_handler(path, handler)
    return RealtimeApp(routers=[ws], **options)


# -- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "protocol", "pathname", "error"),
    [
        ("ws://example.com", "ws", None, "must be host[:port], with no scheme"),
        ("example.com/ws", "ws", None, "must be host[:port]"),
        ("", "ws", None, "must be host[:port]"),
        ("example.com", "ftp", None, "protocol must be 'ws', 'wss', 'http' or 'https', not 'ftp'"),
        ("example.com", "wss", "api", "pathname 'api' must start with '/'"),
    ],
)
def test_a_bad_server_is_refused(
    host: str, protocol: str, pathname: str | None, error: str
) -> None:
    with pytest.raises(ConfigurationError, match=error.replace("[", r"\[").replace("]", r"\]")):
        server(host, protocol, pathname)


def test_servers_can_be_given() -> None:
    async def echo(msg: Msg) -> Msg:
        return msg

    app = app_with(echo)
    doc = generate(app, host="chat.example.com", protocol="wss", pathname="/rt")
    assert doc["servers"] == {
        "default": {"host": "chat.example.com", "protocol": "wss", "pathname": "/rt"}
    }
    both = {"production": server("chat.example.com", "wss"), "local": server("localhost:8000")}
    assert list(generate(app, servers=both)["servers"]) == ["local", "production"]


def test_an_example_that_does_not_match_its_model_is_an_error() -> None:
    async def take(msg: Bad) -> None:
        return None

    with pytest.raises(ConfigurationError, match="example 2 of Bad does not match its own schema"):
        generate(app_with(take))


def test_examples_must_be_a_list() -> None:
    async def take(msg: Odd) -> None:
        return None

    with pytest.raises(ConfigurationError, match="examples of Odd must be a list"):
        generate(app_with(take))


def test_a_type_without_json_schema_is_named() -> None:
    async def take(msg: Holder) -> None:
        return None

    with pytest.raises(ConfigurationError, match="cannot describe Holder as JSON Schema"):
        generate(app_with(take))


def test_two_dependencies_declaring_one_scheme_differently_is_an_error() -> None:
    def a() -> int:
        return 1

    def b() -> int:
        return 2

    a.__rtframe_security__ = {"s": {"type": "httpApiKey", "in": "cookie", "name": "x"}}  # type: ignore[attr-defined]
    b.__rtframe_security__ = {"s": {"type": "httpApiKey", "in": "cookie", "name": "y"}}  # type: ignore[attr-defined]

    async def join(conn: Connection, x: int = Depends(a), y: int = Depends(b)) -> None:
        return None

    with pytest.raises(ConfigurationError, match="declare security scheme 's' differently"):
        generate(app_with(None, connect=join))


@pytest.mark.parametrize(
    ("marker", "error"),
    [
        (["cookie"], "must be a mapping of scheme names"),
        ({"s": "cookie"}, "entry 's' must map a name to a Security Scheme Object"),
        ({"s": {"in": "cookie"}}, "entry 's' must map a name"),
    ],
)
def test_a_malformed_security_marker_is_an_error(marker: Any, error: str) -> None:
    def dep() -> int:
        return 1

    dep.__rtframe_security__ = marker  # type: ignore[attr-defined]

    async def join(conn: Connection, x: int = Depends(dep)) -> None:
        return None

    with pytest.raises(ConfigurationError, match=error):
        generate(app_with(None, connect=join))


def test_sends_needs_a_message() -> None:
    with pytest.raises(ConfigurationError, match="at least one message type"):
        sends()


# -- edge cases -----------------------------------------------------------------------


def test_a_security_marker_may_be_a_callable_and_name_its_schemes() -> None:
    def dep() -> int:
        return 1

    dep.__rtframe_security__ = lambda: {  # type: ignore[attr-defined]
        "token": {"type": "httpApiKey", "in": "query", "name": "token"}
    }

    async def join(conn: Connection, x: int = Depends(dep)) -> None:
        return None

    doc = generate(app_with(None, connect=join))
    assert doc["components"]["securitySchemes"] == {
        "token": {"type": "httpApiKey", "in": "query", "name": "token"}
    }
    assert doc["operations"]["ws.send.error"]["security"] == [
        {"$ref": "#/components/securitySchemes/token"}
    ]


def test_a_route_with_only_a_connect_handler_documents_the_error_frame() -> None:
    async def join(conn: Connection) -> None:
        """Say hello."""

    doc = generate(app_with(None, connect=join))
    assert sorted(doc["operations"]) == [
        "ws.receive.heartbeat",
        "ws.send.dropped",
        "ws.send.error",
        "ws.send.heartbeat",
        "ws.send.reconnect",
    ]
    assert doc["channels"]["ws"]["summary"] == "Say hello."
    assert problems(doc) == []


def test_models_with_the_same_name_stay_apart() -> None:
    first = type("Item", (BaseModel,), {"__annotations__": {"a": int}, "__module__": "one"})
    second = type("Item", (BaseModel,), {"__annotations__": {"b": str}, "__module__": "two"})

    async def take_one(msg: Any) -> None:
        return None

    async def take_two(msg: Any) -> None:
        return None

    take_one.__annotations__ = {"msg": first, "return": None}
    take_two.__annotations__ = {"msg": second, "return": None}
    ws = WebSocketRouter()
    ws.add_receive_handler("/ws/one", take_one)
    ws.add_receive_handler("/ws/two", take_two)
    doc = generate(RealtimeApp(routers=[ws]))
    schemas = doc["components"]["schemas"]
    items = [k for k in schemas if "Item" in k]
    assert len(items) == 2
    assert {tuple(schemas[k]["properties"]) for k in items} == {("a",), ("b",)}
    assert problems(doc) == []


def test_a_model_whose_output_differs_from_its_input_gets_two_schemas() -> None:
    async def add(msg: Total) -> Total:
        return msg

    doc = generate(app_with(add))
    schemas = doc["components"]["schemas"]
    assert "sum" not in schemas["Total-Input"]["properties"]
    assert "sum" in schemas["Total-Output"]["properties"]
    op = doc["operations"]["ws.receive.Total-Input"]
    assert op["reply"]["messages"] == [{"$ref": "#/channels/ws/messages/Total-Output"}]


def test_an_unannotated_return_is_a_reply_of_any_payload() -> None:
    async def loose(msg: Msg):  # type: ignore[no-untyped-def]
        return {"anything": 1}

    doc = generate(app_with(loose))
    assert doc["operations"]["ws.receive.Msg"]["reply"]["messages"] == [
        {"$ref": "#/channels/ws/messages/LooseReply"}
    ]
    assert doc["components"]["schemas"]["LooseReply"] == {}


def test_channel_ids_stay_unique() -> None:
    async def a(msg: Msg) -> None:
        return None

    ws = WebSocketRouter()
    ws.add_receive_handler("/ws/a-b", a)
    ws.add_receive_handler("/ws/a_b", a)
    ws.add_receive_handler("/", a)
    doc = generate(RealtimeApp(routers=[ws]))
    assert {c: v["address"] for c, v in doc["channels"].items()} == {
        "root": "/",
        "ws_a_b": "/ws/a-b",
        "ws_a_b_2": "/ws/a_b",
    }


def test_a_group_reached_from_two_routes_carries_both_messages() -> None:
    group = Group("shared")

    async def first(msg: Msg) -> One:
        return One()

    async def second(msg: Msg) -> Two:
        return Two()

    ws = WebSocketRouter()
    ws.add_receive_handler("/ws/one", group.broadcast(first))
    ws.add_receive_handler("/ws/two", group.broadcast(second))
    doc = generate(RealtimeApp(routers=[ws]))
    for channel in ("ws_one", "ws_two"):
        op = doc["operations"][f"{channel}.broadcast.shared"]
        assert op["messages"] == [
            {"$ref": f"#/channels/{channel}/messages/One"},
            {"$ref": f"#/channels/{channel}/messages/Two"},
        ]
    assert problems(doc) == []


def test_query_parameter_descriptions_from_dependencies() -> None:
    def page(size: Annotated[int, Field(description="Rows per page")] = 20) -> int:
        return size

    def token(token: str) -> str:
        """Check the token.

        Args:
            token: a signed token
                from the login page
        """
        return token

    async def join(conn: Connection, p: int = Depends(page), t: str = Depends(token)) -> None:
        return None

    doc = generate(app_with(None, connect=join))
    query = doc["channels"]["ws"]["bindings"]["ws"]["query"]
    assert query["required"] == ["token"]
    assert query["properties"]["size"] == {
        "type": "integer",
        "description": "Rows per page",
        "default": 20,
    }
    assert query["properties"]["token"]["description"] == "a signed token from the login page"


# -- the draft-07 rewriting -----------------------------------------------------------


def test_draft07_rewrites_2020_12_keywords() -> None:
    schema = {
        "type": "object",
        "properties": {
            "t": {"type": "array", "prefixItems": [{"type": "integer"}], "items": False},
            "r": {"$ref": "#/components/schemas/X", "description": "d"},
            "prefixItems": {"type": "string"},  # a property called prefixItems stays
            "u": {"oneOf": [{"$ref": "#/a"}], "discriminator": {"propertyName": "type"}},
        },
        "dependentRequired": {"a": ["b"]},
        "dependentSchemas": {"c": {"prefixItems": [{}]}},
        "unevaluatedProperties": False,
        "examples": [{"prefixItems": 1, "$ref": "data"}],
    }
    assert to_draft07(schema) == {
        "type": "object",
        "properties": {
            "t": {"type": "array", "items": [{"type": "integer"}], "additionalItems": False},
            "r": {"allOf": [{"$ref": "#/components/schemas/X"}], "description": "d"},
            "prefixItems": {"type": "string"},
            "u": {"oneOf": [{"$ref": "#/a"}]},
        },
        "dependencies": {"a": ["b"], "c": {"items": [{}]}},
        "examples": [{"prefixItems": 1, "$ref": "data"}],
    }
    assert to_draft07(True) is True


# -- docstrings ------------------------------------------------------------------------


def test_docstring_parts() -> None:
    def fn() -> None:
        """Join a room.

        Longer text
        on two lines.

        Args:
            room: the room
                slug.
            *rest: ignored
        Returns:
            nothing: really
        """

    doc = parse(fn)
    assert doc.summary == "Join a room."
    assert doc.description == "Join a room.\n\nLonger text\non two lines."
    assert doc.args == {"room": "the room slug.", "rest": "ignored"}

    class Base:
        """Inherited docs are not this class's."""

    class Child(Base):
        pass

    assert parse(Child).summary is None
    assert parse(lambda: None).args == {}


# -- the page ---------------------------------------------------------------------------


def test_the_page_escapes_what_it_shows() -> None:
    async def take(msg: Evil) -> None:
        """`<b>` bold."""

    page = render_page(generate(app_with(take)), json_url="/asyncapi.json?a=<x>")
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<code>&lt;b&gt;</code> bold." in page
    assert "<script" not in page  # the page runs no script at all


def test_django_login_and_permissions_share_the_session_cookie_scheme() -> None:
    from rtframe.django import LoginRequired, permission_required

    async def join(conn: Connection, user: Any) -> None:
        return None

    async def post(msg: Msg, user: Any) -> None:
        return None

    async def public(msg: Msg) -> None:
        return None

    # set here: string annotations could not name these local imports
    join.__annotations__ = {"conn": Connection, "user": LoginRequired, "return": None}
    post.__annotations__ = {
        "msg": Msg,
        "user": Annotated[Any, permission_required("chat.add_message")],
        "return": None,
    }
    ws = WebSocketRouter()
    ws.add_connect_handler("/ws/room", join)
    ws.add_receive_handler("/ws/post", post)
    ws.add_receive_handler("/ws/public", public)
    doc = generate(RealtimeApp(routers=[ws]))
    assert doc["components"]["securitySchemes"] == {
        "sessionidCookie": {"type": "httpApiKey", "in": "cookie", "name": "sessionid"}
    }
    secured = [{"$ref": "#/components/securitySchemes/sessionidCookie"}]
    assert doc["operations"]["ws_room.send.error"]["security"] == secured
    assert doc["operations"]["ws_post.receive.Msg"]["security"] == secured
    assert "security" not in doc["operations"]["ws_public.receive.Msg"]
