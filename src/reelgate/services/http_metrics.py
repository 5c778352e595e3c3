"""Requests counted and timed by route, at the cost the poll fast path can bear.

Every request is recorded, the cached poll's included, which the gateway answers in a few
microseconds. prometheus-client's own counter and histogram take a lock per increment and
cost about 1.5 us a request between them; the same counts kept in plain Python objects, on
the event loop's thread that alone records them, cost about a quarter of that. They are
handed to prometheus-client as metric families when it is scraped, so the exposition is the
library's own.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Final

from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

BUCKETS: Final = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
)  # fmt: skip
"""A poll from memory takes tens of microseconds, a create a few milliseconds plus the
upstream's answer, a video download or an event stream much longer."""

KNOWN_METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Any other method is counted as OTHER: a client may send any token there."""


class _Timings:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(BUCKETS) + 1)  # the last: above every bound
        self.total = 0.0


class _Series:
    __slots__ = ("count", "timings")

    def __init__(self, timings: _Timings) -> None:
        self.count = 0
        self.timings = timings


class HttpMetrics(Collector):
    """``reelgate_http_requests_total{route,method,status}`` and
    ``reelgate_http_request_duration_seconds{route,method}``."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str, int], _Series] = {}
        self._timings: dict[tuple[str, str], _Timings] = {}

    def record(self, route: str, method: str, status: int, seconds: float) -> None:
        series = self._series.get((route, method, status))
        if series is None:
            series = self._new_series(route, method, status)
        series.count += 1
        timings = series.timings
        timings.counts[bisect.bisect_left(BUCKETS, seconds)] += 1
        timings.total += seconds

    def _new_series(self, route: str, method: str, status: int) -> _Series:
        # Kept under the method as shown: any method but the known ones is counted as OTHER,
        # never remembered under its own name.
        shown = method if method in KNOWN_METHODS else "OTHER"
        series = self._series.get((route, shown, status))
        if series is None:
            timings = self._timings.setdefault((route, shown), _Timings())
            series = self._series[(route, shown, status)] = _Series(timings)
        return series

    def collect(self) -> Iterable[Metric]:
        requests = CounterMetricFamily(
            "reelgate_http_requests",
            "HTTP requests answered, by route template, method and status.",
            labels=["route", "method", "status"],
        )
        for (route, method, status), series in self._series.items():
            requests.add_metric([route, method, str(status)], series.count)
        durations = HistogramMetricFamily(
            "reelgate_http_request_duration_seconds",
            "Time from a request's arrival to the last byte of its answer, by route template.",
            labels=["route", "method"],
        )
        for (route, method), timings in self._timings.items():
            cumulative, buckets = 0, []
            for bound, count in zip((*BUCKETS, float("inf")), timings.counts, strict=True):
                cumulative += count
                buckets.append((_bound(bound), cumulative))
            durations.add_metric([route, method], buckets, timings.total)
        return [requests, durations]


def _bound(bound: float) -> str:
    return "+Inf" if bound == float("inf") else repr(bound)
