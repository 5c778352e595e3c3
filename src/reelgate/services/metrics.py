"""The metrics one process keeps, served in Prometheus's text format (prometheus-client).

Each process makes its own registry at start (``serve`` in the app's lifespan, ``reelgate
engine`` in its run), never at import time, and hands this object to whatever records: the API
(requests, creates), the upstream calls (:mod:`.observed_provider`), the engine (checks,
webhooks). Nothing below the services imports it: the adaptor is wrapped, the store is read.

Every label takes values from a small, fixed set (route templates, never paths; outcome names
from the lists below), so that no request can make a new series.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

import prometheus_client
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

import reelgate
from reelgate.domain.health import LoopHealth
from reelgate.services.http_metrics import HttpMetrics

CONTENT_TYPE: Final = prometheus_client.CONTENT_TYPE_LATEST

UPSTREAM_BUCKETS: Final = (
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0
)  # fmt: skip
DUE_LAG_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


class Metrics:
    """One process's registry and its instruments, each recorded through a method here."""

    def __init__(self) -> None:
        # The _created series would double every counter's, for a time Prometheus has anyway.
        prometheus_client.disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped upstream
        self.registry = registry = CollectorRegistry()
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
        Info("reelgate_build", "The running reelgate.", registry=registry).info(
            {"version": reelgate.__version__}
        )
        self.http = HttpMetrics()
        """Every request, by route template: recorded on every request, so kept cheaply."""
        registry.register(self.http)
        self._creates = Counter(
            "reelgate_task_creates",
            "Task creates by model and outcome: accepted, upstream_unknown (kept, 202), invalid, "
            "unauthorized, insufficient_balance, rate_limited, upstream_refused, unavailable, "
            "error.",
            ["model", "outcome"],
            registry=registry,
        )
        self._upstream_requests = Counter(
            "reelgate_upstream_requests",
            "Calls to the upstream by channel, operation (submit, fetch_status, probe) and "
            "outcome (ok, or the error's code).",
            ["channel", "operation", "outcome"],
            registry=registry,
        )
        self._upstream: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._upstream_seconds = Histogram(
            "reelgate_upstream_request_duration_seconds",
            "Time the upstream took to answer, by channel and operation.",
            ["channel", "operation"],
            buckets=UPSTREAM_BUCKETS,
            registry=registry,
        )
        self._checks = Counter(
            "reelgate_engine_checks",
            "Engine checks of a task by channel and outcome: unchanged, advanced, made, "
            "succeeded, failed, upstream_error, media_error, error.",
            ["channel", "outcome"],
            registry=registry,
        )
        self._due_lag = Histogram(
            "reelgate_engine_due_lag_seconds",
            "How long after its next_poll_at each task was taken up for its check.",
            buckets=DUE_LAG_BUCKETS,
            registry=registry,
        )
        self._in_flight = Gauge(
            "reelgate_engine_in_flight", "Checks under way in this engine.", registry=registry
        )
        self._webhooks = Counter(
            "reelgate_webhook_deliveries",
            "Webhook delivery attempts by outcome: delivered, retry (failed, tried again "
            "later), failed (given up).",
            ["outcome"],
            registry=registry,
        )

    def render(self) -> bytes:
        """Every metric, in Prometheus's text format."""
        return prometheus_client.generate_latest(self.registry)

    def task_create(self, model: str, outcome: str) -> None:
        self._creates.labels(model, outcome).inc()

    def upstream_call(self, channel: str, operation: str, outcome: str, seconds: float) -> None:
        """One call to the upstream: on every create and engine check, so its series are looked
        up once (outcomes are error codes: a few dozen at most)."""
        series = self._upstream.get((channel, operation, outcome))
        if series is None:
            series = self._upstream[(channel, operation, outcome)] = (
                self._upstream_requests.labels(channel, operation, outcome),
                self._upstream_seconds.labels(channel, operation),
            )
        series[0].inc()
        series[1].observe(seconds)

    def engine_check(self, channel: str, outcome: str) -> None:
        self._checks.labels(channel, outcome).inc()

    def engine_due_lag(self, seconds: float) -> None:
        self._due_lag.observe(seconds)

    def webhook_delivery(self, outcome: str) -> None:
        self._webhooks.labels(outcome).inc()

    def watch_engine(self, in_flight: Callable[[], int], loops: Sequence[LoopHealth]) -> None:
        """Read the engine's checks under way and its loops' health at every scrape."""
        self._in_flight.set_function(in_flight)
        self.registry.register(_LoopHealthCollector(tuple(loops)))

    def watch(self, collector: Collector) -> None:
        """Add a collector read at every scrape (values kept elsewhere, such as the database's)."""
        self.registry.register(collector)


class _LoopHealthCollector(Collector):
    """The engine loops' health as the supervisor keeps it (:mod:`reelgate.engine.supervisor`)."""

    def __init__(self, loops: tuple[LoopHealth, ...]) -> None:
        self.loops = loops

    def collect(self) -> Iterable[Metric]:
        running = GaugeMetricFamily(
            "reelgate_engine_loop_running", "1 while the engine loop runs.", labels=["loop"]
        )
        healthy = GaugeMetricFamily(
            "reelgate_engine_loop_healthy",
            "1 while the engine loop runs and has not failed lately.",
            labels=["loop"],
        )
        restarts = CounterMetricFamily(
            "reelgate_engine_loop_restarts",
            "Times the engine loop failed and was started again.",
            labels=["loop"],
        )
        for loop in self.loops:
            running.add_metric([loop.name], float(loop.running))
            healthy.add_metric([loop.name], float(loop.healthy))
            restarts.add_metric([loop.name], float(loop.restarts))
        return [running, healthy, restarts]
