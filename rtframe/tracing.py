"""OpenTelemetry tracing of an app: a span per handler call, none per connection.

    from rtframe.tracing import instrument

    app = RealtimeApp([router])
    instrument(app)  # after the routers are included; spans go to the global provider

Needs the `otel` extra (`pip install 'rtframe[otel]'`, which installs
`opentelemetry-api`; the SDK and an exporter are the application's choice). Each call
of a receive handler is one span, `rtframe.receive <route path>`, with the attributes
`rtframe.route`, `rtframe.message_type`, `rtframe.handler` and `rtframe.connection_id`.
A handler that raises (other than `Reject`, its way of closing the connection) ends its
span with an error status and the exception recorded; the client gets its error frame as
without tracing. Connections themselves make no span: a long-lived WebSocket would make
one span of hours.

`instrument` wraps the handlers of the routes the app has when it is called; an app
never instrumented runs exactly the code it would without this module. Connections
opened before `instrument` have spans without a connection id.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any

try:
    from opentelemetry import trace
    from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer, TracerProvider
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ModuleNotFoundError(
        "rtframe.tracing needs the opentelemetry-api package: pip install 'rtframe[otel]'",
        name="opentelemetry",
    ) from exc

from . import connection
from ._routes import CompiledRoute, Handler
from .app import RealtimeApp
from .exceptions import Reject

__all__ = ["instrument"]

_TRACED = "__rtframe_traced__"


def instrument(app: RealtimeApp, tracer_provider: TracerProvider | None = None) -> None:
    """Trace every receive handler call of `app` (a span each); idempotent.

    `tracer_provider` defaults to OpenTelemetry's global one. Call it after the app's
    routers are included: routes added later are not traced.
    """
    tracer = trace.get_tracer("rtframe", tracer_provider=tracer_provider)
    connection._track_current = True  # sessions starting from now record their connection
    for route in app.routes:
        handlers = [*route.handlers.values(), *((route.binary,) if route.binary else ())]
        for handler in handlers:
            if not getattr(handler.plan.fn, _TRACED, False):
                _trace(tracer, route, handler)


def _trace(tracer: Tracer, route: CompiledRoute, handler: Handler) -> None:
    plan = handler.plan
    fn: Callable[..., Any] = plan.fn
    name = f"rtframe.receive {route.path.template}"
    message_type = plan.message_type
    attributes = {
        "rtframe.route": route.path.template,
        "rtframe.message_type": getattr(message_type, "__name__", str(message_type)),
        "rtframe.handler": plan.name,
    }

    @functools.wraps(fn)
    async def traced(*args: Any, **kwargs: Any) -> Any:
        conn = connection._current_connection.get()
        with tracer.start_as_current_span(
            name,
            kind=SpanKind.SERVER,
            attributes={**attributes, "rtframe.connection_id": conn.id if conn else ""},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                return await fn(*args, **kwargs)
            except Reject:
                raise  # the handler closing the connection on purpose: not a failure
            except Exception as exc:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
                raise

    setattr(traced, _TRACED, True)
    # the session reads `handler.plan` for each message: swapping the plan is the hook
    handler.plan = dataclasses.replace(plan, fn=traced)
