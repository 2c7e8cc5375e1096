"""Django's standard `@task` functions, and a view that enqueues one."""

from __future__ import annotations

import asyncio
import os

from django.http import HttpRequest, JsonResponse
from django_tasks import TaskContext, task  # Django 6: django.tasks


@task
def add(a: int, b: int) -> int:
    return a + b


@task
def explode(reason: str) -> None:
    raise ValueError(reason)


@task
async def greet(name: str) -> dict[str, object]:
    await asyncio.sleep(0)
    return {"hello": name, "pid": os.getpid()}


@task(takes_context=True)
def attempt_of(context: TaskContext) -> int:
    return context.attempt


def start(request: HttpRequest) -> JsonResponse:
    result = add.enqueue(int(request.GET["a"]), int(request.GET["b"]))
    return JsonResponse({"id": result.id, "status": str(result.status)})
