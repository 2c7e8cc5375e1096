"""Prometheus metrics of an app: `serve_metrics(app)` serves them at `/metrics`.

    from rtframe.metrics import serve_metrics

    app = RealtimeApp([router])
    serve_metrics(app)  # GET /metrics: the Prometheus text format

Needs the `metrics` extra (`pip install 'rtframe[metrics]'`, which installs
`prometheus_client`). Nothing here runs while messages flow: the app counts in plain
integers it keeps anyway (`app.stats`, `app.limit_stats`, a counter per route, the
dropped frames of each connection, the Redis layer's `stats`) and a collector reads them
when Prometheus scrapes. The metrics go to a registry of the app's own, not
`prometheus_client`'s global one; pass `registry=` to add them to another.

Counters, all `rtframe_`-prefixed: `connections_accepted_total`,
`handshakes_refused_total{reason}`, `messages_received_total{route}`,
`replies_sent_total{route}` (handler results sent back to the sender, not broadcasts),
`messages_handled_total{route,type}` (messages a handler was called with, by message
type), `messages_sent_total{route,type,to}` (handler results by type, `to` the sender
or the group),
`error_frames_total{code}`, `closes_total{code}`, `outbox_dropped_total`,
`limit_refusals_total{limit}` (`limit="messages"`: frames over the rate limit),
`timeouts_total{kind}` (heartbeat, idle) and, with a Redis layer,
`layer_published_total`, `layer_received_total`, `layer_outages_total`,
`layer_busy_total`, `layer_batches_total`, `layer_malformed_total`,
`layer_unknown_target_total`, `layer_resubscribed_total`. Gauges: `connections`,
`groups`, `draining`.

A task worker's metrics (`rtframe worker --http-port`, `worker_exposition`), by `task`
and `queue`: counters `tasks_received_total`, `tasks_started_total`,
`tasks_succeeded_total`, `tasks_failed_total` (failed for good), `tasks_retried_total`,
`tasks_dead_lettered_total`, the histogram `task_duration_seconds`; and
`tasks_taken_over_total`, `worker_broker_losses_total`,
`worker_broker_reconnects_total`; gauges `tasks_running`, `worker_concurrency`,
`worker_ready`, `worker_draining`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

try:
    from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
    )
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - exercised in a subprocess test
    raise ModuleNotFoundError(
        "rtframe.metrics needs the prometheus_client package: pip install 'rtframe[metrics]'",
        name="prometheus_client",
    ) from exc

from .app import RealtimeApp
from .http import Request, Response

if TYPE_CHECKING:
    # typing only: importing rtframe.tasks loads Taskiq, which an app's metrics never need
    from .tasks.stats import Key, WorkerState

__all__ = ["AppCollector", "WorkerCollector", "serve_metrics", "worker_exposition"]

#: Handshakes refused by a limit of `Limits`, as `LimitStats` counts them.
_HANDSHAKE_LIMITS = ("connections", "per_address", "handshakes")
#: The Redis layer's counters (`RedisStats`) exported as `rtframe_layer_<name>_total`.
_LAYER_COUNTERS = (
    ("published", "Messages the layer published"),
    ("received", "Messages the layer received from other processes"),
    ("outages", "Times the layer's backend became unreachable"),
    ("busy", "Publishes refused because the backend was saturated"),
    ("batches", "Round trips that carried the published messages"),
    ("malformed", "Received payloads dropped because they did not parse"),
    ("unknown_target", "Direct messages for a member no longer in this process"),
    ("resubscribed", "Times a lost subscriber connection was made and subscribed again"),
)


def _labelled(name: str, doc: str, label: str, counts: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=[label])
    for key, value in sorted(counts.items()):
        family.add_metric([key], value)
    return family


class AppCollector(Collector):
    """Reads one app's counters each time the registry is collected (scraped)."""

    def __init__(self, app: RealtimeApp) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        app = self.app
        stats, limits = app.stats, app.limit_stats
        sessions = tuple(app.sessions)
        yield GaugeMetricFamily("rtframe_connections", "Open connections", len(sessions))
        yield GaugeMetricFamily(
            "rtframe_groups", "Groups with a member here", len(app.hub.registry.groups())
        )
        yield GaugeMetricFamily(
            "rtframe_draining", "1 while the app drains (refuses handshakes)", int(app.draining)
        )
        yield CounterMetricFamily(
            "rtframe_connections_accepted", "Handshakes accepted", stats.accepted
        )
        refused = dict(stats.refused)
        for name in _HANDSHAKE_LIMITS:
            refused[name] = getattr(limits, name)
        yield _labelled("rtframe_handshakes_refused", "Handshakes refused", "reason", refused)
        received: dict[str, int] = {}
        for route in app.routes:
            received[route.path.template] = route.received
        yield _labelled(
            "rtframe_messages_received", "Frames received (not heartbeats)", "route", received
        )
        replies = {route.path.template: route.replies for route in app.routes}
        yield _labelled(
            "rtframe_replies_sent", "Handler results sent back to the sender", "route", replies
        )
        handled = CounterMetricFamily(
            "rtframe_messages_handled",
            "Messages a handler was called with, by message type",
            labels=["route", "type"],
        )
        sent = CounterMetricFamily(
            "rtframe_messages_sent",
            "Handler results sent, by type, to the sender or the group",
            labels=["route", "type", "to"],
        )
        for route in app.routes:
            path = route.path.template
            for handler in route.every_handler():
                plan = handler.plan
                kind = getattr(plan.message_type, "__name__", str(plan.message_type))
                handled.add_metric([path, kind], handler.handled)
                out = getattr(plan.returns, "__name__", str(plan.returns))
                if handler.group is not None:
                    sent.add_metric([path, out, "group"], handler.broadcasts)
                elif handler.encode is not None:
                    sent.add_metric([path, out, "sender"], handler.replies)
        yield handled
        yield sent
        yield _labelled("rtframe_error_frames", "Error frames sent", "code", stats.errors)
        closes = {str(code): n for code, n in stats.closes.items()}
        yield _labelled("rtframe_closes", "Accepted connections closed", "code", closes)
        dropped = stats.dropped + sum(session.conn.dropped for session in sessions)
        yield CounterMetricFamily(
            "rtframe_outbox_dropped", "Frames dropped from slow clients' outboxes", dropped
        )
        yield _labelled(
            "rtframe_limit_refusals", "Refusals by each limit", "limit", limits.as_dict()
        )
        for name, doc, timings in (
            ("rtframe_broadcast_publish_seconds", "Publish through the layer", stats.publish),
            ("rtframe_broadcast_fan_out_seconds", "Local fan-out, inline part", stats.fan_out),
        ):
            yield HistogramMetricFamily(
                name, doc, buckets=timings.cumulative(), sum_value=timings.total
            )
        timeouts = {"heartbeat": 0, "idle": 0, **stats.timeouts}
        yield _labelled("rtframe_timeouts", "Connections closed by a timeout", "kind", timeouts)
        layer_stats = getattr(app.layer, "stats", None)
        if layer_stats is not None:
            for name, doc in _LAYER_COUNTERS:
                value = getattr(layer_stats, name, None)
                if isinstance(value, int):
                    yield CounterMetricFamily(f"rtframe_layer_{name}", doc, value)


