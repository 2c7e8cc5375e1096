"""Frame validation, dispatch, replies and the error frames of the wire protocol."""

import logging
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field

from rtframe import Connection, MessageError, RealtimeApp, Reject, WebSocketRouter
from rtframe.testing import TestClient

PATH = "/ws/{room}"


class Say(BaseModel):
    type: Literal["say"] = "say"
    text: str = Field(max_length=10)


class Add(BaseModel):
    type: Literal["add"] = "add"
    a: int
    b: int


class Boom(BaseModel):
    type: Literal["boom"] = "boom"


class Refuse(BaseModel):
    type: Literal["refuse"] = "refuse"


class Quit(BaseModel):
    type: Literal["quit"] = "quit"


class Bad(BaseModel):
    type: Literal["bad"] = "bad"


class Sum(BaseModel):
    total: int


class Said(BaseModel):
    room: str
    text: str


def make_app(**options: Any) -> RealtimeApp:
    ws = WebSocketRouter()

    @ws.on_receive(PATH)
    async def say(msg: Say, room: str) -> Said:
        return Said(room=room, text=msg.text)

    @ws.on_receive(PATH)
    async def add(msg: Add) -> Sum:
        return {"total": msg.a + msg.b}  # type: ignore[return-value]  # a dict is validated into Sum

    @ws.on_receive(PATH)
    async def boom(msg: Boom) -> None:
        raise RuntimeError("secret connection string")

    @ws.on_receive(PATH)
    async def refuse(msg: Refuse) -> None:
        raise MessageError("not_allowed", "You may not do that")

    @ws.on_receive(PATH)
    async def quit(msg: Quit, conn: Connection) -> None:
        raise Reject(4000, "bye")

    @ws.on_receive(PATH)
    async def bad(msg: Bad) -> Sum:
        return {"total": "not a number"}  # type: ignore[return-value]

    return RealtimeApp([ws], **options)


async def roundtrip(sock: Any, frame: str) -> Any:
    await sock.send_text(frame)
    return await sock.receive_json()


async def test_dispatch_by_type_and_reply_serialized_from_annotation() -> None:
    async with TestClient(make_app()).websocket("/ws/lobby") as sock:
        assert await roundtrip(sock, '{"type":"say","text":"hi"}') == {"room": "lobby", "text": "hi"}
        assert await roundtrip(sock, '{"type":"add","a":2,"b":3}') == {"total": 5}


async def test_malformed_json_gets_an_error_frame_and_the_connection_stays_open() -> None:
    async with TestClient(make_app()).websocket("/ws/lobby") as sock:
        error = await roundtrip(sock, '{"type": "say", "text": ')
        assert error["type"] == "error"
        assert error["code"] == "invalid_json"
        assert await roundtrip(sock, '{"type":"say","text":"still"}') == {"room": "lobby", "text": "still"}


async def test_validation_error_carries_pydantic_locations() -> None:
    async with TestClient(make_app()).websocket("/ws/lobby") as sock:
        error = await roundtrip(sock, '{"type":"add","a":"x","b":1}')
        assert error["code"] == "validation_error"
        assert error["errors"] == [{"loc": ["add", "a"], "msg": "Input should be a valid integer, unable to parse string as an integer", "type": "int_parsing"}]
        error = await roundtrip(sock, '{"type":"say","text":"far too long for ten"}')
        assert error["errors"][0]["type"] == "string_too_long"
        error = await roundtrip(sock, "[1, 2]")
        assert error["code"] == "validation_error"


async def test_unknown_and_missing_type() -> None:
    async with TestClient(make_app()).websocket("/ws/lobby") as sock:
        error = await roundtrip(sock, '{"type":"dance"}')
        assert error["code"] == "unknown_type"
        assert "'dance'" in error["detail"] and "'say'" in error["detail"]
        error = await roundtrip(sock, '{"text":"hi"}')
        assert error["code"] == "unknown_type"
        assert "no 'type'" in error["detail"]


async def test_single_handler_route_reports_a_wrong_type_as_unknown() -> None:
    ws = WebSocketRouter()

    @ws.on_receive("/one")
    async def say(msg: Say) -> Say:
        return msg

    async with TestClient(RealtimeApp([ws])).websocket("/one") as sock:
        assert (await roundtrip(sock, '{"type":"other","text":"x"}'))["code"] == "unknown_type"
        # with one handler the type field may be left out: its default applies
        assert await roundtrip(sock, '{"text":"x"}') == {"type": "say", "text": "x"}


async def test_handler_exception_is_an_internal_error_without_details(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="rtframe"):
        async with TestClient(make_app()).websocket("/ws/lobby") as sock:
            error = await roundtrip(sock, '{"type":"boom"}')
            assert error == {"type": "error", "code": "internal_error", "detail": "The server failed to handle the message", "errors": []}
            assert await roundtrip(sock, '{"type":"add","a":1,"b":1}') == {"total": 2}
    assert "secret connection string" in caplog.text
    assert "Traceback" in caplog.text or "RuntimeError" in caplog.text


