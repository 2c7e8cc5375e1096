"""The rtframe servers of `rt` with Prometheus metrics on (`serve_metrics`): the same
routers, so the difference to `rtframe` is the cost of the metrics (issue 9)."""

from __future__ import annotations

from rtframe import RealtimeApp
from rtframe.limits import NO_LIMITS
from rtframe.metrics import serve_metrics

from .rt import fan, ws

echo = RealtimeApp(routers=[ws], rate_limit=None, limits=NO_LIMITS)
serve_metrics(echo)

fanout = RealtimeApp(routers=[fan], rate_limit=None, limits=NO_LIMITS)
serve_metrics(fanout)
