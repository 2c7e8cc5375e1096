"""`task_progress` frames in the document: every WebSocket route of an app with a
`Tasks(app=app)` documents them as sent by the server; an app without tasks does not."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel

from rtframe import Connection, RealtimeApp, SSERouter, WebSocketRouter, sends
from rtframe.asyncapi import generate
from rtframe.asyncapi.typescript import typescript
from rtframe.tasks import TaskProgressFrame, Tasks

from .checks import errors, parser_diagnostics, problems


class Start(BaseModel):
    type: Literal["start"] = "start"
    n: int


class Started(BaseModel):
    type: Literal["started"] = "started"
    task_id: str


def make_app(*, tasks: int = 1, declares: bool = False) -> RealtimeApp:
    ws = WebSocketRouter()
    sse = SSERouter()

    @ws.on_receive("/ws/jobs")
    async def start(msg: Start, conn: Connection) -> Started:
        return Started(task_id="t")

    @ws.on_receive("/ws/other/{room}")
    async def other(msg: Start, conn: Connection) -> None: ...

    if declares:

        @ws.on_receive("/ws/declared")
        @sends(TaskProgressFrame)
        async def declared(msg: Start, conn: Connection) -> None: ...

    @sse.route("/events")
    async def events(conn: Connection) -> None: ...

    app = RealtimeApp([ws, sse])
    for _ in range(tasks):
        Tasks(app=app)
    return app


def progress_ops(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc["operations"].items() if k.endswith(".send.task_progress")}


def test_every_websocket_route_of_an_app_with_tasks_documents_task_progress() -> None:
    doc: dict[str, Any] = dict(generate(make_app()))
    ops = progress_ops(doc)
    assert sorted(ops) == ["ws_jobs.send.task_progress", "ws_other_room.send.task_progress"]
    for cid in ("ws_jobs", "ws_other_room"):
        op = ops[f"{cid}.send.task_progress"]
        assert op["action"] == "send"
        assert op["messages"] == [{"$ref": f"#/channels/{cid}/messages/TaskProgressFrame"}]
        assert op["summary"] == "Tell the connection that enqueued a task how it is going."
        assert "`.using(notify=conn)`" in op["description"]
        assert "at most once" in op["description"]
    # an SSE endpoint's stream carries no task_progress: it is not a notify= target
    assert not any(k.startswith("events") for k in ops)
    schema = doc["components"]["schemas"]["TaskProgressFrame"]
    assert set(schema["properties"]) == set(TaskProgressFrame.model_fields)
    assert schema["properties"]["type"]["const"] == "task_progress"
    assert schema["properties"]["status"]["enum"] == ["ready", "running", "successful", "failed"]
    assert "stay in the task's status record" in schema["properties"]["error"]["description"]
    assert set(schema["required"]) == {"task_id", "task", "status"}
    # a frame the server really sends validates against the documented schema
    frame = TaskProgressFrame(task_id="a1", task="jobs.count", status="successful", result=3)
    assert frame.model_dump(mode="json")["type"] == "task_progress"


def test_the_document_with_task_progress_is_valid() -> None:
    doc: dict[str, Any] = dict(generate(make_app(declares=True)))
    assert problems(doc) == []
    (diagnostics,) = parser_diagnostics(doc)
    assert errors(diagnostics) == []


def test_an_app_without_tasks_has_no_task_progress() -> None:
    doc: dict[str, Any] = dict(generate(make_app(tasks=0)))
    assert progress_ops(doc) == {}
    assert "task_progress" not in json.dumps(doc)
    assert "TaskProgressFrame" not in doc["components"]["schemas"]


def test_tasks_made_without_the_app_add_nothing() -> None:
    app = make_app(tasks=0)
    Tasks()
    assert "task_progress" not in json.dumps(generate(app))


def test_two_tasks_on_one_app_document_it_once_and_a_declaring_route_once() -> None:
    doc: dict[str, Any] = dict(generate(make_app(tasks=2, declares=True)))
    ops = [k for k in doc["operations"] if k.startswith("ws_jobs.") and "task_progress" in k]
    assert ops == ["ws_jobs.send.task_progress"]
    declared = [
        k
        for k, op in doc["operations"].items()
        if k.startswith("ws_declared.")
        and op["messages"] == [{"$ref": "#/channels/ws_declared/messages/TaskProgressFrame"}]
    ]
    assert len(declared) == 1  # its own @sends, not a second operation for the same frame


def test_the_description_lists_the_server_message() -> None:
    (message,) = make_app(tasks=2).describe().server_messages
    assert (message.model, message.name) == (TaskProgressFrame, "task_progress")


def test_client_types_include_task_progress_in_each_routes_server_frames() -> None:
    out = typescript(generate(make_app()))
    assert "export interface TaskProgressFrame {" in out
    assert "'type': 'task_progress';" in out
    server_frames = [
        line for line in out.splitlines() if re.match(r"export type \w+ServerFrame = ", line)
    ]
    ws = [line for line in server_frames if line.startswith("export type Ws")]
    assert len(ws) == 2
    assert all("TaskProgressFrame" in line for line in ws)
    assert not any("TaskProgressFrame" in line for line in server_frames if line not in ws)


def test_tasks_made_after_the_app_was_described_are_documented_too() -> None:
    app = make_app(tasks=0)
    assert len(app.describe().server_messages) == 0
    Tasks(app=app)
    assert "ws_jobs.send.task_progress" in generate(app)["operations"]