async def test_invalid_return_value_is_a_server_error_not_a_bad_frame(caplog: pytest.LogCaptureFixture) -> None:
    async with TestClient(make_app()).websocket("/ws/lobby") as sock:
        assert (await roundtrip(sock, '{"type":"bad"}'))["code"] == "internal_error"
    assert "validation error" in caplog.text.lower()


async def test_message_error_reaches_the_client() -> None:
    async with TestClient(make_app()).websocket("/ws/lobby") as sock:
        assert await roundtrip(sock, '{"type":"refuse"}') == {"type": "error", "code": "not_allowed", "detail": "You may not do that", "errors": []}


async def test_reject_from_a_receive_handler_closes() -> None:
    async with TestClient(make_app()).websocket("/ws/lobby") as sock:
        await sock.send_json({"type": "quit"})
        assert await sock.expect_close(4000) == 4000
        assert sock.close_reason == "bye"


async def test_binary_frame_on_a_text_route_is_refused() -> None:
    async with TestClient(make_app()).websocket("/ws/lobby") as sock:
        await sock.send_bytes(b"\x00\x01")
        error = await sock.receive_json()
        assert error["code"] == "unsupported_frame"
        assert await roundtrip(sock, '{"type":"add","a":1,"b":2}') == {"total": 3}


async def test_bytes_handler_receives_binary_frames() -> None:
    ws = WebSocketRouter()

    @ws.on_receive("/bin")
    async def upload(data: bytes, conn: Connection) -> None:
        await conn.send_bytes(data[::-1])

    async with TestClient(RealtimeApp([ws])).websocket("/bin") as sock:
        await sock.send_bytes(b"abc")
        assert await sock.receive_bytes() == b"cba"
        await sock.send_text('{"x":1}')
        assert (await sock.receive_json())["code"] == "unsupported_frame"


async def test_a_handler_returning_bytes_replies_with_a_binary_frame(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ws = WebSocketRouter()

    @ws.on_receive("/bin")
    async def echo(data: bytes) -> bytes:
        # a str where bytes were promised is the handler's bug: internal_error, logged
        return data[::-1] if data != b"bad" else "oops"  # type: ignore[return-value]

    async with TestClient(RealtimeApp([ws])).websocket("/bin") as sock:
        await sock.send_bytes(b"abc")
        assert await sock.receive_bytes() == b"cba"
        with caplog.at_level(logging.ERROR, logger="rtframe"):
            await sock.send_bytes(b"bad")
            assert (await sock.receive_json())["code"] == "internal_error"
        assert "returned str, not bytes" in caplog.text


@pytest.mark.parametrize("binary", [False, True])
async def test_oversized_frame_closes_with_1009(binary: bool) -> None:
    ws = WebSocketRouter()

    @ws.on_receive("/s")
    async def say(msg: Say) -> Say:
        return msg

    @ws.on_receive("/s")
    async def upload(data: bytes) -> None: ...

    async with TestClient(RealtimeApp([ws], max_message_size=64)).websocket("/s") as sock:
        await sock.send_text('{"type":"say","text":"ok"}')
        assert (await sock.receive_json())["text"] == "ok"
        if binary:
            await sock.send_bytes(b"x" * 65)
        else:
            await sock.send_text('{"type":"say","text":"' + "é" * 40 + '"}')  # 80 bytes, 40 characters
        await sock.expect_close(1009)


async def test_route_level_message_size_overrides_the_app() -> None:
    ws = WebSocketRouter()

    @ws.route("/s", max_message_size=16)
    async def connect(conn: Connection) -> None: ...

    @ws.on_receive("/s")
    async def say(msg: Say) -> Say:
        return msg

    async with TestClient(RealtimeApp([ws])).websocket("/s") as sock:
        await sock.send_text('{"type":"say","text":"1234567890"}')
        await sock.expect_close(1009)


async def test_route_without_text_handlers_answers_unsupported_frame() -> None:
    ws = WebSocketRouter()

    @ws.route("/quiet")
    async def connect(conn: Connection) -> None: ...

    async with TestClient(RealtimeApp([ws])).websocket("/quiet") as sock:
        await sock.send_text('{"type":"say"}')
        assert (await sock.receive_json())["code"] == "unsupported_frame"


async def test_return_annotations_list_and_none() -> None:
    ws = WebSocketRouter()

    @ws.on_receive("/list")
    async def many(msg: Add) -> list[Sum]:
        return [Sum(total=msg.a), Sum(total=msg.b)]

    @ws.on_receive("/none")
    async def nothing(msg: Add) -> None:
        return None

    client = TestClient(RealtimeApp([ws]))
    async with client.websocket("/list") as sock:
        assert await roundtrip(sock, '{"a":1,"b":2}') == [{"total": 1}, {"total": 2}]
    async with client.websocket("/none") as sock:
        await sock.send_text('{"a":1,"b":2}')
        await sock.receive_nothing()