def serve_metrics(
    app: RealtimeApp, path: str = "/metrics", *, registry: CollectorRegistry | None = None
) -> CollectorRegistry:
    """Serve `app`'s metrics at GET `path` (Prometheus text format); returns the registry.

    Without `registry` the metrics go to a new registry of their own; anything else
    registered there is served too.
    """
    if registry is None:
        registry = CollectorRegistry(auto_describe=True)
    registry.register(AppCollector(app))

    async def metrics(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    app.add_http_route(path, metrics)
    return registry


#: A worker's per-task counters: (`WorkerStats` attribute, metric name, help).
_TASK_COUNTERS = (
    ("received", "rtframe_tasks_received", "Task messages handed to this worker to run"),
    ("started", "rtframe_tasks_started", "Task runs whose code began"),
    ("succeeded", "rtframe_tasks_succeeded", "Task runs that returned"),
    ("failed", "rtframe_tasks_failed", "Tasks that failed for good (no attempt left)"),
    ("retried", "rtframe_tasks_retried", "Failed attempts sent again to run later"),
    ("dead_lettered", "rtframe_tasks_dead_lettered", "Failed tasks added to a dead-letter place"),
)


def _by_task(name: str, doc: str, counts: dict[Key, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, doc, labels=["task", "queue"])
    for (task, queue), value in sorted(counts.items()):
        family.add_metric([task, queue], value)
    return family


class WorkerCollector(Collector):
    """Reads one task worker's counters (`WorkerState`) each time it is scraped."""

    def __init__(self, state: WorkerState) -> None:
        self.state = state

    def collect(self) -> Iterator[Metric]:
        state, stats = self.state, self.state.stats
        for attribute, name, doc in _TASK_COUNTERS:
            yield _by_task(name, doc, getattr(stats, attribute))
        durations = HistogramMetricFamily(
            "rtframe_task_duration_seconds", "How long task runs took", labels=["task", "queue"]
        )
        for (task, queue), timings in sorted(stats.durations.items()):
            durations.add_metric(
                [task, queue], buckets=timings.cumulative(), sum_value=timings.total
            )
        yield durations
        yield GaugeMetricFamily("rtframe_tasks_running", "Task runs in progress", stats.running)
        yield GaugeMetricFamily(
            "rtframe_worker_concurrency", "Task runs allowed at once", state.concurrency
        )
        yield GaugeMetricFamily(
            "rtframe_worker_ready", "1 while the worker takes tasks", int(state.unready() is None)
        )
        yield GaugeMetricFamily(
            "rtframe_worker_draining",
            "1 after SIGTERM, while running tasks finish",
            int(state.draining),
        )
        yield CounterMetricFamily(
            "rtframe_tasks_taken_over",
            "Messages taken over from a worker that died or froze",
            stats.taken_over,
        )
        yield CounterMetricFamily(
            "rtframe_worker_broker_losses",
            "Times the broker became unreachable",
            stats.broker_losses,
        )
        yield CounterMetricFamily(
            "rtframe_worker_broker_reconnects",
            "Times the broker answered again after it was lost",
            stats.reconnects,
        )


def worker_exposition(state: WorkerState) -> Callable[[], tuple[str, bytes]]:
    """The `/metrics` answer of a task worker: (content type, Prometheus text), read
    from `state` at each call (`rtframe worker --http-port` serves it)."""
    registry = CollectorRegistry(auto_describe=True)
    registry.register(WorkerCollector(state))

    def expose() -> tuple[str, bytes]:
        return CONTENT_TYPE_LATEST, generate_latest(registry)

    return expose
