"""Handler signatures are checked at registration, with errors naming function and parameter."""

from typing import Annotated, Literal

import pytest
from pydantic import BaseModel

from rtframe import ConfigurationError, Connection, Depends, RealtimeApp, WebSocketRouter


class A(BaseModel):
    type: Literal["a"] = "a"


class B(BaseModel):
    type: Literal["b"] = "b"


class Untagged(BaseModel):
    text: str


class Other(BaseModel):
    value: int


def register_receive(fn: object, path: str = "/x/{room}") -> None:
    WebSocketRouter().add_receive_handler(path, fn)  # type: ignore[arg-type]


def test_sync_handler_is_refused() -> None:
    def handler(msg: A) -> None: ...

    with pytest.raises(ConfigurationError, match=r"handler .*handler must be declared with `async def`"):
        register_receive(handler)


def test_two_message_parameters_are_refused() -> None:
    async def handler(first: A, second: B) -> None: ...

    with pytest.raises(ConfigurationError, match=r"parameter 'second' of .*handler.*already takes the message as 'first'"):
        register_receive(handler)


def test_unservable_annotation_names_the_parameter() -> None:
    async def handler(msg: A, thing: list[int]) -> None: ...

    with pytest.raises(ConfigurationError, match=r"parameter 'thing' of .*handler cannot be served"):
        register_receive(handler)


def test_missing_annotation_is_refused() -> None:
    async def handler(msg: A, mystery) -> None: ...  # type: ignore[no-untyped-def]

    with pytest.raises(ConfigurationError, match=r"parameter 'mystery'.*no annotation"):
        register_receive(handler)


def test_receive_handler_needs_a_message() -> None:
    async def handler(conn: Connection) -> None: ...

    with pytest.raises(ConfigurationError, match="needs a parameter annotated with a pydantic model"):
        register_receive(handler)


def test_connect_handler_cannot_take_a_message() -> None:
    async def connect(conn: Connection, msg: A) -> None: ...

    with pytest.raises(ConfigurationError, match=r"parameter 'msg'.*connect handler receives no message"):
        WebSocketRouter().add_connect_handler("/x", connect)


def test_path_param_annotation_must_match_converter() -> None:
    async def handler(msg: A, room: int) -> None: ...

    with pytest.raises(ConfigurationError, match=r"'room'.*annotated int.*declares \{room\} as str"):
        register_receive(handler)


def test_args_and_kwargs_are_refused() -> None:
    async def handler(msg: A, *args: int) -> None: ...

    with pytest.raises(ConfigurationError, match=r"parameter 'args'.*\*args"):
        register_receive(handler)


def test_several_handlers_need_a_type_literal() -> None:
    ws = WebSocketRouter()

    @ws.on_receive("/x")
    async def one(msg: A) -> None: ...

    @ws.on_receive("/x")
    async def two(msg: Untagged) -> None: ...

    with pytest.raises(ConfigurationError, match="Untagged needs a `type: Literal"):
        RealtimeApp([ws])


def test_two_handlers_for_one_model_are_refused() -> None:
    ws = WebSocketRouter()

    @ws.on_receive("/x")
    async def one(msg: A) -> None: ...

    @ws.on_receive("/x")
    async def two(msg: A) -> None: ...

    with pytest.raises(ConfigurationError, match="both receive A"):
        RealtimeApp([ws])


def test_duplicate_type_tags_are_refused() -> None:
    class A2(BaseModel):
        type: Literal["a"] = "a"

    ws = WebSocketRouter()

    @ws.on_receive("/x")
    async def one(msg: A) -> None: ...

    @ws.on_receive("/x")
    async def two(msg: A2) -> None: ...

    with pytest.raises(ConfigurationError, match="message type 'a' is claimed by both"):
        RealtimeApp([ws])


def test_sync_generator_dependency_is_refused() -> None:
    def dep():  # type: ignore[no-untyped-def]
        yield 1

    async def handler(msg: A, value: int = Depends(dep)) -> None: ...

    with pytest.raises(ConfigurationError, match="sync generator"):
        register_receive(handler)


def test_connection_scoped_dependency_cannot_take_the_message() -> None:
    async def dep(msg: A) -> int:
        return 1

    async def handler(msg: A, value: Annotated[int, Depends(dep)]) -> None: ...

    with pytest.raises(ConfigurationError, match=r"scope='message'"):
        register_receive(handler)


def test_dependency_cycle_is_refused() -> None:
    # a cycle needs a forward reference: close it by patching a default afterwards
    async def ping(other: int = 0) -> int:
        return other

    async def pong(other: int = Depends(ping)) -> int:
        return other

    ping.__defaults__ = (Depends(pong),)

    async def handler(msg: A, value: int = Depends(ping)) -> None: ...

    with pytest.raises(ConfigurationError, match="dependency cycle"):
        register_receive(handler)


def test_depends_validates_its_arguments() -> None:
    with pytest.raises(TypeError, match="needs a callable"):
        Depends(42)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="'connection' or 'message'"):
        Depends(lambda: 1, scope="request")  # type: ignore[arg-type]


def test_unresolvable_annotations_are_reported() -> None:
    async def handler(msg: "DoesNotExist") -> None: ...  # type: ignore[name-defined]  # noqa: F821

    with pytest.raises(ConfigurationError, match="cannot resolve the annotations"):
        register_receive(handler)


def test_app_options_are_checked() -> None:
    with pytest.raises(ConfigurationError, match="overflow"):
        RealtimeApp(overflow="block")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="positive"):
        RealtimeApp(outbox_limit=0)
