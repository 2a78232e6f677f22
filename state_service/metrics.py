"""DogStatsD metrics for real-time monitoring, through the ``datadog`` package.

Sent to ``DD_AGENT_HOST``:``DD_DOGSTATSD_PORT`` (default port 8125) when ``DD_AGENT_HOST`` is
set; silent otherwise. Tags are bounded: wallet, states, actor, route, method, status class.
"""

from __future__ import annotations

import time

from datadog.dogstatsd.base import DogStatsd

from tokenwatch import config

TRANSITIONS = "tokenwatch.state_service.transitions"
REQUEST_LATENCY = "tokenwatch.state_service.request.latency_ms"


class ServiceMetrics:
    def __init__(self, host: str | None = None, port: int | None = None, env: str = "local"):
        self._statsd = (
            DogStatsd(host=host, port=port or 8125, disable_telemetry=True,
                      constant_tags=[f"env:{env}", "service:tokenwatch-state"])
            if host else None
        )

    @classmethod
    def from_env(cls) -> ServiceMetrics:
        settings = config.settings()
        return cls(settings.dd_agent_host, settings.dd_dogstatsd_port, settings.env)

    @property
    def enabled(self) -> bool:
        return self._statsd is not None

    def transition(self, wallet_id: str, from_state: str | None, to_state: str, actor: str):
        if self._statsd:
            self._statsd.increment(TRANSITIONS, tags=[
                f"wallet:{wallet_id}", f"from_state:{from_state or 'none'}",
                f"to_state:{to_state}", f"actor:{actor}"])

    def request(self, route: str, method: str, status: int, seconds: float):
        if self._statsd:
            self._statsd.histogram(REQUEST_LATENCY, seconds * 1000.0, tags=[
                f"route:{route}", f"method:{method}", f"status_class:{status // 100}xx"])

    def close(self):
        if self._statsd:
            self._statsd.close_socket()


class RequestTiming:
    """ASGI middleware: each HTTP request's latency to ``metrics.request``, tagged with the
    route that answered it (its name, never the path: paths carry token references)."""

    def __init__(self, app, metrics: ServiceMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start, status = time.perf_counter(), 500

        async def timed_send(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            route = scope.get("route")
            self.metrics.request(getattr(route, "name", "unmatched"), scope["method"], status,
                                 time.perf_counter() - start)
